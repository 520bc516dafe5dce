"""`clin-jepa embed --run RUN`: encode every distinct text of the run's corpus once with the
final online encoder -> RUN/embeddings/{texts.parquet, latents.npy, fingerprint.json}.

`accelerate launch -m clin_jepa.pipelines.embed --run RUN` shares the texts out across the processes
(same latents as one process). Skipped when the stored fingerprint matches the final
weights and texts (``--force`` redoes it).
Needs RUN/final/encoder (``clin-jepa pretrain``) and RUN/sft (``clin-jepa sft``).
"""

from __future__ import annotations

import argparse

from clin_jepa.pipelines._common import add_config_arguments, main_for, open_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, run_required=True)
    parser.add_argument("--force", action="store_true", help="recompute even if the fingerprint is current")


def run(args: argparse.Namespace) -> int:
    from clin_jepa.evaluation.embeddings import compute

    run, cfg = open_run(args, create=False, how_to_create=f"create it with `clin-jepa sft --run {args.run}` and "
                                                          f"`clin-jepa pretrain`")
    compute(run.root, cfg, force=args.force)
    run.mark_done("embed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
