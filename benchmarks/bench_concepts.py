"""Speed of the extraction's SQL steps (sql/manifest.txt) on a synthetic MIMIC-IV, and of
the concept-file speed wins side by side with the formulations they replaced.

Generates N synthetic stays (or reads --mimic), builds the source views up to the grid
with the real runner, then times every later SQL step as the runner executes it. Then,
on the same database, each speed win is timed against its previous form (best of
--repeats runs, alternating) and the two outputs are compared row for row:
  * sofa_hourly: 24 h worst-score windows as ROWS frames vs RANGE frames (hours are
    dense in hourly_base, so both frames hold the same rows);
  * labels/events: the 6 h lactate window, ROWS vs RANGE;
  * vitals_hourly: plain avg / any_value vs fsum / count and bool_or.

    python benchmarks/bench_concepts.py --stays 5000 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from clin_jepa.config import DataConfig, SynthConfig
from clin_jepa.data.extract import build_database, read_manifest
from clin_jepa.data.synth import generate
from clin_jepa.utils import SQL_DIR

# (sql file, [(current text, previous text)]): the previous form of each speed win
WINS = {
    "concepts/sofa_hourly": [("ROWS BETWEEN 23 PRECEDING AND CURRENT ROW", "RANGE BETWEEN 23 PRECEDING AND CURRENT ROW")],
    "labels/events": [("ROWS BETWEEN 6 PRECEDING AND CURRENT ROW", "RANGE BETWEEN 6 PRECEDING AND CURRENT ROW")],
    "measurement/vitals_hourly": [("CASE WHEN any_value(is_min) THEN min(vv) ELSE avg(vv) END",
                                   "CASE WHEN bool_or(is_min) THEN min(vv) ELSE fsum(vv) / nullif(count(vv), 0) END")],
}


def timed(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    t = time.perf_counter()
    con.execute(sql)
    return time.perf_counter() - t


def as_table(sql: str, table: str, new: str) -> str:
    """The CREATE statement of ``table`` renamed to ``new`` (CREATE OR REPLACE)."""
    return sql.replace(f"CREATE TABLE {table} AS", f"CREATE OR REPLACE TABLE {new} AS", 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stays", type=int, default=5000)
    p.add_argument("--mimic", type=Path, default=None, help="an existing MIMIC-IV directory (else synthetic)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory", default="4GB")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench_concepts."))
    mimic = args.mimic
    if mimic is None:
        mimic = scratch / "mimic"
        generate(mimic, SynthConfig(stays=args.stays, seed=0))
    cfg = DataConfig(duckdb_threads=args.threads, duckdb_memory_limit=args.memory)
    con = build_database(mimic, cfg, until="grid", temp_dir=scratch / "duck")
    n_hours = con.execute("SELECT count(*) FROM grid").fetchone()[0]
    print(f"{mimic}: {n_hours} stay-hours, {args.threads} threads")
    steps = [rel for rel, _ in read_manifest()]
    todo = steps[[r.stem for r in steps].index("grid") + 1:]
    total = 0.0
    for rel in todo:
        t = timed(con, (SQL_DIR / rel).read_text())
        total += t
        rows = con.execute(f"SELECT count(*) FROM {rel.stem}").fetchone()[0]
        print(f"  {str(rel.with_suffix('')):34s} {t:7.2f} s  {rows:>10d} rows")
    print(f"  {'total (after grid)':34s} {total:7.2f} s  ({n_hours / total / 1e3:.0f}k stay-hours/s)")

    print("speed wins (best of repeats; outputs compared row for row):")
    for name, swaps in WINS.items():
        table = Path(name).name
        now = (SQL_DIR / f"{name}.sql").read_text()
        before = now
        for cur, prev in swaps:
            assert cur in before, f"{name}: {cur!r} not found"
            before = before.replace(cur, prev)
        t_now, t_before = [], []
        for _ in range(args.repeats):
            t_before.append(timed(con, as_table(before, table, f"{table}_before")))
            t_now.append(timed(con, as_table(now, table, f"{table}_now")))
        diff = con.execute(f"SELECT count(*) FROM ((FROM {table}_now EXCEPT ALL FROM {table}_before) UNION ALL "
                           f"(FROM {table}_before EXCEPT ALL FROM {table}_now))").fetchone()[0]
        tn, tb = min(t_now), min(t_before)
        print(f"  {name:34s} now {tn:6.2f} s vs before {tb:6.2f} s: {tb / tn:4.2f}x (outputs differ in {diff} rows)")


if __name__ == "__main__":
    main()
