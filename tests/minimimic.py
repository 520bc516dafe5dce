"""Tiny hand-built MIMIC-IV v2.2 directories for tests.

``write_mimic(out_dir, tables)`` writes every table of :mod:`clin_jepa.data.schema` as
``<module>/<name>.csv.gz`` with its full v2.2 header; rows are dicts keyed by column name
(unspecified columns are left empty, tables without rows get only the header).

:class:`MiniMimic` builds those dicts from hand-written stays, with times given in hours
since the stay's ICU intime::

    mm = MiniMimic()
    mm.add_stay(1, los_hours=48, death_hour=30)      # heart rate charted every hour
    mm.lab(1, 20.5, 50912, 2.4)                       # creatinine at 20:30 after intime
    mm.vasopressor(1, 10, 20, 221906, 0.2)            # norepinephrine 0.2 mcg/kg/min
    mm.write(tmp_path / "mimic")

``demo_with_heart_rate(demo_dir, out_dir)`` makes the public MIMIC-IV demo (which lacks
icu/chartevents) extractable: it links every other table and writes a chartevents with
a heart rate every hour of every ICU stay.
"""

from __future__ import annotations

import csv
import gzip
from datetime import date, datetime, timedelta
from pathlib import Path

from clin_jepa.data.schema import TABLES

BASE_TIME = datetime(2150, 1, 1, 0, 0, 0)
HEART_RATE = 220045  # chartevents itemid, bpm


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def write_mimic(out_dir: str | Path, tables: dict[str, list[dict]]) -> Path:
    """Write a MIMIC-IV v2.2 directory (hosp/, icu/) holding ``tables``; returns out_dir."""
    out_dir = Path(out_dir)
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"unknown MIMIC-IV table(s) {unknown}; use names of clin_jepa.data.schema.TABLES")
    for name in TABLES:
        write_table(out_dir, name, tables.get(name, []))
    return out_dir


def write_table(out_dir: str | Path, name: str, rows: list[dict]) -> Path:
    """``<out>/<module>/<name>.csv.gz`` with the full v2.2 header (missing fields empty)."""
    table = TABLES[name]
    for row in rows:
        extra = sorted(set(row) - set(table.columns))
        if extra:
            raise ValueError(f"{name} has no column(s) {extra}; columns are {', '.join(table.columns)}")
    path = Path(out_dir) / table.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(table.columns)
        for row in rows:
            w.writerow([_fmt(row.get(c)) for c in table.columns])
    return path


def demo_with_heart_rate(demo_dir: str | Path, out_dir: str | Path) -> Path:
    """``demo_dir`` with its tables symlinked into ``out_dir`` plus a chartevents holding
    HR 80 bpm at every half hour past the hour of each icustays row (nothing else)."""
    demo_dir, out_dir = Path(demo_dir), Path(out_dir)
    for name, table in TABLES.items():
        src, dst = demo_dir / table.relpath, out_dir / table.relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        if name != "chartevents" and src.exists() and not dst.exists():
            dst.symlink_to(src.resolve())
    with gzip.open(demo_dir / TABLES["icustays"].relpath, "rt", newline="") as f:
        stays = list(csv.DictReader(f))
    rows = []
    for s in stays:
        intime, outtime = datetime.fromisoformat(s["intime"]), datetime.fromisoformat(s["outtime"])
        t = intime + timedelta(minutes=30)
        while t < outtime:
            rows.append(dict(subject_id=s["subject_id"], hadm_id=s["hadm_id"], stay_id=s["stay_id"], charttime=t,
                             storetime=t, itemid=HEART_RATE, value=80, valuenum=80, valueuom="bpm", warning=0))
            t += timedelta(hours=1)
    write_table(out_dir, "chartevents", rows)
    return out_dir


class MiniMimic:
    """Hand-built ICU stays -> MIMIC-IV rows. Every stay has its own patient and
    admission unless ``subject_id`` / ``hadm_id`` are given; stays start 60 days apart."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict]] = {name: [] for name in TABLES}
        self.stays: dict[int, dict] = {}

    # ------------------------------------------------------------------ stays
    def add_stay(self, stay_id: int, *, los_hours: float = 48.0, age: int = 65, gender: str = "M",
                 subject_id: int | None = None, hadm_id: int | None = None, intime: datetime | None = None,
                 death_hour: float | None = None, dod_hour: float | None = None, weight_kg: float | None = None,
                 race: str = "WHITE", admission_type: str = "EW EMER.", heart_rate: bool = True) -> dict:
        """One ICU stay of ``los_hours``. ``death_hour``: in-hospital death (deathtime,
        hospital_expire_flag=1, dod) that many hours after intime; ``dod_hour``: death
        after discharge (patients.dod only). ``weight_kg`` charts an admission weight;
        ``heart_rate`` charts HR 80 bpm every hour (the cohort needs a vital sign)."""
        if stay_id in self.stays:
            raise ValueError(f"stay {stay_id} added twice")
        subject_id = subject_id if subject_id is not None else 10_000_000 + stay_id
        hadm_id = hadm_id if hadm_id is not None else 20_000_000 + stay_id
        intime = intime or BASE_TIME + timedelta(days=60 * len(self.stays))
        outtime = intime + timedelta(hours=los_hours)
        deathtime = intime + timedelta(hours=death_hour) if death_hour is not None else None
        dod = deathtime or (intime + timedelta(hours=dod_hour) if dod_hour is not None else None)
        stay = dict(stay_id=stay_id, subject_id=subject_id, hadm_id=hadm_id, intime=intime, outtime=outtime)
        self.stays[stay_id] = stay
        self.tables["icustays"].append(dict(
            subject_id=subject_id, hadm_id=hadm_id, stay_id=stay_id, first_careunit="Medical Intensive Care Unit (MICU)",
            last_careunit="Medical Intensive Care Unit (MICU)", intime=intime, outtime=outtime,
            los=round(los_hours / 24.0, 6)))
        if not any(p["subject_id"] == subject_id for p in self.tables["patients"]):
            self.tables["patients"].append(dict(
                subject_id=subject_id, gender=gender, anchor_age=age, anchor_year=intime.year,
                anchor_year_group="2011 - 2013", dod=dod.date() if dod else None))
        if not any(a["hadm_id"] == hadm_id for a in self.tables["admissions"]):
            self.tables["admissions"].append(dict(
                subject_id=subject_id, hadm_id=hadm_id, admittime=intime - timedelta(hours=3),
                dischtime=deathtime or outtime + timedelta(days=3), deathtime=deathtime,
                admission_type=admission_type, admission_location="EMERGENCY ROOM",
                discharge_location="DIED" if deathtime else "HOME", insurance="Other", language="ENGLISH",
                marital_status="MARRIED", race=race, hospital_expire_flag=int(deathtime is not None)))
        if weight_kg is not None:
            self.chart(stay_id, 0.1, 226512, weight_kg, uom="kg")
        if heart_rate:
            for h in range(int(los_hours)):
                self.chart(stay_id, h + 0.5, HEART_RATE, 80, uom="bpm")
        return stay

    def _t(self, stay_id: int, hour: float) -> datetime:
        if stay_id not in self.stays:
            raise ValueError(f"stay {stay_id} not added yet: call add_stay({stay_id}, ...) first")
        return self.stays[stay_id]["intime"] + timedelta(hours=hour)

    def _ids(self, stay_id: int) -> dict:
        s = self.stays[stay_id]
        return dict(subject_id=s["subject_id"], hadm_id=s["hadm_id"])

    # ------------------------------------------------------------------ events
    def chart(self, stay_id: int, hour: float, itemid: int, value: float, uom: str = "",
              text: str | None = None) -> None:
        """icu/chartevents value at ``hour`` after intime; ``text`` is the `value` column
        when it differs from the number (e.g. GCS verbal 'No Response-ETT', valuenum 1)."""
        self.tables["chartevents"].append(dict(
            **self._ids(stay_id), stay_id=stay_id, caregiver_id=1, charttime=self._t(stay_id, hour),
            storetime=self._t(stay_id, hour), itemid=itemid, value=value if text is None else text,
            valuenum=value, valueuom=uom))

    def lab(self, stay_id: int, hour: float, itemid: int, value: float, uom: str = "") -> None:
        """hosp/labevents value at ``hour`` after intime (negative = before the ICU)."""
        n = len(self.tables["labevents"]) + 1
        self.tables["labevents"].append(dict(
            labevent_id=n, **self._ids(stay_id), specimen_id=n, itemid=itemid, charttime=self._t(stay_id, hour),
            storetime=self._t(stay_id, hour + 0.5), value=value, valuenum=value, valueuom=uom, priority="STAT"))

    def blood_gas(self, stay_id: int, hour: float, po2: float, specimen: str | None = "ART.",
                  fio2: float | None = None) -> None:
        """hosp/labevents blood gas: pO2 (50821), the 'Specimen Type' row (52033, e.g.
        'ART.', 'VEN.'; None = no specimen row) and optionally its FiO2 (50816), all with
        one specimen_id, as MIMIC-IV charts a gas."""
        n = len(self.tables["labevents"]) + 1
        sid = 90_000_000 + n
        rows = [(50821, po2, po2, "mm Hg")]
        if specimen is not None:
            rows.append((52033, specimen, None, None))
        if fio2 is not None:
            rows.append((50816, fio2, fio2, "%"))
        for k, (itemid, value, valuenum, uom) in enumerate(rows):
            self.tables["labevents"].append(dict(
                labevent_id=n + k, **self._ids(stay_id), specimen_id=sid, itemid=itemid,
                charttime=self._t(stay_id, hour), storetime=self._t(stay_id, hour + 0.5), value=value,
                valuenum=valuenum, valueuom=uom, priority="STAT"))

    def output(self, stay_id: int, hour: float, itemid: int, value: float) -> None:
        """icu/outputevents volume (mL), e.g. Foley urine 226559."""
        self.tables["outputevents"].append(dict(
            **self._ids(stay_id), stay_id=stay_id, caregiver_id=1, charttime=self._t(stay_id, hour),
            storetime=self._t(stay_id, hour), itemid=itemid, value=value, valueuom="ml"))

    def vasopressor(self, stay_id: int, start_hour: float, end_hour: float, itemid: int, rate: float,
                    rateuom: str = "mcg/kg/min", weight_kg: float = 80.0) -> None:
        """icu/inputevents continuous infusion at ``rate`` from start_hour to end_hour."""
        minutes = (end_hour - start_hour) * 60.0
        amount = rate * minutes * (weight_kg / 1000.0 if "kg" in rateuom else 1.0)
        self.tables["inputevents"].append(dict(
            **self._ids(stay_id), stay_id=stay_id, caregiver_id=1, starttime=self._t(stay_id, start_hour),
            endtime=self._t(stay_id, end_hour), storetime=self._t(stay_id, start_hour), itemid=itemid,
            amount=round(amount, 6), amountuom="units" if "units" in rateuom else "mg", rate=rate,
            rateuom=rateuom, orderid=len(self.tables["inputevents"]) + 1,
            ordercategoryname="01-Drips", ordercategorydescription="Continuous Med",
            patientweight=weight_kg, statusdescription="FinishedRunning"))

    def infusion(self, stay_id: int, start_hour: float, end_hour: float, itemid: int, amount_ml: float,
                 carrier: bool = False) -> None:
        """icu/inputevents fluid given over [start_hour, end_hour] (mL), e.g. NaCl 225158;
        ``carrier``: the fluid a drug is pushed in ('Mixed solution', 'Drug Push')."""
        self.tables["inputevents"].append(dict(
            **self._ids(stay_id), stay_id=stay_id, caregiver_id=1, starttime=self._t(stay_id, start_hour),
            endtime=self._t(stay_id, end_hour), storetime=self._t(stay_id, start_hour), itemid=itemid,
            amount=amount_ml, amountuom="ml", orderid=len(self.tables["inputevents"]) + 1,
            ordercategoryname="08-Antibiotics (IV)" if carrier else "02-Fluids (Crystalloids)",
            ordercomponenttypedescription="Mixed solution" if carrier else "Main order parameter",
            ordercategorydescription="Drug Push" if carrier else "Bolus",
            patientweight=80.0, statusdescription="FinishedRunning"))

    def procedure(self, stay_id: int, start_hour: float, end_hour: float, itemid: int) -> None:
        """icu/procedureevents interval, e.g. invasive ventilation 225792, CRRT 225802."""
        self.tables["procedureevents"].append(dict(
            **self._ids(stay_id), stay_id=stay_id, caregiver_id=1, starttime=self._t(stay_id, start_hour),
            endtime=self._t(stay_id, end_hour), storetime=self._t(stay_id, start_hour), itemid=itemid,
            value=round((end_hour - start_hour) * 60.0, 3), valueuom="min", statusdescription="FinishedRunning"))

    def prescription(self, stay_id: int, hour: float, drug: str, route: str | None = "IV",
                     stop_hour: float | None = None, drug_type: str = "MAIN") -> None:
        """hosp/prescriptions order starting at ``hour`` (e.g. drug="Vancomycin")."""
        stop = self._t(stay_id, stop_hour if stop_hour is not None else hour + 24)
        self.tables["prescriptions"].append(dict(
            **self._ids(stay_id), pharmacy_id=len(self.tables["prescriptions"]) + 1, starttime=self._t(stay_id, hour),
            stoptime=stop, drug_type=drug_type, drug=drug, route=route))

    def culture(self, stay_id: int, hour: float, spec_type_desc: str = "BLOOD CULTURE",
                date_only: bool = False) -> None:
        """hosp/microbiologyevents specimen taken at ``hour`` (``date_only``: no charttime)."""
        t = self._t(stay_id, hour)
        n = len(self.tables["microbiologyevents"]) + 1
        self.tables["microbiologyevents"].append(dict(
            microevent_id=n, **self._ids(stay_id), micro_specimen_id=n,
            chartdate=datetime(t.year, t.month, t.day), charttime=None if date_only else t,
            spec_itemid=70012, spec_type_desc=spec_type_desc, test_seq=1, test_itemid=90201,
            test_name="Blood Culture, Routine"))

    def diagnosis(self, stay_id: int, icd_code: str, icd_version: int = 10) -> None:
        """hosp/diagnoses_icd code of the stay's admission (no dots, e.g. "N186")."""
        ids = self._ids(stay_id)
        n = sum(d["hadm_id"] == ids["hadm_id"] for d in self.tables["diagnoses_icd"]) + 1
        self.tables["diagnoses_icd"].append(dict(**ids, seq_num=n, icd_code=icd_code, icd_version=icd_version))

    def write(self, out_dir: str | Path) -> Path:
        return write_mimic(out_dir, self.tables)
