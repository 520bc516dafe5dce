"""`clin-jepa evaluate --run RUN`: rollout drift, cohort displacement, multi-task risk
prediction (probes + baselines) and rollout decoding -> RUN/eval/{drift,displacement,tasks,decoding}.json.

Needs RUN/embeddings (``clin-jepa embed``) and RUN/final/predictor.* (``clin-jepa pretrain``).
"""

from __future__ import annotations

import argparse

from clin_jepa.pipelines._common import add_config_arguments, main_for, name_list, open_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, run_required=True)
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="subset of drift, displacement, tasks (comma- or space-separated; default: all)")
    parser.add_argument("--aces-task", nargs="+", default=(), metavar="CONFIG",
                        help="extra binary tasks as ACES task configs (e.g. configs/aces/mort_icu.yaml), "
                             "run on the MEDS export (docs/meds.md)")
    parser.add_argument("--meds", default=None, help="MEDS export for --aces-task (default: RUN/meds)")


def run(args: argparse.Namespace) -> int:
    from clin_jepa.evaluation.suite import EVALUATIONS, evaluate_run

    run, cfg = open_run(args, create=False, how_to_create=f"train one with `clin-jepa pretrain --run {args.run}`")
    evaluate_run(run.root, cfg, tuple(name_list(args.only) or EVALUATIONS), tuple(args.aces_task), args.meds)
    if not args.only:
        run.mark_done("evaluate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
