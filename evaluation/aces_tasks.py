"""Extra binary tasks defined as ACES task configs (es-aces), run on a clin-jepa MEDS export.

An ACES config (predicates, trigger, windows; see configs/aces/ and docs/meds.md) gives MEDS
labels (subject_id, prediction_time, boolean_value). :func:`stay_labels` maps them back to
the evaluation's label rows (stay_id, task, hour, label): the stay is the subject's last
ICU_ADMISSION at or before prediction_time (its ``stay_id`` column in the export), and
``hour = floor(prediction_time - intime)`` in hours, so the model sees hours 0..hour-1, the
hours that ended by prediction_time (as a built-in per-stay task). The task name is the
config's file stem; it may not clash with a built-in task.

es-aces is optional (``pip install 'clin-jepa[aces]'``); it is imported only here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from clin_jepa.data import meds_codes
from clin_jepa.data.meds_export import STAY_ID, is_export
from clin_jepa.utils import get_logger

log = get_logger(__name__)


class MissingACES(ImportError, ValueError):
    """es-aces is not installed (a ValueError too, so the CLI prints the fix instead of a traceback)."""


def _aces():
    try:
        from aces import config, predicates, query
    except ImportError:
        raise MissingACES("ACES tasks need the es-aces package: pip install 'clin-jepa[aces]' && "
                          "pip install --no-deps es-aces==0.7.3 (see docs/meds.md, 'Installing es-aces')") from None
    return config, predicates, query


def task_name(config_path: str | Path) -> str:
    return Path(config_path).stem


def run_aces(config_path: str | Path, meds_root: str | Path) -> pl.DataFrame:
    """ACES on every data shard of a MEDS dataset -> (subject_id, prediction_time, boolean_value)."""
    config, predicates, query = _aces()
    from omegaconf import DictConfig  # installed with es-aces (hydra-core)

    config_path, meds_root = Path(config_path), Path(meds_root)
    if not config_path.exists():
        raise FileNotFoundError(f"ACES task config {config_path} not found")
    try:
        cfg = config.TaskExtractorConfig.load(config_path=config_path)
    except Exception as e:  # noqa: BLE001 - ACES raises several kinds on a bad config
        raise ValueError(f"{config_path} is not a valid ACES task config: {e}") from None
    if cfg.label_window is None or cfg.index_timestamp_window is None:
        raise ValueError(f"{config_path}: a binary task needs one window with `label:` and one with "
                         f"`index_timestamp:` (the prediction time)")
    shards = sorted((meds_root / "data").rglob("*.parquet"))
    outs = []
    aces_log = logging.getLogger("aces")
    level = aces_log.level
    aces_log.setLevel(logging.WARNING)  # ACES logs every step at INFO
    try:
        for shard in shards:  # a subject lives in one shard (MEDS), so shards are independent
            df = predicates.get_predicates_df(cfg, DictConfig({"path": str(shard), "standard": "meds"}))
            outs.append(query.query(cfg, df).select(
                "subject_id", pl.col("index_timestamp").cast(pl.Datetime("us")).alias("prediction_time"),
                (pl.col("label") > 0).alias("boolean_value")))
    finally:
        aces_log.setLevel(level)
    if not outs:
        raise ValueError(f"{meds_root} has no data/*.parquet shard")
    return pl.concat(outs).drop_nulls().sort("subject_id", "prediction_time")


def icu_admissions(meds_root: str | Path) -> pl.DataFrame:
    """(subject_id, intime, stay_id) of every ICU stay of a clin-jepa MEDS export."""
    return (pl.scan_parquet(Path(meds_root) / "data" / "**" / "*.parquet")
            .filter(pl.col("code") == meds_codes.ICU_ADMISSION)
            .select("subject_id", pl.col("time").alias("intime"), STAY_ID)
            .collect().sort("subject_id", "intime"))


def stay_labels(labels: pl.DataFrame, admissions: pl.DataFrame, task: str) -> tuple[pl.DataFrame, int]:
    """MEDS labels -> evaluation rows (stay_id, task, hour, label) and the number of labels
    with no ICU stay at or before their prediction time (dropped)."""
    j = (labels.sort("subject_id", "prediction_time")
         .join_asof(admissions, left_on="prediction_time", right_on="intime", by="subject_id",
                    strategy="backward", check_sortedness=False))  # both sorted above
    rows = (j.filter(pl.col(STAY_ID).is_not_null())
            .select(pl.col(STAY_ID).cast(pl.Int64), pl.lit(task).alias("task"),
                    ((pl.col("prediction_time") - pl.col("intime")).dt.total_microseconds() // 3_600_000_000)
                    .cast(pl.Int32).alias("hour"),
                    pl.col("boolean_value").cast(pl.Int8).alias("label")))
    return rows, j.height - rows.height


def aces_task_labels(config_paths: list[str | Path], meds_root: str | Path,
                     builtin: tuple[str, ...] = ()) -> pl.DataFrame:
    """Label rows (stay_id, task, hour, label) of every ACES config, for ``clin_jepa.evaluation.tasks``."""
    meds_root = Path(meds_root)
    if not is_export(meds_root):
        raise FileNotFoundError(f"{meds_root} is not a clin-jepa MEDS export: write one with "
                                f"`clin-jepa export-meds --run RUN --out {meds_root}`")
    names = [task_name(p) for p in config_paths]
    clash = sorted(set(names) & set(builtin)) + sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ValueError(f"ACES task names {clash} clash with a built-in task or with each other; "
                         f"rename the config files")
    if any(n.startswith("eep_") for n in names):
        raise ValueError("ACES task names may not start with 'eep_' (reserved for hourly early-event tasks)")
    admissions = icu_admissions(meds_root)
    parts = []
    for path, name in zip(config_paths, names):
        rows, dropped = stay_labels(run_aces(path, meds_root), admissions, name)
        log.info("ACES task %s: %d labels (%d positive), %d without an ICU stay dropped",
                 name, rows.height, int(rows["label"].sum()), dropped)
        parts.append(rows)
    return pl.concat(parts) if parts else pl.DataFrame(schema={STAY_ID: pl.Int64, "task": pl.String,
                                                               "hour": pl.Int32, "label": pl.Int8})
