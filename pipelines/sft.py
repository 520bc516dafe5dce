"""`clin-jepa sft --run RUN`: tokenizer (debug flavor) + next-token SFT of the online adapter.

Creates the run (from --config/--set) when RUN has no config yet. Reads the run's data
(texts.parquet, demographics.parquet under data.data_dir or RUN/data); writes RUN/tokenizer, RUN/sft/{base,adapter,metrics.json} (see
clin_jepa.training.sft). RUN/sft/metrics.json is written last: it marks completion.
"""

from __future__ import annotations

import argparse

from clin_jepa.pipelines._common import add_config_arguments, main_for, open_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, run_required=True)


def run(args: argparse.Namespace) -> int:
    from clin_jepa.training.sft import run_sft
    from clin_jepa.utils import get_logger, seed_everything

    run, cfg = open_run(args)
    seed_everything(cfg.sft.seed)
    metrics = run_sft(run.root, cfg)
    run.mark_done("sft")
    get_logger("clin_jepa.pipelines.sft").info(
        "sft done: held-out next-token loss %.4f -> %.4f (%d steps); adapter in %s",
        metrics["heldout_loss_before"], metrics["heldout_loss_after"], metrics["steps"], run.sft_adapter)
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
