"""Single vs 2-process curriculum (run by hand; results go to BENCHMARKS.md, "Single vs
2-process curriculum").

Builds one tiny run (tests' tiny data: 16 stays, 3-hour windows; debug tokenizer; 2 SFT steps),
then times the same 8-step curriculum (tests/test_trainer.py SMALL) with the same global batch
of 4 stays, alternated ``--repeats`` times: `clin-jepa pretrain` in one process (batch 4) and
`accelerate launch` of 2 gloo processes on cpu_ddp.yaml (batch 2 each). Wall time of each
command, interpreter and launcher start-up included (that is what a user waits for).

    python benchmarks/bench_processes.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tests' tiny-data writer and curriculum: one owner each


def _setup(root: Path) -> Path:
    from test_distributed import GLOBAL_BATCH, WINDOW, _cfg  # noqa: F401
    from test_trainer import SMALL
    from test_windows import write_tiny_data

    from clin_jepa.data.tokenizer import train_tokenizer
    from clin_jepa.data.windows import load_corpus
    from clin_jepa.training.sft import run_sft

    data = write_tiny_data(root / "data", stays=16, hours=8, gap_stay=False)
    (root / "small.yaml").write_text(yaml.safe_dump(SMALL))
    run = root / "sft"
    train_tokenizer(load_corpus(data, WINDOW).texts * 3, 300, run / "tokenizer")
    run_sft(run, _cfg(root, run, GLOBAL_BATCH))
    return run


def _time(cmd: list[str]) -> float:
    env = dict(os.environ, CLIN_JEPA_PROGRESS="0", OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from test_distributed import GLOBAL_BATCH, _cfg

    with tempfile.TemporaryDirectory(prefix="bench_processes_") as tmp:
        root = Path(tmp)
        sft = _setup(root)
        times: dict[str, list[float]] = {"1 process (batch 4)": [], "2 processes (batch 2 each)": []}
        for i in range(args.repeats):
            for label, procs in (("1 process (batch 4)", 1), ("2 processes (batch 2 each)", 2)):
                run = root / f"run{procs}_{i}"
                shutil.copytree(sft, run)
                _cfg(root, run, GLOBAL_BATCH // procs).save(run / "config.yaml")
                if procs == 1:
                    cmd = [sys.executable, "-m", "clin_jepa.pipelines.pretrain", "--run", str(run)]
                else:
                    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(REPO / "configs" / "accelerate" / "cpu_ddp.yaml"), "--main_process_port", "29591",
                           "-m", "clin_jepa.pipelines.pretrain", "--run", str(run)]
                times[label].append(_time(cmd))
        base = min(times["1 process (batch 4)"])
        print(f"| launch | wall s (min of {args.repeats}) | all runs | vs 1 process |")
        print("|---|---|---|---|")
        for label, ts in times.items():
            print(f"| {label} | {min(ts):.1f} | {', '.join(f'{t:.1f}' for t in ts)} | {min(ts) / base:.2f}x |")


if __name__ == "__main__":
    main()
