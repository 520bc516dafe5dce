"""Speed of the concept/label SQL (sql/concepts/, sql/hourly.sql, sql/labels/) at scale.

Builds random stand-ins for the tables these files read (icustay_detail, cohort, grid,
hourly_base, static, source views, registry) for N stays x H hours directly in DuckDB,
then times each SQL file as the runner executes it. Side by side, two formulations of
the two hot spots are timed on the same data:
  * 24 h worst SOFA component: window frame (sofa_hourly.sql) vs a range self-join;
  * early-event labels: one join per (hour, task) against first onsets (labels.sql) vs a
    correlated subquery per row.

    python benchmarks/bench_concepts.py --stays 5000 --threads 2
"""

from __future__ import annotations

import argparse
import time

import duckdb

from clin_jepa.data import features
from clin_jepa.data.sources import register_registry
from clin_jepa.utils import SQL_DIR

MINE = ("concepts/sofa_hourly", "concepts/kdigo_hourly", "concepts/suspected_infection",
        "concepts/sepsis3", "hourly", "labels/events", "labels/labels")


def build_inputs(con: duckdb.DuckDBPyConnection, stays: int, hours: int, seed: float = 0.42) -> None:
    """Random stand-ins with the contract's columns (docs/design.md, sql/manifest.txt)."""
    con.execute(f"SELECT setseed({seed})")
    con.execute("SET VARIABLE prediction_hour = 24; SET VARIABLE eep_horizon = 12")
    con.execute(f"SET VARIABLE max_stay_hours = {hours}")
    con.execute(f"""CREATE TABLE icustay_detail AS
        SELECT s AS stay_id, s AS subject_id, s AS hadm_id,
               TIMESTAMP '2150-01-01' + to_days(s % 3000) AS intime,
               TIMESTAMP '2150-01-01' + to_days(s % 3000) + to_hours(los) AS outtime,
               los AS los_hours, 65 AS age, 'M' AS gender, 'WHITE' AS race, 'EW' AS admission_type,
               NULL::TIMESTAMP AS admittime, NULL::TIMESTAMP AS dischtime,
               CASE WHEN s % 10 = 0 THEN TIMESTAMP '2150-01-01' + to_days(s % 3000) + to_hours(los - 1) END
                   AS deathtime,
               NULL::DATE AS dod, CAST(s % 10 = 0 AS INTEGER) AS hospital_expire_flag, 1 AS stay_seq
        FROM (SELECT range AS s, 6 + CAST(random() * 300 AS INTEGER) AS los FROM range({stays}))""")
    con.execute("CREATE TABLE cohort AS SELECT stay_id, subject_id, hadm_id, los_hours, true AS first_stay "
                "FROM icustay_detail")
    con.execute("""CREATE TABLE grid AS SELECT stay_id, CAST(h AS INTEGER) AS hour,
                   intime + to_hours(h) AS t0, intime + to_hours(h + 1) AS t1
                   FROM (SELECT stay_id, intime, unnest(range(CAST(least(ceil(los_hours),
                         getvariable('max_stay_hours')) AS BIGINT))) AS h FROM icustay_detail)""")

    def obs(c: str) -> str:  # sparse values in a plausible range
        o = features.OBS_BY_NAME[c]
        every = 1 if o.source != "labevents" else 6
        return (f"CASE WHEN random() < {1.0 / every:.3f} THEN {o.lo} + random() * ({o.hi} - {o.lo}) * 0.3 "
                f"END AS {c}")

    acts = []
    for c in features.ACTION_COLUMNS:
        if c in ("ventilation", "rrt", "antibiotics"):
            acts.append(f"CAST(hour > (stay_id % 97) AND stay_id % 5 = 0 AS TINYINT) AS {c}")
        else:
            acts.append(f"CASE WHEN stay_id % 4 = 0 AND hour > (stay_id % 53) THEN 0.05 ELSE 0.0 END AS {c}")
    con.execute(f"""CREATE TABLE hourly_base AS SELECT stay_id, hour,
                    {', '.join(obs(c) for c in features.OBSERVATION_COLUMNS)}, {', '.join(acts)}
                    FROM grid ORDER BY stay_id, hour""")
    con.execute("CREATE TABLE static AS SELECT stay_id, 65 AS age, 'male' AS sex, 'WHITE' AS race, "
                "'EW' AS admission_type, NULL::DOUBLE AS weight_kg FROM cohort")
    register_registry(con)
    con.execute("""CREATE TABLE labevents AS SELECT subject_id, hadm_id, 50912::BIGINT AS itemid,
                   intime - to_hours(30) AS charttime, 1.0::DOUBLE AS valuenum FROM icustay_detail""")
    con.execute("""CREATE TABLE prescriptions AS SELECT subject_id, hadm_id, intime + to_hours(5) AS starttime,
                   intime + to_hours(50) AS stoptime, 'Vancomycin' AS drug, 'IV' AS route
                   FROM icustay_detail WHERE stay_id % 3 = 0""")
    con.execute("""CREATE TABLE microbiologyevents AS SELECT subject_id, hadm_id,
                   CAST(CAST(intime AS DATE) AS TIMESTAMP) AS chartdate, intime + to_hours(2) AS charttime,
                   'BLOOD CULTURE' AS spec_type_desc FROM icustay_detail WHERE stay_id % 2 = 0""")


NAIVE_SOFA = """CREATE OR REPLACE TABLE naive_coag AS
SELECT a.stay_id, a.hour, coalesce(max(b.score), 0) AS coagulation
FROM hourly_base a
LEFT JOIN (SELECT stay_id, hour, CASE WHEN platelets < 20 THEN 4 WHEN platelets < 50 THEN 3
           WHEN platelets < 100 THEN 2 WHEN platelets < 150 THEN 1 WHEN platelets IS NOT NULL THEN 0 END AS score
           FROM hourly_base) b
  ON b.stay_id = a.stay_id AND b.hour BETWEEN a.hour - 23 AND a.hour
GROUP BY a.stay_id, a.hour"""

WINDOW_SOFA = """CREATE OR REPLACE TABLE window_coag AS
SELECT stay_id, hour, coalesce(max(score) OVER (PARTITION BY stay_id ORDER BY hour
                      RANGE BETWEEN 23 PRECEDING AND CURRENT ROW), 0) AS coagulation
FROM (SELECT stay_id, hour, CASE WHEN platelets < 20 THEN 4 WHEN platelets < 50 THEN 3
      WHEN platelets < 100 THEN 2 WHEN platelets < 150 THEN 1 WHEN platelets IS NOT NULL THEN 0 END AS score
      FROM hourly_base)"""

NAIVE_EEP = """CREATE OR REPLACE TABLE naive_eep AS
SELECT g.stay_id, g.hour,
       CAST((SELECT min(h2.hour) FROM hourly h2 WHERE h2.stay_id = g.stay_id AND h2.nee > 0
             AND h2.hour > g.hour AND h2.hour <= g.hour + 12) IS NOT NULL AS TINYINT) AS label
FROM grid g
WHERE NOT EXISTS (SELECT 1 FROM hourly h3 WHERE h3.stay_id = g.stay_id AND h3.nee > 0 AND h3.hour <= g.hour)"""

JOIN_EEP = """CREATE OR REPLACE TABLE join_eep AS
WITH onset AS (SELECT stay_id, min(hour) AS onset_hour FROM hourly WHERE nee > 0 GROUP BY stay_id)
SELECT g.stay_id, g.hour,
       CAST(o.onset_hour IS NOT NULL AND o.onset_hour <= g.hour + 12 AS TINYINT) AS label
FROM grid g LEFT JOIN onset o ON o.stay_id = g.stay_id
WHERE o.onset_hour IS NULL OR g.hour < o.onset_hour"""


def timed(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    t = time.perf_counter()
    con.execute(sql)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stays", type=int, default=5000)
    p.add_argument("--hours", type=int, default=168, help="grid cap (data.max_stay_hours)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory", default="4GB")
    args = p.parse_args()

    con = duckdb.connect(config={"threads": args.threads, "memory_limit": args.memory})
    t = timed(con, "SELECT 1")
    build_inputs(con, args.stays, args.hours)
    n_hours = con.execute("SELECT count(*) FROM grid").fetchone()[0]
    print(f"{args.stays} stays, {n_hours} stay-hours, {args.threads} threads")
    total = 0.0
    for name in MINE:
        t = timed(con, (SQL_DIR / f"{name}.sql").read_text())
        total += t
        rows = con.execute(f"SELECT count(*) FROM {name.split('/')[-1]}").fetchone()[0]
        print(f"  {name:32s} {t:7.2f} s  {rows:>10d} rows")
    print(f"  {'total':32s} {total:7.2f} s  ({n_hours / total / 1e3:.0f}k stay-hours/s)")

    for label, fast, slow in (("24 h worst SOFA component", WINDOW_SOFA, NAIVE_SOFA),
                              ("EEP labels (vasopressor start)", JOIN_EEP, NAIVE_EEP)):
        tf, ts = timed(con, fast), timed(con, slow)
        same = ("window_coag", "naive_coag") if "SOFA" in label else ("join_eep", "naive_eep")
        diff = con.execute(f"SELECT count(*) FROM ((FROM {same[0]} EXCEPT FROM {same[1]}) UNION ALL "
                           f"(FROM {same[1]} EXCEPT FROM {same[0]}))").fetchone()[0]
        print(f"  {label:32s} window/join {tf:6.2f} s vs naive {ts:6.2f} s: {ts / tf:5.1f}x "
              f"(outputs differ in {diff} rows)")


if __name__ == "__main__":
    main()
