"""Real data: the MIMIC-IV demo (100 patients, 140 ICU stays) plus generated chartevents
(clin_jepa.data.synth.chartevents_for_stays; the demo copy ships without them). Expectations are computed independently with polars
from the raw csv.gz files."""

from __future__ import annotations

import math
import re

import polars as pl
import pytest
from test_extract_helpers import copy_demo

from clin_jepa.config import DataConfig
from clin_jepa.data.extract import run_extraction
from clin_jepa.data.synth import chartevents_for_stays, write_csv_gz

CFG = DataConfig(duckdb_memory_limit="1GB", duckdb_threads=2)
TS = "%Y-%m-%d %H:%M:%S"


@pytest.fixture(scope="module")
def demo_run(demo_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    mimic = copy_demo(demo_dir, root / "mimic")
    stays = pl.read_csv(demo_dir / "icu" / "icustays.csv.gz", try_parse_dates=True)
    write_csv_gz(chartevents_for_stays(stays, seed=0), mimic / "icu" / "chartevents.csv.gz")
    run_extraction(mimic, root / "data", CFG)
    return demo_dir, root / "data"


def _stays(demo_dir) -> pl.DataFrame:
    stays = pl.read_csv(demo_dir / "icu" / "icustays.csv.gz", try_parse_dates=True)
    patients = pl.read_csv(demo_dir / "hosp" / "patients.csv.gz")
    return (stays.join(patients, on="subject_id", how="left")
            .with_columns(age=pl.col("anchor_age") + pl.col("intime").dt.year() - pl.col("anchor_year"),
                          los_hours=(pl.col("outtime") - pl.col("intime")).dt.total_seconds() / 3600,
                          seq=pl.col("intime").rank("ordinal").over("subject_id")))


def test_cohort_and_attrition_match_raw_tables(demo_run):
    demo_dir, data = demo_run
    s = _stays(demo_dir)
    adult = s.filter(pl.col("age") >= 18)
    long = adult.filter(pl.col("los_hours") >= 6)
    first = long.filter(pl.col("seq") == 1)
    cohort = pl.read_parquet(data / "cohort.parquet")
    assert sorted(cohort["stay_id"]) == sorted(first["stay_id"])  # every stay has generated vitals
    att = pl.read_parquet(data / "attrition.parquet")
    assert att["stays_remaining"].to_list() == [s.height, adult.height, long.height, first.height, first.height]
    assert s.height == 140
    assert cohort["subject_id"].n_unique() == cohort.height  # first stay only
    assert cohort.join(s, on="stay_id")["los_hours"].to_list() == pytest.approx(
        cohort.join(s, on="stay_id")["los_hours_right"].to_list())


def test_real_creatinine_lands_in_the_right_stay_hour(demo_run):
    demo_dir, data = demo_run
    s = _stays(demo_dir)
    cohort = pl.read_parquet(data / "cohort.parquet").select("stay_id")
    grid = s.join(cohort, on="stay_id").select(
        "stay_id", "hadm_id", "intime",
        n_hours=pl.min_horizontal(pl.col("los_hours").ceil(), pl.lit(CFG.max_stay_hours)).cast(pl.Int64))
    labs = pl.read_csv(demo_dir / "hosp" / "labevents.csv.gz", try_parse_dates=True,
                       schema_overrides={"valuenum": pl.Float64, "value": pl.String})
    cr = (labs.filter((pl.col("itemid") == 50912) & pl.col("valuenum").is_between(0.1, 40))
          .join(grid, on="hadm_id")
          .with_columns(hour=((pl.col("charttime") - pl.col("intime")).dt.total_seconds() / 3600).floor()
                        .cast(pl.Int64))
          # labs of the 6 h before intime count in hour 0 (data.lab_lookback_hours, mimic-code)
          .filter((pl.col("hour") >= -CFG.lab_lookback_hours) & (pl.col("hour") < pl.col("n_hours")))
          .with_columns(hour=pl.col("hour").clip(lower_bound=0))
          .sort("charttime", "valuenum")
          .group_by("stay_id", "hour").agg(expected=pl.col("valuenum").last()))
    assert cr.height > 20, "the demo has creatinine values during ICU stays"
    hourly = pl.read_parquet(data / "hourly.parquet").select("stay_id", "hour", "creatinine")
    got = cr.join(hourly.with_columns(pl.col("hour").cast(pl.Int64)), on=["stay_id", "hour"], how="left")
    assert got["creatinine"].null_count() == 0
    assert got["creatinine"].to_list() == pytest.approx(got["expected"].to_list())
    assert hourly["creatinine"].drop_nulls().len() == cr.height  # and nowhere else


def test_demo_outputs_are_complete_and_private(demo_run):
    _, data = demo_run
    hourly = pl.read_parquet(data / "hourly.parquet")
    texts = pl.read_parquet(data / "texts.parquet")
    assert texts.height == hourly.height and texts.columns == ["stay_id", "hour", "state_text", "action_text"]
    assert (hourly["ventilation"] == 1).sum() > 0 and (hourly["norepinephrine"] > 0).sum() > 0
    assert (hourly["antibiotics"] == 1).sum() > 0
    splits = pl.read_parquet(data / "splits.parquet")
    assert set(splits["split"]) == {"train", "val", "test"}
    assert math.isclose(splits.height, pl.read_parquet(data / "cohort.parquet")["subject_id"].n_unique())
    demo = pl.read_parquet(data / "demographics.parquet")
    ids = {str(v) for v in pl.read_parquet(data / "cohort.parquet").select(
        "stay_id", "subject_id", "hadm_id").to_numpy().ravel()}
    snapshot = pl.read_parquet(data / "texts_snapshot.parquet")  # data.text_mode=snapshot
    assert snapshot.select("stay_id", "hour").equals(texts.select("stay_id", "hour"))
    blob = "\n".join([*texts["state_text"], *texts["action_text"], *snapshot["state_text"], *demo["demo_text"]])
    assert not re.search(r"\d{4}-\d{2}-\d{2}", blob), "a date leaked into a text"
    assert not ids & set(re.findall(r"\d{6,}", blob)), "an identifier leaked into a text"
