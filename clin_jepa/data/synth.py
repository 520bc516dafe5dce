"""Synthetic MIMIC-IV v2.2 (the embedded default): ``generate`` writes a PhysioNet-layout
directory of csv.gz tables whose columns are exactly ``clin_jepa.data.schema.TABLES``.

Stays come from the hidden-state ICU simulator (``synth_world``); ``synth_events`` and
``synth_orders`` chart them the way MIMIC-IV does. This module adds patients,
admissions and ICU stays (shifted dates 2110-2200, readmissions, deaths and ``dod``),
the item dictionaries, and writes everything atomically (polars csv -> gzip). Same seed ->
byte-identical files. See docs/synthetic.md.

Memory (measured, BENCHMARKS.md "Scale"): stays are simulated and charted CHUNK at a time;
each event table of a chunk is written into its open csv.gz file as soon as it is made and
freed before the next is built, and the heap is trimmed after each chunk
(``release_free_memory``), so the peak is one chunk's working set (~0.6 GiB at CHUNK =
2000) whatever the number of stays. What is O(stays): the per-stay scalar arrays (ids,
times, hidden outcome; ~150 bytes per stay, 14 MB at MIMIC-IV's 94k stays) and, after the
chunks are done, the hosp tables icustays / admissions / patients, built and written one
at a time (~1.5 KB per stay while written: 115 MiB at 80,000 stays), below the chunk peak
up to ~250,000 stays. The bytes are those of writing the concatenated tables in one go:
the rows are the same, in the same order, through one gzip stream per file (deflate's
output does not depend on how its input is split into writes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import itertools
import time
from pathlib import Path

import numpy as np
import polars as pl

from clin_jepa.config import SynthConfig
from clin_jepa.data import synth_events as ev
from clin_jepa.data import synth_orders as orders
from clin_jepa.data.schema import TABLES
from clin_jepa.data.synth_world import POSTOP, PRIMARY, REGIMES, simulate
from clin_jepa.utils import atomic_path, get_logger, progress

log = get_logger(__name__)

CHUNK = 2000  # stays simulated together (bounds memory: ~100 MB per chunk)
GZIP_LEVEL = 1  # csv.gz compression: level 1 is ~3x faster than 6 for ~4 % larger files
WRITE_BATCH = 500_000  # rows per csv batch streamed into gzip
DAY = 86400

# d_items rows (MIMIC-IV v2.2) for every itemid the generator writes
# (itemid, label, abbreviation, linksto, category, unitname, param_type, low, high)
D_ITEMS = (
    (220045, "Heart Rate", "HR", "chartevents", "Routine Vital Signs", "bpm", "Numeric", None, None),
    (220050, "Arterial Blood Pressure systolic", "ABPs", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", 90, 140),
    (220051, "Arterial Blood Pressure diastolic", "ABPd", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", 60, 90),
    (220052, "Arterial Blood Pressure mean", "ABPm", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", None, None),
    (220179, "Non Invasive Blood Pressure systolic", "NBPs", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", None, None),
    (220180, "Non Invasive Blood Pressure diastolic", "NBPd", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", None, None),
    (220181, "Non Invasive Blood Pressure mean", "NBPm", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", None, None),
    (220210, "Respiratory Rate", "RR", "chartevents", "Respiratory", "insp/min", "Numeric", None, None),
    (220277, "O2 saturation pulseoxymetry", "SpO2", "chartevents", "Respiratory", "%", "Numeric", None, None),
    (220739, "GCS - Eye Opening", "Eye Opening", "chartevents", "Neurological", None, "Text", None, None),
    (221289, "Epinephrine", "Epinephrine", "inputevents", "Medications", "mg", "Solution", None, None),
    (221662, "Dopamine", "Dopamine", "inputevents", "Medications", "mg", "Solution", None, None),
    (221749, "Phenylephrine", "Phenylephrine", "inputevents", "Medications", "mg", "Solution", None, None),
    (221906, "Norepinephrine", "Norepinephrine", "inputevents", "Medications", "mg", "Solution", None, None),
    (222315, "Vasopressin", "Vasopressin", "inputevents", "Medications", "units", "Solution", None, None),
    (223761, "Temperature Fahrenheit", "Temperature F", "chartevents", "Routine Vital Signs", "°F", "Numeric", None, None),
    (223762, "Temperature Celsius", "Temperature C", "chartevents", "Routine Vital Signs", "°C", "Numeric", None, None),
    (223835, "Inspired O2 Fraction", "FiO2", "chartevents", "Respiratory", "None", "Numeric", None, None),
    (223900, "GCS - Verbal Response", "Verbal Response", "chartevents", "Neurological", None, "Text", None, None),
    (223901, "GCS - Motor Response", "Motor Response", "chartevents", "Neurological", None, "Text", None, None),
    (224690, "Respiratory Rate (Total)", "Respiratory Rate (Total)", "chartevents", "Respiratory", "insp/min", "Numeric", None, 36),
    (225158, "NaCl 0.9%", "NaCl 0.9%", "inputevents", "Fluids/Intake", "mL", "Solution", None, None),
    (225312, "ART BP Mean", "ART BP Mean", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", None, None),
    (225792, "Invasive Ventilation", "Invasive Ventilation", "procedureevents", "2-Ventilation", "None", "Processes", None, None),
    (225441, "Hemodialysis", "Hemodialysis", "procedureevents", "Dialysis", "None", "Processes", None, None),
    (225802, "Dialysis - CRRT", "Dialysis - CRRT", "procedureevents", "Dialysis", "None", "Processes", None, None),
    (225828, "LR", "LR", "inputevents", "Fluids/Intake", "mL", "Solution", None, None),
    (226512, "Admission Weight (Kg)", "Admission Weight (Kg)", "chartevents", "General", "kg", "Numeric", None, None),
    (226559, "Foley", "Foley", "outputevents", "Output", "mL", "Numeric", None, None),
    (226560, "Void", "Void", "outputevents", "Output", "mL", "Numeric", None, None),
    (226561, "Condom Cath", "Condom Cath", "outputevents", "Output", "mL", "Numeric", None, None),
    (227488, "GU Irrigant Volume In", "GU Irrigant Volume In", "outputevents", "Output", "mL", "Numeric", None, None),
    (227489, "GU Irrigant/Urine Volume Out", "GU Irrigant/Urine Volume Out", "outputevents", "Output", "mL", "Numeric", None, None),
)
# d_labitems rows: (itemid, label, fluid, category)
D_LABITEMS = (
    (50813, "Lactate", "Blood", "Blood Gas"), (50816, "Oxygen", "Blood", "Blood Gas"),
    (50818, "pCO2", "Blood", "Blood Gas"),
    (50820, "pH", "Blood", "Blood Gas"), (50821, "pO2", "Blood", "Blood Gas"),
    (50882, "Bicarbonate", "Blood", "Chemistry"), (50885, "Bilirubin, Total", "Blood", "Chemistry"),
    (50902, "Chloride", "Blood", "Chemistry"), (50912, "Creatinine", "Blood", "Chemistry"),
    (50931, "Glucose", "Blood", "Chemistry"), (50971, "Potassium", "Blood", "Chemistry"),
    (50983, "Sodium", "Blood", "Chemistry"), (51006, "Urea Nitrogen", "Blood", "Chemistry"),
    (51222, "Hemoglobin", "Blood", "Hematology"), (51237, "INR(PT)", "Blood", "Hematology"),
    (51265, "Platelet Count", "Blood", "Hematology"), (51301, "White Blood Cells", "Blood", "Hematology"),
    (52033, "Specimen Type", "Blood", "Blood Gas"),
)
CAREUNITS = {  # primary problem -> first care units
    "sepsis": ("Medical Intensive Care Unit (MICU)", "Medical/Surgical Intensive Care Unit (MICU/SICU)"),
    "respiratory": ("Medical Intensive Care Unit (MICU)", "Medical/Surgical Intensive Care Unit (MICU/SICU)"),
    "cardiac": ("Coronary Care Unit (CCU)", "Cardiac Vascular Intensive Care Unit (CVICU)"),
    "renal": ("Medical Intensive Care Unit (MICU)", "Medical/Surgical Intensive Care Unit (MICU/SICU)"),
    "neuro": ("Neuro Surgical Intensive Care Unit (Neuro SICU)", "Trauma SICU (TSICU)"),
    "postop": ("Surgical Intensive Care Unit (SICU)", "Cardiac Vascular Intensive Care Unit (CVICU)"),
}
YEAR_GROUPS = ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019", "2020 - 2022")
RACES = ("WHITE", "BLACK/AFRICAN AMERICAN", "HISPANIC/LATINO - PUERTO RICAN", "ASIAN", "OTHER", "UNKNOWN")
RACE_P = (0.65, 0.12, 0.04, 0.04, 0.05, 0.10)


def _pick(rng, options, n, p=None) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.choice(len(options), n, p=p)]


def _year_start(years: np.ndarray) -> np.ndarray:
    """Epoch seconds of 1 January of each year."""
    return (np.asarray(years) - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)


def _year_of(t: np.ndarray) -> np.ndarray:
    return np.asarray(t, np.int64).astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970


def _ts(sec) -> pl.Series:
    return pl.Series(np.asarray(sec, np.int64) * 1_000_000).cast(pl.Datetime("us"))


def _unique_ids(rng, base: int, n: int) -> np.ndarray:
    return base + rng.choice(9_999_999, n, replace=False).astype(np.int64)


def release_free_memory() -> None:
    """Return the heap pages freed by the last chunk to the OS (glibc ``malloc_trim``; a
    no-op elsewhere). Measured (12,000 stays, 6 chunks): without it the resident floor
    between chunks drifted 396 -> 569 MiB (freed numpy/polars buffers kept by malloc's
    arenas, not live data: tracemalloc stayed at 100 MiB), with it 351-379 MiB, flat."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim  # noqa: B018  (AttributeError off glibc)
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None  # ctypes handle of the C library, loaded on first use (False: not glibc)


# --------------------------------------------------------------------------- #
# writing
# --------------------------------------------------------------------------- #


class CsvGzWriter:
    """One MIMIC-IV table as csv.gz ('YYYY-MM-DD HH:MM:SS' times), written in parts: the
    header with the first part, then rows as they come (no file name, mtime 0 in the gzip
    header: same bytes every run)."""

    def __init__(self, path: str | Path, level: int = GZIP_LEVEL) -> None:
        self._file = open(path, "wb")  # noqa: SIM115  (closed in close())
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._file, compresslevel=level, mtime=0)
        self._header = True
        self.rows = 0

    def write(self, df: pl.DataFrame) -> None:
        for i in range(0, max(df.height, 1 if self._header else 0), WRITE_BATCH):
            self._gz.write(df.slice(i, WRITE_BATCH).write_csv(include_header=self._header,
                                                              datetime_format="%Y-%m-%d %H:%M:%S").encode())
            self._header = False
        self.rows += df.height

    def close(self) -> None:
        self._gz.close()
        self._file.close()


def write_csv_gz(df: pl.DataFrame, path: str | Path, level: int = GZIP_LEVEL) -> None:
    """Write one whole MIMIC-IV table as csv.gz, atomically."""
    with atomic_path(path) as tmp:
        w = CsvGzWriter(tmp, level)
        w.write(df)
        w.close()


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"synthetic MIMIC-IV output {out} is a file; pass a directory path (it is created)")
    if out.is_dir():
        extra = sorted(p.name for p in out.iterdir() if p.name not in ("hosp", "icu"))
        if extra:
            raise ValueError(f"synthetic MIMIC-IV output {out} already holds {extra[:5]}; it would be replaced. "
                             "Pass an empty or new directory (or a previous synthetic MIMIC-IV directory).")


# --------------------------------------------------------------------------- #
# generate
# --------------------------------------------------------------------------- #


POPULATION_KEYS = ("n_pat", "pred", "rep", "same", "patient", "can_die", "anchor_year", "anchor_age", "female",
                   "admit", "intime", "age", "hadm_of", "subject_ids", "hadm_ids", "stay_ids")


def population(cfg: SynthConfig) -> dict:
    """Patients, admissions and ICU stays drawn before any simulation (stream [seed, 1]):
    POPULATION_KEYS arrays plus ``rs``, the stream, for the draws ``generate`` makes after
    it. ``synth_replay`` uses it to find a stay's chunk and simulator inputs."""
    seed, N = cfg.seed, cfg.stays
    rs = np.random.default_rng([seed, 1])

    # ---- patients and the order of their stays (before simulation) -------- #
    n_pat = int(np.clip(round(N * cfg.patients_ratio), max(1, (N + 1) // 2), N))
    pred = np.full(N, -1)
    pred[n_pat:] = rs.choice(n_pat, N - n_pat, replace=False)  # readmission -> earlier stay
    rep = pred >= 0
    same = rep & (rs.random(N) < 0.25)  # ICU readmission within the same hospital admission
    patient = np.where(rep, pred, np.arange(N))
    can_die = np.ones(N, bool)
    can_die[pred[rep]] = False  # a patient readmitted later survived the earlier stay
    anchor_year = rs.integers(2110, 2196, n_pat)
    anchor_age = np.clip(np.rint(rs.normal(62, 17, n_pat)), 18, 91).astype(np.int64)
    female = rs.random(n_pat) < 0.44
    admit = _year_start(anchor_year) + rs.integers(0, int(2.5 * 365 * DAY), n_pat) // 60 * 60
    admit = np.concatenate([admit, np.zeros(N - n_pat, np.int64)])
    later = np.nonzero(rep & ~same)[0]
    admit[later] = admit[pred[later]] + rs.integers(60 * DAY, 600 * DAY, len(later)) // 60 * 60
    admit[same] = admit[pred[same]]
    intime = admit + rs.integers(2 * 3600, 48 * 3600, N)  # ED / ward before the ICU, seconds
    age = np.clip(anchor_age[patient] + _year_of(admit) - anchor_year[patient], 18, 91)
    hadm_of = np.where(same, pred, np.arange(N))  # admission index of each stay
    subject_ids, hadm_ids, stay_ids = (_unique_ids(rs, b, N) for b in (10_000_000, 20_000_000, 30_000_000))
    return dict(zip(POPULATION_KEYS, (n_pat, pred, rep, same, patient, can_die, anchor_year, anchor_age, female,
                                      admit, intime, age, hadm_of, subject_ids, hadm_ids, stay_ids))) | {"rs": rs}


def simulate_chunk(seed: int, pop: dict, c: int, **kwargs):
    """Simulate chunk ``c`` (stays c*CHUNK ... ) of a ``population`` with its own stream;
    ``kwargs`` go to ``synth_world.simulate`` (``synth_replay`` adds fixed_hours and a policy)."""
    lo, hi = c * CHUNK, min((c + 1) * CHUNK, len(pop["stay_ids"]))
    return simulate(np.random.default_rng([seed, 2, c]), hi - lo, age=pop["age"][lo:hi],
                    female=pop["female"][pop["patient"][lo:hi]], can_die=pop["can_die"][lo:hi], **kwargs)


def generate(out_dir: Path | str, cfg: SynthConfig, truth: bool = False, policy=None) -> dict:
    """Write a synthetic MIMIC-IV v2.2 directory (hosp/, icu/ csv.gz); return a summary
    (stays, patients, admissions, rows per table, seconds). Atomic: built in a temporary
    sibling, renamed at the end. ``truth=True`` adds ``summary["truth"]``, a polars frame
    of the hidden per-stay state (stay_id, regime0, primary, sev_max, died_icu) for tests
    and docs; it is never written next to the tables. ``policy``: a treatment policy hook
    (``synth_world.simulate``; tests plant unconfounded treatment effects with it)."""
    t0 = time.perf_counter()
    cfg.validate()
    out = Path(out_dir)
    _check_out_dir(out)
    seed, N = cfg.seed, cfg.stays
    pop = population(cfg)
    rs = pop["rs"]
    (n_pat, pred, rep, same, patient, can_die, anchor_year, anchor_age, female, admit, intime, age, hadm_of,
     subject_ids, hadm_ids, stay_ids) = (pop[k] for k in POPULATION_KEYS)

    # maintenance dialysis (ESRD) per admission, from its own stream (other draws unchanged)
    esrd = (np.random.default_rng([seed, 5]).random(N) < orders.ESRD_P)[hadm_of]

    # ---- simulate and chart, chunk by chunk ------------------------------- #
    los_s = np.zeros(N, np.int64)
    st = {k: np.zeros(N, dt) for k, dt in (("died_icu", bool), ("sev_end", float), ("sev_max", float),
                                          ("primary", np.int64), ("weight", float), ("regime0", np.int64))}
    pre_start = admit.copy()
    streamed = ("chartevents", "labevents", "outputevents", "inputevents", "procedureevents",
                "prescriptions", "microbiologyevents")
    rows: dict[str, int] = {}
    with atomic_path(out) as tmp:
        for module in ("hosp", "icu"):
            (tmp / module).mkdir(parents=True)
        writers = {k: CsvGzWriter(tmp / TABLES[k].relpath) for k in streamed}
        next_lab, next_micro = 1, 1
        chunks = list(range(0, N, CHUNK))
        for c, lo in enumerate(progress(chunks, desc="synth stays", unit="chunk")):
            hi = min(lo + CHUNK, N)
            w = simulate_chunk(seed, pop, c, policy=policy)
            los_s[lo:hi] = np.maximum(np.rint(w.stay["los_h"] * 3600), 60).astype(np.int64)
            for k in st:
                st[k][lo:hi] = w.stay[k]
            r = np.arange(lo, hi)[same[lo:hi]]  # same-admission readmissions: after the earlier stay
            prev_out = intime[pred[r]] + los_s[pred[r]]
            intime[r] = prev_out + rs.integers(12 * 3600, 120 * 3600, len(r))
            pre_start[r] = prev_out
            ids = dict(subject_id=subject_ids[patient[lo:hi]], hadm_id=hadm_ids[hadm_of[lo:hi]],
                       stay_id=stay_ids[lo:hi])
            made = _chunk_tables(w, ids, intime[lo:hi], los_s[lo:hi], pre_start[lo:hi], esrd[lo:hi], seed, c,
                                   next_lab, next_micro)
            for k, df in made:  # each written as soon as it is made: one table of one chunk in memory
                assert tuple(df.columns) == TABLES[k].columns, (k, df.columns)
                writers[k].write(df)
                next_lab += df.height if k == "labevents" else 0
                next_micro += df.height if k == "microbiologyevents" else 0
                del df
            del w, made
            release_free_memory()
        for k, wr in writers.items():
            wr.close()
            rows[k] = wr.rows

        hosp = _hosp_tables(np.random.default_rng([seed, 4]), st, los_s, intime, admit, age, patient,
                            hadm_of, pred, same, can_die, anchor_year, anchor_age, female,
                            subject_ids, hadm_ids, stay_ids)
        a = np.nonzero(hadm_of == np.arange(N))[0]  # admission index = its first stay
        dictionaries = (
            ("diagnoses_icd", lambda: orders.diagnoses_icd(subject_ids[patient[a]], hadm_ids[a],
                                                           np.asarray(PRIMARY, dtype=object)[st["primary"][a]], esrd[a])),
            ("d_items", lambda: pl.DataFrame(list(D_ITEMS), schema=list(TABLES["d_items"].columns), orient="row")),
            ("d_labitems", lambda: pl.DataFrame(list(D_LABITEMS), schema=list(TABLES["d_labitems"].columns),
                                                orient="row")))
        for name, df in itertools.chain(hosp, ((k, make()) for k, make in dictionaries)):  # one at a time
            assert tuple(df.columns) == TABLES[name].columns, (name, df.columns)
            write_csv_gz(df, tmp / TABLES[name].relpath)
            rows[name] = df.height
            del df
    summary = dict(stays=N, patients=n_pat, admissions=int((hadm_of == np.arange(N)).sum()),
                   icu_deaths=int(st["died_icu"].sum()), rows={k: rows[k] for k in TABLES},
                   seconds=round(time.perf_counter() - t0, 2), out_dir=str(out))
    if truth:
        summary["truth"] = pl.DataFrame(dict(
            stay_id=stay_ids, regime0=pl.Series(np.asarray(REGIMES, dtype=object)[st["regime0"]].tolist()),
            primary=pl.Series(np.asarray(PRIMARY, dtype=object)[st["primary"]].tolist()),
            sev_max=st["sev_max"], died_icu=st["died_icu"]))
    log.info("synthetic MIMIC-IV: %d stays, %d patients, %d chartevents rows in %.1f s -> %s",
             N, n_pat, summary["rows"]["chartevents"], summary["seconds"], out)
    return summary


def _chunk_tables(w, ids, intime, los_s, pre_start, esrd, seed: int, c: int, first_lab: int, first_micro: int):
    """The streamed event tables of chunk ``c``, one (name, frame) at a time, in the order
    of their draws from the chunk's streams (so the rows do not depend on when each frame
    is written and freed)."""
    rng = np.random.default_rng([seed, 3, c])
    args = (w, ids, intime, los_s)
    yield "chartevents", ev.chartevents(*args, rng)
    yield "labevents", ev.labevents(*args, pre_start, rng, first_id=first_lab,
                                    gas_rng=np.random.default_rng([seed, 7, c]))
    yield "outputevents", ev.outputevents(*args, rng)
    yield "inputevents", orders.inputevents(*args, rng, carrier_rng=np.random.default_rng([seed, 8, c]))
    yield "procedureevents", orders.procedureevents(*args, rng, esrd=esrd,
                                                    ihd_rng=np.random.default_rng([seed, 6, c]))
    yield "prescriptions", orders.prescriptions(*args, rng)
    yield "microbiologyevents", orders.microbiologyevents(*args, rng, first_id=first_micro)


def _hosp_tables(rng, st, los_s, intime, admit, age, patient, hadm_of, pred, same, can_die,
                 anchor_year, anchor_age, female, subject_ids, hadm_ids, stay_ids):
    """(name, frame) of icustays, admissions and patients from the simulated stays, one at a
    time (each can be written and freed before the next is built; same draws from ``rng``)."""
    N = len(intime)
    outtime = intime + los_s
    # icustays
    first_cu = np.array([CAREUNITS[p][0] for p in PRIMARY], dtype=object)[st["primary"]]
    alt_cu = np.array([CAREUNITS[p][1] for p in PRIMARY], dtype=object)[st["primary"]]
    first_cu = np.where(rng.random(N) < 0.3, alt_cu, first_cu)
    last_cu = np.where(rng.random(N) < 0.08, alt_cu, first_cu)
    o = np.lexsort((intime, subject_ids[patient]))
    icustays = pl.DataFrame(dict(
        subject_id=subject_ids[patient][o], hadm_id=hadm_ids[hadm_of][o], stay_id=stay_ids[o],
        first_careunit=pl.Series(first_cu[o].tolist(), dtype=pl.String),
        last_careunit=pl.Series(last_cu[o].tolist(), dtype=pl.String), intime=_ts(intime[o]),
        outtime=_ts(outtime[o]), los=los_s[o] / DAY))
    yield "icustays", icustays
    del icustays

    # admissions: the outcome follows the admission's last ICU stay
    a = np.nonzero(hadm_of == np.arange(N))[0]  # admission indices (= their first stay)
    last = np.arange(N)
    last[pred[same]] = np.nonzero(same)[0]
    L = last[a]
    died_icu = st["died_icu"][L]
    p_hosp = (0.02 + 0.3 / (1 + np.exp(-2 * (st["sev_end"][L] - 2.0)))) * np.exp(0.02 * (age[L] - 65))
    hosp_death = ~died_icu & can_die[L] & (rng.random(len(a)) < p_hosp)
    out_min = np.ceil(outtime[L] / 60).astype(np.int64) * 60  # admissions times are whole minutes
    disch = np.where(died_icu, out_min, out_min + rng.integers(6 * 3600, 10 * DAY, len(a)) // 60 * 60)
    expire = died_icu | hosp_death
    elective = (st["primary"][a] == POSTOP) & (rng.random(len(a)) < 0.6)
    adm_type = np.where(elective, _pick(rng, ("ELECTIVE", "SURGICAL SAME DAY ADMISSION"), len(a)),
                        _pick(rng, ("EW EMER.", "URGENT", "DIRECT EMER.", "OBSERVATION ADMIT"), len(a),
                              (0.6, 0.2, 0.1, 0.1)))
    loc = np.select([adm_type == "EW EMER.", adm_type == "URGENT", elective],
                    ["EMERGENCY ROOM", "TRANSFER FROM HOSPITAL", "PHYSICIAN REFERRAL"], "EMERGENCY ROOM")
    ed = adm_type == "EW EMER."
    edreg = admit[a] - rng.integers(3600, 8 * 3600, len(a)) // 60 * 60
    edout = admit[a] + rng.integers(0, 1800, len(a)) // 60 * 60
    providers = np.array([f"P{x:05X}" for x in rng.choice(0xFFFFF, 300, replace=False)], dtype=object)
    home = _pick(rng, ("HOME", "HOME HEALTH CARE", "SKILLED NURSING FACILITY", "REHAB"), len(a),
                 (0.35, 0.3, 0.25, 0.1))
    o = np.lexsort((admit[a], subject_ids[patient[a]]))
    S = lambda x: pl.Series(np.asarray(x, dtype=object)[o].tolist(), dtype=pl.String)  # noqa: E731
    T = lambda x, m=None: _ts(x[o]) if m is None else _ts(x[o]).set(pl.Series(~m[o]), None)  # noqa: E731
    admissions = pl.DataFrame(dict(
        subject_id=subject_ids[patient[a]][o], hadm_id=hadm_ids[a][o], admittime=T(admit[a]), dischtime=T(disch),
        deathtime=T(disch, expire), admission_type=S(adm_type), admit_provider_id=S(providers[rng.integers(0, 300, len(a))]),
        admission_location=S(loc), discharge_location=S(np.where(expire, "DIED", home)),
        insurance=S(_pick(rng, ("Medicare", "Medicaid", "Other"), len(a), (0.45, 0.15, 0.4))),
        language=S(np.where(rng.random(len(a)) < 0.9, "ENGLISH", "?")),
        marital_status=S(_pick(rng, ("MARRIED", "SINGLE", "WIDOWED", "DIVORCED"), len(a), (0.45, 0.3, 0.15, 0.1))),
        race=S(_pick(rng, RACES, len(a), RACE_P)), edregtime=T(edreg, ed), edouttime=T(edout, ed),
        hospital_expire_flag=expire[o].astype(np.int64)))
    yield "admissions", admissions
    del admissions

    # patients: dod from the last admission (in-hospital death, or within a year after)
    n_pat = len(anchor_year)
    last_adm = np.arange(n_pat)  # admission index of each patient's last admission
    r = np.nonzero(pred >= 0)[0]
    last_adm[pred[r]] = hadm_of[r]
    pos = np.searchsorted(a, last_adm)
    p_post = (0.05 + 0.12 * (age[L[pos]] > 75) + 0.2 / (1 + np.exp(-2 * (st["sev_max"][L[pos]] - 2.5))))
    days = rng.exponential(120.0, n_pat)
    post = ~expire[pos] & (rng.random(n_pat) < p_post) & (days < 365)
    dod_s = np.where(expire[pos], disch[pos], disch[pos] + (days * DAY).astype(np.int64))
    dod = pl.Series((dod_s // DAY).astype("datetime64[D]")).set(pl.Series(~(expire[pos] | post)), None)
    o = np.argsort(subject_ids[:n_pat])
    patients = pl.DataFrame(dict(
        subject_id=subject_ids[:n_pat][o], gender=pl.Series(np.where(female, "F", "M")[o].tolist(), dtype=pl.String),
        anchor_age=anchor_age[o], anchor_year=anchor_year[o].astype(np.int64),
        anchor_year_group=pl.Series(_pick(rng, YEAR_GROUPS, n_pat)[o].tolist(), dtype=pl.String),
        dod=dod.gather(o)))
    yield "patients", patients


# --------------------------------------------------------------------------- #
# chartevents for given (e.g. real demo) stays
# --------------------------------------------------------------------------- #


def chartevents_for_stays(icustays: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Simulated chartevents (exact v2.2 columns) for GIVEN stays, every row inside its
    stay's [intime, outtime]. ``icustays`` needs subject_id, hadm_id, stay_id, intime,
    outtime (timestamps or 'YYYY-MM-DD HH:MM:SS' strings), as in icu/icustays."""
    need = ("subject_id", "hadm_id", "stay_id", "intime", "outtime")
    missing = [c for c in need if c not in icustays.columns]
    if missing:
        raise ValueError(f"chartevents_for_stays: icustays lacks columns {missing}; pass icu/icustays "
                         f"(read with polars/DuckDB) with columns {list(need)}")
    if icustays.height == 0:
        raise ValueError("chartevents_for_stays: icustays has no rows; pass at least one ICU stay")
    times = {}
    for c in ("intime", "outtime"):
        col = icustays[c]
        if col.dtype == pl.String:
            col = col.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False)
        if not col.dtype.is_temporal():
            raise ValueError(f"chartevents_for_stays: icustays.{c} is {col.dtype}; expected timestamps "
                             "or 'YYYY-MM-DD HH:MM:SS' strings")
        times[c] = col.cast(pl.Datetime("us")).dt.epoch("s").to_numpy()
    if np.isnan(times["intime"].astype(float)).any() or np.isnan(times["outtime"].astype(float)).any():
        raise ValueError("chartevents_for_stays: some intime/outtime are empty or not 'YYYY-MM-DD HH:MM:SS'; "
                         "drop those stays first")
    intime = times["intime"].astype(np.int64)
    los_s = times["outtime"].astype(np.int64) - intime
    if (los_s <= 0).any():
        raise ValueError(f"chartevents_for_stays: {(los_s <= 0).sum()} stays have outtime <= intime; drop them first")
    w = simulate(np.random.default_rng([seed, 5]), icustays.height, fixed_hours=los_s / 3600.0)
    ids = {c: icustays[c].cast(pl.Int64).to_numpy() for c in ("subject_id", "hadm_id", "stay_id")}
    return ev.chartevents(w, ids, intime, los_s, np.random.default_rng([seed, 6]))
