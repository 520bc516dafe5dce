"""Display names and colours: the one place that turns code names into what a reader sees.

Every table, plot and headline of the report goes through :func:`method`, :func:`task`,
:func:`family`, :func:`space` and :func:`color`, so a method is called the same and drawn in
the same colour everywhere. A code name missing here is shown with underscores replaced
(and logged), never raw.
"""

from __future__ import annotations

from clin_jepa.utils import get_logger

log = get_logger(__name__)

# methods: risk-prediction models (tasks), rollout predictors (drift), representation spaces
METHODS = {
    "probe": "Clin-JEPA probe",  # probe on the frozen Clin-JEPA latents (METHOD 8)
    "probe_rollout": "Clin-JEPA rollout probe",  # probe on the predictor's rolled-out latents
    "probe_context": "Clin-JEPA context probe",  # probe on the predictor's contextual state c_k
    "probe_actions": "Clin-JEPA context + actions probe",  # [c_k, mean(a_0..a_k)]
    "model": "Clin-JEPA predictor",  # latent rollout (drift)
    "copy_forward": "Copy-forward",
    "linear": "Linear extrapolation",
    "hour_mean": "Hour mean (train)",  # patient-agnostic: train-split mean latent of each hour since admission
    "logreg": "Logistic regression",
    "lightgbm": "LightGBM",
    "lstm": "LSTM",
    "tcn": "TCN",
}

TASKS = {
    "mort_hosp": "Hospital mortality",
    "mort_icu": "ICU mortality",
    "mort_7d": "7-day mortality",
    "mort_14d": "14-day mortality",
    "mort_30d": "30-day mortality",
    "mort_90d": "90-day mortality",
    "los_7d": "Length of stay > 7 d",
    "sepsis": "Sepsis",
    "eep_circ_failure": "Circulatory failure",
    "eep_resp_failure": "Respiratory failure",
    "eep_aki": "Acute kidney injury",
    "eep_vaso_start": "Vasopressor start",
    "eep_vent_start": "Ventilation start",
    "eep_rrt_start": "RRT start",
    "eep_death_24h": "Death within 24 h",
}

FAMILIES = {"binary": "Per-stay outcomes (at 24 h)", "eep": "Early event prediction (hourly, next 12 h)",
            "extra": "Added tasks (ACES configs)"}
SPACES = {"latent": "Clin-JEPA latent", "raw": "Raw features (forward filled)",
          "perfect_encoder": "Perfect per-hour encoder"}  # the hour's exact values + charted flags: the data's bound
MEASURES = {"endpoint": "Endpoint", "path": "Path length"}  # distance from hour 0 to the window end / summed hourly steps
PROBE_KINDS = {"linear": "linear", "mlp": "MLP"}

# Okabe-Ito colour-blind-safe palette; one colour per method across every plot
COLORS = {
    "probe": "#0072B2", "model": "#0072B2", "latent": "#0072B2",
    "probe_rollout": "#56B4E9",
    "probe_context": "#332288",
    "probe_actions": "#88CCEE",
    "copy_forward": "#E69F00",
    "linear": "#999999",
    "hour_mean": "#CC79A7",
    "logreg": "#009E73",
    "lightgbm": "#D55E00",
    "lstm": "#CC79A7",
    "tcn": "#F0E442",
    "raw": "#E69F00",
    "perfect_encoder": "#000000",
}
LINESTYLES = {"copy_forward": "--", "linear": ":", "hour_mean": "-."}


def _lookup(table: dict, code: str, what: str) -> str:
    if code in table:
        return table[code]
    log.warning("no display name for %s %r (add it to evaluation/names.py)", what, code)
    return str(code).replace("_", " ")


def method(code: str) -> str:
    return _lookup(METHODS, code, "method")


def task(code: str) -> str:
    # a task added as a task file (configs/tasks/) or an ACES config is shown by its name, spaced
    return TASKS.get(code) or str(code).replace("_", " ")


def family(code: str) -> str:
    return _lookup(FAMILIES, code, "family")


def space(code: str) -> str:
    return _lookup(SPACES, code, "space")


def measure(code: str) -> str:
    return _lookup(MEASURES, code, "measure")


def color(code: str) -> str:
    return COLORS.get(code, "#000000")


def linestyle(code: str) -> str:
    return LINESTYLES.get(code, "-")


def ordered(codes) -> list[str]:
    """Method codes in the registry's order (the Clin-JEPA methods first, then baselines)."""
    rank = {c: i for i, c in enumerate(METHODS)}
    return sorted(codes, key=lambda c: rank.get(c, len(rank)))


def code_names() -> set[str]:
    """Every code name with a display name (tests check none leaks into a report)."""
    return set(METHODS) | set(TASKS) | set(SPACES)
