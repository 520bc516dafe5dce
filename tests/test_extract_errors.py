"""Bad input gets a clear ValueError / FileNotFoundError naming the problem and the fix."""

from __future__ import annotations

import gzip

import pytest
from clin_jepa.pipelines.cli import main as cli_main
from test_extract_helpers import Mini, standard_mini, write_table

from clin_jepa.config import DataConfig, load_config
from clin_jepa.data.extract import build_database, run_extraction

CFG = DataConfig(duckdb_memory_limit="1GB", duckdb_threads=2)


@pytest.fixture
def mimic(tmp_path):
    return standard_mini().write(tmp_path / "mimic")


def test_missing_table_names_table_path_and_extensions(mimic):
    (mimic / "icu" / "inputevents.csv.gz").unlink()
    with pytest.raises(FileNotFoundError) as e:
        build_database(mimic, CFG, until="cohort")
    msg = str(e.value)
    assert "'inputevents'" in msg and str(mimic / "icu" / "inputevents") + ".csv.gz" in msg
    assert "inputevents.csv" in msg and "inputevents.parquet" in msg


def test_missing_mimic_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="--mimic"):
        build_database(tmp_path / "nope", CFG)


def test_parquet_source_is_accepted(mimic):
    import polars as pl

    src = mimic / "hosp" / "patients.csv.gz"
    pl.read_csv(src).write_parquet(mimic / "hosp" / "patients.parquet")
    src.unlink()
    con = build_database(mimic, CFG, until="cohort")
    assert con.execute("SELECT count(*) FROM cohort").fetchall()[0][0] == 4


def test_missing_columns_name_table_and_columns(mimic):
    rows = [dict(subject_id=1, hadm_id=1000, stay_id=101)]
    path = mimic / "icu" / "icustays.csv.gz"
    with gzip.open(path, "wt") as f:  # a misnamed header: intime -> in_time, no outtime
        f.write("subject_id,hadm_id,stay_id,first_careunit,last_careunit,in_time,los\n1,1000,101,,,2150-01-01,2\n")
    assert rows
    with pytest.raises(ValueError) as e:
        build_database(mimic, CFG, until="cohort")
    msg = str(e.value)
    assert "'icustays'" in msg and "intime" in msg and "outtime" in msg and "in_time" in msg


def test_corrupt_gzip_names_file_and_suggests_redownload(mimic):
    path = mimic / "hosp" / "labevents.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 20)
    with pytest.raises(ValueError) as e:
        build_database(mimic, CFG, until="cohort")
    assert str(path) in str(e.value) and "re-download" in str(e.value)


def test_truncated_gzip_fails_with_file_named(tmp_path):
    m = Mini()
    for i in range(400):  # enough rows that the gzip stream is longer than the header check
        m.stay(2000 + i, 3000 + i, los_hours=30)
    mimic = m.write(tmp_path / "mimic")
    path = mimic / "icu" / "chartevents.csv.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError) as e:
        build_database(mimic, CFG, until="cohort")
    msg = str(e.value)
    assert str(path) in msg and "re-download" in msg


def test_empty_cohort_names_the_rule(tmp_path):
    m = Mini().stay(1, 1, los_hours=30, age=12).stay(2, 2, los_hours=40, age=15)
    mimic = m.write(tmp_path / "mimic")
    with pytest.raises(ValueError, match=r"cohort is empty: rule 1 'age >= 18 years' removed the last 2"):
        build_database(mimic, CFG)


def test_empty_cohort_without_vitals(tmp_path):
    mimic = Mini().stay(1, 1, los_hours=30, hr_every=None).write(tmp_path / "mimic")
    with pytest.raises(ValueError, match="vital sign") as e:
        run_extraction(mimic, tmp_path / "data", CFG)
    assert "chartevents" in str(e.value)
    assert not (tmp_path / "data").exists()


def test_non_numeric_values_become_counted_nulls(tmp_path):
    m = standard_mini()
    m.chart(107, 2.5, 220045, "n/a", value="n/a").lab(107, 4.5, 50912, "<0.1")
    m.output(107, 3.2, 226559, "lots")
    mimic = m.write(tmp_path / "mimic")
    con = build_database(mimic, CFG, until="hourly_base")
    got = dict(con.execute("""
        SELECT feature, sum(n_non_numeric) FROM (
            SELECT feature, n_non_numeric FROM vitals_hourly UNION ALL
            SELECT feature, n_non_numeric FROM labs_hourly UNION ALL
            SELECT feature, n_non_numeric FROM urine_hourly)
        GROUP BY feature HAVING sum(n_non_numeric) > 0""").fetchall())
    assert got == {"heart_rate": 1, "creatinine": 1, "urine_output": 1}
    hr = con.execute("SELECT heart_rate FROM hourly_base WHERE stay_id = 107 AND hour = 2").fetchall()
    assert hr == [(82.0,)]  # the charted 'n/a' is ignored, the hourly 82 bpm kept


def test_absurd_non_numeric_id_names_the_file(mimic):
    write_table(mimic, "icustays", [dict(subject_id="abc", hadm_id=1, stay_id=1, intime="2150-01-01 00:00:00",
                                         outtime="2150-01-02 00:00:00", los=1)])
    with pytest.raises(ValueError, match="icustays") as e:
        build_database(mimic, CFG, until="cohort")
    assert "2150-01-01" not in str(e.value), "the offending CSV line (dates, ids) must not be echoed"


def test_bad_until_and_bad_config(mimic):
    with pytest.raises(ValueError, match="until='cohortt'.*cohort"):
        build_database(mimic, CFG, until="cohortt")
    with pytest.raises(ValueError, match="data.min_agee"):
        load_config(overrides=["data.min_agee=18"])
    with pytest.raises(ValueError, match="split_fractions"):
        build_database(mimic, DataConfig(split_fractions=(0.5, 0.5, 0.5)))


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    rc = cli_main(["extract", "--mimic", str(tmp_path / "missing"), "--out", str(tmp_path / "data")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_run_dir_saves_config(mimic, tmp_path):
    run = tmp_path / "run"
    rc = cli_main(["extract", "--mimic", str(mimic), "--run", str(run), "--set", "data.duckdb_threads=2"])
    assert rc == 0
    assert (run / "data" / "manifest.json").exists() and (run / "data" / "hourly.parquet").exists()
    from clin_jepa.config import load_run_config

    assert load_run_config(run).data.mimic_dir == str(mimic)
