"""MIMIC-IV source files: where they are, how they are read and typed, and the registry
tables the SQL joins on.

Every source table of :mod:`clin_jepa.data.schema` is ``<mimic>/<module>/<name>.csv.gz``
(or ``.csv`` / ``.parquet``). CSV columns are read as text and typed in one select: ids
and times with ``TRY_CAST`` (a malformed value sets a bit of ``_bad``, counted and acted
on by :mod:`clin_jepa.data.source_views`), numeric measurements with ``TRY_CAST`` too (a
non-numeric value becomes NULL, its text kept as ``<col>_raw`` for the NULL counts), so
one bad value never aborts a 300M-row scan.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path

import duckdb

from clin_jepa.data import features
from clin_jepa.data.schema import SourceTable
from clin_jepa.data.source_checks import check_file_start, clean_error  # noqa: F401  (clean_error re-exported)
from clin_jepa.utils import get_logger

log = get_logger(__name__)

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
# A malformed value in these drops its row (it cannot be placed on a stay's timeline);
# in any other strict column it becomes NULL.
DROP_COLUMNS = ID_COLUMNS | {"intime", "outtime", "admittime", "charttime", "starttime"}
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
    """Column names from the first line (a UTF-8 byte-order mark is dropped with a
    warning); a compression/name mismatch or a damaged gzip start is a clear error."""
    bom = check_file_start(path)
    if bom:
        log.warning("%s starts with a UTF-8 byte-order mark (MIMIC-IV files have none; it was probably "
                    "re-saved by an editor): ignored", path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            line = f.readline().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: the header line is not valid UTF-8 (MIMIC-IV files are UTF-8). Fix: re-download "
                         f"it from PhysioNet, or convert it with `iconv -f latin1 -t utf-8`.") from None
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path} is not a readable CSV file ({e}). Fix: re-download it from PhysioNet and "
                         f"check it against SHA256SUMS.txt.") from None
    return next(csv.reader([line]), [])


def _reader(path: Path, header: list[str], parallel: bool = True) -> str:
    """A DuckDB table function reading ``path``: CSV with every column declared VARCHAR
    (no sniffing; the typed select parses ids and times with TRY_CAST so one malformed
    value cannot abort the scan), or parquet."""
    if path.name.endswith(".parquet"):
        return f"read_parquet({_sql_str(path)})"
    cols = ", ".join(f"{_sql_str(c)}: 'VARCHAR'" for c in header)
    return (f"read_csv({_sql_str(path)}, header = true, auto_detect = false, delim = ',', quote = '\"', "
            f"escape = '\"', nullstr = '', buffer_size = {CSV_BUFFER_BYTES}, parallel = {str(parallel).lower()}, "
            f"columns = {{{cols}}})")


def _strict_type(col: str) -> str | None:
    if col in ID_COLUMNS:
        return "BIGINT"
    if col in TIMESTAMP_COLUMNS:
        return "TIMESTAMP"
    if col in DATE_COLUMNS:
        return "DATE"
    return None


def _typed_select(name: str, table: SourceTable, actual: dict[str, str],
                  types: dict[str, str]) -> tuple[str, list[str]]:
    """(select list, strict columns in ``_bad`` bit order). Required columns with their
    types; soft numerics also as ``<col>_raw`` (the text when it is NOT a number, else
    NULL: what the NULL counts read); ids/times parsed with TRY_CAST, bit i of ``_bad``
    set when strict column i held a value that does not parse."""
    select, strict, bad = [], [], []
    for col in table.required:
        src = f'"{actual[col]}"'
        target = _strict_type(col)
        if _is_numeric(name, col) and types[col] in _NUMERIC_TYPES:
            select.append(f"CAST({src} AS DOUBLE) AS {col}")
            select.append(f"CAST(NULL AS VARCHAR) AS {col}_raw")
        elif _is_numeric(name, col):
            # trim() keeps DuckDB from pushing the cast into the CSV reader as a strict
            # cast (DuckDB 2.0 does that for a bare TRY_CAST and then fails on "abc")
            num = f"TRY_CAST(trim({src}) AS DOUBLE)"
            select.append(f"{num} AS {col}")
            select.append(f"CASE WHEN {num} IS NULL THEN CAST({src} AS VARCHAR) END AS {col}_raw")
        elif target and types[col].upper().startswith(target):
            select.append(f"{src} AS {col}")
        elif target:
            typed = f"TRY_CAST(trim(CAST({src} AS VARCHAR)) AS {target})"
            select.append(f"{typed} AS {col}")
            bad.append(f"CASE WHEN {typed} IS NULL AND trim(CAST({src} AS VARCHAR)) <> '' THEN {1 << len(strict)} "
                       f"ELSE 0 END")
            strict.append(col)
        else:
            select.append(f"CAST({src} AS VARCHAR) AS {col}")
    select.append(f"CAST({' + '.join(bad) or '0'} AS UINTEGER) AS _bad")
    return ", ".join(select), strict


def _drop_mask(strict: list[str]) -> int:
    return sum(1 << i for i, c in enumerate(strict) if c in DROP_COLUMNS)


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
