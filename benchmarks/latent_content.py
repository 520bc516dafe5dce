"""How much of each observed value a run's state latents carry (linear decodability).

For each run: the distinct state texts that report a value (e.g. "HR 88 bpm") and their
latents (RUN/embeddings from `clin-jepa embed`); a ridge regression latent -> value is
fitted on 80 % of those texts and scored (R^2) on the other 20 % (fixed seed). Used in
docs/demo.md to explain why frozen-latent probes trail the baselines on the embedded
default. Reads aggregates only; prints one row per run.

    python benchmarks/latent_content.py --run runs/ablate/runs/full_s0 --run runs/ablate/runs/sft_frozen_s0
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.linear_model import RidgeCV

LABELS = ("HR", "MAP", "SpO2", "Cr", "Lactate", "Hour")  # text labels of clin_jepa.data.texts


def decodability(run: Path, labels=LABELS, seed: int = 0) -> dict[str, float]:
    latents = np.load(run / "embeddings" / "latents.npy")
    texts = pl.read_parquet(run / "embeddings" / "texts.parquet")["text"].to_list()
    out = {}
    for key in labels:
        pat = re.compile(rf"\b{re.escape(key)} ([0-9.]+)")
        hits = [(i, float(m.group(1))) for i, t in enumerate(texts) if (m := pat.search(t))]
        if len(hits) < 50:
            out[key] = float("nan")
            continue
        idx, y = np.array([h[0] for h in hits]), np.array([h[1] for h in hits])
        perm = np.random.default_rng(seed).permutation(len(idx))
        n = len(perm) * 4 // 5
        model = RidgeCV(alphas=[0.01, 0.1, 1.0, 10.0]).fit(latents[idx[perm[:n]]], y[perm[:n]])
        out[key] = float(model.score(latents[idx[perm[n:]]], y[perm[n:]]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, help="run directory with embeddings/ (repeatable)")
    args = p.parse_args()
    print("| run | " + " | ".join(f"R^2 {k}" for k in LABELS) + " |")
    print("|---|" + "---|" * len(LABELS))
    for run in map(Path, args.run):
        r = decodability(run)
        print(f"| {run.name} | " + " | ".join(f"{r[k]:.2f}" for k in LABELS) + " |")


if __name__ == "__main__":
    main()
