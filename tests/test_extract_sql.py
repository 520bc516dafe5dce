"""The SQL tree follows the mimic-code rules: every file parses, is in the manifest, creates
exactly the table named after its stem, has a header comment and reads only source
views, registry tables and tables built by files listed above it."""

from __future__ import annotations

import dataclasses
import re

import duckdb
import pytest

from clin_jepa.data import features
from clin_jepa.data.extract import MANIFEST, read_manifest, tables_read
from clin_jepa.data.schema import TABLES
from clin_jepa.data.sources import SUPPORTED_AGGS, check_registry, registry_table_names
from clin_jepa.utils import SQL_DIR

STEPS = read_manifest()
CREATE = re.compile(r"(?is)\bCREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(\w+)\s+AS\s")


def test_manifest_and_sql_tree_agree():
    listed = {str(p) for p, _ in STEPS}
    on_disk = {str(p.relative_to(SQL_DIR)) for p in SQL_DIR.rglob("*.sql")}
    assert on_disk - listed == set(), f"SQL files missing from {MANIFEST}"
    assert listed - on_disk == set(), "manifest lists files that do not exist"
    stems = [p.stem for p, _ in STEPS]
    assert len(stems) == len(set(stems)), "two SQL files build the same table"
    assert stems[-1] == "splits"
    exports = [e for _, e in STEPS if e]
    assert {"cohort.parquet", "attrition.parquet", "static.parquet", "hourly.parquet",
            "splits.parquet"} <= set(exports)


@pytest.mark.parametrize("rel", [p for p, _ in STEPS], ids=[str(p) for p, _ in STEPS])
def test_sql_file_parses_and_reads_only_earlier_tables(rel):
    sql = (SQL_DIR / rel).read_text()
    assert sql.lstrip().startswith("--"), f"{rel} needs a header comment (purpose, units)"
    stmts = duckdb.connect().extract_statements(sql)
    assert len(stmts) == 1, f"{rel} must hold exactly one statement"
    created = CREATE.findall(sql)
    assert [c.lower() for c in created] == [rel.stem], f"{rel} must create exactly table {rel.stem}"
    earlier = {p.stem for p, _ in STEPS[: [p for p, _ in STEPS].index(rel)]}
    allowed = set(TABLES) | registry_table_names() | earlier
    extra = tables_read(sql) - allowed
    assert not extra, f"{rel} reads {sorted(extra)}: not a source view, registry table or earlier table"


def test_registry_aggregations_are_implemented():
    check_registry()  # the shipped registry
    files = {"chartevents": "measurement/vitals_hourly.sql", "labevents": "measurement/labs_hourly.sql",
             "outputevents": "measurement/urine_hourly.sql"}
    for source, aggs in SUPPORTED_AGGS.items():
        sql = (SQL_DIR / files[source]).read_text()
        for agg in aggs:
            assert f"'{agg}'" in sql, f"{files[source]} does not implement agg={agg!r}"
    bad = dataclasses.replace(features.OBS_BY_NAME["heart_rate"], agg="median")
    with pytest.raises(ValueError, match="heart_rate.*median"):
        check_registry((bad,))


def test_hourly_base_columns_are_the_registry_columns():
    sql = (SQL_DIR / "hourly_base.sql").read_text()
    select = sql[sql.rindex("SELECT"):sql.index("FROM grid")]
    names = re.findall(r"(?:AS\s+|\bo\.|\bg\.)(\w+),?\s*$", select, flags=re.M)
    assert names == ["stay_id", "hour", *features.OBSERVATION_COLUMNS, *features.ACTION_COLUMNS]
