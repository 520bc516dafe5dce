"""Prediction tasks as data: one YAML file per task under ``configs/tasks/`` (or
``data.tasks_dir``), read by the label SQL (as the DuckDB table ``registry_tasks``) and by
the evaluation (task names and families). Adding a task is adding one file; the format is
documented in docs/labels.md ("Task files").

The clinical rules themselves (what an outcome, an event or an exclusion means) live in
sql/labels/ (task_cohort.sql, labels.sql); a file only chooses among them and sets the
hours. Values given as ``data.prediction_hour`` / ``data.eep_horizon`` take the config's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from clin_jepa.utils import CONFIG_DIR

TASKS_DIR = CONFIG_DIR / "tasks"
FAMILIES = ("binary", "eep")
# per-stay outcome kinds (sql/labels/labels.sql) -> the file keys each one needs
OUTCOMES = {"hospital_death": (), "event": ("event",), "event_from_prediction_hour": ("event",),
            "death_within_days": ("days",), "los_over_hours": ("hours",)}
# exclusion rules (sql/labels/task_cohort.sql), per family, in the order they are applied
EXCLUSIONS = {"binary": ("left_icu", "died", "event_before"), "eep": ("esrd", "event_at_admission")}
EVENTS = ("death", "vasopressor", "ventilation", "rrt", "aki2", "circ_failure", "resp_failure", "sepsis")
EVENT_LABELS = {"sepsis": "Sepsis-3"}  # how an exclusion message names the event
KEYS = {"family", "anchor", "order", "description", "prediction_hour", "outcome", "event", "days", "hours",
        "horizon_hours", "gap_hours", "exclusions"}


@dataclass(frozen=True)
class TaskDef:
    name: str
    family: str  # 'binary' (one label per stay at prediction_hour) | 'eep' (one per stable hour)
    order: int  # position in reports
    event: str | None  # events.parquet event (eep: the predicted onset; binary: outcome/exclusion event)
    outcome: str | None  # binary: a key of OUTCOMES
    prediction_hour: int | None  # binary, hours since ICU intime
    days: int | None  # death_within_days
    hours: float | None  # los_over_hours
    horizon: int | None  # eep, hours
    gap: int  # eep, hours
    exclusions: tuple[str, ...]


def _hours(value, cfg, path: Path, key: str) -> int:
    if isinstance(value, str) and value.startswith("data."):
        if cfg is None or not hasattr(cfg, value[5:]):
            raise ValueError(f"{path}: {key}: {value!r} is not a data config field (e.g. data.prediction_hour)")
        value = getattr(cfg, value[5:])
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{path}: {key} must be a whole number of hours >= 0 or data.<field>, got {value!r}")
    return value


def parse_task(path: Path, cfg=None) -> TaskDef:
    """One task file -> TaskDef, or a ValueError naming the file, the key and the fix."""
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML ({e})") from None
    name = path.stem
    unknown = sorted(set(d) - KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; allowed: {sorted(KEYS)}")
    family = d.get("family")
    if family not in FAMILIES:
        raise ValueError(f"{path}: family must be one of {FAMILIES}, got {family!r}")
    if (family == "eep") != name.startswith("eep_"):
        raise ValueError(f"{path}: early-event tasks (family eep) and only they are named eep_*; rename the file")
    if d.get("anchor", "icu_intime") != "icu_intime":
        raise ValueError(f"{path}: anchor must be icu_intime (hours since ICU admission)")
    event = d.get("event")
    if event is not None and event not in EVENTS:
        raise ValueError(f"{path}: event must be one of {EVENTS} (sql/labels/events.sql), got {event!r}")
    exclusions = tuple(d.get("exclusions") or ())
    bad = [e for e in exclusions if e not in EXCLUSIONS[family]]
    if bad:
        raise ValueError(f"{path}: exclusions {bad} do not apply to family {family}; choose from {EXCLUSIONS[family]}")
    if ("event_before" in exclusions or "event_at_admission" in exclusions) and event is None:
        raise ValueError(f"{path}: an event exclusion needs `event:`")
    outcome = prediction_hour = days = hours = horizon = None
    gap = 0
    if family == "binary":
        outcome = d.get("outcome")
        if outcome not in OUTCOMES:
            raise ValueError(f"{path}: outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
        missing = [k for k in OUTCOMES[outcome] if d.get(k) is None]
        if missing:
            raise ValueError(f"{path}: outcome {outcome} needs {missing}")
        prediction_hour = _hours(d.get("prediction_hour", "data.prediction_hour"), cfg, path, "prediction_hour")
        if prediction_hour < 1:
            raise ValueError(f"{path}: prediction_hour must be >= 1")
        days = _hours(d["days"], None, path, "days") if outcome == "death_within_days" else None
        hours = float(d["hours"]) if outcome == "los_over_hours" else None
    else:
        if event is None:
            raise ValueError(f"{path}: an early-event task needs `event:` (one of {EVENTS})")
        horizon = _hours(d.get("horizon_hours"), cfg, path, "horizon_hours")
        gap = _hours(d.get("gap_hours", 0), cfg, path, "gap_hours")
        if horizon < 1:
            raise ValueError(f"{path}: horizon_hours must be >= 1")
    return TaskDef(name, family, int(d.get("order", 1000)), event, outcome, prediction_hour, days, hours,
                   horizon, gap, exclusions)


def tasks_dir_of(cfg=None) -> Path:
    return Path(cfg.tasks_dir) if cfg is not None and getattr(cfg, "tasks_dir", "") else TASKS_DIR


def load_tasks(cfg=None) -> tuple[TaskDef, ...]:
    """Every task file of ``cfg.tasks_dir`` (default configs/tasks), ordered by family, order, name."""
    if cfg is None:
        from clin_jepa.config import DataConfig

        cfg = DataConfig()  # default hours for data.<field> values
    d = tasks_dir_of(cfg)
    files = sorted(d.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no task files (*.yaml) in {d}; set data.tasks_dir to a folder of task files "
                                f"(docs/labels.md) or leave it empty for configs/tasks")
    defs = [parse_task(p, cfg) for p in files]
    return tuple(sorted(defs, key=lambda t: (FAMILIES.index(t.family), t.order, t.name)))


def families(defs: tuple[TaskDef, ...]) -> dict[str, tuple[str, ...]]:
    return {f: tuple(t.name for t in defs if t.family == f) for f in FAMILIES}


def register_tasks(con, defs: tuple[TaskDef, ...]) -> None:
    """The DuckDB table ``registry_tasks`` the label SQL joins on (one row per task)."""
    from clin_jepa.data.sources import _table

    flags = [e for fam in FAMILIES for e in EXCLUSIONS[fam]]
    _table(con, "registry_tasks",
           {"task": "VARCHAR", "family": "VARCHAR", "event": "VARCHAR", "event_label": "VARCHAR",
            "outcome": "VARCHAR", "prediction_hour": "INTEGER", "days": "INTEGER", "hours": "DOUBLE",
            "horizon": "INTEGER", "gap": "INTEGER", **{f"ex_{e}": "BOOLEAN" for e in flags}},
           [(t.name, t.family, t.event, EVENT_LABELS.get(t.event or "", t.event), t.outcome, t.prediction_hour,
             t.days, t.hours, t.horizon, t.gap, *[e in t.exclusions for e in flags]) for t in defs])
