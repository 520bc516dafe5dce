"""load_corpus at MIMIC-IV scale: 70k stays, up to 168 hourly texts each, 72-hour windows.

    python benchmarks/bench_windows.py [--stays 70000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from clin_jepa.data.windows import load_corpus


def write_data(d: Path, n: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    lens = rng.integers(6, 169, n)  # hours per stay
    stay = np.repeat(np.arange(n), lens)
    hour = np.concatenate([np.arange(k) for k in lens])
    frame = pl.DataFrame({"stay_id": stay, "hour": hour, "hr": rng.integers(50, 140, len(stay)),
                          "mp": rng.integers(50, 110, len(stay))})
    texts = frame.with_columns(
        state_text=pl.format("Hour {}. Heart rate {} bpm. Mean arterial pressure {} mmHg.", "hour", "hr", "mp"),
        action_text=pl.when(pl.col("hr") > 120).then(pl.lit("Norepinephrine 0.1 mcg/kg/min."))
        .otherwise(pl.lit("No intervention.")),
    ).filter(pl.col("hour") % 17 != 5)  # some gap hours -> fixed sentences
    texts.select("stay_id", "hour", "state_text", "action_text").write_parquet(d / "texts.parquet")
    pl.DataFrame({"stay_id": np.arange(n), "demo_text": [f"Age {18 + i % 70}, female." for i in range(n)]}
                 ).write_parquet(d / "demographics.parquet")
    pl.DataFrame({"stay_id": np.arange(n), "subject_id": np.arange(n)}).write_parquet(d / "cohort.parquet")
    pl.DataFrame({"subject_id": np.arange(n), "split": np.array(["train", "val", "test"])[np.arange(n) % 3]}
                 ).write_parquet(d / "splits.parquet")
    return texts.height


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stays", type=int, default=70_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = write_data(Path(tmp), args.stays)
        t0 = time.perf_counter()
        corpus = load_corpus(tmp, 72)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch = corpus.subset("train").batch(np.arange(64))
        uniq, _ = batch.unique_ids()
        batch_ms = (time.perf_counter() - t0) * 1e3
    print(f"stays={args.stays} text rows={rows} unique texts={len(corpus.texts)}")
    print(f"load_corpus: {load_s:.1f} s; subset + batch(64) + unique_ids: {batch_ms:.1f} ms ({uniq.numel()} uniques)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
