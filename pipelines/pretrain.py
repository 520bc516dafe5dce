"""`clin-jepa pretrain --run RUN`: the JEPA curriculum (all phases, or the named ones).

    clin-jepa pretrain --run RUN [--config ...] [--set k=v] [--phases warmup,joint]
                       [--drop-phases align] [--resume]
    accelerate launch --config_file configs/accelerate/cpu_ddp.yaml -m pipelines.pretrain --run RUN

Starts from the run's SFT encoder (RUN/sft); writes RUN/checkpoints/<NN>_<phase>/ at every
phase boundary, RUN/checkpoints/last/ periodically, RUN/final/ when the curriculum ends and
RUN/pretrain_summary.json (watchdogs, stop reason). See docs/training.md.
"""

from __future__ import annotations

import argparse

from pipelines._common import add_config_arguments, main_for, open_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, run_required=True)
    parser.add_argument("--phases", default=None,
                        help="comma-separated phase names to run, starting from the latest saved state")
    parser.add_argument("--drop-phases", default=None,
                        help="comma-separated phase names removed from the curriculum (= train.drop_phases)")
    parser.add_argument("--curriculum", default=None, help="curriculum name or YAML path (= train.curriculum)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint of RUN")


def _names(raw: str | None) -> list[str]:
    return [n.strip() for n in raw.split(",") if n.strip()] if raw else []


def _resumable(run, cfg) -> None:
    """--resume --reconfigure: refuse settings the checkpoint cannot continue with before saving them."""
    from clin_jepa.training.checkpoint import check_resumable, data_fingerprint, latest_checkpoint

    last = latest_checkpoint(run.checkpoints)
    if last is not None:
        check_resumable(last, cfg.to_dict(), data_fingerprint(cfg.data_path))


def run(args: argparse.Namespace) -> int:
    from clin_jepa.training.trainer import CollapseError, NonFiniteError, pretrain
    from clin_jepa.utils import get_logger, seed_everything

    log = get_logger("pipelines.pretrain")
    if args.drop_phases:
        args.overrides.append(f"train.drop_phases=[{','.join(_names(args.drop_phases))}]")
    if args.curriculum:
        args.overrides.append(f"train.curriculum={args.curriculum}")
    run, cfg = open_run(args, check=_resumable if args.resume or args.phases else None)
    run_dir = run.root
    seed_everything(cfg.train.seed)
    try:
        summary = pretrain(cfg, run_dir, phases=_names(args.phases) or None, resume=args.resume)
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
