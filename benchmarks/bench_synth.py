"""Synthetic MIMIC-IV generator: time `generate` for N stays, and compare side by side
(1) the hourly simulation with and without dropping finished stays from the loop and
(2) writing chartevents.csv.gz with DuckDB `COPY ... (COMPRESSION gzip)` vs polars csv
streamed through gzip level 1 (what `synth.write_csv_gz` does).

    python benchmarks/bench_synth.py --stays 10000
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CLIN_JEPA_PROGRESS", "0")

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from clin_jepa.config import SynthConfig  # noqa: E402
from clin_jepa.data import synth, synth_world  # noqa: E402


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stays", type=int, default=10_000)
    p.add_argument("--sim-stays", type=int, default=2_000, help="stays for the simulation comparison")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        # -- end to end ----------------------------------------------------- #
        secs, summary = _timed(lambda: synth.generate(tmp / "mimic", SynthConfig(stays=args.stays, seed=args.seed)))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        size = sum(f.stat().st_size for f in (tmp / "mimic").rglob("*.csv.gz")) / 1024**2
        rows = sum(summary["rows"].values())
        print(f"generate: {args.stays} stays, {rows:,} rows ({summary['rows']['chartevents']:,} chartevents), "
              f"{secs:.1f} s, {size:.0f} MiB csv.gz, peak RSS {rss:.2f} GiB")

        # -- simulation: compaction on vs off ------------------------------- #
        rng = lambda: np.random.default_rng([args.seed, 2, 0])  # noqa: E731
        t_on, w_on = _timed(lambda: synth_world.simulate(rng(), args.sim_stays))
        saved = synth_world.COMPACT_AT
        synth_world.COMPACT_AT = frozenset()
        try:
            t_off, w_off = _timed(lambda: synth_world.simulate(rng(), args.sim_stays))
        finally:
            synth_world.COMPACT_AT = saved
        # the random stream differs (draws are per active stay), so compare distributions
        stats = lambda w: f"LOS mean {w.stay['los_h'].mean():.1f} h, ICU deaths {w.stay['died_icu'].mean():.3f}"  # noqa: E731
        print(f"simulate {args.sim_stays} stays: compaction {t_on:.2f} s ({stats(w_on)}), "
              f"full loop {t_off:.2f} s ({stats(w_off)}), speed-up {t_off / t_on:.1f}x")

        # -- writer: DuckDB COPY gzip vs polars + gzip level 1 --------------- #
        ce = pl.read_csv(tmp / "mimic" / "icu" / "chartevents.csv.gz", try_parse_dates=True)
        t_pl, _ = _timed(lambda: synth.write_csv_gz(ce, tmp / "pl.csv.gz"))
        con = duckdb.connect()
        con.register("ce", ce)
        t_dd, _ = _timed(lambda: con.execute(
            f"COPY (SELECT * FROM ce) TO '{tmp / 'dd.csv.gz'}' (FORMAT csv, HEADER, COMPRESSION gzip)"))
        mb = lambda f: (tmp / f).stat().st_size / 1024**2  # noqa: E731
        print(f"write chartevents ({ce.height:,} rows): polars+gzip1 {t_pl:.1f} s ({mb('pl.csv.gz'):.0f} MiB), "
              f"DuckDB COPY gzip {t_dd:.1f} s ({mb('dd.csv.gz'):.0f} MiB), ratio {t_dd / t_pl:.1f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
