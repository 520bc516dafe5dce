"""MEDS export: validated by the meds package's schemas, and a round trip (hourly values,
times and labels of the extraction recovered exactly from the MEDS files)."""

from __future__ import annotations

import importlib.util
import json

import meds
import polars as pl
import pyarrow.parquet as pq
import pytest
from clin_jepa.evaluation.aces_tasks import icu_admissions, stay_labels

from clin_jepa.data import meds_codes
from clin_jepa.data.features import ACTION_COLUMNS
from clin_jepa.data.meds_export import HOURLY_COLUMNS, SPLIT_NAMES, export_meds, validate_meds


def _data(root) -> pl.DataFrame:
    return pl.read_parquet(root / "data" / "**" / "*.parquet", include_file_paths="file")


def test_export_is_valid_meds(meds_export_dir, extracted_data_dir):
    root = meds_export_dir
    assert (meds_codes.BIRTH, meds_codes.DEATH) == (meds.birth_code, meds.death_code)
    meds.DatasetMetadataSchema.validate(json.loads((root / meds.dataset_metadata_filepath).read_text()))
    codes = pq.read_table(root / meds.code_metadata_filepath)
    meds.CodeMetadataSchema.validate(codes)
    splits = pq.read_table(root / meds.subject_splits_filepath)
    meds.SubjectSplitSchema.validate(splits)
    files = sorted((root / "data").rglob("*.parquet"))
    assert {f.parent.name for f in files} == {meds.train_split, meds.tuning_split, meds.held_out_split}
    for f in files:
        meds.DataSchema.validate(pq.read_table(f))
    labels = sorted((root / "task_labels").glob("*.parquet"))
    assert len(labels) == 15
    for f in labels:
        meds.LabelSchema.validate(pq.read_table(f))
    data = _data(root)
    assert set(data["code"].unique().to_list()) <= set(codes.column("code").to_pylist())
    # every subject in exactly one file, in the directory of its split (ours mapped to MEDS names)
    ours = pl.read_parquet(extracted_data_dir / "splits.parquet").with_columns(
        pl.col("split").replace_strict(SPLIT_NAMES).alias("meds_split"))
    where = data.group_by("subject_id").agg(pl.col("file").n_unique().alias("n"), pl.col("file").first())
    assert where["n"].max() == 1
    exported = pl.from_arrow(splits).rename({"split": "exported"})
    got = where.join(exported, on="subject_id").join(ours, on="subject_id")
    assert got.height == ours.height
    assert got["exported"].to_list() == got["meds_split"].to_list()
    assert all(f"/{s}/" in p for s, p in zip(got["meds_split"], got["file"]))
    # codes.parquet carries units and source itemids from the feature registry
    hr = pl.from_arrow(codes).filter(pl.col("code") == "ICU//VITALS//heart_rate").row(0, named=True)
    assert hr["unit"] == "bpm" and hr["itemids"] == [220045]
    assert validate_meds(root)["subjects"] == ours.height


def test_hourly_values_and_times_round_trip_exactly(meds_export_dir, extracted_data_dir, synth_mimic_dir):
    hourly = pl.read_parquet(extracted_data_dir / "hourly.parquet")
    stays = hourly["stay_id"].unique().sort().sample(12, seed=0).to_list()
    data = _data(meds_export_dir).filter(pl.col("stay_id").is_in(stays))
    # ICU_ADMISSION is the real (shifted) intime of the MIMIC-IV source
    adm = data.filter(pl.col("code") == meds_codes.ICU_ADMISSION).select("stay_id", pl.col("time").alias("intime"))
    icu = pl.read_csv(synth_mimic_dir / "icu" / "icustays.csv.gz", try_parse_dates=True)
    src = icu.filter(pl.col("stay_id").is_in(stays)).select("stay_id", pl.col("intime").cast(pl.Datetime("us")))
    assert adm.sort("stay_id").equals(src.sort("stay_id"))
    column = {meds_codes.feature_code(c): c for c in HOURLY_COLUMNS}
    back = (data.filter(pl.col("code").is_in(list(column))).join(adm, on="stay_id")
            .select("stay_id", ((pl.col("time") - pl.col("intime")).dt.total_hours() - 1).cast(pl.Int32).alias("hour"),
                    pl.col("code").replace_strict(column).alias("column"), "numeric_value"))
    assert back.height > 500
    for c in HOURLY_COLUMNS:
        want = hourly.filter(pl.col("stay_id").is_in(stays)).select("stay_id", "hour",
                                                                    pl.col(c).cast(pl.Float32).alias("v"))
        want = want.filter(pl.col("v") != 0) if c in ACTION_COLUMNS else want.drop_nulls()
        got = back.filter(pl.col("column") == c).select("stay_id", "hour", pl.col("numeric_value").alias("v"))
        assert got.sort("stay_id", "hour").equals(want.sort("stay_id", "hour")), c
    # an hour's aggregate is stamped at the end of its hour, never before the stay starts
    assert back["hour"].min() >= 0


def test_labels_round_trip_at_the_evaluation_prediction_times(meds_export_dir, extracted_data_dir):
    from clin_jepa.evaluation.tasks import last_hour_expr

    labels = pl.read_parquet(extracted_data_dir / "labels.parquet")
    admissions = icu_admissions(meds_export_dir)
    for path in sorted((meds_export_dir / "task_labels").glob("*.parquet")):
        task = path.stem
        rows, dropped = stay_labels(pl.read_parquet(path), admissions, task)
        assert dropped == 0
        # stay_labels gives hour = hours ended by prediction_time = last_hour + 1
        want = (labels.filter(pl.col("task") == task)
                .select("stay_id", "task", (last_hour_expr() + 1).cast(pl.Int32).alias("hour"),
                        pl.col("label").cast(pl.Int8)))
        assert rows.sort("stay_id", "hour").equals(want.sort("stay_id", "hour")), task


def test_export_never_overwrites_what_it_did_not_write(extracted_data_dir, synth_mimic_dir, tmp_path):
    from clin_jepa.pipelines.cli import main as cli

    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a MEDS export"):
        export_meds(extracted_data_dir, synth_mimic_dir, keep)
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]
    args = ["export-meds", "--data", str(extracted_data_dir), "--mimic", str(synth_mimic_dir),
            "--out", str(tmp_path / "meds"), "--set", "data.duckdb_threads=1"]
    assert cli(args) == 0
    assert cli(args) == 2  # an existing export needs --force
    assert cli([*args, "--force"]) == 0
    assert cli(["export-meds", "--data", str(extracted_data_dir), "--out", str(tmp_path / "m2")]) == 2  # no source
    assert not (tmp_path / "m2").exists()
    other = tmp_path / "other"
    (other / "hosp").mkdir(parents=True)
    for p in synth_mimic_dir.rglob("*.*"):
        if p.is_file():
            dest = other / p.relative_to(synth_mimic_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(p.read_bytes() if "patients" not in p.name else p.read_bytes()[:-40])
    with pytest.raises(ValueError, match="not the one"):
        export_meds(extracted_data_dir, other, tmp_path / "m3")
    assert not (tmp_path / "m3").exists()


@pytest.mark.skipif(importlib.util.find_spec("aces") is not None, reason="es-aces is installed")
def test_aces_tasks_without_es_aces_name_the_install(meds_export_dir):
    from clin_jepa.evaluation.aces_tasks import run_aces

    with pytest.raises(ValueError, match=r"pip install 'clin-jepa\[aces\]'"):
        run_aces("configs/aces/mort_icu.yaml", meds_export_dir)


def test_export_of_a_run_finds_its_data_and_mimic(extracted_data_dir, synth_mimic_dir, tmp_path):
    from clin_jepa.pipelines.cli import main as cli

    from clin_jepa.config import DataConfig, RunConfig
    from clin_jepa.run import RunDir

    run = tmp_path / "run"
    run.mkdir()
    (run / "data").symlink_to(extracted_data_dir)  # the layout `clin-jepa demo` writes: RUN/mimic, RUN/data
    (run / "mimic").symlink_to(synth_mimic_dir)
    RunDir(run).create(RunConfig(data=DataConfig(duckdb_threads=1)))
    assert cli(["export-meds", "--run", str(run), "--out", str(run / "meds")]) == 0
    assert validate_meds(run / "meds")["subjects"] == pl.read_parquet(extracted_data_dir / "cohort.parquet")["subject_id"].n_unique()
