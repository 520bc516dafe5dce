"""Synthetic round trip: values planted at chosen stay-hours of a tiny MIMIC-IV come out
converted, range-checked and aggregated in the right hour of hourly.parquet; cohort,
attrition, grid, splits, idempotence and atomic output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from test_extract_helpers import Mini, standard_mini

from clin_jepa.config import DataConfig
from clin_jepa.data import features
from clin_jepa.data.extract import build_database, run_extraction

CFG = DataConfig(duckdb_memory_limit="1GB", duckdb_threads=2)
S = 107  # the stay the values are planted in (72 h, hourly heart rate 80 + hour % 7)


def base_hr(hour: int) -> float:
    return 80 + hour % 7


def planted() -> Mini:
    m = standard_mini()
    m.chart(S, 3.25, 220045, 100).chart(S, 3.75, 220045, 110)  # HR mean with base 83
    m.chart(S, 5.1, 223761, 100.4).chart(S, 5.2, 223762, 37.0)  # 100.4 F = 38.0 C; mean 37.5
    m.chart(S, 6.1, 223835, 0.5).chart(S, 6.2, 223835, 5)  # FiO2 fraction -> 50 %; 5 % is absurd
    m.chart(S, 7.2, 220045, 400)  # absurd heart rate -> NULL before the mean
    m.chart(S, 8.2, 220045, "abc", value="abc")  # non-numeric valuenum -> counted NULL
    m.chart(S, 18.1, 220739, 4).chart(S, 18.9, 220739, 2)  # GCS eye: worst = 2
    m.lab(S, 22.2, 50912, 1.0).lab(S, 22.8, 50912, 1.6).lab(S, 22.5, 50912, 1.2)  # last = 1.6
    m.lab(S, -2.0, 50983, 131)  # sodium 2 h before intime: outside the grid by default
    m.output(S, 16.2, 226559, 300).output(S, 16.5, 227488, 100).output(S, 16.7, 227489, 50)  # 250 mL
    m.output(S, 17.3, 226559, 9000)  # absurd urine volume -> NULL
    m.infusion(S, 10.5, 12.25, 222315, 0.04, "units/min", amountuom="units")  # 2.4 units/hour
    m.infusion(S, 20.0, 22.0, 221906, 0.0002, "mg/kg/min")  # 0.2 mcg/kg/min
    m.infusion(S, 14.0, 15.0, 221749, 80.0, "mcg/min", weight=80.0)  # 1.0 mcg/kg/min
    m.infusion(S, 30.0, 31.0, 221906, 50.0, "mcg/kg/min")  # absurd rate -> NULL, nee NULL
    m.procedure(S, 2.5, 5.5, 225792)  # invasive ventilation: hours 2-5
    m.procedure(S, 40.0, 44.0, 225794)  # non-invasive: not counted
    m.procedure(S, 60.2, 61.5, 225802)  # CRRT: hours 60-61
    m.prescription(S, 24.0, 26.0, "Vancomycin")  # hours 24, 25
    m.prescription(S, 40.0, 41.0, "Ciprofloxacin 0.3% Ophth Soln", route="OU")  # eye drops: excluded
    m.prescription(S, 50.0, None, "Meropenem")  # no stoptime: 24 h -> hours 50..71 (stay ends at 72)
    m.infusion(S, 27.2, 27.7, 225158, 500.0, "mL/hour", amount=500, amountuom="ml")  # bolus 500 mL
    m.infusion(S, 28.0, 38.0, 225828, 100.0, "mL/hour", amount=1000, amountuom="ml")  # maintenance
    m.chart(S, 1.0, 226512, 82.0)  # admission weight kg
    return m


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("roundtrip")
    mimic = planted().write(root / "mimic")
    manifest = run_extraction(mimic, root / "data", CFG)
    return mimic, root / "data", manifest


@pytest.fixture(scope="module")
def hourly(extracted) -> pl.DataFrame:
    return pl.read_parquet(extracted[1] / "hourly.parquet")


def cell(hourly: pl.DataFrame, col: str, hour: int, stay: int = S):
    rows = hourly.filter((pl.col("stay_id") == stay) & (pl.col("hour") == hour))
    assert rows.height == 1, f"stay {stay} hour {hour}: {rows.height} rows"
    return rows[col][0]


def test_cohort_and_attrition(extracted):
    _, data, _ = extracted
    cohort = pl.read_parquet(data / "cohort.parquet")
    assert sorted(cohort["stay_id"]) == [101, 106, 107, 108]
    assert cohort.columns == ["stay_id", "subject_id", "hadm_id", "los_hours", "first_stay"]
    att = pl.read_parquet(data / "attrition.parquet")
    assert att["stays_remaining"].to_list() == [8, 7, 6, 5, 4]
    assert att["stays_removed"].to_list() == [0, 1, 1, 1, 1]
    assert att.columns == ["step", "rule", "stays_removed", "stays_remaining"]


def test_grid_caps_and_columns(hourly):
    n = hourly.group_by("stay_id").len().sort("stay_id")
    # 48 h; 200 h capped at 168; 72 h; 20.5 h -> ceil = 21
    assert dict(zip(n["stay_id"], n["len"])) == {101: 48, 106: 168, 107: 72, 108: 21}
    assert hourly.columns[:2] == ["stay_id", "hour"]
    for c in (*features.OBSERVATION_COLUMNS, *features.ACTION_COLUMNS):
        assert c in hourly.columns
    for c in ("ventilation", "rrt", "antibiotics"):
        assert hourly[c].dtype == pl.Int8


def test_vitals_converted_and_aggregated(hourly):
    assert cell(hourly, "heart_rate", 3) == pytest.approx((100 + 110 + base_hr(3)) / 3, abs=1e-6)
    assert cell(hourly, "heart_rate", 7) == base_hr(7)  # 400 bpm dropped before the mean
    assert cell(hourly, "heart_rate", 8) == base_hr(8)  # 'abc' dropped
    assert cell(hourly, "temperature", 5) == pytest.approx(37.5, abs=1e-6)  # mean of 38.0 (F) and 37.0
    assert cell(hourly, "fio2", 6) == pytest.approx(50.0)  # fraction 0.5 -> 50 %; 5 % dropped
    assert cell(hourly, "gcs_eye", 18) == 2
    assert cell(hourly, "temperature", 4) is None


def test_labs_last_value_and_grid_only(hourly):
    assert cell(hourly, "creatinine", 22) == pytest.approx(1.6)
    assert cell(hourly, "creatinine", 3, stay=101) == pytest.approx(1.4)
    assert cell(hourly, "sodium", 0) == pytest.approx(131)  # drawn < 6 h before intime: hour 0 (default)
    assert cell(hourly, "sodium", 10) == pytest.approx(140)


def test_lab_lookback_zero_keeps_pre_icu_labs_out_of_hour_zero(tmp_path):
    mimic = planted().write(tmp_path / "mimic")
    con = build_database(mimic, DataConfig(duckdb_threads=2, lab_lookback_hours=0), until="labs_hourly")
    got = con.execute(f"SELECT value FROM labs_hourly WHERE stay_id = {S} AND hour = 0 "
                      "AND feature = 'sodium'").fetchall()
    assert got == []


def test_urine_sum_subtracts_irrigant(hourly):
    assert cell(hourly, "urine_output", 16) == pytest.approx(250.0)
    assert cell(hourly, "urine_output", 17) is None  # only an absurd volume


def test_vasopressors_in_canonical_units(hourly):
    for h in (10, 11, 12):
        assert cell(hourly, "vasopressin", h) == pytest.approx(2.4)  # 0.04 units/min
        assert cell(hourly, "nee", h) == pytest.approx(2.4 * 2.5 / 60)
    assert cell(hourly, "vasopressin", 13) == 0.0
    assert cell(hourly, "norepinephrine", 20) == pytest.approx(0.2)  # mg/kg/min -> mcg/kg/min
    assert cell(hourly, "norepinephrine", 22) == 0.0  # infusion ended at 22:00
    assert cell(hourly, "phenylephrine", 14) == pytest.approx(1.0)  # 80 mcg/min / 80 kg
    assert cell(hourly, "nee", 14) == pytest.approx(0.1)
    assert cell(hourly, "norepinephrine", 30) is None  # 50 mcg/kg/min is absurd
    assert cell(hourly, "nee", 30) is None
    assert cell(hourly, "norepinephrine", 0) == 0.0


def test_interval_actions(hourly):
    vent = hourly.filter(pl.col("stay_id") == S).sort("hour")["ventilation"].to_list()
    assert [h for h, v in enumerate(vent) if v] == [2, 3, 4, 5]
    rrt = hourly.filter(pl.col("stay_id") == S).sort("hour")["rrt"].to_list()
    assert [h for h, v in enumerate(rrt) if v] == [60, 61]
    abx = hourly.filter(pl.col("stay_id") == S).sort("hour")["antibiotics"].to_list()
    assert [h for h, v in enumerate(abx) if v] == [24, 25, *range(50, 72)]
    assert cell(hourly, "fluid_bolus_ml", 27) == pytest.approx(500.0)
    assert cell(hourly, "fluid_bolus_ml", 28) == 0.0  # 1000 mL over 10 h is not a bolus


def test_static(extracted):
    static = pl.read_parquet(extracted[1] / "static.parquet").sort("stay_id")
    assert static.columns == ["stay_id", "age", "sex", "race", "admission_type", "weight_kg"]
    row = static.filter(pl.col("stay_id") == S).row(0, named=True)
    assert row["weight_kg"] == pytest.approx(82.0)  # charted, not the inputevents 80 kg
    assert row["sex"] == "female"
    assert static.filter(pl.col("stay_id") == 106)["sex"][0] == "male"
    assert static.filter(pl.col("stay_id") == 108)["age"][0] == 95


def test_manifest_counts_nulls(extracted):
    _, data, manifest = extracted
    on_disk = json.loads((data / "manifest.json").read_text())
    assert on_disk["rows"] == manifest["rows"]
    assert manifest["nulls"]["heart_rate"] == {"non_numeric": 1, "out_of_range": 1}
    assert manifest["nulls"]["fio2"]["out_of_range"] == 1
    assert manifest["nulls"]["urine_output"]["out_of_range"] == 1
    assert manifest["nulls"]["norepinephrine"]["absurd_rate_hours"] == 1
    assert manifest["rows"]["hourly.parquet"] == 48 + 168 + 72 + 21
    assert set(manifest["fingerprint"]["outputs"]) >= {"hourly.parquet", "texts.parquet", "splits.parquet"}


def test_rerun_is_identical_and_atomic(extracted, tmp_path):
    mimic, data, manifest = extracted
    again = run_extraction(mimic, tmp_path / "data", CFG)
    assert again["fingerprint"] == manifest["fingerprint"]  # byte-identical parquet files
    for f in sorted(data.glob("*.parquet")):
        assert pl.read_parquet(f).equals(pl.read_parquet(tmp_path / "data" / f.name)), f.name
    # a failing rerun into an existing output leaves it untouched and no temp dirs behind
    (mimic / "icu" / "icustays.csv.gz").rename(mimic.parent / "icustays.bak")
    try:
        with pytest.raises(FileNotFoundError, match="icustays"):
            run_extraction(mimic, tmp_path / "data", CFG)
    finally:
        (mimic.parent / "icustays.bak").rename(mimic / "icu" / "icustays.csv.gz")
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["fingerprint"] == manifest["fingerprint"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def _many_patients(n: int) -> Mini:
    m = Mini()
    for i in range(n):
        m.stay(1000 + i, 500 + i, los_hours=8)
        if i % 5 == 0:
            m.stay(5000 + i, 500 + i, los_hours=8, start_day=30)  # second stay, same patient
    return m


def test_splits_by_patient(tmp_path):
    mimic = _many_patients(60).write(tmp_path / "mimic")
    cfg = DataConfig(duckdb_threads=2, first_stay_only=False)
    con = build_database(mimic, cfg)
    splits = con.sql("SELECT subject_id, split FROM splits").pl()
    cohort = con.sql("SELECT stay_id, subject_id FROM cohort").pl()
    assert cohort.height == 72  # 60 first stays + 12 second stays
    assert splits["subject_id"].n_unique() == splits.height == 60  # one row per patient
    assert set(splits["subject_id"]) == set(cohort["subject_id"])
    counts = dict(splits.group_by("split").len().iter_rows())
    assert counts == {"train": 42, "val": 9, "test": 9}  # round(60 * 0.7), round(60 * 0.85) - 42
    again = build_database(mimic, cfg).sql("SELECT subject_id, split FROM splits").pl()
    assert splits.sort("subject_id").equals(again.sort("subject_id"))
    other = build_database(mimic, DataConfig(duckdb_threads=2, first_stay_only=False, split_seed=7))
    moved = other.sql("SELECT subject_id, split FROM splits").pl().sort("subject_id")
    assert not moved.equals(splits.sort("subject_id"))
    assert math.isclose(sum(CFG.split_fractions), 1.0)


def test_uncached_sources_give_the_same_hourly_table(extracted):
    mimic, data, _ = extracted
    con = build_database(mimic, DataConfig(duckdb_threads=2, cache_sources=False), until="hourly_base")
    base = con.sql("SELECT * FROM hourly_base ORDER BY stay_id, hour").pl()
    exported = pl.read_parquet(data / "hourly.parquet").select(base.columns)
    assert base.equals(exported)
