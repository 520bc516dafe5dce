"""SOFA, KDIGO, suspected infection and Sepsis-3 (sql/concepts/) on hand-built stays.

A tiny MIMIC-IV directory (tests/minimimic.py) runs through the real extraction runner
(DuckDB, every SQL file of the manifest); expected values are computed by hand from the
definitions in docs/labels.md. Times are hours since ICU intime (intimes are midnight).
"""

from __future__ import annotations

import pytest
from minimimic import MiniMimic

from clin_jepa.config import DataConfig
from clin_jepa.data.extract import build_database

PLATELETS, BILIRUBIN, CREATININE = 51265, 50885, 50912  # labevents
MAP, FIO2, GCS_EYE, GCS_VERBAL, GCS_MOTOR = 220052, 223835, 220739, 223900, 223901  # chartevents
NOREPI, EPI, DOPAMINE, DOBUTAMINE = 221906, 221289, 221662, 221653  # inputevents
FOLEY = 226559  # outputevents
INVASIVE_VENT, CRRT = 225792, 225802  # procedureevents


def _stays() -> MiniMimic:
    mm = MiniMimic()
    # --- SOFA components -------------------------------------------------- #
    mm.add_stay(101, los_hours=60)
    mm.lab(101, 3.2, PLATELETS, 40)  # coagulation 3 for hours 3..26
    mm.lab(101, 5.5, BILIRUBIN, 6.5)  # liver 3
    mm.chart(101, 6.5, MAP, 60)  # cardiovascular 1
    mm.chart(101, 8.2, GCS_EYE, 3)
    mm.chart(101, 8.2, GCS_VERBAL, 4)
    mm.chart(101, 8.2, GCS_MOTOR, 5)  # GCS 12 -> cns 2, carried forward 6 h
    mm.lab(101, 4.5, CREATININE, 2.5)  # renal 2
    mm.chart(101, 9.5, FIO2, 50)  # FiO2 50 %
    mm.blood_gas(101, 11.5, 90)  # arterial P/F 180, ventilated -> respiration 3
    mm.procedure(101, 10.0, 20.0, INVASIVE_VENT)
    mm.vasopressor(101, 40.0, 42.0, NOREPI, 0.2)  # > 0.1 -> cardiovascular 4
    # pressor tiers on separate stays (each alone)
    mm.add_stay(102, los_hours=10)
    mm.vasopressor(102, 2.0, 4.0, DOPAMINE, 6.0)  # dopamine > 5 -> 3
    mm.add_stay(103, los_hours=10)
    mm.vasopressor(103, 2.0, 4.0, EPI, 0.05)  # epinephrine <= 0.1 -> 3
    mm.add_stay(108, los_hours=10)
    mm.vasopressor(108, 2.0, 4.0, DOBUTAMINE, 5.0)  # any dobutamine -> 2
    # respiration without ventilation, FiO2 carried forward at most 4 h
    mm.add_stay(104, los_hours=30)
    mm.chart(104, 1.5, FIO2, 50)
    mm.blood_gas(104, 4.5, 35)  # P/F 70 without ventilation -> capped at 2
    mm.chart(104, 10.5, FIO2, 40)
    mm.blood_gas(104, 16.5, 100)  # FiO2 6 h old -> no P/F
    # renal from 24 h urine output: 5 mL every hour
    mm.add_stay(105, los_hours=30, weight_kg=80)
    for h in range(30):
        mm.output(105, h + 0.5, FOLEY, 5)
    # 160 mL every 4 h (40 mL/h): 0.4 mL/kg/h with 100 kg charted; no weight for 107
    mm.add_stay(106, los_hours=30, weight_kg=100)
    mm.add_stay(107, los_hours=30)
    for s in (106, 107):
        for h in range(3, 30, 4):
            mm.output(s, h + 0.5, FOLEY, 160)
    # --- KDIGO creatinine ------------------------------------------------- #
    mm.add_stay(201, los_hours=40)
    mm.lab(201, 2.5, CREATININE, 1.0)
    mm.lab(201, 20.5, CREATININE, 2.1)  # >= 2x baseline -> stage 2 from hour 20
    mm.add_stay(202, los_hours=40)
    mm.lab(202, 1.5, CREATININE, 1.0)
    mm.lab(202, 10.5, CREATININE, 1.35)  # +0.35 within 48 h -> stage 1
    mm.lab(202, 30.5, CREATININE, 1.0)  # back to baseline -> stage 0
    mm.add_stay(203, los_hours=20)
    mm.lab(203, -30.0, CREATININE, 1.0)  # pre-ICU baseline (hosp/labevents)
    mm.lab(203, -20.0, CREATININE, 0.01)  # absurd (< 0.1 mg/dL): ignored
    mm.lab(203, 1.5, CREATININE, 3.2)  # >= 3x pre-ICU baseline -> stage 3
    mm.add_stay(204, los_hours=20)
    mm.procedure(204, 5.0, 10.0, CRRT)  # RRT -> stage 3 while running
    mm.add_stay(205, los_hours=20)
    mm.lab(205, 0.5, CREATININE, 3.6)
    mm.lab(205, 10.5, CREATININE, 4.1)  # >= 4.0 with low_48h <= 3.7 -> stage 3
    # --- suspected infection / Sepsis-3 ------------------------------------ #
    mm.add_stay(301, los_hours=40)  # culture 8 h before antibiotic + SOFA rise -> sepsis
    mm.culture(301, 2.5)
    mm.prescription(301, 10.5, "Vancomycin")
    mm.lab(301, 4.5, PLATELETS, 40)
    mm.add_stay(302, los_hours=40)  # antibiotic, culture 17 h later, no organ dysfunction
    mm.prescription(302, 3.5, "Piperacillin-Tazobactam")
    mm.culture(302, 20.5)
    mm.add_stay(303, los_hours=40)  # SOFA rise without any antibiotic -> no sepsis
    mm.culture(303, 2.5)
    mm.lab(303, 4.5, PLATELETS, 40)
    mm.add_stay(304, los_hours=60)  # no valid pair: culture 35 h after; eye drops; no antibiotic
    mm.prescription(304, 5.5, "Ceftriaxone")
    mm.culture(304, 40.5)
    mm.prescription(304, 50.5, "Gentamicin Sulfate", route="OU")
    mm.prescription(304, 50.5, "Fentanyl Citrate")
    mm.culture(304, 51.0)
    mm.lab(304, 1.5, PLATELETS, 40)
    mm.add_stay(305, los_hours=60)  # culture with a date only (hour 30 -> chartdate = hour 24)
    mm.culture(305, 30.0, date_only=True)
    mm.prescription(305, 40.5, "Meropenem")
    mm.add_stay(306, los_hours=100)  # SOFA high all along; suspicion at 60 -> no rise, no sepsis
    for h in range(0, 100, 12):
        mm.lab(306, h + 0.5, PLATELETS, 40)
    mm.culture(306, 60.5)
    mm.prescription(306, 61.5, "Cefepime")
    mm.add_stay(307, los_hours=100)  # same SOFA, suspicion at 30 -> pre-ICU baseline 0 -> sepsis
    for h in range(0, 100, 12):
        mm.lab(307, h + 0.5, PLATELETS, 40)
    mm.culture(307, 30.5)
    mm.prescription(307, 31.5, "Cefepime")
    return mm


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    mimic = _stays().write(tmp_path_factory.mktemp("minimimic") / "mimic")
    c = build_database(mimic, DataConfig(duckdb_memory_limit="1GB", duckdb_threads=1))
    yield c
    c.close()


def _row(con, table: str, stay: int, hour: int) -> dict:
    cur = con.execute(f"SELECT * FROM {table} WHERE stay_id = ? AND hour = ?", [stay, hour])
    cols = [d[0] for d in cur.description]
    rows = cur.fetchall()
    assert len(rows) == 1, f"{table}: expected one row for stay {stay} hour {hour}, got {len(rows)}"
    return dict(zip(cols, rows[0]))


def _series(con, table: str, col: str, stay: int) -> list:
    return [r[0] for r in con.execute(f"SELECT {col} FROM {table} WHERE stay_id = ? ORDER BY hour", [stay]).fetchall()]


# --------------------------------------------------------------------------- #
# SOFA
# --------------------------------------------------------------------------- #


def test_sofa_components_hand_computed(con):
    assert _row(con, "sofa_hourly", 101, 11)["pf_ratio"] == pytest.approx(180.0)  # 90 / 0.50 (FiO2 of hour 9)
    r = _row(con, "sofa_hourly", 101, 12)
    assert _row(con, "sofa_hourly", 101, 8)["gcs"] == 12  # 3 + 4 + 5 charted at hour 8
    assert r["gcs"] is None  # no charting in hour 12: the CNS score comes from the 24 h window
    expected = dict(respiration=3, coagulation=3, liver=3, cardiovascular=1, cns=2, renal=2)
    assert {k: r[k] for k in expected} == expected
    assert r["sofa"] == sum(expected.values()) == 14
    assert _row(con, "sofa_hourly", 101, 2)["sofa"] == 0  # nothing abnormal yet
    assert _row(con, "sofa_hourly", 101, 3)["coagulation"] == 3


def test_sofa_is_worst_over_last_24_hours(con):
    coag = _series(con, "sofa_hourly", "coagulation", 101)
    assert coag[:3] == [0, 0, 0] and set(coag[3:27]) == {3} and set(coag[27:]) == {0}
    # the GCS of hour 8 (mimic-code: GCS of the charting hours) scores for 24 h (to hour 31)
    gcs = _series(con, "sofa_hourly", "gcs", 101)
    assert gcs[8] == 12 and gcs[7] is None and gcs[9] is None
    cns = _series(con, "sofa_hourly", "cns", 101)
    assert set(cns[8:32]) == {2} and cns[32] == 0
    # the 24 h SOFA equals the sum of the components at every hour
    bad = con.execute("""SELECT count(*) FROM sofa_hourly WHERE sofa <>
        respiration + coagulation + liver + cardiovascular + cns + renal""").fetchone()[0]
    assert bad == 0


def test_sofa_cardiovascular_tiers(con):
    cv = _series(con, "sofa_hourly", "cardiovascular", 101)
    assert cv[40] == 4  # norepinephrine 0.2 mcg/kg/min
    assert _row(con, "sofa_hourly", 102, 3)["cardiovascular"] == 3  # dopamine 6
    assert _row(con, "sofa_hourly", 103, 3)["cardiovascular"] == 3  # epinephrine 0.05
    assert _row(con, "sofa_hourly", 108, 3)["cardiovascular"] == 2  # dobutamine
    assert _row(con, "sofa_hourly", 102, 1)["cardiovascular"] == 0  # before the infusion
    assert cv[29] == 1 and cv[30] == 0  # MAP 60 at hour 6 scores until hour 29
    assert cv[59] == 4  # noradrenaline of hours 40-41 still inside the 24 h window


def test_sofa_respiration_needs_ventilation_and_recent_fio2(con):
    r = _row(con, "sofa_hourly", 104, 4)
    assert r["pf_ratio"] == pytest.approx(70.0)
    assert r["respiration"] == 2  # < 100 but not ventilated: capped at 2
    assert _row(con, "sofa_hourly", 104, 16)["pf_ratio"] is None  # FiO2 charted 6 h earlier


def test_sofa_renal_from_24h_urine(con):
    renal = _series(con, "sofa_hourly", "renal", 105)
    # chartings at h + 0.5; the 24 h window [t - 23 h, t] covers tm = t hours since intime
    assert renal[21] == 0  # 21.5 h of urine: too short to extrapolate to 24 h (needs 22-30 h)
    assert renal[22] == 4  # 23 x 5 mL over 22.5 h -> 123 mL / 24 h < 200 mL
    # 160 mL every 4 h = 960 mL / 24 h: no renal score, whatever the charting gaps
    assert set(_series(con, "sofa_hourly", "renal", 107)) == {0}


def test_sofa_never_null_and_one_row_per_grid_hour(con):
    n_grid = con.execute("SELECT count(*) FROM grid").fetchone()[0]
    n, nulls = con.execute("SELECT count(*), count(*) - count(sofa) FROM sofa_hourly").fetchone()
    assert n == n_grid and nulls == 0


# --------------------------------------------------------------------------- #
# KDIGO
# --------------------------------------------------------------------------- #


def test_kdigo_creatinine_doubling(con):
    stage = _series(con, "kdigo_hourly", "kdigo_stage", 201)
    assert set(stage[:20]) == {0} and set(stage[20:]) == {2}


def test_kdigo_creatinine_rise_03_within_48h(con):
    stage = _series(con, "kdigo_hourly", "creat_stage", 202)
    assert set(stage[:10]) == {0} and set(stage[10:30]) == {1} and set(stage[30:]) == {0}


def test_kdigo_baseline_from_pre_icu_labs_ignores_absurd_values(con):
    stage = _series(con, "kdigo_hourly", "kdigo_stage", 203)
    assert stage[0] == 0 and set(stage[1:]) == {3}  # 3.2 >= 3 x 1.0; the 0.01 is out of range


def test_kdigo_rrt_and_absolute_4(con):
    rrt = _series(con, "kdigo_hourly", "kdigo_stage", 204)
    assert set(rrt[5:10]) == {3} and rrt[4] == 0 and rrt[11] == 0
    cr4 = _series(con, "kdigo_hourly", "kdigo_stage", 205)
    assert set(cr4[:10]) == {0} and set(cr4[10:]) == {3}


def test_kdigo_urine_output_stages_and_weight(con):
    uo = _series(con, "kdigo_hourly", "uo_stage", 105)  # 5 mL/h / 80 kg = 0.06 mL/kg/h
    # charted at h + 0.5: 6 h of collection at 5.5 h but no staging in the first 6 h
    # (mimic-code), stage 1 from hour 6, 12 h (stage 2) at 11.5 h, 24 h (stage 3) at 23.5 h
    assert uo[5] == 0 and uo[6] == 1 and uo[10] == 1 and uo[11] == 2 and uo[22] == 2 and uo[23] == 3
    assert con.execute("SELECT weight_kg FROM static WHERE stay_id = 106").fetchone()[0] == 100
    # 160 mL at 3.5, 7.5, 11.5 h, ...: the first charting counts 1 h (mimic-code kdigo_uo),
    # so 6 h of real collection time first at 11.5 h (320 mL / 100 kg / 8 h = 0.4) and 12 h
    # at 15.5 h (640 / 100 / 13 = 0.49); stages hold between chartings
    assert _series(con, "kdigo_hourly", "uo_stage", 106) == [0] * 11 + [1] * 4 + [2] * 15
    # no weight known: no urine rate, no urine stage (mimic-code)
    assert set(_series(con, "kdigo_hourly", "uo_stage", 107)) == {0}


# --------------------------------------------------------------------------- #
# suspected infection and Sepsis-3
# --------------------------------------------------------------------------- #


def _first_suspicion(con, stay: int):
    r = con.execute("SELECT onset_hour, antibiotic_hour, culture_hour FROM suspected_infection "
                    "WHERE stay_id = ? AND episode = 1", [stay]).fetchone()
    return r


def _sepsis(con, stay: int):
    r = con.execute("SELECT onset_hour, suspicion_hour, sofa_hour FROM sepsis3 WHERE stay_id = ?", [stay]).fetchone()
    return r


def test_suspected_infection_windows(con):
    assert _first_suspicion(con, 301) == (2, 10, 2)  # culture first: onset = culture
    assert _first_suspicion(con, 302) == (3, 3, 20)  # antibiotic first: onset = antibiotic
    assert _first_suspicion(con, 303) is None  # culture without antibiotic
    assert _first_suspicion(con, 304) is None  # culture too late, eye drops, not an antibiotic
    assert _first_suspicion(con, 305) == (24, 40, 24)  # chartdate at midnight of day 2


def test_sepsis_needs_suspicion_and_sofa_rise(con):
    assert _sepsis(con, 301) == (2, 2, 4)  # onset = min(suspicion 2, SOFA rise at 4)
    assert _sepsis(con, 302) is None  # suspicion without organ dysfunction
    assert _sepsis(con, 303) is None  # organ dysfunction without suspicion
    assert _sepsis(con, 306) is None  # SOFA 3 throughout the window [12, 84]: no rise
    assert _sepsis(con, 307) == (0, 30, 0)  # window starts pre-ICU: baseline 0, SOFA 3 at hour 0
    events = dict(con.execute("SELECT stay_id, onset_hour FROM events WHERE event = 'sepsis'").fetchall())
    assert events == {301: 2, 307: 0}
    labels = dict(con.execute("SELECT stay_id, label FROM labels WHERE task = 'sepsis' AND hour = 24 "
                              "AND stay_id BETWEEN 301 AND 307").fetchall())
    # onsets 2 and 0 lie before the prediction hour 24: those stays leave the task
    assert labels == {302: 0, 303: 0, 304: 0, 305: 0, 306: 0}


def test_hourly_adds_sofa_and_kdigo_in_contract_order(con):
    from clin_jepa.data.features import ACTION_COLUMNS, OBSERVATION_COLUMNS

    cols = [r[0] for r in con.execute("DESCRIBE hourly").fetchall()]
    assert cols == ["stay_id", "hour", *OBSERVATION_COLUMNS, *ACTION_COLUMNS, "sofa", "kdigo_stage"]
    mismatch = con.execute("""SELECT count(*) FROM hourly h JOIN sofa_hourly s USING (stay_id, hour)
        JOIN kdigo_hourly k USING (stay_id, hour)
        WHERE h.sofa <> s.sofa OR h.kdigo_stage <> k.kdigo_stage""").fetchone()[0]
    assert mismatch == 0
    assert con.execute("SELECT count(*) FROM hourly").fetchone()[0] == \
        con.execute("SELECT count(*) FROM hourly_base").fetchone()[0]
