"""Export an extraction (a data directory) as a MEDS dataset (meds package schemas, validated).

Layout written under ``out`` (atomically: built in a temporary sibling, renamed at the end)::

    data/{train,tuning,held_out}/0.parquet   subject_id, time, code, numeric_value, text_value
    metadata/dataset.json                    etl_name "clin-jepa export-meds", versions
    metadata/codes.parquet                   code, description, parent_codes, unit, itemids, source, column
    metadata/subject_splits.parquet          train/val/test -> train/tuning/held_out (by patient)
    task_labels/<task>.parquet               subject_id, prediction_time, boolean_value (one per task)

Times. The data directory stores hours since ICU intime only, so the real (date-shifted)
MIMIC-IV times are read again from the extraction's MIMIC-IV source (icustays, admissions,
patients; checked against the extraction's input fingerprint). An hourly value of hour h
(the aggregate over [intime + h, intime + h + 1)) is stamped at its END, intime + h + 1 h:
it is known then, so a model given the data up to a label's ``prediction_time`` sees
exactly the hours the evaluation gives it (``clin_jepa.evaluation.tasks.last_hour_expr`` + 1).

Identifiers (subject_id) and shifted dates are the user's credentialed data: the export
stays in the user's directory like ``data/``; nothing here logs them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from clin_jepa.data import meds_codes as C
from clin_jepa.data.features import ACTION_COLUMNS, DERIVED_COLUMNS, OBSERVATION_COLUMNS
from clin_jepa.utils import atomic_path, get_logger

log = get_logger(__name__)

ETL_NAME = "clin-jepa export-meds"
SPLIT_NAMES = {"train": "train", "val": "tuning", "test": "held_out"}  # ours -> MEDS sentinels
LABELS_DIR = "task_labels"
STAY_ID = "stay_id"  # extra data column: the ICU stay of hourly / ICU-boundary / weight events
HOURLY_COLUMNS = OBSERVATION_COLUMNS + ACTION_COLUMNS + DERIVED_COLUMNS
BATCH_ROWS = 1 << 18  # rows per streamed record batch


def _meds():
    try:
        import meds
    except ImportError:
        raise ImportError("the MEDS export needs the `meds` package: pip install 'clin-jepa[meds]' "
                          "(or meds==0.4.1)") from None
    return meds


def _sql_str(p: str | Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def is_export(path: Path) -> bool:
    """True when ``path`` holds a dataset written by this exporter."""
    meta = Path(path) / "metadata" / "dataset.json"
    try:
        return json.loads(meta.read_text()).get("etl_name") == ETL_NAME
    except (OSError, ValueError):
        return False


def check_sources(data_dir: Path, mimic_dir: Path) -> dict:
    """The extraction's manifest, after checking ``mimic_dir`` is the source it was built from."""
    from clin_jepa.data.extract import input_fingerprint

    man_path = data_dir / "manifest.json"
    if not man_path.exists():
        raise FileNotFoundError(f"{man_path} not found: {data_dir} is not a complete extraction "
                                f"(run `clin-jepa extract` first)")
    manifest = json.loads(man_path.read_text())
    if input_fingerprint(mimic_dir) != manifest["fingerprint"]["inputs"]:
        raise ValueError(f"the MIMIC-IV source {mimic_dir} is not the one {data_dir} was extracted from "
                         f"(input fingerprints differ); pass --mimic with the extraction's source directory")
    return manifest


# ---------------------------------------------------------------------- #
# DuckDB tables: stays, subjects, events
# ---------------------------------------------------------------------- #


def _load(con: duckdb.DuckDBPyConnection, data_dir: Path, mimic_dir: Path) -> None:
    """Source views + tables ``stays`` (cohort stays with times and MEDS split), ``codes``."""
    from clin_jepa.data.source_views import create_source_views

    create_source_views(con, mimic_dir)
    split_case = " ".join(f"WHEN '{a}' THEN '{b}'" for a, b in SPLIT_NAMES.items())
    con.execute(f"""
        CREATE TABLE stays AS
        SELECT c.stay_id, c.subject_id, i.hadm_id, i.intime, i.outtime, CASE sp.split {split_case} END AS split
        FROM read_parquet({_sql_str(data_dir / 'cohort.parquet')}) c
        JOIN icustays i ON i.stay_id = c.stay_id
        JOIN read_parquet({_sql_str(data_dir / 'splits.parquet')}) sp ON sp.subject_id = c.subject_id""")
    n_cohort = con.execute(f"SELECT count(*) FROM read_parquet({_sql_str(data_dir / 'cohort.parquet')})").fetchall()[0][0]
    n = con.execute("SELECT count(*) FROM stays").fetchall()[0][0]
    if n != n_cohort:
        raise ValueError(f"{n_cohort - n} cohort stays have no ICU stay or split in the sources; "
                         f"rerun `clin-jepa extract` on this MIMIC-IV directory")
    codes = pl.DataFrame(C.code_rows()).select("code", "column", "kind")
    con.register("codes_df", codes.to_arrow())
    con.execute("CREATE TABLE codes AS SELECT * FROM codes_df")


def _events_sql(data_dir: Path) -> str:
    """One SELECT of every event (subject_id, time, code, numeric_value, text_value, stay_id).

    ``stay_id`` (a raw-source id column, null for patient/admission events) ties the hourly,
    ICU-boundary and weight events to their ICU stay."""
    cols = ", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in HOURLY_COLUMNS)
    hourly = f"(SELECT stay_id, hour, {cols} FROM read_parquet({_sql_str(data_dir / 'hourly.parquet')}))"
    static = _sql_str(data_dir / "static.parquet")
    return f"""
    WITH h AS (UNPIVOT {hourly} ON {', '.join(HOURLY_COLUMNS)} INTO NAME col VALUE value),
    subj AS (SELECT subject_id, min(split) AS split FROM stays GROUP BY subject_id),
    adm AS (SELECT DISTINCT s.subject_id, a.hadm_id, a.admittime, a.dischtime, a.race, a.admission_type
            FROM stays s JOIN admissions a ON a.hadm_id = s.hadm_id),
    death AS (
        SELECT p.subject_id,
               coalesce((SELECT min(a.deathtime) FROM admissions a WHERE a.subject_id = p.subject_id),
                        CAST(p.dod AS TIMESTAMP) + INTERVAL 1 DAY - INTERVAL 1 SECOND) AS time
        FROM patients p SEMI JOIN subj ON subj.subject_id = p.subject_id)
    SELECT s.subject_id, s.intime + to_hours(CAST(h.hour AS BIGINT) + 1) AS time, k.code,
           CAST(h.value AS FLOAT) AS numeric_value, NULL::VARCHAR AS text_value, s.stay_id
    FROM h JOIN stays s ON s.stay_id = h.stay_id JOIN codes k ON k.column = h.col
    WHERE k.kind <> 'action' OR h.value <> 0
    UNION ALL SELECT subject_id, intime, '{C.ICU_ADMISSION}', NULL, NULL, stay_id FROM stays
    UNION ALL SELECT subject_id, outtime, '{C.ICU_DISCHARGE}', NULL, NULL, stay_id FROM stays
    UNION ALL SELECT s.subject_id, s.intime, '{C.WEIGHT}', CAST(st.weight_kg AS FLOAT), NULL, s.stay_id
              FROM stays s JOIN read_parquet({static}) st ON st.stay_id = s.stay_id WHERE st.weight_kg IS NOT NULL
    UNION ALL SELECT subject_id, admittime, '{C.HOSPITAL_ADMISSION}', NULL, NULL, NULL FROM adm
    UNION ALL SELECT subject_id, dischtime, '{C.HOSPITAL_DISCHARGE}', NULL, NULL, NULL FROM adm WHERE dischtime IS NOT NULL
    UNION ALL SELECT subject_id, admittime, '{C.RACE}', NULL, race, NULL FROM adm WHERE race IS NOT NULL
    UNION ALL SELECT subject_id, admittime, '{C.ADMISSION_TYPE}', NULL, admission_type, NULL FROM adm
              WHERE admission_type IS NOT NULL
    UNION ALL SELECT p.subject_id, make_timestamp(CAST(p.anchor_year - p.anchor_age AS BIGINT), 1, 1, 0, 0, 0),
                     '{C.BIRTH}', NULL, NULL, NULL
              FROM patients p SEMI JOIN subj ON subj.subject_id = p.subject_id
              WHERE p.anchor_year IS NOT NULL AND p.anchor_age IS NOT NULL
    UNION ALL SELECT p.subject_id, NULL, '{C.GENDER_PREFIX}{C.SEP}' || upper(p.gender), NULL, NULL, NULL
              FROM patients p SEMI JOIN subj ON subj.subject_id = p.subject_id WHERE p.gender IS NOT NULL
    UNION ALL SELECT subject_id, time, '{C.DEATH}', NULL, NULL, NULL FROM death WHERE time IS NOT NULL"""


# ---------------------------------------------------------------------- #
# writers
# ---------------------------------------------------------------------- #


def _write_data(con: duckdb.DuckDBPyConnection, events_sql: str, root: Path) -> dict[str, int]:
    """data/<split>/0.parquet per MEDS split, each sorted by (subject_id, time); streamed in batches."""
    meds = _meds()
    schema = meds.DataSchema.schema().append(pa.field(STAY_ID, pa.int64()))
    rows = {}
    con.execute(f"CREATE TABLE events AS SELECT e.*, s.split FROM ({events_sql}) e "
                f"JOIN (SELECT DISTINCT subject_id, split FROM stays) s USING (subject_id)")
    for split in SPLIT_NAMES.values():
        path = root / meds.data_subdirectory / split / "0.parquet"
        path.parent.mkdir(parents=True)
        reader = con.sql(f"""SELECT subject_id, time, code, numeric_value, text_value, stay_id FROM events
                                WHERE split = '{split}'
                                ORDER BY subject_id, time NULLS FIRST, code, numeric_value, text_value""") \
                    .to_arrow_reader(BATCH_ROWS)
        rows[split] = 0
        with pq.ParquetWriter(path, schema) as w:
            for batch in reader:
                table = meds.DataSchema.align(pa.Table.from_batches([batch]))
                w.write_table(table)
                rows[split] += table.num_rows
    return rows


def _write_labels(con: duckdb.DuckDBPyConnection, data_dir: Path, root: Path) -> dict[str, int]:
    """task_labels/<task>.parquet (MEDS label schema), prediction_time = intime + last_hour + 1 h."""
    from clin_jepa.evaluation.tasks import last_hour_expr

    meds = _meds()
    stays = pl.from_arrow(con.sql("SELECT stay_id, subject_id, intime FROM stays").to_arrow_table())
    labels = pl.scan_parquet(data_dir / "labels.parquet")
    out = {}
    (root / LABELS_DIR).mkdir()
    for task in sorted(labels.select(pl.col("task").unique()).collect()["task"].to_list()):
        df = (labels.filter(pl.col("task") == task).collect()
              .join(stays, on="stay_id", how="inner")
              .select(pl.col("subject_id").cast(pl.Int64),
                      (pl.col("intime").cast(pl.Datetime("us"))
                       + pl.duration(hours=last_hour_expr() + 1)).alias("prediction_time"),
                      (pl.col("label") == 1).alias("boolean_value"))
              .sort("subject_id", "prediction_time"))
        pq.write_table(meds.LabelSchema.align(df.to_arrow()), root / LABELS_DIR / f"{task}.parquet")
        out[task] = df.height
    return out


def _write_metadata(con: duckdb.DuckDBPyConnection, root: Path, manifest: dict) -> None:
    import clin_jepa

    meds = _meds()
    (root / "metadata").mkdir()
    sexes = tuple(r[0].split(C.SEP)[1] for r in con.execute(
        f"SELECT DISTINCT code FROM events WHERE code LIKE '{C.GENDER_PREFIX}{C.SEP}%' ORDER BY code").fetchall())
    codes = pl.DataFrame(C.code_rows(sexes or ("F", "M")),
                         schema_overrides={"parent_codes": pl.List(pl.String), "itemids": pl.List(pl.Int64)})
    pq.write_table(meds.CodeMetadataSchema.align(codes.to_arrow()), root / meds.code_metadata_filepath)
    splits = pl.from_arrow(con.sql("SELECT DISTINCT subject_id, split FROM stays ORDER BY subject_id")
                           .to_arrow_table())
    pq.write_table(meds.SubjectSplitSchema.align(splits.to_arrow()), root / meds.subject_splits_filepath)
    meta = {"dataset_name": "clin-jepa ICU cohort (MIMIC-IV)",
            "dataset_version": manifest["fingerprint"]["data"][:16],
            "etl_name": ETL_NAME, "etl_version": clin_jepa.__version__, "meds_version": meds.__version__,
            "raw_source_id_columns": [STAY_ID]}
    meds.DatasetMetadataSchema.validate(meta)
    (root / meds.dataset_metadata_filepath).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def export_meds(data_dir: str | Path, mimic_dir: str | Path, out: str | Path, force: bool = False,
                threads: int = 0, memory_limit: str = "4GB") -> dict:
    """Write the MEDS dataset of ``data_dir`` to ``out``; returns row counts (no identifiers)."""
    data_dir, mimic_dir, out = Path(data_dir), Path(mimic_dir), Path(out)
    if out.exists() and any(out.iterdir()):
        if not is_export(out):
            raise ValueError(f"{out} exists and is not a MEDS export of clin-jepa; choose an empty or new "
                             f"--out directory (nothing was changed)")
        if not force:
            raise ValueError(f"{out} already holds a MEDS export; pass --force to replace it")
    manifest = check_sources(data_dir, mimic_dir)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        spill = tmp / ".duckdb_tmp"
        config = {"memory_limit": memory_limit, "temp_directory": str(spill), "preserve_insertion_order": False}
        con = duckdb.connect(config=config | ({"threads": threads} if threads > 0 else {}))  # 0: DuckDB default
        try:
            _load(con, data_dir, mimic_dir)
            rows = _write_data(con, _events_sql(data_dir), tmp)
            labels = _write_labels(con, data_dir, tmp)
            _write_metadata(con, tmp, manifest)
        finally:
            con.close()
            shutil.rmtree(spill, ignore_errors=True)
        summary = validate_meds(tmp)
    log.info("MEDS export: %d subjects, %d events, %d label files -> %s",
             summary["subjects"], summary["events"], len(labels), out)
    return {**summary, "events_per_split": rows, "labels": labels}


# ---------------------------------------------------------------------- #
# validation
# ---------------------------------------------------------------------- #


def validate_meds(root: str | Path) -> dict:
    """Check a MEDS dataset with the meds schemas (+ the MEDS data rules); returns counts or raises ValueError.

    Streams the data files batch by batch: every subject in one file, sorted by time (nulls
    first); every code in codes.parquet; every subject in subject_splits.parquet.
    """
    meds = _meds()
    root = Path(root)
    try:
        meds.DatasetMetadataSchema.validate(json.loads((root / meds.dataset_metadata_filepath).read_text()))
        codes = pq.read_table(root / meds.code_metadata_filepath)
        meds.CodeMetadataSchema.validate(codes)
        splits = pq.read_table(root / meds.subject_splits_filepath)
        meds.SubjectSplitSchema.validate(splits)
    except Exception as e:  # noqa: BLE001 - schema errors come in several kinds
        raise ValueError(f"{root} is not a valid MEDS dataset: metadata: {e}") from None
    known_codes = set(codes.column("code").to_pylist())
    known_subjects = set(splits.column("subject_id").to_pylist())
    seen: set[int] = set()
    events = 0
    for path in sorted((root / meds.data_subdirectory).rglob("*.parquet")):
        in_file: set[int] = set()
        last = (None, None)  # (subject, time as int64 us; null time = min)
        for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS):
            table = pa.Table.from_batches([batch])
            try:
                meds.DataSchema.validate(table)
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"{path}: {e}") from None
            subj = table.column("subject_id").to_numpy()
            t = table.column("time").cast(pa.int64()).fill_null(np.iinfo(np.int64).min).to_numpy()
            if last[0] is not None:
                subj, t = np.r_[last[0], subj], np.r_[last[1], t]
            same = subj[1:] == subj[:-1]  # comparisons, not diff: null times are int64 min
            if (subj[1:] < subj[:-1]).any() or (same & (t[1:] < t[:-1])).any():
                raise ValueError(f"{path} is not sorted by (subject_id, time)")
            unknown = set(table.column("code").unique().to_pylist()) - known_codes
            if unknown:
                raise ValueError(f"{path} has codes missing from codes.parquet: {sorted(unknown)[:5]}")
            in_file.update(np.unique(subj).tolist())
            last = (subj[-1:], t[-1:])
            events += table.num_rows
        if in_file & seen:
            raise ValueError(f"{path} shares subjects with another data file (MEDS: one file per subject)")
        seen |= in_file
    if seen - known_subjects:
        raise ValueError(f"{len(seen - known_subjects)} subjects of the data are not in subject_splits.parquet")
    for path in sorted((root / LABELS_DIR).glob("*.parquet")) if (root / LABELS_DIR).exists() else []:
        try:
            meds.LabelSchema.validate(pq.read_table(path))
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{path}: {e}") from None
    return {"subjects": len(seen), "events": events, "codes": len(known_codes)}
