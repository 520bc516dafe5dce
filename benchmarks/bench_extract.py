"""Hourly vitals + labs extraction: clin-jepa's DuckDB SQL vs two pandas versions.

Both sides read the same synthetic MIMIC-IV csv.gz files, build the same cohort (adult,
>= 6 h, first stay, a valid vital sign) and the same hourly long table
(stay_id, hour, feature, value): registry unit conversion, out-of-range -> NULL before
aggregation, mean vitals / min GCS, last lab per hour (labs mapped via hadm_id into the
stay's grid). Two pandas baselines: an optimised one (usecols, groupby on the long table)
and the typical public-pipeline pattern (whole tables with default dtypes, merge,
pivot_table per aggregation into a wide hourly table). Each side runs in its own subprocess; we report wall time, stay-hour rows/s
and peak RSS (ru_maxrss), check that the outputs agree, and print the ratios.

    python benchmarks/bench_extract.py                 # 5000 synthetic stays
    python benchmarks/bench_extract.py --stays 1000 --threads 2
    python benchmarks/bench_extract.py --mimic DIR     # an existing MIMIC-IV directory
    python benchmarks/bench_extract.py --format parquet --memory 200MB
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SIDES = ("duckdb", "pandas", "pandas_plain")
LABELS = {"duckdb": "clin-jepa DuckDB SQL", "pandas": "pandas, optimised (usecols, groupby)",
          "pandas_plain": "pandas, typical public pipeline (whole csv, pivot_table)"}


# --------------------------------------------------------------------------- #
# side 1: clin-jepa (DuckDB SQL, sql/manifest.txt up to labs_hourly)
# --------------------------------------------------------------------------- #


def run_duckdb(mimic: Path, out: Path, threads: int, memory: str) -> int:
    from clin_jepa.config import DataConfig
    from clin_jepa.data.extract import build_database

    cfg = DataConfig(duckdb_threads=threads, duckdb_memory_limit=memory)
    with tempfile.TemporaryDirectory() as spill:
        con = build_database(mimic, cfg, until="labs_hourly", temp_dir=spill)
        con.execute(f"""COPY (SELECT stay_id, hour, feature, value FROM vitals_hourly
                              UNION ALL SELECT stay_id, hour, feature, value FROM labs_hourly)
                        TO '{out}' (FORMAT parquet)""")
        n = con.execute("SELECT count(*) FROM grid").fetchall()[0][0]
        con.close()
    return n


# --------------------------------------------------------------------------- #
# side 2: straightforward pandas
# --------------------------------------------------------------------------- #


def run_pandas(mimic: Path, out: Path) -> int:
    import numpy as np
    import pandas as pd

    from clin_jepa.data import features

    def read(rel: str, usecols: list[str], dates: tuple[str, ...] = ()) -> pd.DataFrame:
        if (mimic / f"{rel}.parquet").exists():
            df = pd.read_parquet(mimic / f"{rel}.parquet", columns=usecols)
            for c in dates:
                df[c] = pd.to_datetime(df[c])
            return df
        return pd.read_csv(mimic / f"{rel}.csv.gz", usecols=usecols, parse_dates=list(dates))

    reg = pd.DataFrame(features.item_table())
    groups = {o.name: o.group for o in features.OBSERVATIONS}
    icu = read("icu/icustays", ["subject_id", "hadm_id", "stay_id", "intime", "outtime"], ("intime", "outtime"))
    pat = read("hosp/patients", ["subject_id", "anchor_age", "anchor_year"])
    icu = icu.merge(pat, on="subject_id", how="left")
    icu["age"] = icu["anchor_age"] + icu["intime"].dt.year - icu["anchor_year"]
    icu["los_hours"] = (icu["outtime"] - icu["intime"]).dt.total_seconds() / 3600
    icu = icu.sort_values(["subject_id", "intime", "stay_id"])
    icu["seq"] = icu.groupby("subject_id").cumcount() + 1
    stays = icu[(icu["age"] >= 18) & (icu["los_hours"] >= 6) & (icu["seq"] == 1)].copy()
    stays["n_hours"] = np.minimum(np.ceil(stays["los_hours"]), 168).astype(int)

    def convert(df: pd.DataFrame) -> pd.DataFrame:
        df["valuenum"] = pd.to_numeric(df["valuenum"], errors="coerce")
        v = np.where(df["frac_to_pct"] & (df["valuenum"] <= 1), df["valuenum"] * 100,
                     df["valuenum"] * df["mul"] + df["add"])
        df["value"] = np.where((v >= df["lo"]) & (v <= df["hi"]), v, np.nan)
        return df

    # chartevents: vitals, FiO2, GCS
    ce = read("icu/chartevents", ["stay_id", "charttime", "itemid", "valuenum"], ("charttime",))
    ce = ce.merge(reg[reg["source"] == "chartevents"], on="itemid")
    ce = convert(ce).merge(stays[["stay_id", "hadm_id", "intime", "outtime", "n_hours"]], on="stay_id")
    vital = ce["feature"].map(groups).eq("vitals") & ce["value"].notna() & \
        (ce["charttime"] >= ce["intime"]) & (ce["charttime"] <= ce["outtime"])
    cohort = stays[stays["stay_id"].isin(ce.loc[vital, "stay_id"].unique())]
    ce = ce[ce["stay_id"].isin(cohort["stay_id"]) & (ce["charttime"] >= ce["intime"])]
    ce["hour"] = np.floor((ce["charttime"] - ce["intime"]).dt.total_seconds() / 3600).astype(int)
    ce = ce[ce["hour"] < ce["n_hours"]]
    keys = ["stay_id", "hour", "feature"]
    mean = ce[ce["agg"] == "mean"].groupby(keys)["value"].mean()
    worst = ce[ce["agg"] == "min"].groupby(keys)["value"].min()

    # labevents: last value in the hour, mapped by hadm_id into the grid
    le = read("hosp/labevents", ["hadm_id", "itemid", "charttime", "valuenum"], ("charttime",))
    le = le.merge(reg[reg["source"] == "labevents"], on="itemid")
    le = convert(le).merge(cohort[["stay_id", "hadm_id", "intime", "n_hours"]], on="hadm_id")
    le = le[le["charttime"] >= le["intime"]]
    le["hour"] = np.floor((le["charttime"] - le["intime"]).dt.total_seconds() / 3600).astype(int)
    le = le[le["hour"] < le["n_hours"]]
    last = le.dropna(subset=["value"]).sort_values(["charttime", "value"]).groupby(keys)["value"].last()
    res = pd.concat([mean, worst, last]).reset_index()
    res.to_parquet(out, index=False)
    return int(cohort["n_hours"].sum())


# --------------------------------------------------------------------------- #
# side 3: the typical public-pipeline pattern (whole tables, default dtypes, pivot_table)
# --------------------------------------------------------------------------- #


def run_pandas_plain(mimic: Path, out: Path) -> int:
    """How most public EHR pipelines do it: read each table whole (all columns, default
    dtypes, parse_dates), merge with icustays, filter itemids, hour = floor((charttime -
    intime) / 1 h), range checks, then one pivot_table per aggregation into a wide hourly
    table. Same cohort rules, registry units/ranges and aggregations as the other sides."""
    import numpy as np
    import pandas as pd

    from clin_jepa.data import features

    def load(rel: str, dates: list[str]) -> pd.DataFrame:
        if (mimic / f"{rel}.parquet").exists():
            df = pd.read_parquet(mimic / f"{rel}.parquet")
            for c in dates:
                df[c] = pd.to_datetime(df[c])
            return df
        return pd.read_csv(mimic / f"{rel}.csv.gz", parse_dates=dates)

    icustays = load("icu/icustays", ["intime", "outtime"])
    patients = load("hosp/patients", ["dod"])
    chartevents = load("icu/chartevents", ["charttime", "storetime"])
    labevents = load("hosp/labevents", ["charttime", "storetime"])
    items = pd.DataFrame(features.item_table())

    # cohort: adults, first ICU stay, >= 6 h
    icustays = icustays.merge(patients, on="subject_id", how="left")
    icustays["age"] = icustays["anchor_age"] + icustays["intime"].dt.year - icustays["anchor_year"]
    icustays["los_hours"] = (icustays["outtime"] - icustays["intime"]) / pd.Timedelta(hours=1)
    icustays = icustays.sort_values(["subject_id", "intime", "stay_id"])
    icustays["seq"] = icustays.groupby("subject_id").cumcount() + 1
    stays = icustays[(icustays["age"] >= 18) & (icustays["los_hours"] >= 6) & (icustays["seq"] == 1)].copy()
    stays["n_hours"] = np.minimum(np.ceil(stays["los_hours"]), 168)

    def clean(df: pd.DataFrame) -> pd.DataFrame:
        """Registry unit conversion, then out-of-range values -> NaN."""
        df = df.merge(items, on="itemid")
        v = np.where(df["frac_to_pct"] & (df["valuenum"] <= 1), df["valuenum"] * 100,
                     df["valuenum"] * df["mul"] + df["add"])
        df["value"] = np.where((v >= df["lo"]) & (v <= df["hi"]), v, np.nan)
        return df

    # chartevents
    ce = chartevents[chartevents["itemid"].isin(items.loc[items["source"] == "chartevents", "itemid"])]
    ce = ce.merge(stays[["stay_id", "intime", "outtime", "n_hours"]], on="stay_id")
    ce = clean(ce)
    in_stay = (ce["charttime"] >= ce["intime"]) & (ce["charttime"] <= ce["outtime"])
    has_vital = ce[in_stay & ce["value"].notna() & ce["feature"].map(
        {o.name: o.group for o in features.OBSERVATIONS}).eq("vitals")]["stay_id"].unique()
    cohort = stays[stays["stay_id"].isin(has_vital)]
    ce = ce[ce["stay_id"].isin(cohort["stay_id"])]
    ce["hour"] = np.floor((ce["charttime"] - ce["intime"]) / pd.Timedelta(hours=1))
    ce = ce[(ce["hour"] >= 0) & (ce["hour"] < ce["n_hours"])]
    index = ["stay_id", "hour"]
    vitals = ce[ce["agg"] == "mean"].pivot_table(index=index, columns="feature", values="value", aggfunc="mean")
    worst = ce[ce["agg"] == "min"].pivot_table(index=index, columns="feature", values="value", aggfunc="min")

    # labevents: last value of the hour, into the stay via hadm_id
    le = labevents[labevents["itemid"].isin(items.loc[items["source"] == "labevents", "itemid"])]
    le = le.merge(cohort[["stay_id", "hadm_id", "intime", "n_hours"]], on="hadm_id")
    le = clean(le)
    le["hour"] = np.floor((le["charttime"] - le["intime"]) / pd.Timedelta(hours=1))
    le = le[(le["hour"] >= 0) & (le["hour"] < le["n_hours"])].sort_values(["charttime", "value"])
    labs = le.pivot_table(index=index, columns="feature", values="value", aggfunc="last")

    hourly = pd.concat([vitals, worst, labs], axis=1)  # the wide (stay, hour) x feature table
    long = hourly.stack().rename("value").reset_index()  # long form, only to compare with the other sides
    long["hour"] = long["hour"].astype("int64")
    long.to_parquet(out, index=False)
    return int(cohort["n_hours"].sum())


# --------------------------------------------------------------------------- #
# driver
# --------------------------------------------------------------------------- #


def child(args) -> None:
    t0 = time.perf_counter()
    if args.side == "duckdb":
        n = run_duckdb(Path(args.mimic), Path(args.out), args.threads, args.memory)
    elif args.side == "pandas":
        n = run_pandas(Path(args.mimic), Path(args.out))
    else:
        n = run_pandas_plain(Path(args.mimic), Path(args.out))
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)  # ru_maxrss in KiB on Linux
    print(json.dumps({"side": args.side, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "stay_hours": n,
                      "peak_rss_mib": ru.ru_maxrss / 1024}))


def to_parquet(src: Path, dst: Path) -> Path:
    """The same MIMIC-IV tables as typed parquet (as a parquet distribution would ship them)."""
    import duckdb

    for f in sorted(src.glob("*/*.csv.gz")):
        out = dst / f.parent.name / f.name.replace(".csv.gz", ".parquet")
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            duckdb.execute(f"COPY (SELECT * FROM read_csv('{f}')) TO '{out}' (FORMAT parquet)")
    return dst


def compare(a: Path, b: Path) -> dict:
    import polars as pl

    x = pl.read_parquet(a).drop_nulls("value").with_columns(pl.col("stay_id", "hour").cast(pl.Int64))
    y = pl.read_parquet(b).drop_nulls("value").with_columns(pl.col("stay_id", "hour").cast(pl.Int64))
    j = x.join(y, on=["stay_id", "hour", "feature"], how="full", suffix="_pd", coalesce=True)
    only_x = j["value_pd"].null_count()
    only_y = j["value"].null_count()
    both = j.drop_nulls(["value", "value_pd"])
    max_diff = float((both["value"] - both["value_pd"]).abs().max() or 0.0)
    return {"rows_duckdb": x.height, "rows_pandas": y.height, "only_duckdb": only_x, "only_pandas": only_y,
            "max_abs_diff": max_diff, "agree": only_x == 0 and only_y == 0 and max_diff < 1e-6}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stays", type=int, default=5000)
    p.add_argument("--mimic", default=None, help="existing MIMIC-IV dir (default: generate synthetic)")
    p.add_argument("--workdir", default=None, help="where to cache the synthetic data (default: a temp dir)")
    p.add_argument("--threads", type=int, default=0, help="DuckDB threads (0 = all cores)")
    p.add_argument("--memory", default="8GB", help="DuckDB memory_limit")
    p.add_argument("--format", choices=["csv.gz", "parquet"], default="csv.gz",
                   help="source format both sides read (parquet: converted once, not timed)")
    p.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:
        child(args)
        return 0

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_extract."))
    work.mkdir(parents=True, exist_ok=True)
    mimic = Path(args.mimic) if args.mimic else work / f"synth{args.stays}"
    if not args.mimic and not (mimic / "icu" / "icustays.csv.gz").exists():
        from clin_jepa.config import SynthConfig
        from clin_jepa.data.synth import generate

        generate(mimic, SynthConfig(stays=args.stays, seed=0))
    if args.format == "parquet":
        mimic = to_parquet(mimic, work / f"{mimic.name}_parquet")
    env = dict(os.environ, CLIN_JEPA_PROGRESS="0", CLIN_JEPA_LOGLEVEL="WARNING")
    results = {}
    for side in SIDES:
        out = work / f"{side}.parquet"
        cmd = [sys.executable, str(HERE), "--side", side, "--mimic", str(mimic), "--out", str(out),
               "--threads", str(args.threads), "--memory", args.memory]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        results[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    checks = {side: compare(work / "duckdb.parquet", work / f"{side}.parquet") for side in SIDES[1:]}
    d = results["duckdb"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}")
    print(f"input: {mimic}  (stay-hours in the cohort grid: {d['stay_hours']})")
    print(f"{'side':60s} {'wall s':>7s} {'cpu s':>7s} {'stay-h/s':>9s} {'peak MiB':>9s} "
          f"{'speed-up wall/cpu':>18s} {'DuckDB mem ratio':>17s}")
    for side in SIDES:
        r = results[side]
        ratio = f"{r['wall_s'] / d['wall_s']:.1f}x / {r['cpu_s'] / d['cpu_s']:.1f}x" if side != "duckdb" else "-"
        mem = f"{d['peak_rss_mib'] / r['peak_rss_mib']:.2f}" if side != "duckdb" else "-"
        print(f"{LABELS[side]:60s} {r['wall_s']:7.2f} {r['cpu_s']:7.2f} {r['stay_hours'] / r['wall_s']:9.0f} "
              f"{r['peak_rss_mib']:9.0f} {ratio:>18s} {mem:>17s}")
    for side, check in checks.items():
        print(f"outputs agree ({side} vs duckdb): {check['agree']}  {json.dumps(check)}")
    return 0 if all(c["agree"] for c in checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
