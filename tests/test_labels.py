"""Events and the 15 prediction tasks (sql/labels/) on hand-built stays and on the
synthetic extraction.

Hand-built stays (tests/minimimic.py) run through the real runner; every label rule of
docs/labels.md is checked against hand-derived hours. Intimes are midnight, times are
hours since ICU intime.
"""

from __future__ import annotations

import polars as pl
import pytest
from minimimic import MiniMimic, demo_with_heart_rate

from clin_jepa.config import DataConfig
from clin_jepa.data.extract import build_database

CREATININE, LACTATE = 50912, 50813  # labevents
MAP, FIO2 = 220052, 223835  # chartevents
NOREPI = 221906  # inputevents
INVASIVE_VENT, CRRT, HEMODIALYSIS = 225792, 225802, 225441  # procedureevents
PLATELETS = 51265  # labevents

BINARY_TASKS = ("mort_hosp", "mort_icu", "mort_7d", "mort_14d", "mort_30d", "mort_90d", "los_7d", "sepsis")
EEP_TASKS = {"eep_circ_failure": "circ_failure", "eep_resp_failure": "resp_failure", "eep_aki": "aki2",
             "eep_vaso_start": "vasopressor", "eep_vent_start": "ventilation", "eep_rrt_start": "rrt",
             "eep_death_24h": "death"}
EVENTS = {"death", "vasopressor", "ventilation", "rrt", "aki2", "circ_failure", "resp_failure", "sepsis"}
CFG = DataConfig(duckdb_memory_limit="1GB", duckdb_threads=1)


def _stays() -> MiniMimic:
    mm = MiniMimic()
    mm.add_stay(401, los_hours=30.5, death_hour=30)  # ICU death at hour 30
    mm.add_stay(402, los_hours=48)  # AKI: creatinine doubles at hour 20
    mm.lab(402, 2.5, CREATININE, 1.0)
    mm.lab(402, 20.5, CREATININE, 2.2)
    mm.add_stay(403, los_hours=48)  # pressor from hour 10, ventilation from hour 30
    mm.vasopressor(403, 10.0, 14.0, NOREPI, 0.1)
    mm.procedure(403, 30.0, 40.0, INVASIVE_VENT)
    mm.add_stay(404, los_hours=12)  # too short for per-stay tasks
    mm.add_stay(405, los_hours=48, dod_hour=10 * 24)  # dies at home on day 10
    mm.add_stay(406, los_hours=48, dod_hour=60 * 24)  # dies on day 60
    mm.add_stay(407, los_hours=40, death_hour=43)  # dies 3 h after ICU discharge: ICU death
    mm.add_stay(408, los_hours=30, death_hour=100)  # dies on the ward 70 h after the ICU
    mm.add_stay(409, los_hours=200)  # > 7 days, grid capped at 168 h
    mm.add_stay(410, los_hours=30)  # lactate 3 at 14, MAP 60 at 16 -> circulatory failure 16
    mm.lab(410, 14.5, LACTATE, 3.0)
    mm.chart(410, 16.5, MAP, 60)
    mm.add_stay(411, los_hours=30)  # lactate 10 h older than the low MAP -> none
    mm.lab(411, 5.5, LACTATE, 3.0)
    mm.chart(411, 15.5, MAP, 60)
    mm.add_stay(412, los_hours=30)  # P/F 125 / 0.5 = 250 at hour 8 -> respiratory failure
    mm.chart(412, 7.5, FIO2, 50)
    mm.blood_gas(412, 8.5, 125)  # arterial gas
    mm.add_stay(413, los_hours=30)  # RRT from hour 12
    mm.procedure(413, 12.0, 20.0, CRRT)
    mm.add_stay(414, los_hours=30, dod_hour=29)  # date of death only, during the ICU stay
    mm.add_stay(415, los_hours=30)  # already on a pressor at ICU admission
    mm.vasopressor(415, 0.0, 6.0, NOREPI, 0.1)
    # Sepsis-3 visible before the prediction hour: culture + antibiotic at hour 2, platelets
    # fall to 40 at hour 5 (SOFA +3) -> onset 2 < 24: excluded from the `sepsis` task
    mm.add_stay(416, los_hours=48)
    mm.culture(416, 2.0)
    mm.prescription(416, 2.5, "Vancomycin")
    mm.lab(416, 1.0, PLATELETS, 200)
    mm.lab(416, 5.5, PLATELETS, 40)
    # the same 30 h later: onset 32 >= 24 -> a positive of the `sepsis` task
    mm.add_stay(417, los_hours=60)
    mm.culture(417, 32.0)
    mm.prescription(417, 32.5, "Vancomycin")
    mm.lab(417, 1.0, PLATELETS, 200)
    mm.lab(417, 35.5, PLATELETS, 40)
    # ESRD on maintenance haemodialysis: no rrt event from IHD, not in eep_aki / eep_rrt_start
    mm.add_stay(418, los_hours=40)
    mm.diagnosis(418, "N186")
    mm.procedure(418, 10.0, 14.0, HEMODIALYSIS)
    # ESRD (ICD-9 dialysis status) started on CRRT: CRRT still is an rrt event
    mm.add_stay(419, los_hours=40)
    mm.diagnosis(419, "V4511", icd_version=9)
    mm.procedure(419, 8.0, 20.0, CRRT)
    # not ESRD: intermittent haemodialysis counts as RRT
    mm.add_stay(420, los_hours=40)
    mm.diagnosis(420, "N179")  # acute kidney failure, unspecified
    mm.procedure(420, 6.0, 10.0, HEMODIALYSIS)
    # in-hospital death before hour 24 although the ICU stay lasted longer (charting
    # mismatch): no mortality labels (the outcome is in the input)
    mm.add_stay(421, los_hours=30, death_hour=20)
    return mm


@pytest.fixture(scope="module")
def mimic(tmp_path_factory):
    return _stays().write(tmp_path_factory.mktemp("minimimic") / "mimic")


@pytest.fixture(scope="module")
def con(mimic):
    c = build_database(mimic, CFG)
    yield c
    c.close()


def _events(con) -> dict[tuple[int, str], int]:
    return {(s, e): h for s, e, h in con.execute("SELECT stay_id, event, onset_hour FROM events").fetchall()}


def _eep(con, stay: int, task: str) -> tuple[list[int], list[int]]:
    """(hours with a row, hours labelled 1) of one stay and task."""
    rows = con.execute("SELECT hour, label FROM labels WHERE stay_id = ? AND task = ? ORDER BY hour",
                       [stay, task]).fetchall()
    return [h for h, _ in rows], [h for h, y in rows if y == 1]


def _per_stay(con, stay: int) -> dict[str, int]:
    return dict(con.execute("SELECT task, label FROM labels WHERE stay_id = ? AND task NOT LIKE 'eep_%'",
                            [stay]).fetchall())


# --------------------------------------------------------------------------- #
# events
# --------------------------------------------------------------------------- #


def test_event_onsets(con):
    ev = _events(con)
    assert ev[(401, "death")] == 30
    assert ev[(402, "aki2")] == 20
    assert ev[(403, "vasopressor")] == 10
    assert ev[(403, "ventilation")] == 30 and ev[(403, "resp_failure")] == 30
    assert ev[(407, "death")] == 40  # death after outtime: onset at ICU discharge
    assert (408, "death") not in ev  # ward death days after the ICU is not an ICU death
    assert ev[(410, "circ_failure")] == 16
    assert (411, "circ_failure") not in ev
    assert ev[(412, "resp_failure")] == 8
    assert ev[(413, "rrt")] == 12 and ev[(413, "aki2")] == 12  # RRT = KDIGO 3
    assert ev[(414, "death")] == 30  # dod only: onset at ICU outtime
    assert ev[(415, "vasopressor")] == 0
    assert ev[(416, "sepsis")] == 2 and ev[(417, "sepsis")] == 32
    assert (418, "rrt") not in ev  # maintenance IHD of an ESRD patient is not an RRT start
    assert ev[(419, "rrt")] == 8  # CRRT counts for every patient
    assert ev[(420, "rrt")] == 6  # IHD of a patient without ESRD counts
    assert {e for _, e in ev} <= EVENTS
    assert not any(s in (404, 405, 406, 409) for s, _ in ev)  # nothing happened to them


def test_kdigo_stage_from_onset_hour(con):
    stage = [r[0] for r in con.execute(
        "SELECT kdigo_stage FROM hourly WHERE stay_id = 402 ORDER BY hour").fetchall()]
    assert set(stage[:20]) == {0} and set(stage[20:]) == {2}


# --------------------------------------------------------------------------- #
# early-event tasks
# --------------------------------------------------------------------------- #


def test_eep_death_24h(con):
    hours, pos = _eep(con, 401, "eep_death_24h")
    assert hours == list(range(30)) and pos == list(range(6, 30))  # death at 30: (h, h+24]
    hours, pos = _eep(con, 407, "eep_death_24h")
    assert hours == list(range(40)) and pos == list(range(16, 40))
    hours, pos = _eep(con, 408, "eep_death_24h")
    assert hours == list(range(30)) and pos == []  # no ICU death


def test_eep_aki_12h_before_onset_only(con):
    hours, pos = _eep(con, 402, "eep_aki")
    assert hours == list(range(20)) and pos == list(range(8, 20))


def test_eep_start_tasks(con):
    hours, pos = _eep(con, 403, "eep_vaso_start")
    assert hours == list(range(10)) and pos == list(range(10))  # onset 10 <= h + 12 for all h
    hours, pos = _eep(con, 403, "eep_vent_start")
    assert hours == list(range(30)) and pos == list(range(18, 30))
    hours, pos = _eep(con, 413, "eep_rrt_start")
    assert hours == list(range(12)) and pos == list(range(12))
    assert _eep(con, 415, "eep_vaso_start") == ([], [])  # on a pressor from hour 0: never stable
    hours, pos = _eep(con, 415, "eep_vent_start")
    assert hours == list(range(30)) and pos == []


def test_eep_rows_cover_the_grid_when_nothing_happens(con):
    for task in EEP_TASKS:
        hours, pos = _eep(con, 404, task)
        assert hours == list(range(12)) and pos == [], task
    hours, _ = _eep(con, 409, "eep_death_24h")
    assert hours == list(range(168))  # data.max_stay_hours cap


def test_eep_invariants_over_all_stays(con):
    horizon = {t: (24 if t == "eep_death_24h" else CFG.eep_horizon) for t in EEP_TASKS}
    labels = con.execute("SELECT stay_id, task, hour, label FROM labels WHERE task LIKE 'eep_%'").fetchall()
    ev = _events(con)
    grid = {(s, h) for s, h in con.execute("SELECT stay_id, hour FROM grid").fetchall()}
    assert {t for _, t, _, _ in labels} == set(EEP_TASKS)
    for stay, task, hour, label in labels:
        onset = ev.get((stay, EEP_TASKS[task]))
        assert (stay, hour) in grid
        assert onset is None or hour < onset, (stay, task, hour, onset)  # no rows at/after onset
        assert label == int(onset is not None and onset <= hour + horizon[task]), (stay, task, hour)
    _check_eep(con)  # the SQL form of the same check, reused on the real demo
    n = con.execute("SELECT count(*), count(DISTINCT (stay_id, task, hour)) FROM labels").fetchone()
    assert n[0] == n[1]  # no duplicate rows


# --------------------------------------------------------------------------- #
# per-stay tasks
# --------------------------------------------------------------------------- #


def test_per_stay_rows_only_for_stays_in_icu_at_24h(con):
    rows = con.execute("SELECT DISTINCT stay_id, hour FROM labels WHERE task NOT LIKE 'eep_%'").fetchall()
    los = dict(con.execute("SELECT stay_id, los_hours FROM cohort").fetchall())
    assert {s for s, _ in rows} == {s for s, hours in los.items() if hours >= 24}
    assert {h for _, h in rows} == {24}
    assert _per_stay(con, 404) == {}
    for s in {s for s, _ in rows} - {416, 421}:
        assert set(_per_stay(con, s)) == set(BINARY_TASKS)


def test_no_label_is_already_visible_at_the_prediction_hour(con):
    # sepsis onset at hour 2 (< 24): the stay leaves the sepsis task, keeps the others
    assert set(_per_stay(con, 416)) == set(BINARY_TASKS) - {"sepsis"}
    assert _per_stay(con, 417)["sepsis"] == 1  # onset 32 >= 24: a real prediction
    # death at hour 20 (< 24): only los_7d and sepsis remain
    assert set(_per_stay(con, 421)) == {"los_7d", "sepsis"}
    # every per-stay positive of sepsis has its onset at or after the prediction hour
    early = con.execute("""SELECT count(*) FROM labels l JOIN events e
        ON e.stay_id = l.stay_id AND e.event = 'sepsis'
        WHERE l.task = 'sepsis' AND e.onset_hour < l.hour""").fetchone()[0]
    assert early == 0


def test_esrd_stays_leave_the_kidney_tasks(con):
    for stay in (418, 419):
        assert _eep(con, stay, "eep_aki") == ([], []) and _eep(con, stay, "eep_rrt_start") == ([], [])
        hours, _ = _eep(con, stay, "eep_vent_start")
        assert hours == list(range(40))  # the other tasks keep the stay
    hours, pos = _eep(con, 420, "eep_rrt_start")
    assert hours == list(range(6)) and pos == list(range(6))
    excl = dict(((s, t), e) for s, t, e in con.execute(
        "SELECT stay_id, task, exclusion FROM task_cohort WHERE exclusion IS NOT NULL").fetchall())
    assert excl[(418, "eep_aki")].startswith("end-stage renal disease")
    assert (420, "eep_aki") not in excl


def test_task_attrition_counts_every_exclusion(con):
    att = con.execute("SELECT task, step, rule, stays_removed, stays_remaining FROM task_attrition "
                      "ORDER BY task, step, rule").fetchall()
    n_cohort = con.execute("SELECT count(*) FROM cohort").fetchone()[0]
    by_task: dict[str, list] = {}
    for row in att:
        by_task.setdefault(row[0], []).append(row[1:])
    assert set(by_task) == set(BINARY_TASKS) | set(EEP_TASKS)
    for task, rows in by_task.items():
        assert rows[0] == (0, "cohort stays", 0, n_cohort)
        n_rows = con.execute("SELECT count(DISTINCT stay_id) FROM labels WHERE task = ?", [task]).fetchone()[0]
        assert rows[-1][3] == n_rows, task  # what is left = the stays with label rows
    sepsis = {r[1]: r[2] for r in by_task["sepsis"]}
    assert sepsis["Sepsis-3 onset before hour 24"] == 1  # stay 416
    assert sepsis["left the ICU before hour 24"] == 1  # stay 404
    assert {r[1]: r[2] for r in by_task["eep_aki"]}["end-stage renal disease / maintenance dialysis"] == 2
    assert {r[1]: r[2] for r in by_task["eep_vaso_start"]}["event at ICU admission (hour 0)"] == 1  # 415


def test_mortality_windows(con):
    dead = dict(mort_hosp=1, mort_icu=1, mort_7d=1, mort_14d=1, mort_30d=1, mort_90d=1, los_7d=0, sepsis=0)
    assert _per_stay(con, 401) == dead
    assert _per_stay(con, 407) == dead  # 3 h after ICU discharge
    assert _per_stay(con, 408) == dead | {"mort_icu": 0}  # ward death on day 4
    assert _per_stay(con, 405) == dict(dead, mort_hosp=0, mort_icu=0, mort_7d=0)  # dod day 10
    assert _per_stay(con, 406) == dict(dead, mort_hosp=0, mort_icu=0, mort_7d=0, mort_14d=0, mort_30d=0)
    assert _per_stay(con, 414) == dict(dead, mort_hosp=0)  # dod only, in the ICU
    alive = {t: 0 for t in BINARY_TASKS}
    assert _per_stay(con, 403) == alive
    assert _per_stay(con, 409) == alive | {"los_7d": 1}


def test_labels_schema_and_determinism(con, mimic):
    cols = con.execute("DESCRIBE labels").fetchall()
    assert [(c[0], c[1]) for c in cols] == [("stay_id", "BIGINT"), ("task", "VARCHAR"),
                                            ("hour", "INTEGER"), ("label", "TINYINT")]
    assert [c[0] for c in con.execute("DESCRIBE events").fetchall()] == ["stay_id", "event", "onset_hour"]
    first = con.execute("SELECT * FROM labels ORDER BY ALL").fetchall()
    again = build_database(mimic, CFG)
    try:
        assert again.execute("SELECT * FROM labels ORDER BY ALL").fetchall() == first
    finally:
        again.close()


def _check_eep(con) -> None:
    """No rows at/after onsets; labels = onset within the horizon (every stay)."""
    bad = con.execute(f"""
        WITH t(task, event, horizon) AS (VALUES {", ".join(
            f"('{t}', '{e}', {24 if t == 'eep_death_24h' else CFG.eep_horizon})" for t, e in EEP_TASKS.items())})
        SELECT count(*) FROM labels l JOIN t USING (task)
        LEFT JOIN events e ON e.stay_id = l.stay_id AND e.event = t.event
        WHERE l.hour >= coalesce(e.onset_hour, 1e9)
           OR l.label <> CAST(e.onset_hour IS NOT NULL AND e.onset_hour <= l.hour + t.horizon AS INTEGER)
    """).fetchone()[0]
    assert bad == 0


# --------------------------------------------------------------------------- #
# real MIMIC-IV demo (its chartevents is missing: a heart rate is added per hour)
# --------------------------------------------------------------------------- #


def test_real_demo_labels_match_source_tables(demo_dir, tmp_path):
    import datetime as dt

    con = build_database(demo_with_heart_rate(demo_dir, tmp_path / "demo"), CFG)
    try:
        _check_eep(con)
        got = {(s, t): y for s, t, y in con.execute(
            "SELECT stay_id, task, label FROM labels WHERE task NOT LIKE 'eep_%'").fetchall()}
        src = con.execute("""SELECT i.stay_id, i.intime, i.outtime, a.deathtime, p.dod, a.hospital_expire_flag
            FROM icustays i JOIN admissions a ON a.hadm_id = i.hadm_id JOIN patients p ON p.subject_id = i.subject_id
            WHERE i.stay_id IN (SELECT stay_id FROM cohort)""").fetchall()
        n_stays = 0
        for stay, intime, outtime, deathtime, dod, expire in src:  # re-derived in Python from the sources
            if (outtime - intime) < dt.timedelta(hours=CFG.prediction_hour):
                assert not any((stay, t) in got for t in BINARY_TASKS)
                continue
            n_stays += 1
            assert got[(stay, "mort_hosp")] == int(expire)
            assert got[(stay, "los_7d")] == int(outtime - intime > dt.timedelta(days=7))
            for n in (7, 14, 30, 90):
                limit = intime + dt.timedelta(days=n)
                died = deathtime <= limit if deathtime else (dod is not None and dod <= limit.date())
                assert got[(stay, f"mort_{n}d")] == int(died), (stay, n)
            icu_death = deathtime is not None and intime <= deathtime <= outtime + dt.timedelta(hours=6)
            if deathtime is not None:
                assert got[(stay, "mort_icu")] == int(icu_death)
        assert n_stays >= 50
        onset = dict(con.execute("SELECT stay_id, onset_hour FROM events WHERE event = 'sepsis'").fetchall())
        assert 0.1 < len(onset) / n_stays < 0.6  # Sepsis-3 in roughly a third of MIMIC-IV ICU stays
        for (stay, task), y in got.items():  # the task only predicts onsets not yet visible
            if task == "sepsis":
                assert onset.get(stay, 10**6) >= CFG.prediction_hour and y == int(stay in onset), stay
        early = sum(h < CFG.prediction_hour for h in onset.values())
        removed = con.execute("SELECT stays_removed FROM task_attrition WHERE task = 'sepsis' "
                              "AND rule LIKE 'Sepsis-3 onset before%'").fetchone()[0]
        assert removed == sum(1 for s, h in onset.items() if h < CFG.prediction_hour
                              and (s, "los_7d") in got) and early > 0
        n_si = con.execute("SELECT count(DISTINCT stay_id) FROM suspected_infection").fetchone()[0]
        assert n_si >= 0.2 * con.execute("SELECT count(*) FROM cohort").fetchone()[0]
    finally:
        con.close()


# --------------------------------------------------------------------------- #
# synthetic extraction (exported parquet files)
# --------------------------------------------------------------------------- #


def test_exported_files_follow_the_contract(extracted_data_dir):
    labels = pl.read_parquet(extracted_data_dir / "labels.parquet")
    assert labels.columns == ["stay_id", "task", "hour", "label"]
    assert labels.schema["label"] == pl.Int8
    assert set(labels["task"].unique()) == set(BINARY_TASKS) | set(EEP_TASKS)
    assert set(labels["label"].unique()) <= {0, 1}
    events = pl.read_parquet(extracted_data_dir / "events.parquet")
    assert events.columns == ["stay_id", "event", "onset_hour"]
    assert set(events["event"].unique()) <= EVENTS
    assert events.select("stay_id", "event").is_unique().all()
    hourly = pl.read_parquet(extracted_data_dir / "hourly.parquet")
    assert hourly.columns[-2:] == ["sofa", "kdigo_stage"]
    assert hourly["sofa"].null_count() == 0 and hourly["kdigo_stage"].null_count() == 0
    assert hourly["sofa"].min() >= 0 and hourly["sofa"].max() <= 24
    assert set(hourly["kdigo_stage"].unique()) <= {0, 1, 2, 3}


def test_synthetic_prevalences_and_deteriorating_mortality(extracted_data_dir):
    labels = pl.read_parquet(extracted_data_dir / "labels.parquet")
    prev = dict(labels.group_by("task").agg(pl.col("label").cast(pl.Float64).mean()).iter_rows())
    degenerate = sorted(t for t, p in prev.items() if not 0.0 < p < 1.0)
    assert len(degenerate) <= 2, f"tasks with prevalence 0 or 1 on synthetic data: {degenerate}"
    wide = labels.filter(~pl.col("task").str.starts_with("eep_")).pivot("task", index="stay_id", values="label")
    for shorter, longer in (("mort_7d", "mort_14d"), ("mort_14d", "mort_30d"), ("mort_30d", "mort_90d")):
        assert (wide[shorter] <= wide[longer]).all(), (shorter, longer)
    # deteriorating stays (organ support or circulatory failure during the stay) die more
    # often than the others
    events = pl.read_parquet(extracted_data_dir / "events.parquet")
    failing = events.filter(pl.col("event").is_in(["vasopressor", "ventilation", "rrt", "circ_failure"]))
    mort = wide.select("stay_id", pl.col("mort_hosp").cast(pl.Float64))
    bad = pl.col("stay_id").is_in(failing["stay_id"].unique().implode())
    det, rest = mort.filter(bad)["mort_hosp"], mort.filter(~bad)["mort_hosp"]
    assert det.len() >= 10 and rest.len() >= 10
    assert det.mean() > rest.mean() + 0.05, (det.mean(), rest.mean())
