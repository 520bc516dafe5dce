"""One typed DuckDB view per MIMIC-IV source table, with what was wrong in it counted.

For each table of :mod:`clin_jepa.data.schema`:

1. the file is checked (name vs compression, gzip start, byte-order mark, header columns);
2. the typed query (``sources._typed_select``) parses ids and times with TRY_CAST;
3. CSV sources are copied once into a typed parquet file (``source_cache``): kept between
   runs when a cache directory is given, else written to the scratch directory;
4. malformed values are counted per column (``_bad`` bit mask): a malformed id or row
   time drops the row (``DROP_COLUMNS``), any other malformed value becomes NULL; past
   ``max_malformed`` (a fraction of the table's rows, per column) the run stops naming
   table, column and the first bad data row -- never the value;
5. icustays / patients / admissions: exact duplicate rows (equal in every column the SQL
   reads) are collapsed and counted; two different rows with the same key are refused.

The report (per table: rows, malformed, duplicates, cache) goes into manifest.json.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from clin_jepa.data import source_cache
from clin_jepa.data.schema import TABLES
from clin_jepa.data.source_checks import disk_full, disk_full_message, explain, malformed_message
from clin_jepa.data.sources import (
    DROP_COLUMNS,
    _csv_header,
    _drop_mask,
    _reader,
    _sql_str,
    _strict_type,
    _typed_select,
    find_source,
)
from clin_jepa.utils import get_logger, progress

log = get_logger(__name__)

UNIQUE_KEYS = {"icustays": "stay_id", "patients": "subject_id", "admissions": "hadm_id"}


def _describe(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[list[str], dict[str, str]]:
    if path.name.endswith(".parquet"):
        rows = con.execute(f"DESCRIBE SELECT * FROM {_reader(path, [])}").fetchall()
        return [r[0] for r in rows], {r[0].lower(): r[1] for r in rows}
    header = _csv_header(path)
    return header, {c.lower(): "VARCHAR" for c in header}


def _first_bad_row(con, path: Path, header: list[str], column: str, target: str) -> int | None:
    """1-based data row of the first malformed value of ``column`` (error path only)."""
    try:
        if path.name.endswith(".parquet"):
            src = f"read_parquet({_sql_str(path)}, file_row_number = true)"
            rn = "file_row_number + 1"
        else:
            src, rn = _reader(path, header, parallel=False), "row_number() OVER ()"
        con.execute("SET preserve_insertion_order = true")
        got = con.execute(f"""SELECT min(rn) FROM (SELECT {rn} AS rn, "{column}" AS v FROM {src})
                              WHERE trim(CAST(v AS VARCHAR)) <> '' AND
                                    TRY_CAST(trim(CAST(v AS VARCHAR)) AS {target}) IS NULL""").fetchall()
        return int(got[0][0]) if got and got[0][0] is not None else None
    except duckdb.Error:
        return None
    finally:
        con.execute("SET preserve_insertion_order = false")


def _materialise(con, name: str, path: Path, query: str, cache_dir: Path, keep: bool) -> tuple[str, str]:
    """Copy the typed query to parquet (once per source fingerprint when ``keep``)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = source_cache.entry(cache_dir, name, path, query) if keep else cache_dir / f"{name}.parquet"
    if keep and final.exists():
        return f"read_parquet({_sql_str(final)})", "hit"
    part = source_cache.partial(final)
    try:
        con.execute(f"COPY ({query}) TO {_sql_str(part)} (FORMAT parquet, COMPRESSION zstd)")
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    if keep:
        source_cache.prune(final)
    return f"read_parquet({_sql_str(final)})", "miss" if keep else "scratch"


def _count_malformed(con, name: str, source: str, strict: list[str]) -> tuple[int, dict[str, int]]:
    sums = ", ".join(f"sum((_bad >> {i}) & 1)" for i in range(len(strict)))
    row = con.execute(f"SELECT count(*){', ' + sums if sums else ''} FROM {source}").fetchall()[0]
    return int(row[0]), {c: int(n or 0) for c, n in zip(strict, row[1:]) if n}


def _collapse_duplicates(con, name: str, path: Path) -> int:
    """Exact duplicates -> one row (returns how many were removed); conflicting -> error."""
    key = UNIQUE_KEYS[name]
    n, keys, distinct = con.execute(
        f"SELECT count(*), count(DISTINCT {key}), (SELECT count(*) FROM (SELECT DISTINCT * FROM {name})) "
        f"FROM {name}").fetchall()[0]
    nulls = con.execute(f"SELECT count(*) FROM {name} WHERE {key} IS NULL").fetchall()[0][0]
    if distinct - nulls > keys:
        raise ValueError(
            f"MIMIC-IV table {name!r} ({path}) has {distinct - nulls - keys} {key} value(s) shared by rows that "
            f"differ in other columns (conflicting duplicates of the key {key}). Fix: keep one row per {key} "
            f"(re-download the file if it should be the PhysioNet original).")
    if n > distinct:
        con.execute(f"ALTER VIEW {name} RENAME TO {name}__dup")
        con.execute(f"CREATE VIEW {name} AS SELECT DISTINCT * FROM {name}__dup")
        log.warning("MIMIC-IV table %s: %d exact duplicate row(s) collapsed", name, n - distinct)
    return int(n - distinct)


def create_source_views(con: duckdb.DuckDBPyConnection, mimic_dir: Path, scratch: Path | None = None,
                        cache_only: set[str] | None = None, cache_dir: Path | None = None,
                        max_malformed: float = 0.01, report: dict | None = None) -> dict[str, Path]:
    """One typed view per schema table; returns {table: path}. ``cache_dir`` keeps the
    typed copies between runs; otherwise they go to ``scratch`` (None: read in place).
    ``cache_only`` limits the copies to the tables the SQL about to run reads."""
    found: dict[str, Path] = {}
    report = {} if report is None else report
    if cache_dir is not None:
        source_cache.clean_partials(cache_dir)
    for name, table in progress(TABLES.items(), desc="read MIMIC-IV", unit="table", total=len(TABLES)):
        path = find_source(mimic_dir, table)
        header, types = _describe(con, path)
        actual = {c.lower(): c for c in header}
        missing = [c for c in table.required if c not in actual]
        if missing:
            raise ValueError(
                f"MIMIC-IV table {name!r} ({path}) lacks required column(s) {', '.join(missing)}; "
                f"it has {', '.join(header)}. Use the PhysioNet MIMIC-IV v2.2+ files (or rename the columns).")
        select, strict = _typed_select(name, table, actual, types)
        query = f"SELECT {select} FROM {_reader(path, header)}"
        if name in source_cache.FILTERED_TABLES and "itemid" in strict:
            ids = ", ".join(map(str, source_cache.registry_itemids()))
            query = f"SELECT * FROM ({query}) WHERE itemid IN ({ids}) OR _bad <> 0"
        entry = {"cache": "in place"}
        if cache_only is not None and name not in cache_only:  # not read by the SQL about to run
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * EXCLUDE (_bad) FROM ({query})")
            report[name], found[name] = {"cache": "not read"}, path
            continue
        try:
            source = f"({query})"
            copy_to = cache_dir or scratch
            if copy_to is not None and not path.name.endswith(".parquet"):
                source, entry["cache"] = _materialise(con, name, path, query, copy_to, keep=cache_dir is not None)
            rows, bad = _count_malformed(con, name, source, strict)
        except duckdb.Error as e:
            raise ValueError(explain(e, path, name)) from None
        except OSError as e:
            if disk_full(e):
                raise ValueError(disk_full_message(f"the typed copy of {name!r}")) from None
            raise
        for col, n in bad.items():
            if n > max_malformed * rows:
                target = _strict_type(col)
                raise ValueError(malformed_message(name, col, target, n, rows, max_malformed, path,
                                                   _first_bad_row(con, path, header, actual[col], target)))
            log.warning("MIMIC-IV table %s, column %s: %d malformed value(s) -> %s", name, col, n,
                        "row dropped" if col in DROP_COLUMNS else "NULL")
        drop = _drop_mask(strict)
        where = f" WHERE _bad & {drop} = 0" if drop and bad else ""
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * EXCLUDE (_bad) FROM {source}{where}")
        entry |= {"rows": rows, "malformed": {c: {"count": n, "action": "row dropped" if c in DROP_COLUMNS else
                                                   "set to NULL"} for c, n in bad.items()}}
        if name in UNIQUE_KEYS:
            entry["duplicates_collapsed"] = _collapse_duplicates(con, name, path)
        report[name] = entry
        found[name] = path
    return found
