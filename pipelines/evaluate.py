"""`clin-jepa evaluate --run RUN`: rollout drift, cohort displacement and multi-task risk
prediction (probes + baselines) -> RUN/eval/{drift,displacement,tasks}.json.

Needs RUN/embeddings (``clin-jepa embed``) and RUN/final/predictor.* (``clin-jepa pretrain``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines._common import add_config_arguments, existing_run_config, main_for, name_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, run_required=True)
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="subset of drift, displacement, tasks (comma- or space-separated; default: all)")


def run(args: argparse.Namespace) -> int:
    from evaluation.suite import EVALUATIONS, evaluate_run

    run_dir = Path(args.run)
    cfg = existing_run_config(args, f"train one with `clin-jepa pretrain --run {run_dir}`")
    evaluate_run(run_dir, cfg, tuple(name_list(args.only) or EVALUATIONS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
