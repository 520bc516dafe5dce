"""Round trip through the synthetic MIMIC-IV generator: known rows appended to generated
tables land converted, range-checked and aggregated in the chosen stay-hour; the shared
extraction fixture is complete, private and split by patient."""

from __future__ import annotations

import shutil
from datetime import timedelta

import polars as pl
import pytest

from clin_jepa.config import DataConfig
from clin_jepa.data.extract import run_extraction
from clin_jepa.data.synth import write_csv_gz

CFG = DataConfig(duckdb_memory_limit="2GB", duckdb_threads=2)


def _append(path, rows: list[dict]) -> None:
    df = pl.read_csv(path, infer_schema=False)
    add = pl.DataFrame([{c: (None if r.get(c) is None else str(r[c])) for c in df.columns} for r in rows],
                       schema={c: pl.String for c in df.columns})
    write_csv_gz(pl.concat([df, add]), path)


def _free_hour(hourly: pl.DataFrame, stay: int, cols: list[str]) -> int:
    """An hour (>= 2) of ``stay`` where every column in ``cols`` is NULL or 0 in the baseline."""
    h = hourly.filter(pl.col("stay_id") == stay)
    ok = pl.all_horizontal([pl.col(c).is_null() | (pl.col(c) == 0) for c in cols]) & (pl.col("hour") >= 2)
    free = h.filter(ok)["hour"].sort()
    assert free.len() > 0, f"no free hour for {cols} in stay {stay}"
    return int(free[0])


@pytest.fixture(scope="module")
def planted(synth_mimic_dir, extracted_data_dir, tmp_path_factory):
    base = pl.read_parquet(extracted_data_dir / "hourly.parquet")
    stay = int(base.group_by("stay_id").len().sort(["len", "stay_id"], descending=[True, False])["stay_id"][0])
    icu = pl.read_csv(synth_mimic_dir / "icu" / "icustays.csv.gz", try_parse_dates=True)
    row = icu.filter(pl.col("stay_id") == stay).row(0, named=True)
    ids = dict(subject_id=row["subject_id"], hadm_id=row["hadm_id"], stay_id=stay)
    at = lambda hour: (row["intime"] + timedelta(hours=hour)).strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    h_temp = _free_hour(base, stay, ["temperature", "fio2"])
    h_hr = int(base.filter((pl.col("stay_id") == stay) & pl.col("heart_rate").is_not_null())["hour"][0])
    h_vaso = _free_hour(base, stay, ["vasopressin"])
    h_urine = _free_hour(base, stay, ["urine_output"])
    mimic = tmp_path_factory.mktemp("synth_planted") / "mimic"
    shutil.copytree(synth_mimic_dir, mimic)
    _append(mimic / "icu" / "chartevents.csv.gz", [
        ids | dict(charttime=at(h_temp + 0.2), itemid=223761, value=100.4, valuenum=100.4, valueuom="?F"),
        ids | dict(charttime=at(h_temp + 0.3), itemid=223835, value=0.6, valuenum=0.6, valueuom="%"),
        ids | dict(charttime=at(h_hr + 0.4), itemid=220045, value=999, valuenum=999, valueuom="bpm"),
    ])
    _append(mimic / "icu" / "inputevents.csv.gz", [
        ids | dict(starttime=at(h_vaso), endtime=at(h_vaso + 1), itemid=222315, amount=1.8, amountuom="units",
                   rate=0.03, rateuom="units/min", patientweight=80),
    ])
    _append(mimic / "icu" / "outputevents.csv.gz", [
        ids | dict(charttime=at(h_urine + 0.3), itemid=226559, value=200, valueuom="ml"),
        ids | dict(charttime=at(h_urine + 0.6), itemid=227488, value=50, valueuom="ml"),
    ])
    run_extraction(mimic, mimic.parent / "data", CFG)
    after = pl.read_parquet(mimic.parent / "data" / "hourly.parquet")
    return base, after, stay, dict(temp=h_temp, hr=h_hr, vaso=h_vaso, urine=h_urine)


def _at(df: pl.DataFrame, stay: int, hour: int, col: str):
    return df.filter((pl.col("stay_id") == stay) & (pl.col("hour") == hour))[col][0]


def test_planted_values_in_generated_tables(planted):
    base, after, stay, h = planted
    assert _at(after, stay, h["temp"], "temperature") == pytest.approx(38.0)  # 100.4 F
    assert _at(after, stay, h["temp"], "fio2") == pytest.approx(60.0)  # fraction 0.6
    assert _at(after, stay, h["hr"], "heart_rate") == _at(base, stay, h["hr"], "heart_rate")  # 999 dropped
    assert _at(after, stay, h["vaso"], "vasopressin") == pytest.approx(1.8)  # 0.03 units/min
    assert _at(after, stay, h["vaso"], "nee") == pytest.approx(_at(base, stay, h["vaso"], "nee") + 1.8 * 2.5 / 60)
    assert _at(after, stay, h["urine"], "urine_output") == pytest.approx(150.0)  # 200 out - 50 irrigant in
    untouched = [c for c in base.columns if c not in ("temperature", "fio2", "vasopressin", "nee",
                                                      "urine_output", "sofa", "kdigo_stage")]
    assert base.filter(pl.col("stay_id") != stay).select(untouched).equals(
        after.filter(pl.col("stay_id") != stay).select(untouched))


def test_shared_extraction_is_complete(extracted_data_dir):
    d = extracted_data_dir
    for name in ("cohort", "attrition", "hourly", "static", "splits", "texts", "texts_snapshot", "demographics",
                 "labels", "events"):
        assert (d / f"{name}.parquet").exists(), name
    assert (d / "manifest.json").exists()
    cohort = pl.read_parquet(d / "cohort.parquet")
    splits = pl.read_parquet(d / "splits.parquet")
    assert splits["subject_id"].is_unique().all()
    assert set(splits["subject_id"]) == set(cohort["subject_id"])
    hourly = pl.read_parquet(d / "hourly.parquet")
    texts = pl.read_parquet(d / "texts.parquet")
    assert hourly.select("stay_id", "hour").equals(texts.select("stay_id", "hour"))
    snapshot = pl.read_parquet(d / "texts_snapshot.parquet")  # data.text_mode=snapshot, same rows
    assert snapshot.select("stay_id", "hour").equals(texts.select("stay_id", "hour"))
    assert set(hourly["stay_id"]) == set(cohort["stay_id"])
    assert hourly.group_by("stay_id").agg((pl.col("hour").max() + 1 == pl.len()).alias("dense"))["dense"].all()


def test_texts_step_streams_fixed_batches(extracted_data_dir, tmp_path, monkeypatch):
    """The texts step reads and writes hourly.parquet a batch of rows at a time (one row
    group per batch, so memory is one batch whatever the number of stays) and the texts
    do not depend on the batch size."""
    import pyarrow.parquet as pq

    from clin_jepa.data import extract
    from clin_jepa.data.texts import hourly_texts

    monkeypatch.setattr(extract, "TEXT_BATCH_ROWS", 1000)
    src = extracted_data_dir / "hourly.parquet"
    n = extract._stream_texts(src, tmp_path / "texts.parquet", hourly_texts)
    hours = pq.ParquetFile(src).metadata.num_rows
    assert n == hours > 2000
    assert pq.ParquetFile(tmp_path / "texts.parquet").metadata.num_row_groups == -(-hours // 1000)
    assert pl.read_parquet(tmp_path / "texts.parquet").equals(pl.read_parquet(extracted_data_dir / "texts.parquet"))


def test_steps_in_parts_give_the_same_tables(synth_mimic_dir, extracted_data_dir, monkeypatch):
    """The `hourly` join and the `events` step run in parts of extract.PART_STAYS stays (memory
    bound): in parts of 25 stays (several parts here) they build the tables the one-piece run
    exported, row for row."""
    from clin_jepa.data import extract

    monkeypatch.setattr(extract, "PART_STAYS", 25)
    con = extract.build_database(synth_mimic_dir, CFG, until="events")
    n_parts = con.execute("SELECT getvariable('stay_parts')").fetchall()[0][0]
    hourly = con.sql("SELECT * FROM hourly ORDER BY stay_id, hour").pl()
    events = con.sql("SELECT * FROM events ORDER BY stay_id, event").pl()
    con.close()
    whole = pl.read_parquet(extracted_data_dir / "hourly.parquet").sort("stay_id", "hour")
    assert n_parts == -(-whole["stay_id"].n_unique() // 25) >= 3
    assert whole.height > 2000 and hourly.equals(whole)
    whole_events = pl.read_parquet(extracted_data_dir / "events.parquet").sort("stay_id", "event")
    assert whole_events["event"].n_unique() == 8 and events.equals(whole_events)


def test_extraction_and_generator_do_not_import_torch(tmp_path):
    """`clin-jepa synth` and `clin-jepa extract` (config loaded, validated, data written) never
    load torch/transformers (~0.33 GiB of resident memory an extraction never uses; BENCHMARKS.md,
    Scale): they validate only the sections they read. A run's config (--run) is validated whole."""
    import subprocess
    import sys

    code = ("import sys; from clin_jepa.pipelines.cli import main; "
            f"assert main(['synth', '--stays', '30', '--out', {str(tmp_path / 'mimic')!r}]) == 0; "
            f"assert main(['extract', '--mimic', {str(tmp_path / 'mimic')!r}, '--out', {str(tmp_path / 'data')!r}, "
            "'--set', 'data.duckdb_threads=1']) == 0; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'accelerate', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
    assert (tmp_path / "data" / "texts.parquet").is_file()
    # a name only a model registry knows is not looked up by the data stages, an unknown key still is
    bad = subprocess.run([sys.executable, "-m", "clin_jepa.pipelines.cli", "synth", "--stays", "5", "--out",
                          str(tmp_path / "m2"), "--set", "synth.no_such_key=1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no_such_key" in bad.stderr, bad.stderr
