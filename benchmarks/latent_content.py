"""Encoder candidates for the embedded default: latent content vs cost, one candidate per call.

For each candidate (an own-tokenizer Qwen3 of the given width x layers, a pooling, a number
of SFT steps) on an extracted run's data: the SFT stage (timed), then `clin-jepa
latent-content --source sft` (clin_jepa.evaluation.latent_content, the one owner of the
measurement). Candidates are registered as flavors in-process only; the chosen one is the
`small` flavor of clin_jepa.models.encoder_flavors.

    python benchmarks/latent_content.py --data RUN/data --out /tmp/cands --cand 96x3:mean:600
    python benchmarks/latent_content.py --data RUN/data --out /tmp/cands --cand 128x2:mean:400:3e-3:1

A candidate is WIDTHxLAYERS:POOLING:STEPS, optionally :SFT_LR and :SFT_SEED (default: the
default config's sft.lr and sft.seed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from clin_jepa.evaluation.latent_content import format_table, latent_content

from clin_jepa.config import load_config
from clin_jepa.models import encoder_flavors as ef
from clin_jepa.run import RunDir
from clin_jepa.training.sft import run_sft


def register(width: int, layers: int) -> str:
    """An own-tokenizer flavor `w{width}x{layers}` (head dim 16, 2 KV heads, FFN 4x width)."""
    name = f"w{width}x{layers}"
    arch = dict(ef.DEBUG_ARCH, hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                num_attention_heads=width // 16)
    ef.FLAVORS[name] = ef.FlavorSpec(ef._own(name, arch), own_tokenizer=True, trainable_base=True, tiny=True)
    return name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="an extracted data directory (texts, cohort, splits parquet)")
    p.add_argument("--out", required=True, help="scratch directory for the candidate runs")
    p.add_argument("--cand", action="append", required=True, help="WIDTHxLAYERS:POOLING:STEPS[:SFT_LR[:SFT_SEED]] (repeatable)")
    p.add_argument("--max-texts", type=int, default=10000)
    args = p.parse_args()
    for cand in args.cand:
        parts = cand.split(":")
        if not 3 <= len(parts) <= 5:
            raise SystemExit(f"--cand {cand!r}: use WIDTHxLAYERS:POOLING:STEPS[:SFT_LR[:SFT_SEED]], e.g. 128x2:mean:400")
        shape, pooling, steps = parts[:3]
        width, layers = map(int, shape.split("x"))
        flavor = register(width, layers)
        sft = [f"sft.{key}={value}" for key, value in zip(("lr", "seed"), parts[3:])]
        cfg = load_config("default", [f"encoder.pooling={pooling}", f"sft.steps={steps}", *sft,
                                      f"data.data_dir={Path(args.data).resolve()}"])
        cfg.encoder.flavor = flavor
        run = RunDir(Path(args.out) / cand.replace(":", "_"))
        run.root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        run_sft(run.root, cfg)
        sft_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = latent_content(run.root, cfg, source="sft", max_texts=args.max_texts)
        print(format_table(result))
        print(json.dumps({"candidate": cand, "sft_seconds": round(sft_s, 1),
                          "latent_content_seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
