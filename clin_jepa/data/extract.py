"""DuckDB extraction runner: MIMIC-IV -> hourly parquet tables, splits and texts.

``build_database`` opens DuckDB (out of core: memory limit + spill directory), creates
one typed view per MIMIC-IV source table, registers the feature registry as
``registry_*`` tables, sets the cohort/label parameters as DuckDB variables and runs the
SQL files of ``sql/manifest.txt`` in order. ``run_extraction`` runs all of it, exports the
``-> name.parquet`` tables, writes texts.parquet / demographics.parquet and, last,
manifest.json -- all into a hidden sibling directory swapped into place at the end
(:mod:`clin_jepa.data.outdir`: checks before the run, atomic replace, recovery).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import duckdb

from clin_jepa.config import DataConfig
from clin_jepa.data import features, outdir, source_cache
from clin_jepa.data.schema import TABLES
from clin_jepa.data.source_checks import clean_error, disk_full, disk_full_message, gzip_damage
from clin_jepa.data.source_views import create_source_views
from clin_jepa.data.sources import FLUID_BOLUS_MAX_ML, register_registry
from clin_jepa.data.task_defs import load_tasks, register_tasks
from clin_jepa.utils import SQL_DIR, file_sha256, get_logger, progress, write_json

log = get_logger(__name__)

MANIFEST = SQL_DIR / "manifest.txt"
FORMAT_VERSION = 1
# A step whose SQL reads getvariable('stay_part') runs in parts of at most PART_STAYS cohort
# stays (`stay_id % stay_parts = stay_part`: CREATE for part 0, INSERT for the rest). Measured
# (BENCHMARKS.md, Scale): DuckDB overshot its memory limit in the one-piece `hourly` join by an
# amount that grew with the stays (+0.25 GiB from 20k to 80k); in parts of 20,000 it does not.
PART_STAYS = 20_000


def read_manifest(path: Path = MANIFEST) -> list[tuple[Path, str | None]]:
    """[(sql file relative to sql/, exported parquet name or None)] in build order."""
    steps = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        sql, _, export = (part.strip() for part in line.partition("->"))
        steps.append((Path(sql), export or None))
    return steps


_CREATE = re.compile(r"(?is)\bCREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(\w+)\s+AS\s")


def tables_read(sql: str) -> set[str]:
    """Names of the tables/views a manifest SQL file reads (CTE names excluded), from
    DuckDB's own parse tree of its ``CREATE TABLE x AS <query>``."""
    m = _CREATE.search(sql)
    if not m:
        raise ValueError("SQL file has no `CREATE TABLE <name> AS <query>` statement")
    con = duckdb.connect()
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql[m.end():]]).fetchall()[0][0])
    con.close()
    if tree.get("error"):
        raise ValueError(f"SQL does not parse: {tree.get('error_message')}")
    tables, ctes = set(), set()

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE":
                tables.add(node["table_name"].lower())
            for entry in (node.get("cte_map") or {}).get("map", []):
                ctes.add(entry["key"].lower())
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(tree)
    return tables - ctes


def sql_variables(cfg: DataConfig) -> dict[str, object]:
    """The parameters the SQL reads with ``getvariable('name')``."""
    train, val, _ = cfg.split_fractions
    return {
        "min_age": int(cfg.min_age),  # years
        "min_los_hours": float(cfg.min_los_hours),  # hours
        "max_stay_hours": int(cfg.max_stay_hours),  # hours
        "first_stay_only": bool(cfg.first_stay_only),
        "split_seed": int(cfg.split_seed),
        "split_train": float(train),
        "split_val": float(val),
        "prediction_hour": int(cfg.prediction_hour),  # hours
        "eep_horizon": int(cfg.eep_horizon),  # hours
        "lab_lookback_hours": float(cfg.lab_lookback_hours),  # hours
        "antibiotic_default_hours": int(cfg.antibiotic_default_hours),  # hours
        "bolus_min_ml": float(features.BOLUS_MIN_ML),  # mL
        "bolus_max_hours": float(features.BOLUS_MAX_HOURS),  # hours
        "bolus_max_ml": float(FLUID_BOLUS_MAX_ML),  # mL
        "weight_lo": float(features.WEIGHT_RANGE_KG[0]),  # kg
        "weight_hi": float(features.WEIGHT_RANGE_KG[1]),  # kg
    }


def _sql_literal(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"CAST({v!r} AS DOUBLE)"
    return "'" + str(v).replace("'", "''") + "'"


def connect(cfg: DataConfig, work_dir: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to ``work_dir/spill`` beyond ``cfg.duckdb_memory_limit``."""
    config = {"memory_limit": cfg.duckdb_memory_limit, "preserve_insertion_order": False,
              "temp_directory": str(Path(work_dir) / "spill")}
    if cfg.duckdb_threads > 0:
        config["threads"] = cfg.duckdb_threads
    try:
        return duckdb.connect(":memory:", config=config)
    except duckdb.Error as e:
        raise ValueError(f"cannot open DuckDB with {config}: {e}. Fix data.duckdb_memory_limit "
                         f"(e.g. '8GB') / data.duckdb_threads / data.duckdb_temp_dir.") from None


def _run_step(con: duckdb.DuckDBPyConnection, sql: str, table: str) -> None:
    """One manifest step; in parts of PART_STAYS cohort stays if its SQL reads ``stay_part``."""
    if "getvariable('stay_part')" not in sql:
        con.execute(sql)
        return
    stays = con.execute("SELECT count(*) FROM cohort").fetchall()[0][0]
    parts = max(1, -(-stays // PART_STAYS))
    con.execute(f"SET VARIABLE stay_parts = {parts}")
    for part in range(parts):
        con.execute(f"SET VARIABLE stay_part = {part}")
        con.execute(sql if part == 0 else _CREATE.sub(f"INSERT INTO {table} ", sql, count=1))


def _check_until(until: str | None, steps: list[tuple[Path, str | None]]) -> None:
    names = [p.stem for p, _ in steps]
    if until is not None and until not in names:
        raise ValueError(f"until={until!r} is not a table of {MANIFEST}; use one of {', '.join(names)}")


def _empty_cohort_message(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute("SELECT step, rule, stays_removed, stays_remaining FROM attrition ORDER BY step").fetchall()
    for step, rule, removed, remaining in rows:
        if remaining == 0:
            if step == 0:
                return "icu/icustays has no rows: check that --mimic points at a complete MIMIC-IV copy"
            hint = {
                1: "check hosp/patients anchor_age/anchor_year or lower data.min_age",
                2: "check icustays intime/outtime or lower data.min_los_hours",
                3: "set data.first_stay_only=false or check icustays",
                4: "chartevents has no valid vital sign (heart rate 220045, BP, RR, SpO2, temperature) "
                   "during the remaining stays: check icu/chartevents",
            }.get(step, "check the input tables")
            return f"rule {step} '{rule}' removed the last {removed} stay(s); {hint}"
    return "no stay passed the cohort rules"


def _step_error(err: Exception, sources: dict[str, Path]) -> str:
    """The fix for a failed SQL step: disk full, a damaged gzip (checked, not guessed), or none."""
    if disk_full(err):
        return disk_full_message("DuckDB's spill files (data.duckdb_temp_dir)")
    if "out of memory" in str(err).lower():
        return ("DuckDB could not finish this step inside data.duckdb_memory_limit: raise it (e.g. "
                "--set data.duckdb_memory_limit=4GB) or lower data.duckdb_threads (each thread holds its own "
                "buffers); 1GB extracted 80,000 synthetic stays (docs/data.md, Scale)")
    for path in sources.values():
        damage = gzip_damage(path)
        if damage:
            return (f"{path} is a damaged gzip file ({damage}): re-download it from PhysioNet and check it "
                    f"against SHA256SUMS.txt")
    return ""


def build_database(mimic_dir: str | Path, cfg: DataConfig, until: str | None = None,
                   temp_dir: str | Path | None = None, cache_dir: Path | None = None,
                   report: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Views + registry + variables, then the manifest's SQL up to and including ``until``.

    DuckDB spills to ``temp_dir`` (default: a fresh directory under data.duckdb_temp_dir or
    the system temp, removed at exit). With data.cache_sources, csv sources are copied as
    typed parquet into ``cache_dir`` (kept between runs, see source_cache) or, without
    one, into ``temp_dir`` (keep it while the connection lives). ``report`` receives the
    per-table source report (rows, malformed values, duplicates, cache use).
    """
    cfg.validate()
    mimic_dir = Path(mimic_dir)
    if not mimic_dir.is_dir():
        raise FileNotFoundError(f"MIMIC-IV directory {mimic_dir} does not exist: pass --mimic DIR "
                                f"(the folder holding hosp/ and icu/)")
    steps = read_manifest()
    _check_until(until, steps)
    if temp_dir is None:  # our own scratch dir (spill + cached sources), removed at exit
        temp_dir = tempfile.mkdtemp(prefix="clin_jepa_duckdb.", dir=cfg.duckdb_temp_dir or None)
        atexit.register(shutil.rmtree, temp_dir, True)
    work = Path(temp_dir)
    con = connect(cfg, work)
    scratch = work / f"sources.{os.getpid()}.{id(con):x}" if cfg.cache_sources else None
    if scratch is not None:
        atexit.register(shutil.rmtree, scratch, True)
    todo = steps[: [p.stem for p, _ in steps].index(until) + 1] if until else steps
    needed = set().union(*(tables_read((SQL_DIR / p).read_text()) for p, _ in todo if (SQL_DIR / p).exists()))
    t0 = time.perf_counter()
    report = {} if report is None else report
    sources = create_source_views(con, mimic_dir, scratch, cache_only=needed,
                                  cache_dir=cache_dir if cfg.cache_sources else None,
                                  max_malformed=cfg.max_malformed_fraction, report=report)
    hits = sorted(t for t, r in report.items() if r.get("cache") == "hit")
    log.info("%d source tables ready in %.1f s (%s)", len(sources), time.perf_counter() - t0,
             f"typed copies in {cache_dir}, reused: {', '.join(hits) or 'none'}" if cache_dir and cfg.cache_sources
             else "csv parsed once into scratch" if scratch else "read in place")
    register_registry(con)
    register_tasks(con, load_tasks(cfg))  # registry_tasks: the task files (configs/tasks/)
    for name, value in sql_variables(cfg).items():
        con.execute(f"SET VARIABLE {name} = {_sql_literal(value)}")
    bar = progress(steps, desc="extract", unit="table")
    for rel, _ in bar:
        table = rel.stem
        bar.set_postfix_str(table)
        path = SQL_DIR / rel
        if not path.exists():
            raise FileNotFoundError(f"{path} is listed in {MANIFEST} but missing; restore it or fix the manifest")
        try:
            _run_step(con, path.read_text(), table)
            n = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        except duckdb.Error as e:
            hint = _step_error(e, sources)
            raise ValueError(f"SQL step {rel} failed: {clean_error(e)}" + (f". Fix: {hint}." if hint else "")) from None
        log.info("%-28s %12d rows", table, n)
        if table == "cohort" and n == 0 and until == "cohort":
            raise ValueError("the cohort is empty: no ICU stay passed the cohort rules (build until "
                             "'attrition' to see which rule removed them)")
        if table == "attrition" and con.execute("SELECT count(*) FROM cohort").fetchall()[0][0] == 0:
            raise ValueError(f"the cohort is empty: {_empty_cohort_message(con)}")
        if table == until:
            break
    bar.close()
    return con


# --------------------------------------------------------------------------- #
# run_extraction
# --------------------------------------------------------------------------- #

_EXPORT_ORDER = {"attrition": "step", "splits": "subject_id"}


def _export(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> int:
    order = _EXPORT_ORDER.get(table, "ALL")
    target = "'" + str(path).replace("'", "''") + "'"
    con.execute(f"COPY (SELECT * FROM {table} ORDER BY {order}) TO {target} (FORMAT parquet, COMPRESSION zstd)")
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def _null_counts(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    """Values NULLed before aggregation, per feature: non-numeric text and out-of-range."""
    out: dict[str, dict[str, int]] = {}
    rows = con.execute("""
        SELECT feature, sum(n_non_numeric), sum(n_out_of_range) FROM (
            SELECT feature, n_non_numeric, n_out_of_range FROM vitals_hourly
            UNION ALL SELECT feature, n_non_numeric, n_out_of_range FROM labs_hourly
            UNION ALL SELECT feature, n_non_numeric, n_out_of_range FROM urine_hourly)
        GROUP BY feature ORDER BY feature""").fetchall()
    for feature, non_numeric, out_of_range in rows:
        out[feature] = {"non_numeric": int(non_numeric), "out_of_range": int(out_of_range)}
    for drug, absurd in con.execute(
            "SELECT drug, sum(n_absurd) FROM vasopressor_hourly GROUP BY drug ORDER BY drug").fetchall():
        out[drug] = {"absurd_rate_hours": int(absurd)}
    return out


def input_fingerprint(mimic_dir: Path) -> str:
    """sha256 over (relative path, size) of the source files the SQL reads."""
    from clin_jepa.data.sources import find_source

    h = hashlib.sha256()
    for _, table in sorted(TABLES.items()):
        p = find_source(mimic_dir, table)
        h.update(f"{p.relative_to(mimic_dir)}:{p.stat().st_size}\n".encode())
    return h.hexdigest()


def _sql_fingerprint() -> str:
    h = hashlib.sha256(MANIFEST.read_bytes())
    for rel, _ in read_manifest():
        h.update(re.sub(rb"\s+", b" ", (SQL_DIR / rel).read_bytes()))
    for data_file in sorted((SQL_DIR / "registry").glob("*.csv")):  # data the SQL reads (antibiotic list)
        h.update(data_file.name.encode() + data_file.read_bytes())
    return h.hexdigest()


def _empty_features(con: duckdb.DuckDBPyConnection, nulls: dict[str, dict[str, int]]) -> list[str]:
    """Observation columns with no value in the hourly table although values were charted
    (all out of range or non-numeric): warned on the terminal, listed in the manifest."""
    cols = features.OBSERVATION_COLUMNS
    counts = con.execute(f"SELECT {', '.join(f'count({c})' for c in cols)} FROM hourly").fetchall()[0]
    empty = []
    for col, n in zip(cols, counts):
        dropped = nulls.get(col, {})
        if n == 0 and (dropped.get("out_of_range", 0) or dropped.get("non_numeric", 0)):
            o = features.OBS_BY_NAME[col]
            log.warning("feature %s is empty: all %d charted value(s) were outside its range or not numbers "
                        "(%d out of range, %d non-numeric). Check the unit of its itemids in the source, or "
                        "the range in clin_jepa/data/features.py (unit %s)", col,
                        dropped.get("out_of_range", 0) + dropped.get("non_numeric", 0),
                        dropped.get("out_of_range", 0), dropped.get("non_numeric", 0), o.unit or "none")
            empty.append(col)
    return empty


TEXT_BATCH_ROWS = 65_536  # stay-hours per texts batch (~0.3 GB peak RSS whatever the data size)


def _stream_texts(src: Path, dst: Path, fn) -> int:
    """``fn`` (a polars frame function) over ``src`` parquet in fixed-size batches, written
    to ``dst``: memory bounded by one batch. polars' own sink_parquet grew with the input
    here (0.39 -> 0.62 GiB peak from 5,000 to 40,000 stays; batches: 0.30 -> 0.32 GiB)."""
    import polars as pl
    import pyarrow.parquet as pq

    writer, rows = None, 0
    try:
        for batch in pq.ParquetFile(src).iter_batches(batch_size=TEXT_BATCH_ROWS):
            table = fn(pl.from_arrow(batch)).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(dst, table.schema, compression="zstd")
            writer.write_table(table)
            rows += table.num_rows
        if writer is None:  # no rows: an empty file with the output schema
            empty = pl.from_arrow(pq.ParquetFile(src).schema_arrow.empty_table())
            fn(empty).write_parquet(dst)
    finally:
        if writer is not None:
            writer.close()
    return rows


def _export_tables(con: duckdb.DuckDBPyConnection, build: Path, steps) -> dict[str, int]:
    """The manifest's ``-> name.parquet`` exports (DuckDB COPY, streamed)."""
    rows: dict[str, int] = {}
    for rel, export in progress(steps, desc="export", unit="file"):
        if export:
            rows[export] = _export(con, rel.stem, build / export)
    return rows


def _write_texts(build: Path) -> dict[str, int]:
    """The hourly texts of every text mode (texts.parquet, texts_snapshot.parquet) and
    demographics.parquet from the exported parquet, in batches of rows. Runs after DuckDB
    is closed, so its memory and DuckDB's never add up (measured at 5,000 stays: peak
    0.80 GiB with the connection open, the texts step alone 0.33 GiB)."""
    from clin_jepa.data.texts import TEXT_MODES, demographics_texts

    t0 = time.perf_counter()
    rows = {}
    for mode in TEXT_MODES.values():  # every text mode: runs of either mode share this directory
        rows[mode.file] = _stream_texts(build / "hourly.parquet", build / mode.file, mode.build())
    rows["demographics.parquet"] = _stream_texts(build / "static.parquet", build / "demographics.parquet",
                                                 demographics_texts)
    log.info("texts written in %.1f s", time.perf_counter() - t0)
    return rows


def run_extraction(mimic_dir: str | Path, data_dir: str | Path, cfg: DataConfig) -> dict:
    """Full extraction into ``data_dir``; returns the manifest also written to
    ``data_dir/manifest.json``.

    Before any work: the output is checked (outdir.check_output) and leftovers of a killed
    run are recovered or removed. Everything is built in ``.<name>.new.<pid>`` next to the
    output (DuckDB spill in ``.<name>.scratch.<pid>``) and swapped in atomically at the end.
    """
    mimic_dir, data_dir = Path(mimic_dir), Path(data_dir)
    cfg.validate()
    if not mimic_dir.is_dir():
        raise FileNotFoundError(f"MIMIC-IV directory {mimic_dir} does not exist: pass --mimic DIR "
                                f"(the folder holding hosp/ and icu/)")
    outdir.check_output(data_dir, mimic_dir)
    cache_dir = source_cache.cache_dir(cfg.source_cache_dir, mimic_dir) if cfg.cache_sources else None
    scratch_root = Path(cfg.duckdb_temp_dir) if cfg.duckdb_temp_dir else data_dir.parent
    for done in outdir.recover(data_dir, scratch_root):
        log.info("previous run was interrupted: %s", done)
    steps = read_manifest()
    build = outdir.sibling(data_dir, "new")
    spill = scratch_root / outdir.sibling(data_dir, "scratch").name
    sources: dict = {}
    try:
        build.mkdir()
        spill.mkdir(parents=True)
        con = build_database(mimic_dir, cfg, temp_dir=spill, cache_dir=cache_dir, report=sources)
        outdir._checkpoint("building")  # spill files and a partial build exist now
        nulls = _null_counts(con)
        empty = _empty_features(con, nulls)
        rows = _export_tables(con, build, steps)
        con.close()  # frees DuckDB's buffers before the texts step (peaks never add up)
        rows |= _write_texts(build)
        shutil.rmtree(spill, ignore_errors=True)
        outputs = {p.name: file_sha256(p) for p in sorted(build.glob("*.parquet"))}
        manifest = {
            "format_version": FORMAT_VERSION,
            "rows": rows,
            "nulls": nulls,
            "empty_features": empty,
            "sources": sources,
            "config": asdict(cfg) | {"mimic_dir": "", "data_dir": "", "source_cache_dir": "", "tasks_dir": "",
                                     "duckdb_temp_dir": ""},  # paths are machine-specific
            "fingerprint": {
                "inputs": input_fingerprint(mimic_dir),
                "sql": _sql_fingerprint(),
                "outputs": outputs,
                "data": hashlib.sha256("".join(outputs.values()).encode()).hexdigest(),
            },
        }
        write_json(build / "manifest.json", manifest)  # last: its presence marks a complete extraction
        outdir.publish(build, data_dir)
    except (OSError, duckdb.Error) as e:
        if disk_full(e):
            raise ValueError(disk_full_message(f"the extraction into {data_dir.parent}")) from None
        raise
    finally:
        shutil.rmtree(spill, ignore_errors=True)
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    log.info("extraction complete: %s (%d stays, %d stay-hours)", data_dir,
             rows.get("cohort.parquet", 0), rows.get("hourly.parquet", 0))
    return manifest
