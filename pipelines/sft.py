"""`clin-jepa sft --run RUN`: tokenizer (debug flavor) + next-token SFT of the online adapter.

Reads the run's config and its data (texts.parquet, demographics.parquet under data.data_dir
or RUN/data); writes RUN/tokenizer, RUN/sft/{base,adapter,metrics.json} (see
clin_jepa.training.sft). RUN/sft/metrics.json is written last: it marks completion.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines._common import add_config_arguments, main_for, resolve_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, run_required=True)


def run(args: argparse.Namespace) -> int:
    from clin_jepa.training.sft import run_sft
    from clin_jepa.utils import get_logger, seed_everything

    cfg = resolve_config(args)
    run_dir = Path(args.run)
    cfg.run_dir = str(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")
    seed_everything(cfg.sft.seed)
    metrics = run_sft(run_dir, cfg)
    get_logger("pipelines.sft").info(
        "sft done: held-out next-token loss %.4f -> %.4f (%d steps); adapter in %s",
        metrics["heldout_loss_before"], metrics["heldout_loss_after"], metrics["steps"], run_dir / "sft" / "adapter")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
