"""ACES task configs on the MEDS export: the shipped ICU-mortality config reproduces the
built-in task mort_icu label for label; bad configs and names fail with the fix."""

from __future__ import annotations

import polars as pl
import pytest

from clin_jepa.utils import REPO_ROOT

pytest.importorskip("aces", reason="es-aces is not installed: pip install 'clin-jepa[aces]' && pip install --no-deps es-aces==0.7.3")

from clin_jepa.evaluation import aces_tasks  # noqa: E402
from clin_jepa.evaluation.tasks import BINARY_TASKS, EEP_TASKS  # noqa: E402

MORT_ICU = REPO_ROOT / "configs" / "aces" / "mort_icu.yaml"


def test_aces_mort_icu_gives_the_builtin_labels(meds_export_dir, extracted_data_dir):
    aces = aces_tasks.run_aces(MORT_ICU, meds_export_dir)
    builtin = pl.read_parquet(meds_export_dir / "task_labels" / "mort_icu.parquet")
    assert aces.height == builtin.height > 20 and aces["boolean_value"].sum() >= 3
    assert aces.sort("subject_id", "prediction_time").equals(builtin.sort("subject_id", "prediction_time"))
    # and mapped back to the evaluation's rows: the same stays, hours and labels as labels.parquet
    rows = aces_tasks.aces_task_labels([MORT_ICU], meds_export_dir)  # task name = file stem: clash below
    want = pl.read_parquet(extracted_data_dir / "labels.parquet").filter(pl.col("task") == "mort_icu")
    assert rows.select("stay_id", "hour", "label").sort("stay_id").equals(
        want.select("stay_id", "hour", pl.col("label").cast(pl.Int8)).sort("stay_id"))


def test_aces_names_and_configs_are_checked(meds_export_dir, tmp_path):
    with pytest.raises(ValueError, match="clash with a built-in task"):
        aces_tasks.aces_task_labels([MORT_ICU], meds_export_dir, builtin=BINARY_TASKS + EEP_TASKS)
    bad = tmp_path / "no_label.yaml"
    bad.write_text(MORT_ICU.read_text().replace("    label: death\n", ""))
    with pytest.raises(ValueError, match="label"):
        aces_tasks.run_aces(bad, meds_export_dir)
    with pytest.raises(FileNotFoundError, match="export-meds"):
        aces_tasks.aces_task_labels([MORT_ICU], tmp_path)
