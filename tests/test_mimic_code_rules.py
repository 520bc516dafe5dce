"""The clinical rules that follow MIT-LCP mimic-code, each on hand-built stays whose
expected values differ from what the extraction computed before (issue 15): intubated
GCS, arterial-only P/F with the gas's own FiO2, KDIGO stage 3 by creatinine, maintenance
dialysis, the antibiotic list, arterial BP items, concurrent NEE, weights known at the
time and carrier volumes. Times are hours since ICU intime (intimes are midnight)."""

from __future__ import annotations

import pytest
from minimimic import MiniMimic

from clin_jepa.config import DataConfig
from clin_jepa.data.extract import build_database

EYE, VERBAL, MOTOR, FIO2, ART_SBP, ART_DBP = 220739, 223900, 223901, 223835, 225309, 225310
DAILY_WEIGHT, ADMIT_WEIGHT = 224639, 226512
CREATININE = 50912
NOREPI, EPI, VASOPRESSIN, NACL = 221906, 221289, 222315, 225158
FOLEY = 226559
INVASIVE_VENT, HEMODIALYSIS = 225792, 225441


def _stays() -> MiniMimic:
    mm = MiniMimic()
    # GCS of an intubated patient: eye 1, verbal 'No Response-ETT' (valuenum 1), motor 5
    mm.add_stay(501, los_hours=30)
    mm.procedure(501, 0.0, 20.0, INVASIVE_VENT)
    mm.chart(501, 2.5, EYE, 1, text="None")
    mm.chart(501, 2.5, VERBAL, 1, text="No Response-ETT")
    mm.chart(501, 2.5, MOTOR, 5, text="Localizes Pain")
    mm.chart(501, 5.5, EYE, 1, text="None")  # verbal not charted again: still intubated
    mm.chart(501, 5.5, MOTOR, 5, text="Localizes Pain")
    # the same scores with a real verbal 1 ('No Response'): GCS 7
    mm.add_stay(502, los_hours=30)
    mm.chart(502, 2.5, EYE, 1, text="None")
    mm.chart(502, 2.5, VERBAL, 1, text="No Response")
    mm.chart(502, 2.5, MOTOR, 5, text="Localizes Pain")
    # venous and unlabelled gases never give a P/F; the arterial one does
    mm.add_stay(503, los_hours=30)
    mm.chart(503, 1.5, FIO2, 50)
    mm.blood_gas(503, 2.5, 40, specimen="VEN.")  # 40 / 0.5 = 80 if it were arterial
    mm.blood_gas(503, 3.5, 45, specimen=None)
    mm.blood_gas(503, 4.5, 150)  # arterial: 150 / 0.5 = 300
    # the gas's own FiO2 (no charted FiO2): a percent and a fraction
    mm.add_stay(504, los_hours=30)
    mm.blood_gas(504, 2.5, 100, fio2=50)
    mm.blood_gas(504, 6.5, 80, fio2=0.4)
    # KDIGO 3 by creatinine >= 4 needs an acute rise of >= 0.3 in 48 h (not low_48h <= 3.7)
    mm.add_stay(505, los_hours=30)
    mm.lab(505, 0.5, CREATININE, 4.0)
    mm.lab(505, 10.5, CREATININE, 4.4)
    # intermittent haemodialysis is no KDIGO stage 3 (mimic-code stages continuous RRT)
    mm.add_stay(506, los_hours=20)
    mm.procedure(506, 5.0, 9.0, HEMODIALYSIS)
    # antibiotics: mimic-code's list, routes and drug types
    mm.add_stay(507, los_hours=100)
    mm.prescription(507, 1.5, "Sulfameth/Trimethoprim DS", route="PO", stop_hour=3.0)
    mm.prescription(507, 10.5, "Cephalexin", route="PO", stop_hour=12.0)
    mm.prescription(507, 20.5, "Amoxicillin", route="PO/NG", stop_hour=22.0)
    mm.prescription(507, 30.5, "Ciprofloxacin 0.3% Ophth Soln", route="LEFT EAR", stop_hour=32.0)
    mm.prescription(507, 40.5, "Vancomycin", drug_type="BASE", stop_hour=42.0)
    mm.prescription(507, 50.5, "Mupirocin Ointment 2%", route="TP", stop_hour=52.0)
    mm.prescription(507, 60.5, "Clindamycin Gel 1%", route="PO", stop_hour=62.0)
    mm.prescription(507, 70.5, "CefazoLIN", route=None, stop_hour=72.0)
    # arterial BP items 225309 / 225310
    mm.add_stay(508, los_hours=10)
    mm.chart(508, 1.5, ART_SBP, 120, uom="mmHg")
    mm.chart(508, 1.5, ART_DBP, 60, uom="mmHg")
    # norepinephrine then epinephrine in one hour (never together) vs together
    mm.add_stay(509, los_hours=10)
    mm.vasopressor(509, 2.0, 2.5, NOREPI, 0.1)
    mm.vasopressor(509, 2.5, 3.0, EPI, 0.1)
    mm.vasopressor(509, 4.0, 6.0, NOREPI, 0.1)
    mm.vasopressor(509, 4.5, 6.0, VASOPRESSIN, 2.4, rateuom="units/hour")  # 2.4 x 2.5 / 60 = 0.1
    # only a daily weight at hour 10: not known in hour 0, and no urine rate before it
    mm.add_stay(510, los_hours=30)
    mm.chart(510, 10.2, DAILY_WEIGHT, 70, uom="kg")
    for h in range(30):
        mm.output(510, h + 0.5, FOLEY, 5)
    # the admission weight counts from admission, whenever charted
    mm.add_stay(511, los_hours=10)
    mm.chart(511, 3.2, ADMIT_WEIGHT, 90, uom="kg")
    # an antibiotic's carrier is no fluid bolus; a bolus is
    mm.add_stay(512, los_hours=10)
    mm.infusion(512, 3.0, 3.5, NACL, 250, carrier=True)
    mm.infusion(512, 5.0, 5.5, NACL, 500)
    return mm


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    mimic = _stays().write(tmp_path_factory.mktemp("rules") / "mimic")
    c = build_database(mimic, DataConfig(duckdb_memory_limit="1GB", duckdb_threads=1))
    yield c
    c.close()


def _val(con, table: str, col: str, stay: int, hour: int):
    r = con.execute(f"SELECT {col} FROM {table} WHERE stay_id = ? AND hour = ?", [stay, hour]).fetchall()
    return r[0][0] if r else None


def _series(con, table: str, col: str, stay: int) -> list:
    return [r[0] for r in con.execute(f"SELECT {col} FROM {table} WHERE stay_id = ? ORDER BY hour",
                                      [stay]).fetchall()]


def test_intubated_verbal_gives_gcs_15(con):
    assert _val(con, "sofa_hourly", "gcs", 501, 2) == 15  # not 1 + 1 + 5
    assert _val(con, "sofa_hourly", "gcs", 501, 5) == 15  # verbal missing, previous was ETT
    assert set(_series(con, "sofa_hourly", "cns", 501)) == {0}
    assert _val(con, "gcs_hourly", "unable", 501, 2) == 1
    assert _val(con, "hourly", "gcs_verbal", 501, 2) is None  # ETT is not a verbal score of 1
    assert _val(con, "sofa_hourly", "gcs", 502, 2) == 7 and _val(con, "sofa_hourly", "cns", 502, 2) == 3
    assert _val(con, "hourly", "gcs_verbal", 502, 2) == 1


def test_pf_ratio_from_arterial_gases_only(con):
    assert _val(con, "sofa_hourly", "pf_ratio", 503, 2) is None  # venous
    assert _val(con, "sofa_hourly", "pf_ratio", 503, 3) is None  # no specimen row
    assert _val(con, "sofa_hourly", "pf_ratio", 503, 4) == pytest.approx(300.0)
    assert _series(con, "sofa_hourly", "respiration", 503)[:4] == [0] * 4
    assert _val(con, "sofa_hourly", "respiration", 503, 4) == 1


def test_blood_gas_fio2_percent_and_fraction(con):
    assert _val(con, "sofa_hourly", "pf_ratio", 504, 2) == pytest.approx(200.0)
    assert _val(con, "sofa_hourly", "pf_ratio", 504, 6) == pytest.approx(200.0)
    assert _val(con, "bg_hourly", "fio2_from_bg", 504, 2) == 1
    assert _val(con, "sofa_hourly", "respiration", 504, 2) == 2


def test_kdigo_3_by_creatinine_above_4_needs_an_acute_rise(con):
    stage = _series(con, "kdigo_hourly", "creat_stage", 505)
    assert set(stage[:10]) == {0} and set(stage[10:]) == {3}  # 4.4 >= 4.0 + 0.3


def test_intermittent_dialysis_is_no_kdigo_stage(con):
    assert set(_series(con, "kdigo_hourly", "kdigo_stage", 506)) == {0}
    assert _series(con, "hourly", "rrt", 506)[5:9] == [1] * 4  # still an RRT action


def test_antibiotic_list_routes_and_types(con):
    hours = set(_series(con, "antibiotic_hourly", "hour", 507))
    assert {1, 2, 10, 11, 20, 21} <= hours  # sulfameth/trimethoprim, cephalexin, amoxicillin
    assert not hours & {30, 31, 40, 41, 50, 51, 60, 61, 70, 71}  # ear, BASE, topical, gel, no route


def test_arterial_bp_items(con):
    assert _val(con, "hourly", "sbp", 508, 1) == 120 and _val(con, "hourly", "dbp", 508, 1) == 60


def test_nee_from_doses_running_together(con):
    nee = _series(con, "hourly", "nee", 509)
    assert nee[2] == pytest.approx(0.1)  # norepinephrine, then epinephrine: never 0.2 at once
    assert nee[4] == pytest.approx(0.2) and nee[5] == pytest.approx(0.2)  # together
    assert _val(con, "hourly", "norepinephrine", 509, 2) == pytest.approx(0.1)


def test_weight_known_at_the_time(con):
    w = dict(con.execute("SELECT stay_id, weight_kg FROM static WHERE stay_id IN (510, 511)").fetchall())
    assert w[510] is None  # the only weight was charted at hour 10
    assert w[511] == 90  # admission weight, known from admission
    uo = _series(con, "kdigo_hourly", "uo_stage", 510)
    assert set(uo[:10]) == {0}  # no weight known yet: no urine rate
    assert uo[10] == 1 and uo[11] == 2  # 5 mL/h / 70 kg: 6 h, then 12 h of chartings


def test_carrier_volume_is_not_a_bolus(con):
    assert _val(con, "hourly", "fluid_bolus_ml", 512, 3) == 0
    assert _val(con, "hourly", "fluid_bolus_ml", 512, 5) == 500
