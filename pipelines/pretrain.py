"""`clin-jepa pretrain --run RUN`: the JEPA curriculum (all phases, or the named ones).

    clin-jepa pretrain --run RUN [--config ...] [--set k=v] [--phases warmup,joint]
                       [--drop-phases align] [--resume]
    accelerate launch --config_file configs/accelerate/cpu_ddp.yaml -m clin_jepa.pipelines.pretrain --run RUN

Starts from the run's SFT encoder (RUN/sft); writes RUN/checkpoints/<NN>_<phase>/ at every
phase boundary, RUN/checkpoints/last/ periodically, RUN/final/ when the curriculum ends and
RUN/pretrain_summary.json (watchdogs, stop reason). See docs/training.md.
"""

from __future__ import annotations

import argparse

from clin_jepa.pipelines._common import add_config_arguments, main_for, name_list, open_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, run_required=True)
    parser.add_argument("--phases", nargs="+", default=None, metavar="PHASE",
                        help="phase names to run (comma- or space-separated), starting from the latest saved state")
    parser.add_argument("--drop-phases", nargs="+", default=None, metavar="PHASE",
                        help="phase names removed from the curriculum (comma- or space-separated; "
                             "= train.drop_phases)")
    parser.add_argument("--curriculum", default=None, help="curriculum name or YAML path (= train.curriculum)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint of RUN")


def _resumable(run, cfg) -> None:
    """--resume --reconfigure: refuse settings the checkpoint cannot continue with before saving them."""
    from clin_jepa.training.checkpoint import check_resumable, data_fingerprint, latest_checkpoint

    last = latest_checkpoint(run.checkpoints)
    if last is not None:
        check_resumable(last, cfg.to_dict(), data_fingerprint(cfg.data_path))


def run(args: argparse.Namespace) -> int:
    from clin_jepa.training.trainer import CollapseError, NonFiniteError, pretrain
    from clin_jepa.utils import get_logger, seed_everything

    log = get_logger("clin_jepa.pipelines.pretrain")
    if args.drop_phases:
        args.overrides.append(f"train.drop_phases=[{','.join(name_list(args.drop_phases))}]")
    if args.curriculum:
        args.overrides.append(f"train.curriculum={args.curriculum}")
    # a run is created by `sft` (pretraining starts from its encoder): a missing run is an error, not a new directory
    run, cfg = open_run(args, create=False, check=_resumable if args.resume or args.phases else None,
                        how_to_create=f"create it and train its encoder with `clin-jepa sft --run {args.run}`")
    run_dir = run.root
    seed_everything(cfg.train.seed)
    try:
        summary = pretrain(cfg, run_dir, phases=name_list(args.phases) or None, resume=args.resume)
    except (CollapseError, NonFiniteError) as e:
        log.error("%s", e)
        return 3
    if summary["stopped"]:
        log.info("pretrain stopped (%s) at step %d; continue with `clin-jepa pretrain --run %s --resume`",
                 summary["stopped"], summary["global_step"], run_dir)
    elif summary["finished"]:
        run.mark_done("pretrain")
        log.info("pretrain done: %d steps; final model in %s", summary["global_step"], run.final)
    for name, w in summary["watchdogs"].items():
        if not w["fell"]:
            log.warning("watchdog: validation loss did not fall during phase %s (%.4f -> %.4f)",
                        name, w["start"], w["end"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
