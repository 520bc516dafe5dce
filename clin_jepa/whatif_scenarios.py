"""What-if scenario files (docs/whatif.md): treatments to hold from hour K, validated with errors
that name the problem and the fix, turned into the project's own action texts and, on the
embedded default, into the simulator's treatments (clin_jepa.data.synth_replay).

    # configs/scenarios/vasopressor.yaml
    description: Norepinephrine 0.1 mcg/kg/min against no vasopressor, from hour K
    scenarios:
      factual: factual                 # the actions that were really given
      no_vasopressor: {vasopressors: off}
      norepinephrine: {norepinephrine: 0.1}             # mcg/kg/min, from hour K on
      ventilation_k2: {ventilation: {value: on, from: 2}}  # from hour K+2
    contrasts:                         # predicted effect = first minus second
      - [norepinephrine, no_vasopressor]

A scenario changes only the treatments it names; every other treatment keeps its real value
hour by hour. Naming any vasopressor (or ``vasopressors: off``) sets the whole vasopressor
regimen: the others are 0. ``from``/``until`` are hours after K (until exclusive; default from
0, until the end of the rollout).

Timing: the predictor reads the pair (s_j, a_j) to predict hour j+1, so a treatment "from hour
K" is the action input of hours K-1, K, ...: the first predicted hour (K) is the first one a
scenario can change; in the simulator the treatment runs from hour K on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from clin_jepa.data.features import ACTION_COLUMNS, VASOPRESSORS
from clin_jepa.data.synth_replay import Override
from clin_jepa.utils import CONFIG_DIR

FACTUAL = "factual"
VASOPRESSOR_NAMES = tuple(v.name for v in VASOPRESSORS)
NEE_FACTOR = {v.name: v.nee_factor for v in VASOPRESSORS}
SWITCHES = ("ventilation", "rrt", "antibiotics")  # on/off treatments
DOSES = {**{v.name: v.unit for v in VASOPRESSORS}, "fluid_bolus_ml": "mL per hour"}
KEYS = (*VASOPRESSOR_NAMES, "vasopressors", *SWITCHES, "fluid_bolus_ml")
# simulator treatment of each action (synth_world.POLICY_ACTIONS); first-line drugs add up as NEE
SIM_FIRST_LINE = ("norepinephrine", "phenylephrine", "dopamine")
SIM_SWITCH = {"ventilation": "vent", "rrt": "rrt", "antibiotics": "abx"}


@dataclass(frozen=True)
class Setting:
    """One treatment held at ``value`` on hours [K + start, K + end) (end None = to the end)."""

    action: str  # a KEYS name
    value: float
    start: int = 0
    end: int | None = None

    def active(self, rel: np.ndarray) -> np.ndarray:
        """(n,) bool: hours ``rel`` (hours after K) in the setting's window."""
        return (rel >= self.start) & ((rel < self.end) if self.end is not None else True)


@dataclass(frozen=True)
class ScenarioSet:
    """A parsed scenario file."""

    name: str
    description: str
    scenarios: dict[str, tuple[Setting, ...]]  # name -> settings (factual: ())
    contrasts: tuple[tuple[str, str], ...]  # (A, B): effect = A - B


def _fail(where: str, problem: str, fix: str):
    raise ValueError(f"{where}: {problem}; {fix}")


def _onoff(where: str, v) -> float:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, str) and v.lower() in ("on", "off"):
        return float(v.lower() == "on")
    if v in (0, 1):
        return float(v)
    _fail(where, f"{v!r} is not on/off", "write on or off")


def _setting(where: str, key: str, spec) -> Setting:
    if key not in KEYS:
        _fail(where, f"unknown treatment {key!r}", f"use one of {', '.join(KEYS)}")
    start, end = 0, None
    if isinstance(spec, dict):
        bad = sorted(set(spec) - {"value", "from", "until"})
        if bad or "value" not in spec:
            _fail(where, f"{key} has keys {sorted(spec)}", "write {value: ..., from: HOURS, until: HOURS} "
                  "(from/until optional, hours after K)")
        start, end = spec.get("from", 0), spec.get("until")
        spec = spec["value"]
        for name, h in (("from", start), ("until", end)):
            if h is not None and (not isinstance(h, int) or isinstance(h, bool) or h < 0):
                _fail(where, f"{key}.{name}={h!r}", "give whole hours after K, >= 0")
        if end is not None and end <= start:
            _fail(where, f"{key}: until={end} <= from={start}", "until must be after from")
    if key in SWITCHES or key == "vasopressors":
        value = _onoff(f"{where}.{key}", spec)
        if key == "vasopressors" and value:
            _fail(f"{where}.vasopressors", "'on' does not say which drug or dose",
                  "name the drug and dose instead (e.g. norepinephrine: 0.1), or write vasopressors: off")
    else:
        if spec is False or (isinstance(spec, str) and spec.lower() == "off"):  # YAML reads off as false
            spec = 0.0
        if isinstance(spec, bool) or not isinstance(spec, (int, float)) or not np.isfinite(spec) or spec < 0:
            _fail(f"{where}.{key}", f"dose {spec!r} is not a number >= 0", f"give the dose in {DOSES[key]}")
        value = float(spec)
    return Setting(key, value, int(start), None if end is None else int(end))


def parse_scenarios(data: dict, name: str = "scenarios") -> ScenarioSet:
    """A scenario mapping (as read from YAML) -> ScenarioSet, or a ValueError naming the fix."""
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), dict):
        _fail(name, "no 'scenarios:' mapping", "see configs/scenarios/vasopressor.yaml for the format")
    bad = sorted(set(data) - {"description", "scenarios", "contrasts"})
    if bad:
        _fail(name, f"unknown top-level keys {bad}", "use description, scenarios, contrasts")
    scen: dict[str, tuple[Setting, ...]] = {}
    for sname, spec in data["scenarios"].items():
        where = f"{name}: scenario {sname!r}"
        if spec == FACTUAL or spec is None or spec == {}:
            scen[str(sname)] = ()
            continue
        if not isinstance(spec, dict):
            _fail(where, f"{spec!r} is not a mapping of treatments", "write e.g. {norepinephrine: 0.1} or factual")
        scen[str(sname)] = tuple(_setting(where, k, v) for k, v in spec.items())
    if len(scen) < 2:
        _fail(name, f"{len(scen)} scenario(s)", "declare at least two scenarios to compare")
    raw = data.get("contrasts")
    if raw is None:  # default: every scenario against the first
        first = next(iter(scen))
        contrasts = tuple((s, first) for s in scen if s != first)
    else:
        if not isinstance(raw, list) or not all(isinstance(c, list) and len(c) == 2 for c in raw):
            _fail(name, "contrasts is not a list of [A, B] pairs", "write contrasts: [[A, B], ...] (effect = A - B)")
        contrasts = tuple((str(a), str(b)) for a, b in raw)
        for a, b in contrasts:
            for s in (a, b):
                if s not in scen:
                    _fail(name, f"contrast names unknown scenario {s!r}", f"use one of {', '.join(scen)}")
            if a == b:
                _fail(name, f"contrast [{a}, {b}] compares a scenario with itself", "name two different scenarios")
    return ScenarioSet(name, str(data.get("description", "")), scen, contrasts)


def load_scenarios(path) -> ScenarioSet:
    """Read and validate a scenario YAML file (a path, or a name under configs/scenarios/)."""
    p = Path(path)
    shipped = CONFIG_DIR / "scenarios" / f"{path}.yaml"
    if not p.is_file() and shipped.is_file():
        p = shipped
    if not p.is_file():
        names = ", ".join(sorted(f.stem for f in (CONFIG_DIR / "scenarios").glob("*.yaml")))
        raise FileNotFoundError(f"scenario file {p} not found; pass a YAML file or a shipped name ({names})")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{p} is not valid YAML ({e}); fix the syntax (see configs/scenarios/)") from None
    return parse_scenarios(data, p.stem)


# --------------------------------------------------------------------------- #
# applying a scenario
# --------------------------------------------------------------------------- #


def apply_to_actions(actions: pl.DataFrame, settings: tuple[Setting, ...], from_hour: int) -> pl.DataFrame:
    """hourly action columns (stay_id, hour, ACTION_COLUMNS) -> the same rows under ``settings``.

    Row ``hour`` is the predictor's action input a_hour, which shapes hour+1: a setting from
    hour K + s changes rows with hour + 1 - K >= s (module docstring)."""
    rel = pl.col("hour") + 1 - from_hour
    out = actions
    for s in settings:
        window = (rel >= s.start) & ((rel < s.end) if s.end is not None else pl.lit(True))
        if s.action in VASOPRESSOR_NAMES or s.action == "vasopressors":
            sets = {v: (s.value if v == s.action else 0.0) for v in VASOPRESSOR_NAMES}
        else:
            sets = {s.action: s.value}
        out = out.with_columns([pl.when(window).then(pl.lit(float(v))).otherwise(pl.col(c).cast(pl.Float64)).alias(c)
                                for c, v in sets.items()])
    nee = sum(pl.col(v).fill_null(0.0) * NEE_FACTOR[v] for v in VASOPRESSOR_NAMES)
    touched = any(s.action in VASOPRESSOR_NAMES or s.action == "vasopressors" for s in settings)
    return out.with_columns(nee.alias("nee")) if touched else out


def simulator_overrides(settings: tuple[Setting, ...]) -> tuple[Override, ...]:
    """The scenario in the simulator's treatments; a clear error for what it cannot simulate."""
    out: list[Override] = []
    for s in settings:
        if s.action in ("dobutamine", "fluid_bolus_ml"):
            raise ValueError(f"the synthetic simulator has no {s.action} treatment to replay; drop it from the "
                             "scenario to score it against the simulator")
        if s.action in SIM_SWITCH:
            out.append(Override(SIM_SWITCH[s.action], s.value, s.start, s.end))
            continue
        # a vasopressor regimen: first-line drugs add up in NEE, vasopressin and epinephrine apart
        ne1 = s.value * NEE_FACTOR[s.action] if s.action in SIM_FIRST_LINE else 0.0
        out += [Override("ne1", ne1, s.start, s.end),
                Override("vaso", s.value if s.action == "vasopressin" else 0.0, s.start, s.end),
                Override("epi", s.value if s.action == "epinephrine" else 0.0, s.start, s.end)]
    return tuple(out)


__all__ = ["ACTION_COLUMNS", "FACTUAL", "ScenarioSet", "Setting", "apply_to_actions", "load_scenarios",
           "parse_scenarios", "simulator_overrides"]
