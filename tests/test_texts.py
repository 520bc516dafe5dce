"""Hourly state/action texts and demographics texts: content, order, formatting, fixed
sentences, no identifiers."""

from __future__ import annotations

import polars as pl
import pytest

from clin_jepa.data import features, texts
from clin_jepa.data.texts import (
    NO_ACTION,
    NO_OBSERVATION,
    action_text,
    demographics_text,
    demographics_texts,
    hourly_texts,
    state_text,
)


def frame(rows: list[dict], derived: bool = True) -> pl.DataFrame:
    cols = {"stay_id": pl.Int64, "hour": pl.Int32}
    cols |= {c: pl.Float64 for c in features.OBSERVATION_COLUMNS}
    cols |= {c: pl.Float64 for c in features.ACTION_COLUMNS if c not in ("ventilation", "rrt", "antibiotics")}
    cols |= {c: pl.Int8 for c in ("ventilation", "rrt", "antibiotics")}
    if derived:
        cols |= {"sofa": pl.Int8, "kdigo_stage": pl.Int8}
    base = {c: 0 for c in features.ACTION_COLUMNS}
    return pl.DataFrame([base | r for r in rows], schema=cols)


def test_state_text_order_units_and_formatting():
    row = dict(stay_id=30000001, hour=5, heart_rate=88.0, sbp=121.4, temperature=37.25, spo2=97.0,
               resp_rate=18.0, ph=7.40, lactate=2.0, creatinine=1.25, potassium=4.0, platelets=250.0,
               gcs_eye=4.0, gcs_verbal=5.0, gcs_motor=6.0, urine_output=60.0, fio2=40.0, sofa=3, kdigo_stage=0)
    got = hourly_texts(frame([row]))["state_text"][0]
    assert got == ("Hour 5. HR 88 bpm, SBP 121 mmHg, RR 18/min, SpO2 97%, Temp 37.2 C; "
                   "FiO2 40%, pH 7.4, Lactate 2 mmol/L; K 4 mEq/L, Cr 1.2 mg/dL; Plt 250 K/uL; "
                   "GCS E4 V5 M6; Urine 60 mL; SOFA 3, KDIGO 0.")
    assert "30000001" not in got


def test_group_order_follows_the_registry():
    row = {o.name: 1.0 + o.lo for o in features.OBSERVATIONS} | dict(stay_id=1, hour=0)
    got = hourly_texts(frame([row], derived=False))["state_text"][0]
    groups = got.removeprefix("Hour 0. ").removesuffix(".").split("; ")
    expected = [g for g in features.GROUP_ORDER if any(o.group == g for o in features.OBSERVATIONS)]
    assert len(groups) == len(expected)
    for text, g in zip(groups, expected):
        obs = [o for o in features.OBSERVATIONS if o.group == g]
        if g == "gcs":
            assert text == "GCS " + " ".join(f"{o.text_label}{int(1 + o.lo)}" for o in obs)
        else:
            assert [item.split(" ")[0] for item in text.split(", ")] == [o.text_label for o in obs]


def test_no_observation_and_no_action_are_exact_sentences():
    df = frame([dict(stay_id=1, hour=7, sofa=4, kdigo_stage=1)])
    out = hourly_texts(df)
    assert out["state_text"][0] == NO_OBSERVATION == "No new observations."
    assert out["action_text"][0] == NO_ACTION == "No intervention."


def test_action_text_lists_interventions_with_doses():
    row = dict(stay_id=1, hour=3, norepinephrine=0.12, vasopressin=2.4, nee=0.22, ventilation=1,
               antibiotics=1, fluid_bolus_ml=500.0)
    got = hourly_texts(frame([row]))["action_text"][0]
    assert got == ("Norepinephrine 0.12 mcg/kg/min; Vasopressin 2.4 units/hour; invasive ventilation; "
                   "antibiotics; fluid bolus 500 mL.")
    only = hourly_texts(frame([dict(stay_id=1, hour=3, rrt=1)]))["action_text"][0]
    assert only == "Renal replacement therapy."
    absurd = hourly_texts(frame([dict(stay_id=1, hour=3, norepinephrine=None, nee=None)]))["action_text"][0]
    assert absurd == "Norepinephrine."  # running, dose unknown (implausible charted rate)


def test_compact_numbers():
    cases = {0.1 + 0.2: "0.3", 100.0: "100", 37.04: "37", -0.0001: "0", 7.0: "7", 12.345: "12.3"}
    df = pl.DataFrame({"x": list(cases)})
    got = df.select(texts._num("x", 1).alias("s"))["s"].to_list()
    assert got == list(cases.values())
    assert pl.DataFrame({"x": [-0.2]}).select(texts._num("x", 0).alias("s"))["s"][0] == "0"


def test_row_helpers_match_frame_functions():
    row = dict(hour=2, heart_rate=101.0, urine_output=35.0, norepinephrine=0.05, ventilation=1)
    assert state_text(row) == "Hour 2. HR 101 bpm; Urine 35 mL."
    assert action_text(row) == "Norepinephrine 0.05 mcg/kg/min; invasive ventilation."
    assert demographics_text(dict(age=67, sex="female", race="WHITE", admission_type="EW EMER.",
                                  weight_kg=80.4)) == "Age 67, female, White, emergency admission, weight 80 kg."


def test_demographics_texts_coarsen_and_hide_identifying_detail():
    static = pl.DataFrame({
        "stay_id": [1, 2, 3, 4],
        "age": [67, 93, 45, None],
        "sex": ["female", "male", None, "male"],
        "race": ["WHITE - RUSSIAN", "HISPANIC/LATINO - PUERTO RICAN", "UNKNOWN", None],
        "admission_type": ["URGENT", "DIRECT EMER.", "ELECTIVE", "SURGICAL SAME DAY ADMISSION"],
        "weight_kg": [70.0, None, 55.5, None],
    })
    got = demographics_texts(static)["demo_text"].to_list()
    assert got == [
        "Age 67, female, White, urgent admission, weight 70 kg.",
        "Age 90+, male, Hispanic, emergency admission.",  # ages >= 90 are not written out
        "Age 45, elective admission, weight 56 kg.",
        "Male, same-day surgical admission.",
    ]


def test_missing_columns_are_a_clear_error():
    df = frame([dict(stay_id=1, hour=0)]).drop("heart_rate")
    with pytest.raises(ValueError, match="heart_rate.*clin-jepa extract"):
        hourly_texts(df)
    with pytest.raises(ValueError, match="weight_kg"):
        demographics_texts(pl.DataFrame({"stay_id": [1], "age": [3], "sex": ["male"], "race": ["x"],
                                         "admission_type": ["URGENT"]}))


def test_texts_are_vectorised_and_deterministic():
    n = 20_000
    df = frame([dict(stay_id=i // 48, hour=i % 48, heart_rate=60.0 + i % 50 if i % 3 else None,
                     creatinine=1.0 + (i % 7) / 10 if i % 11 == 0 else None, antibiotics=i % 2) for i in range(n)])
    a, b = hourly_texts(df), hourly_texts(df)
    assert a.equals(b) and a.height == n
    assert (a["state_text"] == NO_OBSERVATION).sum() == sum(1 for i in range(n) if i % 3 == 0 and i % 11)


# --------------------------------------------------------------------------- #
# snapshot mode (data.text_mode = snapshot)
# --------------------------------------------------------------------------- #


def test_snapshot_carries_each_latest_value_with_its_age():
    rows = [dict(stay_id=1, hour=0),
            dict(stay_id=1, hour=1, heart_rate=88.0, gcs_eye=4.0, sofa=2, kdigo_stage=0),
            dict(stay_id=1, hour=2, sbp=120.0, sofa=3, kdigo_stage=0),
            dict(stay_id=1, hour=3, heart_rate=90.0, creatinine=1.2, sofa=3, kdigo_stage=1),
            dict(stay_id=1, hour=6),
            dict(stay_id=2, hour=0, lactate=2.0)]  # another stay: nothing of stay 1 carries over
    got = texts.snapshot_texts(frame(rows[::-1]))  # any row order in, sorted out
    assert got["hour"].to_list() == [0, 1, 2, 3, 6, 0]
    assert got["state_text"].to_list() == [
        NO_OBSERVATION,  # nothing charted yet
        "Hour 1. HR 88 bpm; GCS E4; SOFA 2, KDIGO 0.",
        "Hour 2. HR 88 bpm (1 h ago), SBP 120 mmHg; GCS E4 (1 h ago); SOFA 3, KDIGO 0.",
        "Hour 3. HR 90 bpm, SBP 120 mmHg (1 h ago); Cr 1.2 mg/dL; GCS E4 (2 h ago); SOFA 3, KDIGO 1.",
        "Hour 6. HR 90 bpm (3 h ago), SBP 120 mmHg (4 h ago); Cr 1.2 mg/dL (3 h ago); GCS E4 (5 h ago); "
        "SOFA 3 (3 h ago), KDIGO 1 (3 h ago).",
        "Hour 0. Lactate 2 mmol/L.",
    ]
    assert got["action_text"].to_list() == hourly_texts(frame(rows))["action_text"].to_list()


def _random_hourly(seed: int, stays: int = 4, hours: int = 12) -> pl.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for s in range(stays):
        for h in range(hours):
            r = dict(stay_id=100 + s, hour=h, sofa=int(rng.integers(0, 10)), kdigo_stage=int(rng.integers(0, 3)))
            for o in features.OBSERVATIONS:
                if rng.random() < 0.2:
                    r[o.name] = float(rng.uniform(o.lo, min(o.hi, o.lo + 100)))
            rows.append(r)
    return frame(rows)


def test_snapshot_never_reads_a_later_hour():
    df = _random_hourly(0)
    before = texts.snapshot_texts(df)
    k = 5
    other = _random_hourly(1).filter(pl.col("hour") > k)  # hours after k replaced by other values
    after = texts.snapshot_texts(pl.concat([df.filter(pl.col("hour") <= k), other]))
    early = pl.col("hour") <= k
    assert before.filter(early).equals(after.filter(early))
    assert not before.filter(~early).equals(after.filter(~early))


def test_snapshot_batches_that_split_stays_give_the_whole_table():
    df = _random_hourly(2)
    whole = texts.snapshot_texts(df)
    build = texts.TEXT_MODES["snapshot"].build()  # what the extraction streams, batch by batch
    parts = [build(df.slice(i, 5)) for i in range(0, df.height, 5)]  # 12-hour stays cut every 5 rows
    assert pl.concat(parts).equals(whole)
    with pytest.raises(ValueError, match="not sorted by stay_id"):
        build(df.filter(pl.col("stay_id") == 100))  # a stay before the last one seen


def test_text_modes_are_a_validated_registry():
    from clin_jepa.config import DataConfig

    assert set(texts.TEXT_MODES) == {"events", "snapshot"} and DataConfig().text_mode == "events"
    assert len({m.file for m in texts.TEXT_MODES.values()}) == len(texts.TEXT_MODES)  # one file per mode
    with pytest.raises(ValueError, match=r"data.text_mode='state': choose one of events, snapshot"):
        DataConfig(text_mode="state").validate()
