"""Host-speed reference: re-run the curriculum of finished runs in scratch copies and compare.

A long measurement (the three-seed ablation grid) on a shared host can run slower than the
same code does an hour later (BENCHMARKS.md, "Ablation grid: three seeds"). Run this before
and after such a measurement: each run gets a scratch copy (its config; its tokenizer and SFT
encoder copied in as `ablate` does for a paradigm run), whose curriculum trains again through
`ablate`'s own worker pool (spawned processes, one per run, all at once). It prints each
copy's wall and CPU seconds beside the seconds the original recorded, and whether the copy's
`pretrain_summary.json` equals the original's (the runs are seeded: it must).

    python benchmarks/stage_rerun.py --out /tmp/rerun GRID/runs/no_joint_s0 GRID/runs/sft_frozen_s0

The two shortest curricula of the default grid (`no_joint`, `sft_frozen`) take about 70 s each.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from clin_jepa.pipelines.ablate import _die_with_parent, _job

from clin_jepa.run import RunDir


def _copy(src: Path, dst: Path) -> Path:
    """A new run directory with ``src``'s settings; its tokenizer and SFT encoder are copied in by
    ``_job(..., share_from=src)``, as for a paradigm run of the grid."""
    if dst.exists():
        raise SystemExit(f"{dst} exists: give --out an empty or new directory")
    if not RunDir(src).sft.is_dir():
        raise SystemExit(f"{src}: no sft/ directory; give runs whose SFT has finished")
    dst.mkdir(parents=True)
    shutil.copy(src / "config.yaml", dst)
    return dst


def _recorded(run: Path) -> float | None:
    rec = RunDir(run).stage_times()["completed"].get("pretrain")
    return rec["wall"] if rec else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="finished run directories (their curriculum is re-run in copies)")
    p.add_argument("--out", required=True, help="scratch directory for the copies (must not exist yet)")
    args = p.parse_args()
    out = Path(args.out)
    srcs = [Path(r) for r in args.runs]
    copies = [_copy(s, out / s.name) for s in srcs]
    with ProcessPoolExecutor(max_workers=len(copies), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_job, str(c), ["pretrain"], False, str(src))  # share_from: the original
                   for c, src in zip(copies, srcs)]
        results = [f.result()[1] for f in futures]
    for src, copy, res in zip(srcs, copies, results):
        (times,) = res.values()
        same = (json.loads((src / "pretrain_summary.json").read_text())
                == json.loads((copy / "pretrain_summary.json").read_text()))
        rec = _recorded(src)
        print(json.dumps({"run": src.name, "wall": times["wall"], "cpu": times["cpu"],
                          "recorded_wall": rec, "ratio_to_recorded": round(times["wall"] / rec, 2) if rec else None,
                          "summary_identical": same}))


if __name__ == "__main__":
    main()
