"""MIMIC-IV source tables as DuckDB views, and the registry tables the SQL joins on.

Every source table of :mod:`clin_jepa.data.schema` becomes one view named after it,
reading ``<mimic>/<module>/<name>.csv.gz`` (or ``.csv`` / ``.parquet``) in place.
Required columns get explicit types; numeric measurement columns are read as text and
exposed through ``TRY_CAST`` so a non-numeric value becomes NULL (counted later, see
``<col>_raw``) instead of aborting a 300M-row scan.
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from pathlib import Path

import duckdb

from clin_jepa.data import features
from clin_jepa.data.schema import TABLES, SourceTable
from clin_jepa.utils import progress

EXTENSIONS = (".csv.gz", ".csv", ".parquet")
# DuckDB's CSV read buffer (bytes, per thread). Its default (~32 MiB with several in
# flight per thread) dominated peak memory when parsing csv.gz; 4 MiB costs no speed.
CSV_BUFFER_BYTES = 4 << 20

# Required columns by type. Numeric columns in SOFT_NUMERIC are parsed with TRY_CAST
# (bad values -> NULL and counted); the view keeps the text as `<col>_raw`.
ID_COLUMNS = {"subject_id", "hadm_id", "stay_id", "itemid", "specimen_id"}
TIMESTAMP_COLUMNS = {"intime", "outtime", "charttime", "starttime", "endtime", "stoptime",
                     "admittime", "dischtime", "deathtime", "chartdate"}
DATE_COLUMNS = {"dod"}
SOFT_NUMERIC = {"valuenum", "value", "amount", "rate", "patientweight", "los", "anchor_age",
                "anchor_year", "hospital_expire_flag"}
# Columns that are text in one table and numeric in another: only these tables' copies
# are numeric.
NUMERIC_VALUE_TABLES = {"outputevents"}
_NUMERIC_TYPES = {"DOUBLE", "FLOAT", "REAL", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT",
                  "UINTEGER", "USMALLINT", "UTINYINT"}  # outputevents.value is a volume (mL)

# Rate-unit conversions to each vasopressor's canonical unit (as mimic-code's
# vasopressor concepts): rate_canonical = rate * mul / (patientweight if per_weight).
RATE_CONVERSIONS: tuple[tuple[str, str, float, bool], ...] = (
    # (rateuom as charted, canonical unit, mul, divide by weight kg)
    ("mcg/kg/min", "mcg/kg/min", 1.0, False),
    ("mg/kg/min", "mcg/kg/min", 1000.0, False),  # norepinephrine charted in mg/kg/min
    ("mcg/min", "mcg/kg/min", 1.0, True),  # phenylephrine charted in mcg/min
    ("mg/min", "mcg/kg/min", 1000.0, True),
    ("units/hour", "units/hour", 1.0, False),
    ("units/min", "units/hour", 60.0, False),  # vasopressin charted per minute
)

# Fluid bolus amounts: amountuom -> mL multiplier.
VOLUME_UNITS = (("ml", 1.0), ("mL", 1.0), ("L", 1000.0), ("l", 1000.0))
FLUID_BOLUS_MAX_ML = 10_000.0  # mL; a larger single bolus is a charting error (ignored)


def find_source(mimic_dir: Path, table: SourceTable) -> Path:
    """The file holding ``table`` (csv.gz, csv or parquet), or FileNotFoundError naming it."""
    base = Path(mimic_dir) / table.module / table.name
    for ext in EXTENSIONS:
        p = base.with_name(table.name + ext)
        if p.exists():
            return p
    raise FileNotFoundError(
        f"MIMIC-IV table {table.name!r} not found: expected {base}.csv.gz "
        f"(also looked for {table.name}.csv and {table.name}.parquet in {base.parent}). "
        f"Point --mimic at the MIMIC-IV root that holds hosp/ and icu/, or download the missing "
        f"file from PhysioNet."
    )


def _sql_str(s: str | Path) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def _is_numeric(table: str, col: str) -> bool:
    return col in SOFT_NUMERIC and (col != "value" or table in NUMERIC_VALUE_TABLES)


def _csv_header(path: Path) -> list[str]:
    """Column names from the first line; a corrupt/truncated gzip start is a clear error."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", newline="") as f:
            line = f.readline()
            f.read(1 << 16)  # decompress a little more: catches a damaged stream early
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise ValueError(
            f"{path} is not a readable {'gzip ' if path.name.endswith('.gz') else ''}CSV file ({e}). "
            f"The download is corrupt or incomplete: re-download it from PhysioNet and check it "
            f"against SHA256SUMS.txt."
        ) from None
    return next(csv.reader([line]), [])


def _column_type(key: str) -> str:
    if key in ID_COLUMNS:
        return "BIGINT"
    if key in TIMESTAMP_COLUMNS:
        return "TIMESTAMP"
    if key in DATE_COLUMNS:
        return "DATE"
    return "VARCHAR"  # text, or numeric parsed with TRY_CAST in the typed select


def _reader(path: Path, table: SourceTable, header: list[str]) -> str:
    """A DuckDB table function reading ``path``: CSV with the header's columns declared
    (no sniffing; explicit types for required ids/times), or parquet."""
    if path.name.endswith(".parquet"):
        return f"read_parquet({_sql_str(path)})"
    required = set(table.required)
    cols = ", ".join(f"{_sql_str(c)}: '{_column_type(c.lower()) if c.lower() in required else 'VARCHAR'}'"
                     for c in header)
    return (f"read_csv({_sql_str(path)}, header = true, auto_detect = false, delim = ',', quote = '\"', "
            f"escape = '\"', nullstr = '', buffer_size = {CSV_BUFFER_BYTES}, columns = {{{cols}}})")


def clean_error(err: Exception) -> str:
    """DuckDB's message without the offending CSV line it quotes (that line may hold
    identifiers and dates, which must not reach logs)."""
    return re.sub(r"(?s)Original Line:.*?(\n\s*\n|$)", "Original Line: <withheld>\n", str(err)).strip()


def corrupt_file_hint(err: Exception, paths: list[Path]) -> str:
    """A fix suggestion when a DuckDB error comes from a damaged source file."""
    msg = str(err)
    named = [p for p in paths if p.name in msg or str(p) in msg]
    if any(k in msg.lower() for k in ("gzip", "zlib", "inflate", "compress", "corrupt", "truncat")):
        where = ", ".join(map(str, named)) or "a .csv.gz source file"
        return (f"{where} looks corrupt or truncated: re-download it from PhysioNet and check it "
                f"against SHA256SUMS.txt")
    if named:
        return f"check {', '.join(map(str, named))} (malformed CSV or wrong column types)"
    return ""


def _typed_select(name: str, table: SourceTable, actual: dict[str, str], types: dict[str, str]) -> str:
    """The required columns with their types; soft numerics also as ``<col>_raw`` (the
    text when it is NOT a number, else NULL: that is what the NULL counts read)."""
    select = []
    for col in table.required:
        src = f'"{actual[col]}"'
        if _is_numeric(name, col) and types[col] in _NUMERIC_TYPES:
            select.append(f"CAST({src} AS DOUBLE) AS {col}")
            select.append(f"CAST(NULL AS VARCHAR) AS {col}_raw")
        elif _is_numeric(name, col):
            # trim() keeps DuckDB from pushing the cast into the CSV reader as a strict
            # cast (DuckDB 2.0 does that for a bare TRY_CAST and then fails on "abc")
            num = f"TRY_CAST(trim({src}) AS DOUBLE)"
            select.append(f"{num} AS {col}")
            select.append(f"CASE WHEN {num} IS NULL THEN CAST({src} AS VARCHAR) END AS {col}_raw")
        elif col in TIMESTAMP_COLUMNS:
            select.append(f"CAST({src} AS TIMESTAMP) AS {col}")
        elif col in DATE_COLUMNS:
            select.append(f"CAST({src} AS DATE) AS {col}")
        elif col in ID_COLUMNS:
            select.append(f"CAST({src} AS BIGINT) AS {col}")
        else:
            select.append(f"CAST({src} AS VARCHAR) AS {col}")
    return ", ".join(select)


def create_source_views(con: duckdb.DuckDBPyConnection, mimic_dir: Path, cache_dir: Path | None = None,
                        cache_only: set[str] | None = None) -> dict[str, Path]:
    """One typed view per schema table; returns {table: path}. Checks required columns.

    With ``cache_dir``, each CSV source is parsed ONCE into ``cache_dir/<name>.parquet``
    (required columns only) and the view reads that: later queries scan parquet in
    parallel instead of decompressing the csv.gz again (chartevents is read 3+ times).
    ``cache_only`` limits that to the tables the SQL about to run reads.
    """
    found: dict[str, Path] = {}
    for name, table in progress(TABLES.items(), desc="read MIMIC-IV", unit="table", total=len(TABLES)):
        path = find_source(mimic_dir, table)
        try:
            if path.name.endswith(".parquet"):
                described = con.execute(f"DESCRIBE SELECT * FROM {_reader(path, table, [])}").fetchall()
                header, types = [r[0] for r in described], {r[0].lower(): r[1] for r in described}
            else:
                header = _csv_header(path)
                types = {c.lower(): _column_type(c.lower()) for c in header}
            actual = {c.lower(): c for c in header}
            missing = [c for c in table.required if c not in actual]
            if missing:
                raise ValueError(
                    f"MIMIC-IV table {name!r} ({path}) lacks required column(s) {', '.join(missing)}; "
                    f"it has {', '.join(header)}. Use the PhysioNet MIMIC-IV v2.2+ files (or rename the columns)."
                )
            query = f"SELECT {_typed_select(name, table, actual, types)} FROM {_reader(path, table, header)}"
            cache = cache_dir is not None and (cache_only is None or name in cache_only)
            if cache and not path.name.endswith(".parquet"):
                cache_dir.mkdir(parents=True, exist_ok=True)
                cached = cache_dir / f"{name}.parquet"
                con.execute(f"COPY ({query}) TO {_sql_str(cached)} (FORMAT parquet)")
                query = f"SELECT * FROM read_parquet({_sql_str(cached)})"
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {query}")
        except duckdb.Error as e:
            hint = corrupt_file_hint(e, [path]) or f"check that {path} is a MIMIC-IV {name} table"
            raise ValueError(f"cannot read MIMIC-IV table {name!r} from {path}: {clean_error(e)}. "
                             f"Fix: {hint}.") from None
        found[name] = path
    return found


# --------------------------------------------------------------------------- #
# registry tables
# --------------------------------------------------------------------------- #


def _table(con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, str], rows: list[tuple]) -> None:
    cols = ", ".join(f"{c} {t}" for c, t in columns.items())
    con.execute(f"CREATE OR REPLACE TABLE {name} ({cols})")
    if rows:
        marks = ", ".join("?" for _ in columns)
        con.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)


# Hourly aggregations each measurement SQL file implements, by source table.
SUPPORTED_AGGS = {"chartevents": ("mean", "min"), "labevents": ("last",), "outputevents": ("sum",)}


def check_registry(observations=features.OBSERVATIONS) -> None:
    """Every registry feature has a source and aggregation the measurement SQL implements."""
    for o in observations:
        ok = SUPPORTED_AGGS.get(o.source, ())
        if o.agg not in ok:
            raise ValueError(
                f"feature {o.name!r}: source={o.source!r} agg={o.agg!r} is not implemented by "
                f"sql/measurement/ (supported: {SUPPORTED_AGGS}); fix features.OBSERVATIONS or add it to the SQL"
            )


def register_registry(con: duckdb.DuckDBPyConnection) -> None:
    """registry_* tables from clin_jepa.data.features (the SQL never repeats itemids)."""
    check_registry()
    items = features.item_table()
    _table(con, "registry_items",
           {"feature": "VARCHAR", "source": "VARCHAR", "itemid": "BIGINT", "mul": "DOUBLE", "add": "DOUBLE",
            "frac_to_pct": "BOOLEAN", "sign": "DOUBLE", "lo": "DOUBLE", "hi": "DOUBLE", "agg": "VARCHAR"},
           [(r["feature"], r["source"], r["itemid"], r["mul"], r["add"], r["frac_to_pct"], r["sign"],
             r["lo"], r["hi"], r["agg"]) for r in items])
    _table(con, "registry_features",
           {"fid": "SMALLINT", "feature": "VARCHAR", "grp": "VARCHAR", "unit": "VARCHAR", "agg": "VARCHAR"},
           [(i, o.name, o.group, o.unit, o.agg) for i, o in enumerate(features.OBSERVATIONS)])
    _table(con, "registry_vasopressors",
           {"drug": "VARCHAR", "itemid": "BIGINT", "unit": "VARCHAR", "nee_factor": "DOUBLE", "hi": "DOUBLE"},
           [(v.name, v.itemid, v.unit, v.nee_factor, v.hi) for v in features.VASOPRESSORS])
    _table(con, "registry_rate_units",
           {"rateuom": "VARCHAR", "unit": "VARCHAR", "mul": "DOUBLE", "per_weight": "BOOLEAN"},
           list(RATE_CONVERSIONS))
    _table(con, "registry_ventilation", {"itemid": "BIGINT", "label": "VARCHAR"},
           sorted(features.VENTILATION_ITEMIDS.items()))
    _table(con, "registry_rrt", {"itemid": "BIGINT", "label": "VARCHAR", "continuous": "BOOLEAN"},
           [(k, v, k in features.CRRT_ITEMIDS) for k, v in sorted(features.RRT_ITEMIDS.items())])
    _table(con, "registry_bg", {"role": "VARCHAR", "itemid": "BIGINT"}, sorted(features.BLOOD_GAS_ITEMS.items()))
    _table(con, "registry_esrd_icd", {"icd_version": "INTEGER", "prefix": "VARCHAR", "meaning": "VARCHAR"},
           list(features.ESRD_ICD_PREFIXES))
    _table(con, "registry_fluid_items", {"itemid": "BIGINT", "label": "VARCHAR"},
           sorted(features.FLUID_BOLUS_ITEMIDS.items()))
    _table(con, "registry_volume_units", {"amountuom": "VARCHAR", "mul": "DOUBLE"}, list(VOLUME_UNITS))
    _table(con, "registry_antibiotic", {"rule": "VARCHAR", "pattern": "VARCHAR"}, features.antibiotic_rules())
    _table(con, "registry_weight_items",
           {"itemid": "BIGINT", "label": "VARCHAR", "mul": "DOUBLE", "admission": "BOOLEAN"},
           [(k, v[0], v[1], k in features.ADMISSION_WEIGHT_ITEMIDS) for k, v in sorted(features.WEIGHT_ITEMIDS.items())])


def registry_table_names() -> set[str]:
    return {"registry_items", "registry_features", "registry_vasopressors", "registry_rate_units",
            "registry_ventilation", "registry_rrt", "registry_bg", "registry_esrd_icd", "registry_fluid_items", "registry_volume_units",
            "registry_antibiotic", "registry_weight_items",
            "registry_tasks"}  # registry_tasks: clin_jepa.data.task_defs.register_tasks
