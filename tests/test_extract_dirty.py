"""Dirty sources: duplicates, malformed values, wrong encodings and compressions, a full
disk, a feature emptied by range checks. Real DuckDB on real files; every message names
the problem and the fix and never echoes an identifier or a date."""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from test_extract_helpers import Mini, standard_mini

from clin_jepa.config import DataConfig
from clin_jepa.data.extract import build_database, run_extraction
from clin_jepa.utils import REPO_ROOT

CFG = DataConfig(duckdb_memory_limit="1GB", duckdb_threads=2)
SECRET_DATE, SECRET_ID = "2150-01-0", "77777"  # no message may contain these


@pytest.fixture
def logged():
    """Messages the clin_jepa logger emits during the test (what the terminal shows)."""
    records: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda r: records.append(f"{r.levelname} {r.getMessage()}")
    logging.getLogger("clin_jepa").addHandler(handler)
    yield records
    logging.getLogger("clin_jepa").removeHandler(handler)


def _csv_rows(path: Path) -> list[str]:
    with gzip.open(path, "rt") as f:
        return f.read().splitlines()


def _write_lines(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


def _many_stays() -> Mini:
    m = Mini()
    for i in range(60):  # 60 stays: one bad row stays under the default 1 % limit of chartevents
        m.stay(1000 + i, 2000 + i, los_hours=24, start_day=i)
    return m


def _hourly_rows(out: Path) -> int:
    return pl.scan_parquet(out / "hourly.parquet").select(pl.len()).collect().item()


def test_exact_duplicates_are_collapsed_and_counted(tmp_path):
    clean = run_extraction(standard_mini().write(tmp_path / "clean"), tmp_path / "d0", CFG)
    m = standard_mini()
    for t in ("icustays", "admissions", "patients"):
        m.tables[t] += m.tables[t][:2]  # two rows duplicated in each table
    man = run_extraction(m.write(tmp_path / "dup"), tmp_path / "d1", CFG)
    assert {t: man["sources"][t]["duplicates_collapsed"] for t in ("icustays", "admissions", "patients")} == \
        {"icustays": 2, "admissions": 2, "patients": 2}
    assert man["rows"] == clean["rows"]
    assert man["fingerprint"]["data"] == clean["fingerprint"]["data"]


def test_conflicting_duplicates_are_refused_naming_table_and_key(tmp_path):
    m = standard_mini()
    row = dict(m.tables["icustays"][0])
    row["los"] = 99.0  # same stay_id, different row
    m.tables["icustays"].append(row)
    with pytest.raises(ValueError) as e:
        build_database(m.write(tmp_path / "m"), CFG, until="cohort")
    msg = str(e.value)
    assert "'icustays'" in msg and "stay_id" in msg and "101" not in msg


def test_malformed_time_and_id_are_dropped_and_counted(tmp_path):
    mimic = _many_stays().write(tmp_path / "m")
    path = mimic / "icu" / "chartevents.csv.gz"
    lines = _csv_rows(path)
    n_before = len(lines) - 1
    cols = lines[0].split(",")
    bad_time = lines[5].split(",")
    bad_time[cols.index("charttime")] = "2132-13-45 10:00:00"
    bad_id = lines[9].split(",")
    bad_id[cols.index("stay_id")] = "abc"
    lines[5], lines[9] = ",".join(bad_time), ",".join(bad_id)
    _write_lines(path, lines)
    man = run_extraction(mimic, tmp_path / "data", CFG)
    src = man["sources"]["chartevents"]
    assert src["malformed"] == {"charttime": {"count": 1, "action": "row dropped"},
                                "stay_id": {"count": 1, "action": "row dropped"}}
    assert src["rows"] == n_before
    assert man["rows"]["cohort.parquet"] == 60


def test_past_the_limit_the_run_stops_naming_table_column_and_row(tmp_path):
    mimic = standard_mini().write(tmp_path / "m")
    path = mimic / "icu" / "icustays.csv.gz"
    lines = _csv_rows(path)
    cols = lines[0].split(",")
    row = lines[3].split(",")
    row[cols.index("intime")] = "2132-13-45 10:00:00"
    lines[3] = ",".join(row)
    _write_lines(path, lines)
    with pytest.raises(ValueError) as e:
        build_database(mimic, CFG, until="cohort")
    msg = str(e.value)
    assert "'icustays'" in msg and "'intime'" in msg and "data row 3 (line 4)" in msg
    assert "max_malformed_fraction" in msg and "2132" not in msg and SECRET_DATE not in msg
    con = build_database(mimic, DataConfig(duckdb_threads=2, max_malformed_fraction=0.5), until="cohort")
    assert con.execute("SELECT count(*) FROM icustays").fetchall()[0][0] == 7  # the bad stay dropped


def test_text_id_in_a_parquet_source_is_private(tmp_path):
    mimic = standard_mini().write(tmp_path / "m")
    src = mimic / "icu" / "icustays.csv.gz"
    df = pl.read_csv(src, infer_schema=False).with_columns(
        pl.when(pl.col("stay_id") == "101").then(pl.lit(f"x{SECRET_ID}")).otherwise(pl.col("stay_id")).alias("stay_id"))
    df.write_parquet(mimic / "icu" / "icustays.parquet")
    src.unlink()
    with pytest.raises(ValueError) as e:
        build_database(mimic, CFG, until="cohort")
    msg = str(e.value)
    assert "'icustays'" in msg and "'stay_id'" in msg and "data row 1" in msg and SECRET_ID not in msg


def test_utf8_bom_is_accepted_with_a_warning(tmp_path, logged):
    mimic = standard_mini().write(tmp_path / "m")
    path = mimic / "icu" / "icustays.csv.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + data))
    con = build_database(mimic, CFG, until="cohort")
    assert con.execute("SELECT count(*) FROM cohort").fetchall()[0][0] == 4
    assert any("WARNING" in m and "byte-order mark" in m for m in logged)


def test_latin1_byte_names_the_encoding_and_the_fix(tmp_path):
    m = standard_mini()
    m.prescription(101, 1, 5, "Cefazolin")
    mimic = m.write(tmp_path / "m")
    path = mimic / "hosp" / "prescriptions.csv.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()).replace(b"Cefazolin", b"C\xe9fazolin")))
    with pytest.raises(ValueError) as e:
        build_database(mimic, CFG)
    msg = str(e.value)
    assert "not valid UTF-8" in msg and "iconv" in msg and str(path) in msg and SECRET_DATE not in msg


def test_compression_that_does_not_match_the_name(tmp_path):
    mimic = standard_mini().write(tmp_path / "m")
    gz = mimic / "icu" / "icustays.csv.gz"
    plain = mimic / "icu" / "icustays.csv"
    plain.write_bytes(gz.read_bytes())  # gzip named .csv
    gz.unlink()
    with pytest.raises(ValueError, match=r"gzip-compressed but named icustays.csv. Fix: rename it to icustays.csv.gz"):
        build_database(mimic, CFG, until="cohort")
    gz.write_bytes(gzip.decompress(plain.read_bytes()))  # plain text named .csv.gz
    plain.unlink()
    with pytest.raises(ValueError, match=r"not gzip-compressed.*rename it to icustays.csv"):
        build_database(mimic, CFG, until="cohort")


def test_flipped_bytes_are_found_from_the_file_not_the_path(tmp_path):
    m = Mini()
    for i in range(300):
        m.stay(2000 + i, 3000 + i, los_hours=30, start_day=i)
    mimic = m.write(tmp_path / "corrupt_named" / "m")  # the word in the path must not matter
    path = mimic / "icu" / "chartevents.csv.gz"
    data = bytearray(path.read_bytes())
    for k in range(len(data) // 2, len(data) // 2 + 8):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError) as e:
        build_database(mimic, CFG)
    assert "damaged gzip" in str(e.value) and str(path) in str(e.value) and "re-download" in str(e.value)
    clean = standard_mini()
    clean.tables["icustays"].append(dict(clean.tables["icustays"][0], los=99.0))  # an unrelated error
    with pytest.raises(ValueError) as e:
        build_database(clean.write(tmp_path / "corrupt_named" / "m2"), CFG, until="cohort")
    assert "damaged" not in str(e.value) and "re-download it from PhysioNet and check" not in str(e.value)


def test_feature_emptied_by_range_checks_is_a_terminal_warning(tmp_path, logged):
    m = standard_mini()
    for h in range(0, 40, 4):
        m.chart(101, h + 0.2, 223762, 500.0)  # every temperature 500 degC
    man = run_extraction(m.write(tmp_path / "m"), tmp_path / "data", CFG)
    assert man["empty_features"] == ["temperature"]
    assert any(m.startswith("WARNING feature temperature is empty") and "10 out of range" in m for m in logged)


FULL_DISK_CHILD = """
import sys
from clin_jepa.config import DataConfig
from clin_jepa.data.extract import run_extraction
try:
    run_extraction(sys.argv[1], sys.argv[2], DataConfig(duckdb_threads=2, duckdb_memory_limit="1GB"))
except ValueError as e:
    print("ERROR:", e)
"""


def test_full_disk_names_the_disk_and_the_fix(tmp_path):
    """A real full file system: a 16 KiB tmpfs in a private user+mount namespace."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("no unprivileged user+mount namespaces here (cannot mount a tiny tmpfs)")
    mimic = standard_mini().write(tmp_path / "m")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "child.py"
    script.write_text(FULL_DISK_CHILD)
    cmd = (f"mount -t tmpfs -o size=16k tmpfs {disk} && PYTHONPATH={REPO_ROOT} {sys.executable} {script} "
           f"{mimic} {disk / 'data'} && ls -A {disk}")
    out = subprocess.run(["unshare", "-rm", "sh", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert "ERROR: the disk is full" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert "free space there" in out.stdout
    assert out.stdout.rstrip().endswith(("is full", "docs/data.md)")), "a partial build or scratch was left"


def test_manifest_counts_are_json(tmp_path):
    man = run_extraction(standard_mini().write(tmp_path / "m"), tmp_path / "data", CFG)
    on_disk = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert on_disk["sources"] == man["sources"]
    assert on_disk["sources"]["chartevents"]["cache"] == "miss"
