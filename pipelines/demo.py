"""`clin-jepa demo --out DIR`: the whole pipeline end to end on the embedded default.

synthetic MIMIC-IV -> DuckDB extraction -> tokenizer + SFT -> the five-phase curriculum ->
embeddings -> every evaluation -> the report; then prints where the report is and its
headline figures. Each stage runs through its own `clin-jepa` entry point on the run
directory; a stage whose output is already complete is skipped, so an interrupted demo
continues where it stopped (`--force` redoes everything).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from clin_jepa.config import load_config
from clin_jepa.utils import get_logger, write_json
from pipelines._common import main_for
from pipelines._stages import Step, run_steps

log = get_logger("pipelines.demo")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run directory to create (e.g. runs/demo)")
    p.add_argument("--config", default="default", help="YAML config (default: configs/default.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set synth.stays=300 (repeatable)")
    p.add_argument("--mimic", default=None, help="use this MIMIC-IV directory instead of the synthetic default")
    p.add_argument("--force", action="store_true", help="rerun every stage even if its output exists")


def pipeline_steps(run_dir: Path, cfg, mimic: Path) -> list[Step]:
    """The demo's stages, in order, with the file each one writes last."""
    run, data = str(run_dir), cfg.data_path
    steps = []
    if not cfg.data.mimic_dir and not (data / "manifest.json").exists():  # no source needed once extracted
        steps.append(Step("synthetic MIMIC-IV", mimic / "icu" / "icustays.csv.gz",
                          ["synth", "--run", run, "--out", mimic]))
    steps += [
        Step("DuckDB extraction", data / "manifest.json", ["extract", "--run", run, "--mimic", mimic, "--out", data]),
        Step("tokenizer + SFT", run_dir / "sft" / "metrics.json", ["sft", "--run", run]),
        Step("five-phase curriculum", run_dir / "final" / "predictor.json", ["pretrain", "--run", run]),
        Step("embeddings", run_dir / "embeddings" / "fingerprint.json", ["embed", "--run", run]),
        Step("evaluation", run_dir / "eval" / "tasks.json", ["evaluate", "--run", run]),
        Step("report", run_dir / "report" / "manifest.json", ["report", "--run", run]),
    ]
    return steps


def run(args: argparse.Namespace) -> int:
    from evaluation.report import format_headline, headline

    run_dir = Path(args.out)
    cfg = load_config(args.config, args.overrides, run_dir=str(run_dir))
    if args.mimic:
        cfg.data.mimic_dir = str(args.mimic)
    mimic = Path(cfg.data.mimic_dir) if cfg.data.mimic_dir else run_dir / "mimic"
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")

    t0 = time.perf_counter()
    timings = run_steps(pipeline_steps(run_dir, cfg, mimic), force=args.force, label="demo ")
    total = time.perf_counter() - t0
    write_json(run_dir / "demo_timings.json", {"seconds": timings, "total_seconds": total})

    report = run_dir / "report"
    print(f"\nClin-JEPA demo finished in {total / 60:.1f} min. Report: {report / 'report.md'}")
    print(format_headline(headline(run_dir)))
    print(f"Tables (csv/md/tex) and figures (pdf/png) in {report}; docs/demo.md explains what they show.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
