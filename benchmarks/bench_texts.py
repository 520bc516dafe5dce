"""The texts step of `clin-jepa extract`: clin_jepa.data.texts.hourly_texts (two stages,
each piece computed once) vs the same texts as one nested polars expression (the form
before the change, kept here as the reference: each group body, the observed text and
the action body appeared 2-3 times in the tree and polars evaluated them again), side by
side in one run, streamed (sink_parquet, what run_extraction does) and eager. Both must
give identical texts.

    python benchmarks/bench_texts.py --hourly runs/x/data/hourly.parquet
"""

from __future__ import annotations

import argparse
import time

import polars as pl

from clin_jepa.data import features, texts
from clin_jepa.data.texts import NO_ACTION, NO_OBSERVATION, _capitalize, _num, _observation


def nested(hourly):
    """The reference: the state and action texts as single nested expressions."""
    groups = []
    for g in features.GROUP_ORDER:
        obs = [o for o in features.OBSERVATIONS if o.group == g]
        if obs:
            body = pl.concat_str([_observation(o) for o in obs], separator=" " if g == "gcs" else ", ",
                                 ignore_nulls=True)
            groups.append(pl.when(body != "").then(pl.lit("GCS ") + body if g == "gcs" else body))
    observed = pl.concat_str(groups, separator="; ", ignore_nulls=True)
    scores = pl.concat_str([pl.lit("SOFA ") + _num("sofa", 0), pl.lit("KDIGO ") + _num("kdigo_stage", 0)],
                           separator=", ", ignore_nulls=True)
    full = pl.when(scores != "").then(observed + pl.lit("; ") + scores).otherwise(observed)
    state = (pl.when(observed == "").then(pl.lit(NO_OBSERVATION))
             .otherwise(pl.lit("Hour ") + pl.col("hour").cast(pl.String) + pl.lit(". ") + full + pl.lit(".")))
    parts = []
    for v in features.VASOPRESSORS:
        rate, name = pl.col(v.name), v.name.capitalize()
        dose = pl.lit(name + " ") + _num(rate, 3 if v.unit == "mcg/kg/min" else 2) + pl.lit(" " + v.unit)
        parts.append(pl.when(rate.is_null()).then(pl.lit(name)).when(rate > 0).then(dose))
    parts.append(pl.when(pl.col("ventilation") == 1).then(pl.lit("invasive ventilation")))
    parts.append(pl.when(pl.col("rrt") == 1).then(pl.lit("renal replacement therapy")))
    parts.append(pl.when(pl.col("antibiotics") == 1).then(pl.lit("antibiotics")))
    parts.append(pl.when(pl.col("fluid_bolus_ml") > 0).then(
        pl.lit("fluid bolus ") + _num("fluid_bolus_ml", 0) + pl.lit(" mL")))
    body = pl.concat_str(parts, separator="; ", ignore_nulls=True)
    action = pl.when(body == "").then(pl.lit(NO_ACTION)).otherwise(_capitalize(body) + pl.lit("."))
    return hourly.select("stay_id", "hour", state.alias("state_text"), action.alias("action_text"))


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hourly", required=True, help="hourly.parquet written by clin-jepa extract")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="/tmp/bench_texts.parquet")
    args = p.parse_args()
    df = pl.read_parquet(args.hourly)
    a = texts.hourly_texts(df).sort("stay_id", "hour")
    b = nested(df).sort("stay_id", "hour")
    assert a.equals(b), "the two forms disagree"
    print(f"{df.height:,} stay-hours, polars {pl.__version__}, {pl.thread_pool_size()} threads; best of {args.repeats}")
    for mode in ("sink_parquet", "eager"):
        if mode == "eager":
            t_new = _best(lambda: texts.hourly_texts(df), args.repeats)
            t_old = _best(lambda: nested(df), args.repeats)
        else:
            t_new = _best(lambda: texts.hourly_texts(pl.scan_parquet(args.hourly)).sink_parquet(args.out), args.repeats)
            t_old = _best(lambda: nested(pl.scan_parquet(args.hourly)).sink_parquet(args.out), args.repeats)
        print(f"{mode:12s} two stages {t_new:.2f} s ({df.height / t_new:,.0f} rows/s) | one nested expression "
              f"{t_old:.2f} s | speed-up {t_old / t_new:.1f}x")


if __name__ == "__main__":
    main()
