"""`clin-jepa evaluate --run RUN`: rollout drift, cohort displacement and multi-task risk
prediction (probes + baselines) -> RUN/eval/{drift,displacement,tasks}.json.

Needs RUN/embeddings (``clin-jepa embed``) and RUN/final/predictor.* (``clin-jepa pretrain``).
"""

from __future__ import annotations

import argparse

from pipelines._common import add_config_arguments, main_for, open_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, run_required=True)
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="subset of: drift displacement tasks (default: all)")


def run(args: argparse.Namespace) -> int:
    from evaluation.suite import EVALUATIONS, evaluate_run

    run, cfg = open_run(args, create=False, how_to_create=f"train one with `clin-jepa pretrain --run {args.run}`")
    evaluate_run(run.root, cfg, tuple(args.only or EVALUATIONS))
    if not args.only:
        run.mark_done("evaluate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
