"""MEDS codes of the export: one code per hourly feature of the registry
(:mod:`clin_jepa.data.features`) plus the boundary and static codes.

Code scheme (``//``-separated, as MIMIC_IV_MEDS):

- observations  ``ICU//<GROUP>//<column>``  e.g. ``ICU//VITALS//heart_rate`` (unit bpm)
- actions       ``ICU//ACTION//<column>``   e.g. ``ICU//ACTION//norepinephrine`` (mcg/kg/min)
- derived       ``ICU//SCORE//<column>``    ``sofa``, ``kdigo_stage``
- boundaries    ``MEDS_BIRTH``, ``MEDS_DEATH`` (the meds package's names),
                ``HOSPITAL_ADMISSION``, ``HOSPITAL_DISCHARGE``, ``ICU_ADMISSION``, ``ICU_DISCHARGE``
- static        ``GENDER//F``, ``GENDER//M`` (no time), ``RACE`` and ``ADMISSION_TYPE`` (text_value, at
                hospital admission), ``ICU//STATIC//weight_kg`` (kg, at ICU admission)

:func:`code_rows` is the content of ``metadata/codes.parquet`` (code, description, unit,
itemids, source, column); the exporter joins the hourly columns on ``column``.
"""

from __future__ import annotations

from clin_jepa.data import features as F

SEP = "//"
BIRTH, DEATH = "MEDS_BIRTH", "MEDS_DEATH"  # = meds.birth_code, meds.death_code (checked in tests)
HOSPITAL_ADMISSION, HOSPITAL_DISCHARGE = "HOSPITAL_ADMISSION", "HOSPITAL_DISCHARGE"
ICU_ADMISSION, ICU_DISCHARGE = "ICU_ADMISSION", "ICU_DISCHARGE"
GENDER_PREFIX = "GENDER"
RACE, ADMISSION_TYPE = "RACE", "ADMISSION_TYPE"
WEIGHT = f"ICU{SEP}STATIC{SEP}weight_kg"

# kind of an hourly column -> which cells become events: observations and derived scores
# when charted (non-null); actions only when given (non-zero: a 0 rate / 0 flag is the
# default every hour and is restored as 0 when reading back).
KINDS = ("observation", "action", "derived")

_ACTION_DETAILS: dict[str, tuple[str, str, tuple[int, ...], str]] = {
    # column -> (description, unit, source itemids, source table)
    **{v.name: (f"{v.name} infusion rate (hourly mean)", v.unit, (v.itemid,), "inputevents")
       for v in F.VASOPRESSORS},
    "nee": ("norepinephrine-equivalent dose (Goradia 2021 factors)", "mcg/kg/min",
            tuple(v.itemid for v in F.VASOPRESSORS if v.nee_factor > 0), "inputevents"),
    "ventilation": ("invasive mechanical ventilation active in the hour (1)", "",
                    tuple(F.VENTILATION_ITEMIDS), "procedureevents"),
    "rrt": ("renal replacement therapy active in the hour (1)", "", tuple(F.RRT_ITEMIDS), "procedureevents"),
    "antibiotics": ("systemic antibiotic order active in the hour (1)", "", (), "prescriptions"),
    "fluid_bolus_ml": (f"fluid bolus (>= {F.BOLUS_MIN_ML:g} mL within {F.BOLUS_MAX_HOURS:g} h) started in the hour",
                       "mL", tuple(F.FLUID_BOLUS_ITEMIDS), "inputevents"),
}
_DERIVED_DETAILS = {
    "sofa": ("SOFA score (mimic-code sofa, hourly, 24-h worst)", ""),
    "kdigo_stage": ("KDIGO AKI stage (mimic-code kdigo_stages, hourly)", ""),
}


def feature_code(column: str) -> str:
    """The MEDS code of an hourly.parquet column."""
    if column in F.OBS_BY_NAME:
        return SEP.join(("ICU", F.OBS_BY_NAME[column].group.upper(), column))
    if column in F.ACTION_COLUMNS:
        return SEP.join(("ICU", "ACTION", column))
    if column in F.DERIVED_COLUMNS:
        return SEP.join(("ICU", "SCORE", column))
    raise KeyError(f"{column!r} is not an hourly feature of clin_jepa.data.features")


def feature_kind(column: str) -> str:
    return "observation" if column in F.OBS_BY_NAME else "action" if column in F.ACTION_COLUMNS else "derived"


def _row(code, description, unit="", itemids=(), source="", column=None, kind="event") -> dict:
    return {"code": code, "description": description, "parent_codes": None, "unit": unit,
            "itemids": list(itemids), "source": source, "column": column, "kind": kind}


def code_rows(sexes: tuple[str, ...] = ("F", "M")) -> list[dict]:
    """Rows of metadata/codes.parquet: every code the export can write."""
    rows = []
    for o in F.OBSERVATIONS:
        labels = ", ".join(f"{i.label} ({i.itemid})" for i in o.items)
        rows.append(_row(feature_code(o.name), f"{o.text_label}: hourly {o.agg} of {labels}", o.unit,
                         o.itemids, o.source, o.name, "observation"))
    for c in F.ACTION_COLUMNS:
        desc, unit, itemids, source = _ACTION_DETAILS[c]
        rows.append(_row(feature_code(c), desc, unit, itemids, source, c, "action"))
    for c in F.DERIVED_COLUMNS:
        desc, unit = _DERIVED_DETAILS[c]
        rows.append(_row(feature_code(c), desc, unit, (), "derived", c, "derived"))
    rows += [
        _row(BIRTH, "birth (1 January of anchor_year - anchor_age, MIMIC-IV anchor scheme)", source="patients"),
        _row(DEATH, "death: admissions.deathtime, else the end of the day patients.dod", source="admissions"),
        _row(HOSPITAL_ADMISSION, "hospital admission (admittime)", source="admissions"),
        _row(HOSPITAL_DISCHARGE, "hospital discharge (dischtime)", source="admissions"),
        _row(ICU_ADMISSION, "ICU stay start (intime): hour 0 of the extraction", source="icustays"),
        _row(ICU_DISCHARGE, "ICU stay end (outtime)", source="icustays"),
        _row(RACE, "race as charted (text_value), at hospital admission", source="admissions"),
        _row(ADMISSION_TYPE, "admission type as charted (text_value), at hospital admission", source="admissions"),
        _row(WEIGHT, "first weight of the ICU stay (static.parquet), at ICU admission", "kg",
             tuple(F.WEIGHT_ITEMIDS), "chartevents"),
        *[_row(SEP.join((GENDER_PREFIX, s)), f"sex {s} (static, no time)", source="patients") for s in sexes],
    ]
    return rows
