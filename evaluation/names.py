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
    "encoder_latent": "Decoded encoder latent",  # rollout decoding: the decoders on the target hour's own encoder latent
    "lvcf": "Last value carried forward",
    "ridge": "Ridge",
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
DECODE_GROUPS = {"vitals": "Vital signs", "labs": "Laboratory values", "sofa": "SOFA score"}
VARIABLES = {  # decoded variables (clin_jepa.models.decoders.DECODE_VARIABLES); units from the feature registry
    "heart_rate": "Heart rate", "sbp": "Systolic BP", "dbp": "Diastolic BP", "mbp": "Mean arterial pressure",
    "resp_rate": "Respiratory rate", "spo2": "SpO2", "temperature": "Temperature", "ph": "pH", "po2": "PaO2",
    "pco2": "PaCO2", "lactate": "Lactate", "sodium": "Sodium", "potassium": "Potassium", "chloride": "Chloride",
    "bicarbonate": "Bicarbonate", "bun": "Urea nitrogen", "creatinine": "Creatinine", "glucose": "Glucose",
    "bilirubin": "Bilirubin", "hemoglobin": "Haemoglobin", "platelets": "Platelets", "wbc": "White cells",
    "inr": "INR", "sofa": "SOFA",
}

# Okabe-Ito colour-blind-safe palette; one colour per method across every plot
COLORS = {
    "probe": "#0072B2", "model": "#0072B2", "latent": "#0072B2",
    "probe_rollout": "#56B4E9",
    "probe_context": "#332288",
    "probe_actions": "#882255",  # Tol wine: the sky blue of probe_rollout was too close to its light cyan
    "copy_forward": "#E69F00",
    "linear": "#999999",
    "hour_mean": "#CC79A7",
    "logreg": "#009E73",
    "lightgbm": "#D55E00",
    "encoder_latent": "#000000",
    "lvcf": "#E69F00",
    "ridge": "#009E73",
    "lstm": "#CC79A7",
    "tcn": "#F0E442",
    "raw": "#E69F00",
    "perfect_encoder": "#000000",
}
LINESTYLES = {"copy_forward": "--", "linear": ":", "hour_mean": "-.", "encoder_latent": ":", "lvcf": "--", "ridge": "-."}


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


def decode_group(code: str) -> str:
    return _lookup(DECODE_GROUPS, code, "variable group")


def variable(code: str, unit: bool = True) -> str:
    """A decoded variable's name, with its unit from the feature registry (e.g. 'Lactate (mmol/L)')."""
    from clin_jepa.data.features import OBS_BY_NAME

    name = _lookup(VARIABLES, code, "variable")
    u = OBS_BY_NAME[code].unit if code in OBS_BY_NAME else ("points" if code == "sofa" else "")
    return f"{name} ({u})" if unit and u else name


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
    return set(METHODS) | set(TASKS) | set(SPACES) | set(VARIABLES)
