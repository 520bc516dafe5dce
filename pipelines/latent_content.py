"""`clin-jepa latent-content --run RUN`: ridge R^2 of every value a state text reads (HR,
MAP, SpO2, creatinine, lactate, SOFA, ...) from the latent of that text, on held-out
(validation + test stays') texts -> RUN/eval/latent_content.json and a printed table
(clin_jepa.evaluation.latent_content)."""

from __future__ import annotations

import argparse

from clin_jepa.pipelines._common import add_config_arguments, main_for, open_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from clin_jepa.evaluation.latent_content import SOURCES

    add_config_arguments(parser, run_required=True)
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="latents from RUN/embeddings, the final encoder or the SFT encoder "
                             "(auto: the first that exists, in that order)")
    parser.add_argument("--max-texts", type=int, default=6000,
                        help="distinct state texts sampled for fitting and for scoring, each (default 6000)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from clin_jepa.evaluation.latent_content import format_table, latent_content

    if args.max_texts < 100:
        raise SystemExit("--max-texts must be >= 100 (e.g. 6000)")
    run, cfg = open_run(args, create=False, how_to_create=f"run `clin-jepa sft --run {args.run}` first")
    print(format_table(latent_content(run.root, cfg, args.source, args.max_texts, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
