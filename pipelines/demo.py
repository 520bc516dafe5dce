"""`clin-jepa demo --out DIR`: the whole pipeline end to end on the embedded default.

synthetic MIMIC-IV -> DuckDB extraction -> tokenizer + SFT -> the five-phase curriculum ->
embeddings -> every evaluation -> the report; then prints where the report is and its
headline figures. The stages are the functions of ``clin_jepa.pipelines._stages`` on one run
directory: a completed stage is skipped, so an interrupted demo continues where it stopped
(an interrupted pretraining resumes from its latest checkpoint, exactly); a rerun with other
settings is refused naming them (`--force` redoes every stage).
"""

from __future__ import annotations

import argparse
import time

from clin_jepa.pipelines._common import main_for
from clin_jepa.pipelines._stages import PIPELINE, open_or_create, run_stages, source_stages

from clin_jepa.config import load_config
from clin_jepa.run import STAGES, RunDir
from clin_jepa.utils import get_logger, write_json

log = get_logger("clin_jepa.pipelines.demo")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run directory to create (e.g. runs/demo)")
    p.add_argument("--config", default="default", help="YAML config (default: configs/default.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set synth.stays=300 (repeatable)")
    p.add_argument("--mimic", default=None, help="use this MIMIC-IV directory instead of the synthetic default")
    p.add_argument("--force", action="store_true", help="rerun every stage even if its output exists")


def pipeline_stages(run: RunDir, cfg) -> list[str]:
    """The demo's stages, in order."""
    return source_stages(run, cfg) + [s for s in STAGES if s not in ("synth", "extract")]


def run(args: argparse.Namespace) -> int:
    from clin_jepa.evaluation.report import format_headline, headline

    from clin_jepa.training.trainer import CollapseError, NonFiniteError

    run = RunDir(args.out)
    overrides = [*args.overrides, *([f"data.mimic_dir={args.mimic}"] if args.mimic else [])]
    cfg = open_or_create(run, load_config(args.config, overrides),
                         f"change a setting explicitly with `clin-jepa <stage> --run {run.root} --set KEY=VALUE "
                         f"--reconfigure` (then rerun the demo with the new settings)")
    run_dir = run.root
    t0 = time.perf_counter()
    try:
        timings = run_stages(run, cfg, pipeline_stages(run, cfg), force=args.force, label="demo ")
    except (CollapseError, NonFiniteError) as e:
        log.error("%s", e)
        return 3
    total = time.perf_counter() - t0
    done = run.stage_times()["completed"]
    recorded = {PIPELINE[name].title: done[name] for name in STAGES if name in done}  # synth too, once run
    # seconds / total_seconds: this launch (0 for a stage an earlier launch finished);
    # stages: each stage's seconds over every launch that worked on it
    write_json(run.demo_timings, {"seconds": timings, "total_seconds": total, "stages": recorded})

    report = run.report
    print(f"\nClin-JEPA demo finished in {total / 60:.1f} min. Report: {report / 'report.md'}")
    print(format_headline(headline(run_dir)))
    print(f"Tables (csv/md/tex) and figures (pdf/png) in {report}; docs/demo.md explains what they show.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
