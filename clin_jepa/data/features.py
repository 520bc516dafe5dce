"""The feature registry: the ONE table-driven place that declares every observation
and action clin-jepa extracts from MIMIC-IV (itemids, source table, unit, valid range,
hourly aggregation, text label).

Both the synthetic generator (``synth.py``) and the DuckDB extraction (``sql/``) read
this registry; the extraction runner registers :func:`item_table` as the DuckDB table
``registry_items`` so the SQL joins on it instead of repeating itemids.

Valid ranges follow mimic-code's ``measurement`` concepts: a value outside
``[lo, hi]`` (after unit conversion) becomes NULL before hourly aggregation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clin_jepa.utils import SQL_DIR

# --------------------------------------------------------------------------- #
# Observations (the state)
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Item:
    """One MIMIC-IV itemid feeding a feature. value_converted = valuenum * mul + add,
    except ``frac_to_pct`` items where values <= 1 are fractions (x100)."""

    itemid: int
    label: str  # MIMIC-IV d_items / d_labitems label, for readability
    unit: str  # unit as charted in MIMIC-IV
    mul: float = 1.0
    add: float = 0.0
    frac_to_pct: bool = False
    sign: float = 1.0  # urine: GU irrigant volume in (227488) counts negative


@dataclass(frozen=True)
class Observation:
    name: str  # column name in hourly.parquet
    source: str  # 'chartevents' | 'labevents' | 'outputevents'
    items: tuple[Item, ...]
    unit: str  # unit after conversion (what the column holds)
    lo: float  # valid range, inclusive, in `unit`
    hi: float
    agg: str  # hourly aggregation: 'mean' | 'last' | 'sum' | 'min'
    group: str  # text group, in clinical order (see GROUP_ORDER)
    text_label: str  # short label used in the state text
    decimals: int = 0  # compact formatting hint for texts

    @property
    def itemids(self) -> tuple[int, ...]:
        return tuple(i.itemid for i in self.items)


def _i(itemid: int, label: str, unit: str, **kw) -> Item:
    return Item(itemid, label, unit, **kw)


F_TO_C_MUL = 1 / 1.8
F_TO_C_ADD = -32 / 1.8

OBSERVATIONS: tuple[Observation, ...] = (
    # --- vitals (chartevents, hourly mean) -------------------------------- #
    Observation("heart_rate", "chartevents", (_i(220045, "Heart Rate", "bpm"),),
                "bpm", 1, 299, "mean", "vitals", "HR"),
    Observation("sbp", "chartevents",
                (_i(220179, "Non Invasive Blood Pressure systolic", "mmHg"),
                 _i(220050, "Arterial Blood Pressure systolic", "mmHg"),
                 _i(225309, "ART BP Systolic", "mmHg")),
                "mmHg", 1, 399, "mean", "vitals", "SBP"),
    Observation("dbp", "chartevents",
                (_i(220180, "Non Invasive Blood Pressure diastolic", "mmHg"),
                 _i(220051, "Arterial Blood Pressure diastolic", "mmHg"),
                 _i(225310, "ART BP Diastolic", "mmHg")),
                "mmHg", 1, 299, "mean", "vitals", "DBP"),
    Observation("mbp", "chartevents",
                (_i(220181, "Non Invasive Blood Pressure mean", "mmHg"),
                 _i(220052, "Arterial Blood Pressure mean", "mmHg"),
                 _i(225312, "ART BP Mean", "mmHg")),
                "mmHg", 1, 299, "mean", "vitals", "MAP"),
    Observation("resp_rate", "chartevents",
                (_i(220210, "Respiratory Rate", "insp/min"),
                 _i(224690, "Respiratory Rate (Total)", "insp/min")),
                "/min", 1, 69, "mean", "vitals", "RR"),
    Observation("spo2", "chartevents", (_i(220277, "O2 saturation pulseoxymetry", "%"),),
                "%", 1, 100, "mean", "vitals", "SpO2"),
    Observation("temperature", "chartevents",
                (_i(223762, "Temperature Celsius", "°C"),
                 _i(223761, "Temperature Fahrenheit", "°F", mul=F_TO_C_MUL, add=F_TO_C_ADD)),
                "C", 25, 45, "mean", "vitals", "Temp", decimals=1),
    Observation("fio2", "chartevents", (_i(223835, "Inspired O2 Fraction", "%", frac_to_pct=True),),
                "%", 21, 100, "mean", "blood_gas", "FiO2"),
    # --- blood gas (labevents, last value in the hour) --------------------- #
    Observation("ph", "labevents", (_i(50820, "pH", "units"),),
                "", 6.5, 8.0, "last", "blood_gas", "pH", decimals=2),
    Observation("po2", "labevents", (_i(50821, "pO2", "mm Hg"),),
                "mmHg", 1, 800, "last", "blood_gas", "pO2"),
    Observation("pco2", "labevents", (_i(50818, "pCO2", "mm Hg"),),
                "mmHg", 1, 200, "last", "blood_gas", "pCO2"),
    Observation("lactate", "labevents", (_i(50813, "Lactate", "mmol/L"),),
                "mmol/L", 0.1, 50, "last", "blood_gas", "Lactate", decimals=1),
    # --- chemistry ---------------------------------------------------------- #
    Observation("sodium", "labevents", (_i(50983, "Sodium", "mEq/L"),),
                "mEq/L", 90, 200, "last", "chemistry", "Na"),
    Observation("potassium", "labevents", (_i(50971, "Potassium", "mEq/L"),),
                "mEq/L", 1, 15, "last", "chemistry", "K", decimals=1),
    Observation("chloride", "labevents", (_i(50902, "Chloride", "mEq/L"),),
                "mEq/L", 50, 175, "last", "chemistry", "Cl"),
    Observation("bicarbonate", "labevents", (_i(50882, "Bicarbonate", "mEq/L"),),
                "mEq/L", 2, 60, "last", "chemistry", "HCO3"),
    Observation("bun", "labevents", (_i(51006, "Urea Nitrogen", "mg/dL"),),
                "mg/dL", 1, 300, "last", "chemistry", "BUN"),
    Observation("creatinine", "labevents", (_i(50912, "Creatinine", "mg/dL"),),
                "mg/dL", 0.1, 40, "last", "chemistry", "Cr", decimals=1),
    Observation("glucose", "labevents", (_i(50931, "Glucose", "mg/dL"),),
                "mg/dL", 10, 2000, "last", "chemistry", "Glucose"),
    Observation("bilirubin", "labevents", (_i(50885, "Bilirubin, Total", "mg/dL"),),
                "mg/dL", 0.1, 70, "last", "chemistry", "Bili", decimals=1),
    # --- haematology -------------------------------------------------------- #
    Observation("hemoglobin", "labevents", (_i(51222, "Hemoglobin", "g/dL"),),
                "g/dL", 1, 25, "last", "haematology", "Hb", decimals=1),
    Observation("platelets", "labevents", (_i(51265, "Platelet Count", "K/uL"),),
                "K/uL", 1, 2000, "last", "haematology", "Plt"),
    Observation("wbc", "labevents", (_i(51301, "White Blood Cells", "K/uL"),),
                "K/uL", 0.1, 500, "last", "haematology", "WBC", decimals=1),
    Observation("inr", "labevents", (_i(51237, "INR(PT)", ""),),
                "", 0.5, 20, "last", "haematology", "INR", decimals=1),
    # --- neurology (GCS components, chartevents, worst in the hour) --------- #
    Observation("gcs_eye", "chartevents", (_i(220739, "GCS - Eye Opening", ""),),
                "", 1, 4, "min", "gcs", "E"),
    Observation("gcs_verbal", "chartevents", (_i(223900, "GCS - Verbal Response", ""),),
                "", 1, 5, "min", "gcs", "V"),
    Observation("gcs_motor", "chartevents", (_i(223901, "GCS - Motor Response", ""),),
                "", 1, 6, "min", "gcs", "M"),
    # --- urine output (outputevents, hourly sum; GU irrigant in subtracted) - #
    Observation("urine_output", "outputevents",
                (_i(226559, "Foley", "mL"), _i(226560, "Void", "mL"),
                 _i(226561, "Condom Cath", "mL"), _i(226584, "Ileoconduit", "mL"),
                 _i(226563, "Suprapubic", "mL"), _i(226564, "R Nephrostomy", "mL"),
                 _i(226565, "L Nephrostomy", "mL"), _i(226567, "Straight Cath", "mL"),
                 _i(226557, "R Ureteral Stent", "mL"), _i(226558, "L Ureteral Stent", "mL"),
                 _i(227489, "GU Irrigant/Urine Volume Out", "mL"),
                 _i(227488, "GU Irrigant Volume In", "mL", sign=-1.0)),
                "mL", 0, 5000, "sum", "urine", "Urine"),
)

# Blood-gas rows read beside the registry features (hosp/labevents, same specimen_id):
# the specimen type ('ART.', 'VEN.', 'MIX.', 'CENTRAL VENOUS.') and the gas's own FiO2.
BLOOD_GAS_ITEMS = {"specimen": 52033, "fio2": 50816}

GROUP_ORDER = ("vitals", "blood_gas", "chemistry", "haematology", "gcs", "urine", "sofa")

OBS_BY_NAME = {o.name: o for o in OBSERVATIONS}

# --------------------------------------------------------------------------- #
# Actions (interventions)
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Vasopressor:
    name: str  # column name in hourly.parquet (rate in `unit`)
    itemid: int  # icu/inputevents itemid
    unit: str  # canonical rate unit after conversion
    nee_factor: float  # norepinephrine-equivalent multiplier (Goradia 2021, as mimic-code)
    hi: float  # absurd-rate bound in `unit`; higher -> NULL


VASOPRESSORS: tuple[Vasopressor, ...] = (
    Vasopressor("norepinephrine", 221906, "mcg/kg/min", 1.0, 10.0),
    Vasopressor("epinephrine", 221289, "mcg/kg/min", 1.0, 10.0),
    Vasopressor("phenylephrine", 221749, "mcg/kg/min", 0.1, 50.0),
    Vasopressor("dopamine", 221662, "mcg/kg/min", 0.01, 100.0),
    Vasopressor("vasopressin", 222315, "units/hour", 2.5 / 60.0, 20.0),
    Vasopressor("dobutamine", 221653, "mcg/kg/min", 0.0, 100.0),  # inotrope: not in NEE
)

# Invasive mechanical ventilation and RRT from icu/procedureevents (start/end times).
VENTILATION_ITEMIDS = {225792: "Invasive Ventilation"}
NIV_ITEMIDS = {225794: "Non-invasive Ventilation"}
# Continuous RRT (the modes mimic-code's `crrt` concept and KDIGO stage 3 count); the
# others (intermittent haemodialysis, peritoneal dialysis) are also maintenance dialysis.
CRRT_ITEMIDS = (225802, 225803, 225809, 225955)
RRT_ITEMIDS = {
    225802: "Dialysis - CRRT",
    225803: "Dialysis - CVVHD",
    225809: "Dialysis - CVVHDF",
    225955: "Dialysis - SCUF",
    225441: "Hemodialysis",
    225805: "Peritoneal Dialysis",
}

# Fluid boluses: crystalloid/colloid inputevents of >= BOLUS_MIN_ML given within
# BOLUS_MAX_HOURS.
FLUID_BOLUS_ITEMIDS = {
    225158: "NaCl 0.9%",
    225828: "LR",
    220864: "Albumin 5%",
    220862: "Albumin 25%",
}
BOLUS_MIN_ML = 250.0
BOLUS_MAX_HOURS = 2.0

# Antibiotics: hosp/prescriptions rows matching the rules of sql/registry/antibiotic.csv
# (mimic-code's list of about 150 drug patterns with drug, route and drug-type
# exclusions), registered as the DuckDB table registry_antibiotic (rule, pattern).
ANTIBIOTIC_RULES_CSV = SQL_DIR / "registry" / "antibiotic.csv"
ANTIBIOTIC_RULES = ("drug", "not_drug", "not_route", "not_route_has", "not_drug_type")


def antibiotic_rules(path: Path = ANTIBIOTIC_RULES_CSV) -> list[tuple[str, str]]:
    """(rule, lower-case pattern) rows of the antibiotic data file ('#' lines are comments)."""
    lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    rows = [tuple(x.strip() for x in ln.split(",", 1)) for ln in lines[1:]]
    bad = [r for r in rows if len(r) != 2 or r[0] not in ANTIBIOTIC_RULES or not r[1]]
    if lines[:1] != ["rule,pattern"] or bad:
        raise ValueError(f"{path}: expected a 'rule,pattern' header and rules in {ANTIBIOTIC_RULES}; "
                         f"bad rows: {bad[:3]}. Fix the file (see its header comment).")
    return [(r, p.lower()) for r, p in rows]


# End-stage renal disease / maintenance dialysis: hosp/diagnoses_icd codes of the stay's
# admission starting with one of these (MIMIC-IV stores codes without dots).
# (icd_version, code prefix, meaning)
ESRD_ICD_PREFIXES: tuple[tuple[int, str, str], ...] = (
    (9, "5856", "end stage renal disease"),
    (9, "V4511", "renal dialysis status"),
    (9, "V56", "encounter for dialysis"),
    (10, "N186", "end stage renal disease"),
    (10, "Z992", "dependence on renal dialysis"),
    (10, "Z49", "encounter for care involving renal dialysis"),
)

# Static items.
WEIGHT_ITEMIDS = {226512: ("Admission Weight (Kg)", 1.0), 224639: ("Daily Weight", 1.0),
                  226531: ("Admission Weight (lbs.)", 0.45359237)}
ADMISSION_WEIGHT_ITEMIDS = (226512, 226531)  # weight at admission (known from intime - 2 h)
WEIGHT_RANGE_KG = (20.0, 400.0)

ACTION_COLUMNS: tuple[str, ...] = (
    *(v.name for v in VASOPRESSORS),
    "nee",  # norepinephrine-equivalent dose, mcg/kg/min
    "ventilation",  # 0/1 invasive mechanical ventilation active in the hour
    "rrt",  # 0/1 renal replacement therapy active in the hour
    "antibiotics",  # 0/1 an antibiotic order active in the hour
    "fluid_bolus_ml",  # mL of bolus fluid started in the hour
)

DERIVED_COLUMNS: tuple[str, ...] = ("sofa", "kdigo_stage")

OBSERVATION_COLUMNS: tuple[str, ...] = tuple(o.name for o in OBSERVATIONS)


def item_table() -> list[dict]:
    """Rows of the DuckDB table ``registry_items``: one per (feature, itemid)."""
    rows = []
    for o in OBSERVATIONS:
        for it in o.items:
            rows.append(dict(feature=o.name, source=o.source, itemid=it.itemid, mul=it.mul,
                             add=it.add, frac_to_pct=it.frac_to_pct, sign=it.sign,
                             lo=o.lo, hi=o.hi, agg=o.agg))
    return rows
