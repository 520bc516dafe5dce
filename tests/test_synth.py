"""The synthetic MIMIC-IV generator: schema, MIMIC habits, determinism, dynamics, CLI.

Everything is read back from the written csv.gz files with DuckDB / polars."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import duckdb
import polars as pl
import pytest

from clin_jepa.config import SynthConfig, load_config
from clin_jepa.data import features, schema, synth
from clin_jepa.data.synth import chartevents_for_stays, generate

STAYS = 600
MAP_ITEMS = (220052, 220181, 225312)
PRESSOR_ITEMS = tuple(v.itemid for v in features.VASOPRESSORS)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(directory, summary with hidden truth) of a 600-stay synthetic MIMIC-IV, seed 0."""
    out = tmp_path_factory.mktemp("synth") / "mimic"
    summary = generate(out, SynthConfig(stays=STAYS, seed=0), truth=True)
    return out, summary


@pytest.fixture(scope="module")
def con(world):
    """DuckDB views over the generated tables (types inferred from the csv, as extraction does)."""
    out, summary = world
    c = duckdb.connect()
    for t in schema.TABLES.values():
        c.execute(f"CREATE VIEW {t.name} AS SELECT * FROM read_csv('{out / t.relpath}', header=true)")
    c.register("truth", summary["truth"])
    return c


def _header(path: Path) -> tuple[str, ...]:
    with gzip.open(path, "rt") as f:
        return tuple(f.readline().rstrip("\n").split(","))


def _digest(root: Path) -> dict[str, str]:
    return {t.relpath: hashlib.sha256((root / t.relpath).read_bytes()).hexdigest() for t in schema.TABLES.values()}


# --------------------------------------------------------------------------- #
# schema and dictionaries
# --------------------------------------------------------------------------- #


def test_every_table_has_the_v22_columns_in_order(world):
    out, summary = world
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(t.relpath for t in schema.TABLES.values())
    for t in schema.TABLES.values():
        assert _header(out / t.relpath) == t.columns, t.name
        assert summary["rows"][t.name] > 0, t.name
    assert summary["stays"] == STAYS and summary["patients"] < STAYS


def test_headers_equal_the_real_demo(world, demo_dir):
    out, _ = world
    compared = 0
    for t in schema.TABLES.values():
        real = demo_dir / t.relpath
        if real.exists():  # the demo has no chartevents
            assert _header(out / t.relpath) == _header(real), t.name
            compared += 1
    assert compared >= 10


def test_types_and_timestamps_read_back(con):
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE chartevents)").fetchall())
    assert types["charttime"] == "TIMESTAMP" and types["valuenum"] == "DOUBLE" and types["itemid"] == "BIGINT"
    assert dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE patients)").fetchall())["dod"] == "DATE"
    lo, hi = con.execute("SELECT min(year(intime)), max(year(outtime)) FROM icustays").fetchone()
    assert 2110 <= lo and hi <= 2200
    # whole minutes in event tables, as in MIMIC-IV
    assert con.execute("SELECT count(*) FROM chartevents WHERE second(charttime) <> 0").fetchone()[0] == 0


def test_itemids_are_registry_items_with_real_dictionary_rows(con):
    d_items = dict(con.execute("SELECT itemid, label FROM d_items").fetchall())
    known = {i.itemid: i.label for o in features.OBSERVATIONS for i in o.items}
    known.update({v.itemid: v.name for v in features.VASOPRESSORS})
    known.update(features.VENTILATION_ITEMIDS | features.RRT_ITEMIDS | features.FLUID_BOLUS_ITEMIDS)
    known.update({k: v[0] for k, v in features.WEIGHT_ITEMIDS.items()})
    for table in ("chartevents", "inputevents", "outputevents", "procedureevents"):
        used = {r[0] for r in con.execute(f"SELECT DISTINCT itemid FROM {table}").fetchall()}
        assert used <= set(d_items), (table, used - set(d_items))
        assert used <= set(known), (table, used - set(known))
    for itemid, label in d_items.items():  # observation items carry MIMIC's own labels
        if any(itemid == i.itemid for o in features.OBSERVATIONS for i in o.items):
            assert label == known[itemid]
    links = dict(con.execute("SELECT itemid, linksto FROM d_items").fetchall())
    assert links[220045] == "chartevents" and links[221906] == "inputevents" and links[225792] == "procedureevents"
    labs = {r[0] for r in con.execute("SELECT DISTINCT itemid FROM labevents").fetchall()}
    lab_items = {i.itemid for o in features.OBSERVATIONS if o.source == "labevents" for i in o.items}
    lab_items |= set(features.BLOOD_GAS_ITEMS.values())  # specimen type and the gas's FiO2
    d_lab = {r[0] for r in con.execute("SELECT itemid FROM d_labitems").fetchall()}
    assert labs == lab_items and labs <= d_lab


# --------------------------------------------------------------------------- #
# MIMIC habits
# --------------------------------------------------------------------------- #


def test_blood_gases_charted_as_mimic_iv(con):
    """Every gas has its 'Specimen Type' row on its specimen_id; venous gases have a
    venous pO2; some ventilated gases carry their own FiO2 (50816)."""
    spec, fio2 = features.BLOOD_GAS_ITEMS["specimen"], features.BLOOD_GAS_ITEMS["fio2"]
    rows = dict(con.execute(f"""
        WITH g AS (SELECT specimen_id, max(value) FILTER (WHERE itemid = {spec}) AS specimen,
                          max(valuenum) FILTER (WHERE itemid = 50821) AS po2
                   FROM labevents WHERE itemid IN ({spec}, 50821) GROUP BY specimen_id)
        SELECT coalesce(specimen, 'none'), median(po2) FROM g GROUP BY ALL""").fetchall())
    assert set(rows) == {"ART.", "VEN."} and rows["VEN."] < 60 < rows["ART."]
    assert con.execute(f"SELECT count(*) FROM labevents WHERE itemid = {fio2} "
                       "AND valuenum BETWEEN 21 AND 100").fetchone()[0] > 0


def test_charting_habits(con):
    q = lambda sql: con.execute(sql).fetchone()  # noqa: E731
    # NIBP and arterial BP both used; temperature sometimes in F; FiO2 sometimes a fraction
    assert q("SELECT count(DISTINCT itemid) FROM chartevents WHERE itemid IN (220179, 220050, 220181, 220052, 225312)")[0] == 5
    f_lo, f_hi = q("SELECT quantile_cont(valuenum, 0.1), quantile_cont(valuenum, 0.9) FROM chartevents WHERE itemid = 223761")
    assert 95 < f_lo < f_hi < 106
    frac, pct = q("SELECT count(*) FILTER (valuenum <= 1), count(*) FILTER (valuenum > 20) FROM chartevents WHERE itemid = 223835")
    assert frac > 0 and pct > frac
    # GCS as text with numeric valuenum; admission weight for every stay
    assert q("SELECT count(*) FROM chartevents WHERE itemid = 223901 AND value = 'Obeys Commands' AND valuenum = 6")[0] > 0
    ett, ett_bad = q("""SELECT count(*), count(*) FILTER (valuenum <> 1) FROM chartevents
                        WHERE itemid = 223900 AND value = 'No Response-ETT'""")
    assert ett > 0 and ett_bad == 0  # intubated: verbal charted as 1
    assert q("SELECT count(DISTINCT stay_id) FROM chartevents WHERE itemid = 226512")[0] == STAYS
    # urine mostly Foley, some GU irrigant in/out pairs
    foley, irr_in, irr_out, total = q("""SELECT count(*) FILTER (itemid = 226559), count(*) FILTER (itemid = 227488),
        count(*) FILTER (itemid = 227489), count(*) FROM outputevents""")
    assert foley / total > 0.6 and irr_in == irr_out > 0
    # labs with hadm_id and units; some text results with an empty valuenum
    assert q("SELECT count(*) FROM labevents WHERE hadm_id IS NULL OR (valueuom IS NULL AND itemid NOT IN (51237, 52033))")[0] == 0
    assert q("SELECT count(*) FROM labevents WHERE value = 'UNABLE TO REPORT' AND valuenum IS NULL")[0] > 0


def test_orders_and_procedures(con):
    q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    units = set(q(f"SELECT DISTINCT itemid, rateuom FROM inputevents WHERE itemid IN {PRESSOR_ITEMS}"))
    assert {(221906, "mcg/kg/min"), (221906, "mg/kg/min"), (222315, "units/hour"), (222315, "units/min"),
            (221749, "mcg/min")} <= units
    assert q("SELECT count(*) FROM inputevents WHERE patientweight IS NULL")[0][0] == 0
    (n, lo_ml, hi_ml, lo_min, hi_min), = q("""SELECT count(*), min(amount), max(amount),
        min(date_diff('minute', starttime, endtime)), max(date_diff('minute', starttime, endtime))
        FROM inputevents WHERE ordercategorydescription = 'Bolus'""")
    assert n > 0 and lo_ml >= 500 and hi_ml <= 1000 and lo_min >= 1 and hi_min <= 60
    procs = dict(q("SELECT itemid, count(*) FROM procedureevents GROUP BY itemid"))
    assert procs.get(225792, 0) > 0 and procs.get(225802, 0) > 0
    routes = dict(q("SELECT route, count(*) FROM prescriptions WHERE lower(drug) LIKE '%vancomycin%' GROUP BY route"))
    assert routes.get("IV", 0) > 0
    assert q("SELECT count(*) FROM microbiologyevents WHERE spec_type_desc = 'BLOOD CULTURE'")[0][0] > 0


def test_patients_admissions_stays_are_consistent(con):
    q = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
    # attrition rules have something to remove: short stays, patients with several stays
    assert q("SELECT count(*) FROM icustays WHERE los * 24 < 6") > 0
    assert q("SELECT count(*) FROM (SELECT subject_id FROM icustays GROUP BY 1 HAVING count(*) > 1)") > 0
    # every stay lies inside its admission; stays of a patient do not overlap
    assert q("""SELECT count(*) FROM icustays i JOIN admissions a USING (hadm_id)
                WHERE i.intime < a.admittime OR i.outtime > a.dischtime OR i.subject_id <> a.subject_id""") == 0
    assert q("""SELECT count(*) FROM icustays a JOIN icustays b USING (subject_id)
                WHERE a.stay_id <> b.stay_id AND a.intime < b.outtime AND b.intime < a.outtime""") == 0
    # age from anchor_age / anchor_year, all adults
    assert q("""SELECT count(*) FROM icustays i JOIN patients p USING (subject_id)
                WHERE p.anchor_age + year(i.intime) - p.anchor_year NOT BETWEEN 18 AND 95""") == 0
    # deaths: flag <-> deathtime, dod = date of an in-hospital death, later dod after discharge
    assert q("SELECT count(*) FROM admissions WHERE (hospital_expire_flag = 1) <> (deathtime IS NOT NULL)") == 0
    assert q("""SELECT count(*) FROM admissions a JOIN patients p USING (subject_id)
                WHERE a.hospital_expire_flag = 1 AND (p.dod IS NULL OR p.dod <> CAST(a.deathtime AS DATE))""") == 0
    assert q("""SELECT count(*) FROM admissions a JOIN patients p USING (subject_id)
                WHERE p.dod < CAST(a.dischtime AS DATE)""") == 0
    assert 0 < q("SELECT avg(hospital_expire_flag) FROM admissions") < 0.35


def test_absurd_values_exist_at_a_small_rate(con):
    bad, total = con.execute("""SELECT count(*) FILTER (valuenum < 0 OR (itemid = 220045 AND valuenum > 300)
                                  OR (itemid = 220277 AND valuenum > 100)), count(*) FROM chartevents""").fetchone()
    assert 0 < bad / total < 0.01


# --------------------------------------------------------------------------- #
# determinism
# --------------------------------------------------------------------------- #


def test_same_seed_identical_bytes_other_seed_differs(tmp_path):
    a, b, c = (generate(tmp_path / n, SynthConfig(stays=40, seed=s)) for n, s in (("a", 7), ("b", 7), ("c", 8)))
    assert a["rows"] == b["rows"]
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db
    assert da["icu/chartevents.csv.gz"] != dc["icu/chartevents.csv.gz"]
    assert da["hosp/labevents.csv.gz"] != dc["hosp/labevents.csv.gz"]


# --------------------------------------------------------------------------- #
# dynamics
# --------------------------------------------------------------------------- #


def test_deteriorating_stays_die_more_get_more_treatment_and_labs(con):
    rows = con.execute(f"""
        WITH s AS (
          SELECT t.regime0, i.stay_id, a.hospital_expire_flag AS dead,
                 EXISTS (SELECT 1 FROM inputevents v WHERE v.stay_id = i.stay_id AND v.itemid IN {PRESSOR_ITEMS}) AS pressor,
                 EXISTS (SELECT 1 FROM procedureevents p WHERE p.stay_id = i.stay_id AND p.itemid = 225792) AS vent,
                 (SELECT avg(CAST(valuenum < 65 AS DOUBLE)) FROM chartevents c
                   WHERE c.stay_id = i.stay_id AND c.itemid IN {MAP_ITEMS} AND c.valuenum BETWEEN 1 AND 299) AS low_map
          FROM icustays i JOIN truth t USING (stay_id) JOIN admissions a USING (hadm_id))
        SELECT regime0, count(*), avg(dead), avg(CAST(pressor AS DOUBLE)), avg(CAST(vent AS DOUBLE)), avg(low_map)
        FROM s GROUP BY regime0""").fetchall()
    by = {r[0]: r[1:] for r in rows}
    n_s, dead_s, pressor_s, vent_s, low_s = by["stable"]
    n_d, dead_d, pressor_d, vent_d, low_d = by["deteriorating"]
    assert n_s > 100 and n_d > 100
    assert dead_d > 2 * dead_s
    assert pressor_d > 1.5 * pressor_s and vent_d > 1.5 * vent_s
    assert low_d > 1.2 * low_s  # more time with MAP < 65
    # labs are drawn more often when sick: creatinine results per ICU day (stays > 1 day)
    per_day = dict(con.execute("""
        SELECT t.regime0, avg((SELECT count(*) FROM labevents l WHERE l.hadm_id = i.hadm_id AND l.itemid = 50912
                               AND l.charttime BETWEEN i.intime AND i.outtime) / i.los)
        FROM icustays i JOIN truth t USING (stay_id) WHERE i.los > 1 GROUP BY 1""").fetchall())
    assert per_day["deteriorating"] > 1.2 * per_day["stable"]


def test_pressor_starts_follow_low_map_and_raise_it(con):
    """Clinicians start pressors after charted hypotension (far more often than chance),
    and MAP rises after the start."""
    first = f"""SELECT stay_id, min(starttime) AS t0 FROM inputevents WHERE itemid IN {PRESSOR_ITEMS} GROUP BY 1"""
    low_before = lambda t0: f"""EXISTS (SELECT 1 FROM chartevents c WHERE c.stay_id = s.stay_id
        AND c.itemid IN {MAP_ITEMS} AND c.valuenum BETWEEN 20 AND 64.9
        AND c.charttime BETWEEN {t0} - INTERVAL 6 HOUR AND {t0})"""  # noqa: E731
    n, hit = con.execute(f"SELECT count(*), avg(CAST({low_before('t0')} AS DOUBLE)) FROM ({first}) s").fetchone()
    # chance: the same window at a random hour of stays that never get a pressor
    chance = con.execute(f"""SELECT avg(CAST({low_before('t')} AS DOUBLE)) FROM (
        SELECT stay_id, intime + INTERVAL 1 HOUR * floor(hash(stay_id) % 1000 / 1000.0 * los * 24) AS t
        FROM icustays WHERE stay_id NOT IN (SELECT stay_id FROM ({first}))) s""").fetchone()[0]
    assert n > 50
    assert hit > 0.8 and hit > 3 * chance
    before, after = con.execute(f"""
        SELECT median(valuenum) FILTER (c.charttime BETWEEN s.t0 - INTERVAL 3 HOUR AND s.t0),
               median(valuenum) FILTER (c.charttime BETWEEN s.t0 + INTERVAL 2 HOUR AND s.t0 + INTERVAL 5 HOUR)
        FROM ({first}) s JOIN chartevents c USING (stay_id)
        WHERE c.itemid IN {MAP_ITEMS} AND c.valuenum BETWEEN 1 AND 299""").fetchone()
    assert after > before + 3


def test_ventilation_and_crrt_follow_observations_and_act(con):
    """Intubation after charted hypoxaemia or a low GCS, SpO2 up afterwards; CRRT after a
    high creatinine or potassium, creatinine down afterwards."""
    n, hit, before, after = con.execute("""
        WITH v AS (SELECT p.stay_id, min(p.starttime) AS t0 FROM procedureevents p JOIN icustays i USING (stay_id)
                   WHERE p.itemid = 225792 AND p.starttime > i.intime + INTERVAL 1 HOUR GROUP BY 1),
        c AS (SELECT c.*, v.t0 FROM chartevents c JOIN v USING (stay_id)
              WHERE c.itemid IN (220277, 223901) AND c.valuenum BETWEEN 1 AND 100)
        SELECT count(DISTINCT stay_id),
               count(DISTINCT stay_id) FILTER (charttime BETWEEN t0 - INTERVAL 12 HOUR AND t0 AND
                   ((itemid = 220277 AND valuenum < 90) OR (itemid = 223901 AND valuenum <= 4))),
               median(valuenum) FILTER (itemid = 220277 AND charttime BETWEEN t0 - INTERVAL 3 HOUR AND t0),
               median(valuenum) FILTER (itemid = 220277 AND charttime BETWEEN t0 + INTERVAL 2 HOUR AND t0 + INTERVAL 6 HOUR)
        FROM c""").fetchone()
    assert n > 30 and hit / n > 0.8 and after > before + 2
    n, hit, before, after = con.execute("""
        WITH r AS (SELECT hadm_id, min(starttime) AS t0 FROM procedureevents WHERE itemid = 225802 GROUP BY 1),
        l AS (SELECT l.*, r.t0 FROM labevents l JOIN r USING (hadm_id) WHERE l.itemid IN (50912, 50971) AND l.valuenum > 0)
        SELECT count(DISTINCT hadm_id),
               count(DISTINCT hadm_id) FILTER (charttime BETWEEN t0 - INTERVAL 24 HOUR AND t0 AND
                   ((itemid = 50912 AND valuenum > 3) OR (itemid = 50971 AND valuenum > 6.5))),
               median(valuenum) FILTER (itemid = 50912 AND charttime BETWEEN t0 - INTERVAL 12 HOUR AND t0),
               median(valuenum) FILTER (itemid = 50912 AND charttime BETWEEN t0 + INTERVAL 24 HOUR AND t0 + INTERVAL 48 HOUR)
        FROM l""").fetchone()
    assert n > 20 and hit / n > 0.8 and after < 0.8 * before


def test_antibiotics_follow_cultures(con):
    """Non-prophylactic antibiotic courses start within hours after cultures were drawn,
    and the infection (seen through WBC) resolves."""
    n, hit = con.execute("""
        WITH abx AS (SELECT p.subject_id, p.hadm_id, p.starttime FROM prescriptions p
                     JOIN icustays i USING (hadm_id)
                     WHERE p.drug IN ('Piperacillin-Tazobactam', 'CefePIME', 'CeftriaXONE', 'Meropenem', 'Levofloxacin')
                       AND p.starttime BETWEEN i.intime AND i.outtime)
        SELECT count(*), avg(CAST(EXISTS (SELECT 1 FROM microbiologyevents m WHERE m.subject_id = abx.subject_id
               AND m.charttime BETWEEN abx.starttime - INTERVAL 6 HOUR AND abx.starttime) AS DOUBLE)) FROM abx""").fetchone()
    assert n > 30 and hit > 0.9
    # the infection resolves: WBC two to four days after the start is lower than at the start
    before, after = con.execute("""
        WITH abx AS (SELECT p.hadm_id, min(p.starttime) AS t0 FROM prescriptions p JOIN icustays i USING (hadm_id)
                     WHERE p.drug IN ('Piperacillin-Tazobactam', 'CefePIME', 'CeftriaXONE', 'Meropenem', 'Levofloxacin')
                       AND p.starttime BETWEEN i.intime AND i.outtime GROUP BY 1)
        SELECT median(valuenum) FILTER (charttime BETWEEN t0 - INTERVAL 12 HOUR AND t0 + INTERVAL 6 HOUR),
               median(valuenum) FILTER (charttime BETWEEN t0 + INTERVAL 48 HOUR AND t0 + INTERVAL 96 HOUR)
        FROM labevents JOIN abx USING (hadm_id) WHERE itemid = 51301 AND valuenum > 0""").fetchone()
    assert after < 0.85 * before


# --------------------------------------------------------------------------- #
# chartevents for the real demo stays
# --------------------------------------------------------------------------- #


def test_chartevents_for_real_demo_stays(demo_dir):
    stays = pl.read_csv(demo_dir / "icu" / "icustays.csv.gz")  # times as strings
    ce = chartevents_for_stays(stays, seed=0)
    assert tuple(ce.columns) == schema.TABLES["chartevents"].columns
    bounds = stays.select("stay_id", pl.col("intime").str.to_datetime(), pl.col("outtime").str.to_datetime())
    j = ce.join(bounds, on="stay_id", how="left")
    assert j["intime"].null_count() == 0
    assert j.filter((pl.col("charttime") < pl.col("intime")) | (pl.col("charttime") > pl.col("outtime"))).height == 0
    assert set(ce["stay_id"].unique()) == set(stays["stay_id"])  # every stay, even the 34-minute one
    # ids come from the given stays; same seed -> same rows, from DuckDB-typed input too
    assert ce.select("subject_id", "hadm_id", "stay_id").unique().height == stays.height
    typed = duckdb.sql(f"SELECT * FROM read_csv('{demo_dir / 'icu' / 'icustays.csv.gz'}')").pl()
    assert chartevents_for_stays(typed, seed=0).equals(ce)
    assert not chartevents_for_stays(stays, seed=1).equals(ce)


def test_chartevents_for_stays_bad_input():
    good = pl.DataFrame(dict(subject_id=[1], hadm_id=[2], stay_id=[3], intime=["2150-01-01 00:00:00"],
                             outtime=["2150-01-02 00:00:00"]))
    with pytest.raises(ValueError, match="outtime"):
        chartevents_for_stays(good.drop("outtime"), seed=0)
    with pytest.raises(ValueError, match="no rows"):
        chartevents_for_stays(good.clear(), seed=0)
    with pytest.raises(ValueError, match="outtime <= intime"):
        chartevents_for_stays(good.with_columns(outtime=pl.lit("2149-12-31 00:00:00")), seed=0)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        chartevents_for_stays(good.with_columns(intime=pl.lit("yesterday")), seed=0)


# --------------------------------------------------------------------------- #
# CLI, validation, atomicity
# --------------------------------------------------------------------------- #


def test_cli_writes_a_directory_and_rejects_bad_arguments(tmp_path, capsys):
    from clin_jepa.pipelines.cli import main

    assert main(["synth", "--stays", "5", "--seed", "3", "--out", str(tmp_path / "m")]) == 0
    assert "5 ICU stays" in capsys.readouterr().out  # one formatted line, no JSON dump
    assert all((tmp_path / "m" / t.relpath).exists() for t in schema.TABLES.values())
    for bad in ("0", "-4"):
        assert main(["synth", "--stays", bad, "--out", str(tmp_path / "bad")]) == 2
        assert "at least 1 ICU stay" in capsys.readouterr().err
    assert main(["synth", "--stays", "5", "--set", "synth.patients_ratio=0.1", "--out", str(tmp_path / "bad")]) == 2
    assert "patients_ratio" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="unknown config key synth.stayz"):
        load_config(overrides=["synth.stayz=3"])


def test_refuses_to_replace_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="empty or new directory"):
        generate(tmp_path, SynthConfig(stays=3))
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_a_failed_write_leaves_no_directory(tmp_path, monkeypatch):
    real, calls = synth.write_csv_gz, []

    def failing(df, path):  # the real writer, then a crash on the 5th table
        calls.append(path)
        if len(calls) == 5:
            raise OSError("disk full")
        real(df, path)

    monkeypatch.setattr(synth, "write_csv_gz", failing)
    with pytest.raises(OSError, match="disk full"):
        generate(tmp_path / "mimic", SynthConfig(stays=5))
    assert list(tmp_path.iterdir()) == []


def test_memory_is_bounded_by_one_chunk_of_stays(tmp_path, monkeypatch):
    """Event rows are made and written a chunk of stays at a time and nothing of a chunk
    outlives it: no write holds rows of more than CHUNK stays, and when the next chunk
    starts no event frame of the previous one is alive (so peak memory is one chunk's rows
    plus the per-stay scalar arrays, whatever the number of stays; docs/synthetic.md)."""
    import gc

    monkeypatch.setattr(synth, "CHUNK", 20)
    stays_per_write: list[int] = []
    frames_alive: list[int] = []
    write, simulate = synth.CsvGzWriter.write, synth.simulate

    whole = {schema.TABLES[t].columns for t in ("patients", "admissions", "icustays", "diagnoses_icd",
                                                  "d_items", "d_labitems")}

    def spy_write(self, df):
        if tuple(df.columns) not in whole:  # an event table: rows of one chunk's stays (patients)
            stays_per_write.append(df["subject_id"].n_unique())
        write(self, df)

    def spy_simulate(*args, **kwargs):
        frames_alive.append(sum(type(o) is pl.DataFrame for o in gc.get_objects()))
        return simulate(*args, **kwargs)

    monkeypatch.setattr(synth.CsvGzWriter, "write", spy_write)
    monkeypatch.setattr(synth, "simulate", spy_simulate)
    summary = generate(tmp_path / "mimic", SynthConfig(stays=60, seed=1))
    assert len(frames_alive) == 3 and frames_alive[1:] == frames_alive[:1] * 2, frames_alive
    assert len(stays_per_write) >= 3 * 7 and max(stays_per_write) <= synth.CHUNK
    assert summary["rows"]["chartevents"] > 0
