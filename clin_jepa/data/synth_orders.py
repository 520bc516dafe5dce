"""Simulated treatments -> MIMIC-IV v2.2 order rows: inputevents (vasopressor drips with
MIMIC's unit habits, fluid boluses, maintenance fluids), procedureevents (invasive
ventilation, CRRT), prescriptions (antibiotic courses among other drugs) and
microbiologyevents (blood / urine cultures on suspected infection)."""

from __future__ import annotations

import numpy as np
import polars as pl

from clin_jepa.data.features import VASOPRESSORS
from clin_jepa.data.synth_events import ceil_minute, event_times, frame, hour_runs, in_hour
from clin_jepa.data.synth_world import FIRST_LINE, World

VASO = {v.name: v for v in VASOPRESSORS}
# (drug, formulary code, strength, dose, dose unit, form, doses/24 h, route)
ABX_REGIMENS = (
    (("Vancomycin", "VANC1F", "1g Frozen Bag", "1000", "mg", "BAG", 2, "IV"),
     ("Piperacillin-Tazobactam", "ZOSY4FPB", "4.5 g Frozen Bag", "4.5", "g", "BAG", 3, "IV")),
    (("Vancomycin", "VANC1F", "1g Frozen Bag", "1000", "mg", "BAG", 2, "IV"),
     ("CefePIME", "CEFE2I", "2g Vial", "2", "g", "VIAL", 2, "IV")),
    (("CeftriaXONE", "CEFR1MB", "1g Vial (For Mini Bag plus)", "1", "gm", "VIAL", 1, "IV"),),
    (("Meropenem", "MERO1I", "1000mg Vial", "1000", "mg", "VIAL", 3, "IV"),),
    (("Levofloxacin", "LEVO750PM", "750 mg Premix Bag", "750", "mg", "BAG", 1, "IV"),),
)
ABX_REGIMEN_P = (0.4, 0.25, 0.15, 0.1, 0.1)
CEFAZOLIN = ("CeFAZolin", "CEFA2F", "2 g Frozen Bag", "2", "g", "BAG", 3, "IV")
OTHER_DRUGS = (  # not antibiotics, or an antibiotic by an excluded (ophthalmic) route
    ("Acetaminophen", "ACET325", "325mg Tablet", "650", "mg", "TAB", 4, "PO/NG"),
    ("Heparin", "HEPA5I", "5000 Units / mL- 1mL Vial", "5000", "UNIT", "mL", 3, "SC"),
    ("Pantoprazole", "PANT40I", "40mg Vial", "40", "mg", "VIAL", 1, "IV"),
    ("Insulin", "GLAR100I", "100 Units / mL - 10 mL Vial", "10", "UNIT", "mL", 1, "SC"),
    ("Docusate Sodium", "DOCU100", "100mg Capsule", "100", "mg", "CAP", 2, "PO"),
    ("Gentamicin 0.3% Ophth Soln", "GENT3O", "5 mL Bottle", "1", "DROP", "BTL", 4, "OU"),
)
OTHER_DRUG_P = (0.3, 0.3, 0.2, 0.1, 0.07, 0.03)


def _s(values, n=None) -> pl.Series:
    """A String series (constant when ``n`` is given)."""
    return pl.Series([values] * n if n is not None else list(values), dtype=pl.String)


# --------------------------------------------------------------------------- #
# inputevents
# --------------------------------------------------------------------------- #


# highest first-line dose before norepinephrine is added (NEE mcg/kg/min): phenylephrine
# 2 mcg/kg/min, dopamine 15 mcg/kg/min; the total NEE (what the physiology saw) is unchanged
FIRST_LINE_MAX_NEE = {"norepinephrine": np.inf, "phenylephrine": 0.2, "dopamine": 0.15}


def _drips(w: World, rng):
    """Hourly vasopressor rows: (si, h, itemid, canonical rate, status)."""
    n = w.n
    first = np.array([VASO[d].itemid for d in FIRST_LINE])[w.stay["first_line"]]  # (N,)
    nee = np.array([VASO[d].nee_factor for d in FIRST_LINE])[w.stay["first_line"]]
    cap = np.array([FIRST_LINE_MAX_NEE[d] for d in FIRST_LINE])[w.stay["first_line"]][:, None]  # (N, 1)
    ne1 = w.hourly["ne1"]  # first-line dose in norepinephrine equivalents (N, H)
    drugs = ((np.minimum(ne1, cap) / nee[:, None], first),  # first-line drug in its own unit
             (np.maximum(ne1 - cap, 0.0), np.full(n, VASO["norepinephrine"].itemid)),  # added above its cap
             (w.hourly["vaso"], np.full(n, VASO["vasopressin"].itemid)),
             (w.hourly["epi"], np.full(n, VASO["epinephrine"].itemid)))
    out = []
    for rate, itemid in drugs:
        on = rate > 0
        nxt = np.concatenate([on[:, 1:], np.zeros((n, 1), bool)], axis=1)  # (N, H)
        si, h = np.nonzero(on)
        out.append((si, h, itemid[si], rate[si, h].astype(np.float64),
                    np.where(nxt[si, h], "ChangeDose/Rate", "FinishedRunning")))
    return [np.concatenate(x) for x in zip(*out)]


CARRIER_ML = 250.0  # mL of the NaCl 0.9 % an antibiotic dose is pushed in


def inputevents(w: World, ids, intime, los_s, rng, carrier_rng=None) -> pl.DataFrame:
    n = w.n
    weight = w.stay["weight"]
    si, h, itemid, rate, status = _drips(w, rng)
    start = event_times(si, h.astype(float), intime, los_s)
    end = event_times(si, h + 1.0, intime, los_s)
    keep = end > start
    si, h, itemid, rate, status, start, end = (a[keep] for a in (si, h, itemid, rate, status, start, end))
    minutes = (end - start) / 60.0
    vaso = itemid == VASO["vasopressin"].itemid
    amount = np.where(vaso, rate * minutes / 60.0, rate * weight[si] * minutes / 1000.0)  # units | mg
    # MIMIC unit habits: the extraction must convert these back to canonical units
    ne_mg, vaso_min, phe_mcg = (rng.random(n) < p for p in (0.03, 0.2, 0.3))
    unit = np.where(vaso, "units/hour", "mcg/kg/min").astype(object)
    m = (itemid == VASO["norepinephrine"].itemid) & ne_mg[si]
    rate, unit = np.where(m, rate / 1000.0, rate), np.where(m, "mg/kg/min", unit)
    m = vaso & vaso_min[si]
    rate, unit = np.where(m, rate / 60.0, rate), np.where(m, "units/min", unit)
    m = (itemid == VASO["phenylephrine"].itemid) & phe_mcg[si]
    rate, unit = np.where(m, rate * weight[si], rate), np.where(m, "mcg/min", unit)
    link = (si * 10 + np.searchsorted(np.sort([v.itemid for v in VASO.values()]), itemid)) + 7_000_000
    drips = dict(si=si, start=start, end=end, itemid=itemid, amount=amount,
                 amountuom=np.where(vaso, "units", "mg"), rate=rate, rateuom=unit, link=link,
                 cat="01-Drips", cat2="02-Fluids (Crystalloids)", desc="Continuous Med",
                 total=np.full(len(si), 250.0), status=status)

    # fluid boluses: 500 / 1000 mL NaCl 0.9 % or LR over 15-60 minutes
    bsi, bh = np.nonzero(w.hourly["bolus_ml"] > 0)
    bstart = event_times(bsi, in_hour(rng, bsi, bh, los_s), intime, los_s)
    dur = 60 * rng.integers(15, 61, len(bsi))  # seconds
    last = (intime + los_s)[bsi] // 60 * 60
    bstart = np.maximum(np.minimum(bstart, last - dur), ceil_minute(intime[bsi]).astype(np.int64))  # ends in the stay
    bend = np.minimum(bstart + dur, last)
    k = bend > bstart
    bsi, bh, bstart, bend = bsi[k], bh[k], bstart[k], bend[k]
    bml = w.hourly["bolus_ml"][bsi, bh].astype(np.float64)
    boluses = dict(si=bsi, start=bstart, end=bend, itemid=np.where(rng.random(len(bsi)) < 0.7, 225158, 225828),
                   amount=bml, amountuom=np.full(len(bsi), "ml"), rate=np.full(len(bsi), np.nan),
                   rateuom=np.full(len(bsi), None), link=8_000_000 + np.arange(len(bsi)),
                   cat="03-IV Fluid Bolus", cat2=None, desc="Bolus", total=bml,
                   status=np.full(len(bsi), "FinishedRunning"))

    # maintenance NaCl 0.9 % at 75-125 mL/hour in 8-hour bags over the first 48 h (not boluses)
    maint = rng.random(n) < 0.4
    hours = np.arange(w.hours)[None, :]
    msi, mh = np.nonzero(w.hourly["active"] & maint[:, None] & (hours % 8 == 0) & (hours < 48))
    mstart = event_times(msi, mh.astype(float), intime, los_s)
    mend = event_times(msi, mh + 8.0, intime, los_s)
    k = mend > mstart
    msi, mstart, mend = msi[k], mstart[k], mend[k]
    mrate = np.array([75.0, 100.0, 125.0])[rng.integers(0, 3, n)][msi]
    maintenance = dict(si=msi, start=mstart, end=mend, itemid=np.full(len(msi), 225158),
                       amount=mrate * (mend - mstart) / 3600.0, amountuom=np.full(len(msi), "ml"), rate=mrate,
                       rateuom=np.full(len(msi), "mL/hour"), link=9_000_000 + msi, cat="02-Fluids (Crystalloids)",
                       cat2="Additive (Crystalloid)", desc="Continuous IV", total=np.full(len(msi), 1000.0),
                       status=np.full(len(msi), "FinishedRunning"))

    # antibiotic doses pushed in a 250 mL NaCl 0.9 % carrier ('Mixed solution', 'Drug Push',
    # 30 min): as large and fast as a bolus, but not one (own stream: other rows unchanged)
    crng = carrier_rng if carrier_rng is not None else np.random.default_rng(0)
    csi, ca, _ = hour_runs(w.hourly["abx"])
    cstart = event_times(csi, ca + 0.5 * crng.random(len(csi)), intime, los_s)
    last_c = (intime + los_s)[csi] // 60 * 60
    cend = np.minimum(cstart + 1800, last_c)
    k = cend > cstart
    csi, cstart, cend = csi[k], cstart[k], cend[k]
    carriers = dict(si=csi, start=cstart, end=cend, itemid=np.full(len(csi), 225158),
                    amount=np.full(len(csi), CARRIER_ML), amountuom=np.full(len(csi), "ml"),
                    rate=np.full(len(csi), np.nan), rateuom=np.full(len(csi), None),
                    link=6_000_000 + np.arange(len(csi)), cat="08-Antibiotics (IV)",
                    cat2="02-Fluids (Crystalloids)", desc="Drug Push", total=np.full(len(csi), CARRIER_ML),
                    status=np.full(len(csi), "FinishedRunning"), comp="Mixed solution")
    for p in (drips, boluses, maintenance):
        p["comp"] = "Main order parameter"

    parts = (drips, boluses, maintenance, carriers)
    cat = {k: np.concatenate([np.asarray(p[k]) if not isinstance(p[k], (str, type(None)))
                              else np.full(len(p["si"]), p[k], dtype=object) for p in parts])
           for k in drips}
    order = np.lexsort((cat["itemid"], cat["start"], cat["si"]))
    c = {k: v[order] for k, v in cat.items()}
    m = len(order)
    amount = np.round(c["amount"].astype(np.float64), 6)
    rate = pl.Series(np.round(c["rate"].astype(np.float64), 6)).fill_nan(None)
    return frame("inputevents", dict(
        caregiver_id=rng.integers(10000, 99999, m), starttime=("ts", c["start"]), endtime=("ts", c["end"]),
        storetime=("ts", c["start"] + 60 * rng.integers(0, 20, m)), itemid=c["itemid"].astype(np.int64),
        amount=amount, amountuom=_s(c["amountuom"]), rate=rate, rateuom=_s(c["rateuom"]),
        orderid=rng.integers(1_000_000, 9_999_999, m), linkorderid=c["link"].astype(np.int64),
        ordercategoryname=_s(c["cat"]), secondaryordercategoryname=_s(c["cat2"]),
        ordercomponenttypedescription=_s(c["comp"]), ordercategorydescription=_s(c["desc"]),
        patientweight=weight[c["si"]].astype(np.float64), totalamount=c["total"].astype(np.float64),
        totalamountuom=_s("ml", m), isopenbag=np.zeros(m, np.int64), continueinnextdept=np.zeros(m, np.int64),
        statusdescription=_s(c["status"]), originalamount=amount, originalrate=rate), ids, c["si"])


# --------------------------------------------------------------------------- #
# procedureevents
# --------------------------------------------------------------------------- #


HEMODIALYSIS = 225441  # procedureevents: intermittent haemodialysis (maintenance for ESRD)
IHD_EVERY_H, IHD_HOURS = 48, 4  # a 4 h session every other day


def _ihd_sessions(esrd, los_s, rng):
    """(si, start hour, end hour) of maintenance haemodialysis of the ESRD stays."""
    si, a = [], []
    for i in np.nonzero(esrd)[0]:
        first = rng.uniform(4, 30)
        hours = np.arange(first, los_s[i] / 3600.0 - IHD_HOURS, IHD_EVERY_H)
        si += [i] * len(hours)
        a += list(hours)
    si, a = np.asarray(si, np.int64), np.asarray(a, np.float64)
    return si, a, a + IHD_HOURS


def procedureevents(w: World, ids, intime, los_s, rng, esrd=None, ihd_rng=None) -> pl.DataFrame:
    """One interval per run of invasive ventilation (225792) or CRRT (225802) hours, and
    maintenance haemodialysis (225441) sessions of the ``esrd`` stays (bool (N,); drawn
    with ``ihd_rng`` so the other rows do not change)."""
    parts = []
    for key, itemid, cat in (("vent", 225792, "Ventilation"), ("rrt", 225802, "Dialysis")):
        si, a, b = hour_runs(w.hourly[key])
        start = event_times(si, a + np.where(a == 0, 0.05, 0.5) * rng.random(len(si)), intime, los_s)
        end = event_times(si, b - 0.5 * rng.random(len(si)), intime, los_s)
        end = np.maximum(end, start + 60)
        parts.append((si, start, end, np.full(len(si), itemid), np.full(len(si), cat, dtype=object)))
    if esrd is not None and esrd.any():
        si, a, b = _ihd_sessions(esrd, los_s, ihd_rng)
        parts.append((si, event_times(si, a, intime, los_s), event_times(si, b, intime, los_s),
                      np.full(len(si), HEMODIALYSIS), np.full(len(si), "Dialysis", dtype=object)))
    si, start, end, itemid, cat = (np.concatenate(x) for x in zip(*parts))
    order = np.lexsort((itemid, start, si))
    si, start, end, itemid, cat = si[order], start[order], end[order], itemid[order], cat[order]
    m = len(si)
    minutes = ((end - start) / 60.0).astype(np.float64)
    orderid = rng.integers(100_000, 999_999, m)
    return frame("procedureevents", dict(
        caregiver_id=rng.integers(10000, 99999, m), starttime=("ts", start), endtime=("ts", end),
        storetime=("ts", end + 60 * rng.integers(0, 30, m)), itemid=itemid.astype(np.int64), value=minutes,
        valueuom=_s("min", m), orderid=orderid, linkorderid=orderid, ordercategoryname=_s(cat),
        ordercategorydescription=_s("ContinuousProcess", m), patientweight=w.stay["weight"][si].astype(np.float64),
        isopenbag=np.ones(m, np.int64), continueinnextdept=np.zeros(m, np.int64),
        statusdescription=_s("FinishedRunning", m), ORIGINALAMOUNT=minutes, ORIGINALRATE=np.ones(m, np.int64)),
        ids, si)


# --------------------------------------------------------------------------- #
# diagnoses (hosp)
# --------------------------------------------------------------------------- #

PRIMARY_ICD10 = {"sepsis": "A419", "respiratory": "J9601", "cardiac": "I214", "renal": "N179",
                 "neuro": "I619", "postop": "Z4889"}
ESRD_ICD10 = ("N186", "Z992")  # end stage renal disease, dependence on renal dialysis
ESRD_P = 0.04  # admissions of patients on maintenance dialysis


def diagnoses_icd(subject_id, hadm_id, primary, esrd) -> pl.DataFrame:
    """hosp/diagnoses_icd: the primary problem's ICD-10 code for every admission, plus
    N18.6 and Z99.2 for ESRD admissions (codes without dots, as MIMIC-IV)."""
    esrd = np.asarray(esrd, bool)
    codes = np.empty((len(esrd), 2 + len(ESRD_ICD10)), dtype=object)  # (admissions, codes), row-major = output order
    codes[:, 0] = [PRIMARY_ICD10[p] for p in primary]
    codes[:, 1] = "I10"
    codes[:, 2:] = ESRD_ICD10
    seq = np.broadcast_to(np.arange(1, codes.shape[1] + 1), codes.shape)
    keep = (seq <= 2) | esrd[:, None]
    adm = np.nonzero(keep)[0]
    return pl.DataFrame({"subject_id": np.asarray(subject_id, np.int64)[adm], "hadm_id": np.asarray(hadm_id, np.int64)[adm],
                         "seq_num": seq[keep].astype(np.int64), "icd_code": pl.Series(codes[keep].tolist(), dtype=pl.String),
                         "icd_version": np.full(len(adm), 10, np.int64)})


# --------------------------------------------------------------------------- #
# prescriptions and microbiology (hosp)
# --------------------------------------------------------------------------- #


def _drug_rows(si, start, stop, drug):
    name, code, strength, dose, unit, form, per_day, route = drug
    m = len(si)
    return dict(si=si, start=start, stop=stop, drug=_s(name, m), formulary_drug_cd=_s(code, m),
                prod_strength=_s(strength, m), dose_val_rx=_s(dose, m), dose_unit_rx=_s(unit, m),
                form_val_disp=_s("1", m), form_unit_disp=_s(form, m),
                doses_per_24_hrs=np.full(m, float(per_day)), route=_s(route, m))


def prescriptions(w: World, ids, intime, los_s, rng) -> pl.DataFrame:
    """Antibiotic courses (runs of antibiotic hours) plus 2 other drugs per stay."""
    si, a, b = hour_runs(w.hourly["abx"])
    start = event_times(si, a + 0.5 * rng.random(len(si)), intime, los_s)
    ends_stay = b >= np.ceil(los_s[si] / 3600.0)
    stop = np.where(ends_stay, intime[si] + los_s[si] + 3600 * rng.uniform(0, 72, len(si)),
                    intime[si] + b * 3600.0)
    stop = np.maximum(ceil_minute(stop).astype(np.int64), start + 3600)
    proph = w.stay["prophylaxis"][si] & (a == 0)
    regimen = rng.choice(len(ABX_REGIMENS), len(si), p=ABX_REGIMEN_P)
    parts = [_drug_rows(si[proph], start[proph], stop[proph], CEFAZOLIN)]
    for j, drugs in enumerate(ABX_REGIMENS):
        k = ~proph & (regimen == j)
        parts += [_drug_rows(si[k], start[k], stop[k], d) for d in drugs]
    for _ in range(2):
        osi = np.arange(w.n)
        drug = rng.choice(len(OTHER_DRUGS), w.n, p=OTHER_DRUG_P)
        ostart = event_times(osi, rng.uniform(0, 6, w.n), intime, los_s)
        ostop = ostart + 3600 * rng.integers(24, 120, w.n)
        parts += [_drug_rows(osi[drug == j], ostart[drug == j], ostop[drug == j], d)
                  for j, d in enumerate(OTHER_DRUGS)]
    cols = {k: (pl.concat([p[k] for p in parts]) if isinstance(parts[0][k], pl.Series)
                else np.concatenate([p[k] for p in parts])) for k in parts[0]}
    order = np.lexsort((cols["start"], cols["si"]))
    cols = {k: (v[order] if isinstance(v, np.ndarray) else v.gather(order)) for k, v in cols.items()}
    m = len(order)
    si = cols.pop("si")
    return frame("prescriptions", dict(
        pharmacy_id=rng.integers(10_000_000, 99_999_999, m), starttime=("ts", cols.pop("start")),
        stoptime=("ts", cols.pop("stop")), drug_type=_s("MAIN", m), **cols), ids, si)


BLOOD = (70012, "BLOOD CULTURE", 90201, "Blood Culture, Routine")
URINE = (70079, "URINE", 90039, "URINE CULTURE")
ORGANISMS = np.array(["ESCHERICHIA COLI", "STAPH AUREUS COAG +", "KLEBSIELLA PNEUMONIAE",
                      "ENTEROCOCCUS FAECALIS"])
ORGANISM_IDS = np.array([80002, 80023, 80026, 80053])


def microbiologyevents(w: World, ids, intime, los_s, rng, first_id: int = 1) -> pl.DataFrame:
    """A blood culture at every suspicion of infection, a urine culture 60 % of the time;
    positive more often when the hidden infection is high."""
    csi, ch = np.nonzero(w.hourly["culture"])
    t = event_times(csi, in_hour(rng, csi, ch, los_s), intime, los_s)
    inf = w.hourly["infection"][csi, ch]
    parts = []
    for spec, take, p_pos in ((BLOOD, np.ones(len(csi), bool), 0.4), (URINE, rng.random(len(csi)) < 0.6, 0.3)):
        k = np.nonzero(take)[0]
        pos = (inf[k] > 1.0) & (rng.random(len(k)) < p_pos)
        parts.append((csi[k], t[k], np.full(len(k), spec[0]), np.full(len(k), spec[1], dtype=object),
                      np.full(len(k), spec[2]), np.full(len(k), spec[3], dtype=object), pos))
    si, t, spec_id, spec_desc, test_id, test_name, pos = (np.concatenate(x) for x in zip(*parts))
    order = np.lexsort((spec_id, t, si))
    si, t, spec_id, spec_desc, test_id, test_name, pos = (
        a[order] for a in (si, t, spec_id, spec_desc, test_id, test_name, pos))
    m = len(si)
    org = rng.integers(0, len(ORGANISMS), m)
    store = t + 3600 * rng.integers(48, 120, m)
    df = frame("microbiologyevents", dict(
        microevent_id=np.arange(first_id, first_id + m, dtype=np.int64),
        micro_specimen_id=rng.permutation(m).astype(np.int64) + 5_000_000 + first_id,
        chartdate=("ts", t // 86400 * 86400), charttime=("ts", t), spec_itemid=spec_id.astype(np.int64),
        spec_type_desc=_s(spec_desc), test_seq=np.ones(m, np.int64), storedate=("ts", store // 86400 * 86400),
        storetime=("ts", store), test_itemid=test_id.astype(np.int64), test_name=_s(test_name),
        org_itemid=pl.Series(np.where(pos, ORGANISM_IDS[org], 0)).cast(pl.Int64).replace(0, None),
        org_name=_s(np.where(pos, ORGANISMS[org], None)),
        isolate_num=pl.Series(np.where(pos, 1, 0)).cast(pl.Int64).replace(0, None),
        comments=_s(np.where(pos, None, "NO GROWTH."))), ids, si)
    # as in MIMIC, some specimens carry no hadm_id
    return df.with_columns(pl.when(pl.Series(rng.random(m) < 0.1)).then(None)
                           .otherwise(pl.col("hadm_id")).alias("hadm_id"))
