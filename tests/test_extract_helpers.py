"""Helpers for the extraction tests (no tests here): a tiny, hand-checkable MIMIC-IV
directory with full v2.2 headers, rows planted at chosen stay-hours, and a symlinked
copy of the real demo.

Times in the ``plant_*`` helpers are hours after the stay's ICU intime, so a test
states "HR 100 at hour 3.25 of stay 2" and looks for it in hour 3 of the output.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

from minimimic import write_table  # noqa: F401  (re-exported for the extraction tests)

from clin_jepa.data.schema import TABLES

T0 = datetime(2150, 1, 1, 8, 0, 0)


class Mini:
    """A small MIMIC-IV: ``stays`` = list of dicts(stay_id, subject_id, hadm_id, age, los_hours,
    gender, race, admission_type); every stay gets an hourly heart rate unless vitals=False."""

    def __init__(self):
        self.tables: dict[str, list[dict]] = {name: [] for name in TABLES}
        self.intime: dict[int, datetime] = {}
        self.ids: dict[int, tuple[int, int]] = {}
        self._patients: set[int] = set()

    def stay(self, stay_id: int, subject_id: int, los_hours: float = 48.0, age: int = 60,
             start_day: int = 0, gender: str = "F", race: str = "WHITE", admission_type: str = "EW EMER.",
             hr_every: float | None = 1.0, hadm_id: int | None = None) -> Mini:
        hadm_id = hadm_id or subject_id * 1000 + start_day
        intime = T0 + timedelta(days=start_day)
        outtime = intime + timedelta(hours=los_hours)
        self.intime[stay_id], self.ids[stay_id] = intime, (subject_id, hadm_id)
        if subject_id not in self._patients:
            self._patients.add(subject_id)
            self.tables["patients"].append(dict(subject_id=subject_id, gender=gender, anchor_age=age,
                                                anchor_year=2150, anchor_year_group="2011 - 2013"))
        self.tables["admissions"].append(dict(
            subject_id=subject_id, hadm_id=hadm_id, admittime=intime - timedelta(hours=5),
            dischtime=outtime + timedelta(days=2), admission_type=admission_type, race=race,
            hospital_expire_flag=0))
        self.tables["icustays"].append(dict(
            subject_id=subject_id, hadm_id=hadm_id, stay_id=stay_id, first_careunit="MICU",
            last_careunit="MICU", intime=intime, outtime=outtime, los=los_hours / 24))
        if hr_every:
            h = 0.5
            while h < los_hours:
                self.chart(stay_id, h, 220045, 80 + (int(h) % 7))
                h += hr_every
        return self

    def at(self, stay_id: int, hour: float) -> datetime:
        return self.intime[stay_id] + timedelta(hours=hour)

    def chart(self, stay_id, hour, itemid, valuenum, value=None) -> Mini:
        s, h = self.ids[stay_id]
        self.tables["chartevents"].append(dict(
            subject_id=s, hadm_id=h, stay_id=stay_id, charttime=self.at(stay_id, hour), itemid=itemid,
            value=value if value is not None else valuenum, valuenum=valuenum))
        return self

    def lab(self, stay_id, hour, itemid, valuenum) -> Mini:
        s, h = self.ids[stay_id]
        self.tables["labevents"].append(dict(
            labevent_id=len(self.tables["labevents"]) + 1, subject_id=s, hadm_id=h, itemid=itemid,
            charttime=self.at(stay_id, hour), value=valuenum, valuenum=valuenum))
        return self

    def output(self, stay_id, hour, itemid, ml) -> Mini:
        s, h = self.ids[stay_id]
        self.tables["outputevents"].append(dict(
            subject_id=s, hadm_id=h, stay_id=stay_id, charttime=self.at(stay_id, hour), itemid=itemid,
            value=ml, valueuom="ml"))
        return self

    def infusion(self, stay_id, h0, h1, itemid, rate, rateuom, amount=1.0, amountuom="mg",
                 weight=80.0) -> Mini:
        s, h = self.ids[stay_id]
        self.tables["inputevents"].append(dict(
            subject_id=s, hadm_id=h, stay_id=stay_id, starttime=self.at(stay_id, h0),
            endtime=self.at(stay_id, h1), itemid=itemid, amount=amount, amountuom=amountuom, rate=rate,
            rateuom=rateuom, patientweight=weight))
        return self

    def procedure(self, stay_id, h0, h1, itemid) -> Mini:
        s, h = self.ids[stay_id]
        self.tables["procedureevents"].append(dict(
            subject_id=s, hadm_id=h, stay_id=stay_id, starttime=self.at(stay_id, h0),
            endtime=self.at(stay_id, h1), itemid=itemid))
        return self

    def prescription(self, stay_id, h0, h1, drug, route="IV") -> Mini:
        s, h = self.ids[stay_id]
        self.tables["prescriptions"].append(dict(
            subject_id=s, hadm_id=h, starttime=self.at(stay_id, h0),
            stoptime=self.at(stay_id, h1) if h1 is not None else None, drug=drug, route=route))
        return self

    def write(self, out_dir: Path) -> Path:
        for name, rows in self.tables.items():
            write_table(out_dir, name, rows)
        return Path(out_dir)


def standard_mini() -> Mini:
    """Eight stays / six patients exercising every cohort rule:
    101 adult 48 h (first stay of patient 1), 102 = patient 1's second stay,
    103 aged 16, 104 stays 4 h, 105 has no vital sign, 106-108 ordinary adults."""
    m = Mini()
    m.stay(101, 1, los_hours=48).stay(102, 1, los_hours=30, start_day=20)
    m.stay(103, 2, los_hours=40, age=16)
    m.stay(104, 3, los_hours=4)
    m.stay(105, 4, los_hours=24, hr_every=None)
    m.stay(106, 5, los_hours=200, gender="M", race="BLACK/AFRICAN AMERICAN", admission_type="ELECTIVE")
    m.stay(107, 6, los_hours=72).stay(108, 7, los_hours=20.5, age=95)
    m.chart(105, 2, 220045, 500)  # out-of-range heart rate: does not count as a vital sign
    m.lab(101, 3.5, 50912, 1.4).lab(107, 10, 50983, 140)
    m.output(101, 1.5, 226559, 120)
    return m


def copy_demo(demo_dir: Path, out: Path) -> Path:
    """Symlink the demo's files into ``out`` (so a test can add/replace single tables)."""
    for module in ("hosp", "icu"):
        (out / module).mkdir(parents=True, exist_ok=True)
        for f in (demo_dir / module).iterdir():
            dst = out / module / f.name
            try:
                dst.symlink_to(f)
            except OSError:
                shutil.copy(f, dst)
    return out


def test_sql_fingerprint_covers_the_registry_data_files(tmp_path, monkeypatch):
    """Editing the antibiotic list (sql/registry/antibiotic.csv) changes the extraction's SQL
    fingerprint, like editing a .sql file does."""
    from clin_jepa.data import extract

    sql = tmp_path / "sql"
    shutil.copytree(extract.SQL_DIR, sql)
    monkeypatch.setattr(extract, "SQL_DIR", sql)
    monkeypatch.setattr(extract, "MANIFEST", sql / "manifest.txt")
    before = extract._sql_fingerprint()
    with open(sql / "registry" / "antibiotic.csv", "a") as f:
        f.write("\n")
    assert extract._sql_fingerprint() != before
