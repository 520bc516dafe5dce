"""Tasks as data: the task files (configs/tasks/) drive the label SQL and the evaluation, so
a task added as one file gets labels, probes and baselines; bad files name the fix."""

from __future__ import annotations

import importlib.util
import json
import shutil

import polars as pl
import pytest
from clin_jepa.evaluation import tasks

from clin_jepa.config import DataConfig
from clin_jepa.data.task_defs import TASKS_DIR, load_tasks, parse_task

LOS_2D = """family: binary
anchor: icu_intime
prediction_hour: data.prediction_hour
outcome: los_over_hours
hours: 48
exclusions: [left_icu]
"""
VENT_GAP = """family: eep
event: ventilation
horizon_hours: 6
gap_hours: 2
exclusions: [event_at_admission]
"""
# ACES: still in the ICU at 24 h, discharged from the ICU by 48 h
ACES_DISCHARGE_48H = """predicates:
  icu_admission: {code: ICU_ADMISSION}
  icu_discharge: {code: ICU_DISCHARGE}
trigger: icu_admission
windows:
  input:
    start: trigger
    end: start + 24h
    start_inclusive: True
    end_inclusive: False
    has:
      icu_discharge: (None, 0)
    index_timestamp: end
  target:
    start: input.end
    end: start + 24h
    start_inclusive: True
    end_inclusive: True
    label: icu_discharge
"""


def test_default_task_files_are_the_fifteen_tasks_in_report_order():
    defs = load_tasks()
    assert tasks.BINARY_TASKS == ("mort_hosp", "mort_icu", "mort_7d", "mort_14d", "mort_30d", "mort_90d",
                                  "los_7d", "sepsis")
    assert tasks.EEP_TASKS == ("eep_circ_failure", "eep_resp_failure", "eep_aki", "eep_vaso_start",
                               "eep_vent_start", "eep_rrt_start", "eep_death_24h")
    by = {d.name: d for d in defs}
    assert by["mort_icu"].prediction_hour == 24 and by["eep_aki"].horizon == 12
    assert load_tasks(DataConfig(prediction_hour=36, eep_horizon=6))[1].prediction_hour == 36
    assert by["eep_death_24h"].horizon == 24 and by["eep_aki"].exclusions == ("esrd", "event_at_admission")


@pytest.mark.parametrize("name, text, match", [
    ("x.yaml", "family: other\n", "family must be one of"),
    ("eep_x.yaml", "family: binary\noutcome: hospital_death\n", "named eep_"),
    ("x.yaml", "family: binary\noutcome: death_within_days\n", r"needs \['days'\]"),
    ("x.yaml", "family: binary\noutcome: hospital_death\nexclusions: [esrd]\n", "do not apply"),
    ("eep_x.yaml", "family: eep\nevent: stroke\nhorizon_hours: 6\n", "event must be one of"),
    ("eep_x.yaml", "family: eep\nevent: rrt\nhorizon_hours: data.nope\n", "not a data config field"),
    ("x.yaml", "family: binary\noutcome: hospital_death\nhorizon: 3\n", "unknown keys"),
])
def test_bad_task_files_name_the_fix(tmp_path, name, text, match):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        parse_task(p, DataConfig())


@pytest.fixture(scope="module")
def extra_tasks_data(synth_mimic_dir, tmp_path_factory):
    """The synthetic extraction with two more task files: los_2d and eep_vent_gap (a 2-h gap)."""
    from clin_jepa.data.extract import run_extraction

    root = tmp_path_factory.mktemp("extra_tasks")
    tdir = root / "tasks"
    shutil.copytree(TASKS_DIR, tdir)
    (tdir / "los_2d.yaml").write_text(LOS_2D)
    (tdir / "eep_vent_gap.yaml").write_text(VENT_GAP)
    cfg = DataConfig(duckdb_memory_limit="1GB", duckdb_threads=1, tasks_dir=str(tdir))
    run_extraction(synth_mimic_dir, root / "data", cfg)
    return root / "data", tdir


def test_a_task_file_adds_its_labels(extra_tasks_data, extracted_data_dir):
    data, _ = extra_tasks_data
    labels = pl.read_parquet(data / "labels.parquet")
    # the 15 built-in tasks are unchanged by the extra files
    base = pl.read_parquet(extracted_data_dir / "labels.parquet")
    assert labels.filter(pl.col("task").is_in(base["task"].unique().to_list())).sort(labels.columns) \
        .equals(base.sort(base.columns))
    cohort = pl.read_parquet(data / "cohort.parquet")
    los = labels.filter(pl.col("task") == "los_2d").join(cohort, on="stay_id")
    assert los.height == cohort.filter(pl.col("los_hours") >= 24).height > 20
    assert (los["label"] == (los["los_hours"] > 48).cast(pl.Int8)).all() and 0 < los["label"].sum() < los.height
    vent = labels.filter(pl.col("task") == "eep_vent_gap").join(
        pl.read_parquet(data / "events.parquet").filter(pl.col("event") == "ventilation"), on="stay_id", how="left")
    onset = vent["onset_hour"].fill_null(10**6)
    assert (vent["hour"] < onset - 2).all()  # no row once the onset is within the gap
    assert (vent["label"] == ((onset > vent["hour"] + 2) & (onset <= vent["hour"] + 8)).cast(pl.Int8)).all()
    assert vent["label"].sum() > 0
    att = pl.read_parquet(data / "task_attrition.parquet")
    assert {"los_2d", "eep_vent_gap"} <= set(att["task"].to_list())


TINY = """phases:
  - {name: warmup, encoder: frozen, targets: online, ema: "off", rollout: native, ends: {steps: 2}}
  - {name: finalize, encoder: frozen, targets: online, ema: "off", rollout: native, ends: {steps: 2}}
"""


@pytest.mark.slow
def test_new_task_file_and_aces_task_get_probe_and_baselines(extra_tasks_data, synth_mimic_dir, tmp_path):
    from clin_jepa.pipelines.cli import main as cli

    data, tdir = extra_tasks_data
    run = tmp_path / "run"
    (tmp_path / "tiny.yaml").write_text(TINY)
    sets = [f"data.data_dir={data}", f"data.tasks_dir={tdir}", f"data.mimic_dir={synth_mimic_dir}",
            "data.window_hours=24", "data.duckdb_threads=1", "sft.steps=2", f"train.curriculum={tmp_path / 'tiny.yaml'}",
            "optim.batch_size=4", "train.val_stays=4", "eval.bootstrap=20", "eval.probe_epochs=2",
            "eval.seq_epochs=1", "eval.max_eep_hours=4", "eval.min_positives=1", "eval.baselines=[logreg,tcn]"]
    args = [a for s in sets for a in ("--set", s)]
    assert cli(["sft", "--run", str(run), *args]) == 0
    assert cli(["pretrain", "--run", str(run)]) == 0
    assert cli(["embed", "--run", str(run)]) == 0
    extra = []
    if importlib.util.find_spec("aces"):  # es-aces is optional (pyproject [aces])
        assert cli(["export-meds", "--run", str(run), "--out", str(run / "meds")]) == 0
        (tmp_path / "aces_discharge_48h.yaml").write_text(ACES_DISCHARGE_48H)
        extra = ["--aces-task", str(tmp_path / "aces_discharge_48h.yaml")]
    assert cli(["evaluate", "--run", str(run), "--only", "tasks", *extra]) == 0
    res = json.loads((run / "eval" / "tasks.json").read_text())
    assert res["tasks"]["eep_vent_gap"]["family"] == "eep"  # few positives in 4 h per stay: status says so
    new = {"los_2d": "binary"} | ({"aces_discharge_48h": "extra"} if extra else {})
    for task, family in new.items():
        t = res["tasks"][task]
        assert t["family"] == family and t["status"] == "ok", (task, t["status"])
        assert set(t["methods"]) == {"probe", "probe_context", "probe_actions", "probe_rollout", "logreg", "tcn"}
        assert 0.0 <= t["methods"]["probe"]["auroc"]["value"] <= 1.0
    assert res["families"]["binary"]["n_tasks"] == 9 and res["families"]["eep"]["n_tasks"] == 8
    from clin_jepa.evaluation import names
    from clin_jepa.evaluation.report_tables import family_table, task_table

    records, views = task_table(res)
    reported = {(r["task"], r.get("method")) for r in records if r["status"] == "ok"}  # rows of the report
    assert {(names.task("los_2d"), names.method(m)) for m in ("probe", "logreg", "tcn")} <= reported
    if extra:  # the ACES task gets its own family's table rows
        assert (names.task("aces_discharge_48h"), names.method("probe")) in reported
        assert any(v.label == "tab:auroc-extra" for v in views)
    assert any(r["family"] == names.family("extra") for r in family_table(res)[0]) == bool(extra)


def test_report_order_follows_the_result_families_and_tasks():
    """Reports and plots list the families and tasks a tasks.json holds: the default task files'
    order first, then tasks of a run's own task files and ACES tasks (family 'extra')."""
    from clin_jepa.evaluation.tasks import FAMILIES, result_families, result_tasks

    result = {"tasks": {"los_2d": {"family": "binary"}, FAMILIES["binary"][1]: {"family": "binary"},
                        FAMILIES["binary"][0]: {"family": "binary"}, "aces_x": {"family": "extra"},
                        FAMILIES["eep"][0]: {"family": "eep"}}}
    assert result_families(result) == ["binary", "eep", "extra"]
    assert result_tasks(result, "binary") == [FAMILIES["binary"][0], FAMILIES["binary"][1], "los_2d"]
    assert result_tasks(result, "extra") == ["aces_x"]
