"""Simulated stays -> MIMIC-IV v2.2 event rows (charting habits included).

Turns a :class:`~clin_jepa.data.synth_world.World` into polars frames with the exact
columns of ``clin_jepa.data.schema.TABLES``: chartevents, labevents, outputevents,
inputevents, procedureevents, prescriptions, microbiologyevents. Everything is
vectorised: ``np.nonzero`` over (stay, hour) masks gives the rows. Times are epoch
seconds until :func:`frame` turns them into timestamps.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from clin_jepa.data.features import OBS_BY_NAME
from clin_jepa.data.schema import TABLES
from clin_jepa.data.synth_world import World

ABSURD_RATE = 0.004  # fraction of HR, SpO2, BP, RR, temperature rows charted with an impossible value
ABSURD = {220045: 9999.0, 220277: 150.0, 220181: -5.0, 220052: -40.0, 220179: 1200.0,
          220210: -1.0, 223762: 373.0}  # itemid -> impossible value (HR 9999, SpO2 150, ...)
NON_NUMERIC_RATE = 0.004  # fraction of lab rows with a text value and empty valuenum
NON_NUMERIC = np.array(["UNABLE TO REPORT", "___", "ERROR"])
GCS_TEXT = {
    220739: {1: "None", 2: "To Pain", 3: "To Speech", 4: "Spontaneously"},
    223900: {1: "No Response", 2: "Incomprehensible sounds", 3: "Inappropriate Words", 4: "Confused",
             5: "Oriented"},
    223901: {1: "No response", 2: "Abnormal extension", 3: "Abnormal Flexion", 4: "Flex-withdraws",
             5: "Localizes Pain", 6: "Obeys Commands"},
}
LAB_DECIMALS = dict(ph=2, po2=0, pco2=0, lactate=1, sodium=0, potassium=1, chloride=0, bicarbonate=0,
                    bun=0, creatinine=1, glucose=0, bilirubin=1, hemoglobin=1, platelets=0, wbc=1, inr=1)
LAB_REF = dict(ph=(7.35, 7.45), po2=(85, 105), pco2=(35, 45), lactate=(0.5, 2.0), sodium=(133, 147),
               potassium=(3.3, 5.4), chloride=(96, 108), bicarbonate=(22, 32), bun=(6, 20),
               creatinine=(0.4, 1.2), glucose=(70, 100), bilirubin=(0.0, 1.5), hemoglobin=(11.2, 18.0),
               platelets=(150, 440), wbc=(4.0, 11.0), inr=(0.9, 1.1))
PANELS = (("sodium", "potassium", "chloride", "bicarbonate", "bun", "creatinine", "glucose"),
          ("hemoglobin", "platelets", "wbc"), ("bilirubin", "inr"))
PANEL_P = (1.0, 0.9, 0.4)  # probability a lab draw includes each panel
GAS = ("ph", "po2", "pco2", "lactate")


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def ceil_minute(x):
    """Epoch seconds rounded up to a whole minute."""
    return np.ceil(x / 60.0) * 60.0


def event_times(si, rel_h, intime, los_s):
    """Epoch seconds (whole minutes) of events ``rel_h`` hours after intime, kept inside
    [intime, outtime]."""
    t = ceil_minute(intime[si] + rel_h * 3600.0)
    out = intime[si] + los_s[si]
    t = np.where(t > out, np.floor(out / 60.0) * 60.0, t)
    return np.maximum(t, intime[si]).astype(np.int64)


def in_hour(rng, si, h, los_s):
    """Random fractional hour for events charted in hour ``h`` (inside a last partial hour)."""
    span = np.clip(los_s[si] / 3600.0 - h, 0.0, 1.0)
    return h + rng.random(len(si)) * span


def hour_runs(mask):
    """Runs of True along hours: (stay index, start hour, end hour exclusive)."""
    pad = np.zeros((mask.shape[0], 1), bool)
    d = np.diff(np.concatenate([pad, mask, pad], axis=1).astype(np.int8), axis=1)  # (N, H+1)
    si, start = np.nonzero(d == 1)
    _, end = np.nonzero(d == -1)
    return si, start, end


def _num_str(v: pl.Expr) -> pl.Expr:
    """Compact number text, as MIMIC's `value` column: 80, 37.2, 0.5."""
    return pl.when(v == v.round(0)).then(v.cast(pl.Int64).cast(pl.String)).otherwise(v.cast(pl.String))


def frame(table: str, cols: dict, ids: dict[str, np.ndarray], si: np.ndarray) -> pl.DataFrame:
    """A frame with exactly ``TABLES[table].columns``: ids from the stay index, epoch-second
    arrays named in ``cols`` as ``("ts", arr)`` become timestamps, missing columns are null."""
    n = len(si)
    out = {}
    for c in TABLES[table].columns:
        if c in ids:
            out[c] = pl.Series(c, ids[c][si], dtype=pl.Int64)
        elif c in cols:
            v = cols[c]
            if isinstance(v, tuple) and v[0] == "ts":
                out[c] = pl.Series(c, np.asarray(v[1], np.int64) * 1_000_000).cast(pl.Datetime("us"))
            elif isinstance(v, pl.Series):
                out[c] = v.alias(c)
            else:
                out[c] = pl.Series(c, v)
        else:
            out[c] = pl.Series(c, [None] * n, dtype=pl.String)
    return pl.DataFrame(out)


# --------------------------------------------------------------------------- #
# chartevents
# --------------------------------------------------------------------------- #


def _chart_items(w: World, rng: np.random.Generator):
    """(si, hour, itemid, valuenum, uom) arrays for every charted vital."""
    s, v, vent = w.stay, w.vitals, w.hourly["vent"]
    n, H = w.n, w.hours
    art = s["art_line"][:, None]
    mean_225312 = (rng.random(n) < 0.15)[:, None]
    nibp_extra = rng.random((n, H)) < 0.1
    f_hour = s["temp_f"][:, None] & (rng.random((n, H)) < 0.6)
    rows = []

    def add(itemid, values, mask, uom):
        si, h = np.nonzero(mask & ~np.isnan(values))
        rows.append((si, h, np.full(len(si), itemid), values[si, h].astype(np.float64), uom))

    add(220045, v["heart_rate"], True, "bpm")
    for name, nibp, abp in (("sbp", 220179, 220050), ("dbp", 220180, 220051), ("mbp", 220181, 220052)):
        noisy = v[name] + 4 * rng.standard_normal((n, H)).astype(np.float32)
        add(nibp, v[name], ~art, "mmHg")
        add(nibp, noisy, art & nibp_extra, "mmHg")
        if name == "mbp":
            add(abp, v[name], art & ~mean_225312, "mmHg")
            add(225312, v[name], art & mean_225312, "mmHg")
        else:
            add(abp, v[name], art, "mmHg")
    add(220210, v["resp_rate"], ~vent, "insp/min")
    add(224690, v["resp_rate"], vent, "insp/min")
    add(220277, v["spo2"], True, "%")
    add(223762, v["temperature"], ~f_hour, "°C")
    add(223761, v["temperature"] * 1.8 + 32, f_hour, "°F")
    fio2 = np.where(s["fio2_frac"][:, None], v["fio2"] / 100.0, v["fio2"])
    add(223835, fio2, True, "%")
    for name, itemid in (("gcs_eye", 220739), ("gcs_verbal", 223900), ("gcs_motor", 223901)):
        add(itemid, v[name], True, None)
    return rows


def chartevents(w: World, ids, intime, los_s, rng) -> pl.DataFrame:
    rows = _chart_items(w, rng)
    si = np.concatenate([r[0] for r in rows])
    h = np.concatenate([r[1] for r in rows])
    itemid = np.concatenate([r[2] for r in rows])
    val = np.concatenate([r[3] for r in rows])
    uom = np.concatenate([np.full(len(r[0]), r[4], dtype=object) for r in rows])
    dec = np.select([np.isin(itemid, (223762, 223761)), itemid == 223835],
                    [1, np.where(val <= 1.0, 2, 0)], 0)
    val = np.round(val * 10.0 ** dec) / 10.0 ** dec
    # impossible values at a small rate (what the extraction's valid ranges are for)
    bad = np.isin(itemid, list(ABSURD)) & (rng.random(len(si)) < ABSURD_RATE)
    keys = np.array(sorted(ABSURD))
    absurd = np.array([ABSURD[k] for k in keys])[np.clip(np.searchsorted(keys, itemid), 0, len(keys) - 1)]
    val = np.where(bad, absurd, val)
    # admission weight, charted once early in the stay
    wsi = np.arange(w.n)
    wh = in_hour(rng, wsi, np.zeros(w.n), los_s) * 0.5
    si, h, itemid = np.concatenate([si, wsi]), np.concatenate([h, wh]), np.concatenate([itemid, np.full(w.n, 226512)])
    val = np.concatenate([val, w.stay["weight"]])
    uom = np.concatenate([uom, np.full(w.n, "kg", dtype=object)])
    rel = np.where(itemid == 226512, h, in_hour(rng, si, h, los_s))
    t = event_times(si, rel, intime, los_s)
    order = np.lexsort((itemid, t, si))
    si, h, t, itemid, val, uom = si[order], h[order], t[order], itemid[order], val[order], uom[order]
    valuenum = pl.Series(val)
    text = pl.select(_num_str(pl.lit(valuenum))).to_series()
    gcs = np.isin(itemid, list(GCS_TEXT))
    if gcs.any():  # GCS is charted as text with a numeric valuenum
        base = {k: 10 * j for j, k in enumerate(GCS_TEXT)}
        lut = np.full(10 * len(GCS_TEXT), "", dtype=object)
        for k, m in GCS_TEXT.items():
            for lvl, txt in m.items():
                lut[base[k] + lvl] = txt
        code = np.select([itemid[gcs] == k for k in base], list(base.values())) + val[gcs].astype(np.int64)
        gtext = lut[code]
        ett = (itemid[gcs] == 223900) & w.hourly["vent"][si[gcs], np.minimum(h[gcs], w.hours - 1).astype(np.int64)]
        gtext[ett] = "No Response-ETT"  # intubated: verbal not testable, charted as 1
        text = text.scatter(np.nonzero(gcs)[0], pl.Series(gtext.tolist(), dtype=pl.String))
    store = t + 60 * rng.integers(0, 45, len(t))
    return frame("chartevents", dict(
        caregiver_id=rng.integers(10000, 99999, len(t)), charttime=("ts", t), storetime=("ts", store),
        itemid=itemid.astype(np.int64), value=text, valuenum=valuenum,
        valueuom=pl.Series(uom.tolist(), dtype=pl.String), warning=np.zeros(len(t), np.int64)), ids, si)


# --------------------------------------------------------------------------- #
# labevents (hosp) and outputevents
# --------------------------------------------------------------------------- #


VENOUS_GAS_P = 0.25  # fraction of blood gases drawn venous (no arterial line sample)
GAS_FIO2_P = 0.5  # fraction of ventilated gases that carry their own FiO2 row (50816)
SPECIMEN_ITEM, GAS_FIO2_ITEM = 52033, 50816  # labevents 'Specimen Type', blood-gas 'Oxygen'


def _gas_extras(w: World, spec_si, spec_h, spec_t, is_gas, spec_id, rng):
    """Rows MIMIC-IV charts with each blood gas: its 'Specimen Type' ('ART.' / 'VEN.')
    and, for some ventilated gases, the FiO2 set at the draw (percent). Returns the
    venous mask over specimens and the extra rows (si, t, itemid, text, valuenum, spec id)."""
    venous = is_gas & (rng.random(len(spec_si)) < VENOUS_GAS_P)
    g = np.nonzero(is_gas)[0]
    hour = np.minimum(spec_h[g], w.hours - 1)
    vent = w.hourly["vent"][spec_si[g], hour]
    with_fio2 = g[vent & ~venous[g] & (rng.random(len(g)) < GAS_FIO2_P)]
    fio2 = np.round(w.vitals["fio2"][spec_si[with_fio2], np.minimum(spec_h[with_fio2], w.hours - 1)])
    with_fio2, fio2 = with_fio2[np.isfinite(fio2)], fio2[np.isfinite(fio2)].astype(np.float64)
    si = np.concatenate([spec_si[g], spec_si[with_fio2]])
    t = np.concatenate([spec_t[g], spec_t[with_fio2]])
    itemid = np.concatenate([np.full(len(g), SPECIMEN_ITEM), np.full(len(with_fio2), GAS_FIO2_ITEM)])
    text = np.concatenate([np.where(venous[g], "VEN.", "ART."), fio2.astype(np.int64).astype(str)]).astype(object)
    num = np.concatenate([np.full(len(g), np.nan), fio2])
    return venous, (si, t, itemid, text, num, np.concatenate([spec_id[g], spec_id[with_fio2]]))


def labevents(w: World, ids, intime, los_s, admit, rng, first_id: int = 1,
              gas_rng: np.random.Generator | None = None) -> pl.DataFrame:
    """Panels drawn at the simulated lab times, a pre-ICU panel for 60 % of stays, blood
    gases when ventilated or sick, each gas with its specimen row (arterial, or venous
    with a venous pO2) and sometimes its FiO2 (drawn from ``gas_rng``, so the other rows
    stay as they were)."""
    draw_si, draw_h = np.nonzero(w.hourly["lab_draw"])
    gas_si, gas_h = np.nonzero(w.hourly["gas_draw"])
    rel = in_hour(rng, draw_si, draw_h, los_s)
    grel = in_hour(rng, gas_si, gas_h, los_s)
    t_draw, t_gas = event_times(draw_si, rel, intime, los_s), event_times(gas_si, grel, intime, los_s)
    # pre-ICU (ED / ward) panel with the hour-0 values, between admission and intime
    pre = np.nonzero(rng.random(w.n) < 0.6)[0]
    t_pre = ceil_minute(admit[pre] + (intime[pre] - admit[pre]) * rng.uniform(0.3, 0.9, len(pre))).astype(np.int64)
    spec_si = np.concatenate([draw_si, pre, gas_si])
    spec_h = np.concatenate([draw_h, np.zeros(len(pre), np.int64), gas_h])
    spec_t = np.concatenate([t_draw, t_pre, t_gas])
    is_gas = np.concatenate([np.zeros(len(draw_si) + len(pre), bool), np.ones(len(gas_si), bool)])
    spec_id = rng.permutation(len(spec_si)) + 10_000_000 + first_id  # specimen ids, unordered as in MIMIC
    parts = []
    for names, p in zip((*PANELS, GAS), (*PANEL_P, 1.0)):
        take = is_gas if names is GAS else (~is_gas & (rng.random(len(spec_si)) < p))
        k = np.nonzero(take)[0]
        for name in names:
            parts.append((k, np.full(len(k), LABS_ITEM[name]), w.labs[name][spec_si[k], spec_h[k]], name))
    k = np.concatenate([p[0] for p in parts])
    itemid = np.concatenate([p[1] for p in parts])
    true = np.concatenate([p[2] for p in parts]).astype(np.float64)
    dec = np.concatenate([np.full(len(p[0]), LAB_DECIMALS[p[3]]) for p in parts])
    lo = np.concatenate([np.full(len(p[0]), LAB_REF[p[3]][0]) for p in parts])
    hi = np.concatenate([np.full(len(p[0]), LAB_REF[p[3]][1]) for p in parts])
    uom = np.concatenate([np.full(len(p[0]), OBS_BY_NAME[p[3]].items[0].unit or None, dtype=object) for p in parts])
    val = true * np.exp(0.02 * rng.standard_normal(len(k)))
    gas_rng = gas_rng if gas_rng is not None else np.random.default_rng(0)
    venous, extra = _gas_extras(w, spec_si, spec_h, spec_t, is_gas, spec_id, gas_rng)
    vpo2 = venous[k] & (itemid == LABS_ITEM["po2"])  # venous pO2 ~ 40 mmHg, whatever the lungs
    val = np.where(vpo2, gas_rng.normal(40.0, 6.0, len(k)).clip(20, 70), val)
    val = np.maximum(np.round(val * 10.0 ** dec) / 10.0 ** dec, 10.0 ** -dec)
    bad = rng.random(len(k)) < 0.0005  # impossible values (negative, x1000)
    val = np.where(bad, np.where(rng.random(len(k)) < 0.5, -val, val * 1000), val)
    nonnum = rng.random(len(k)) < NON_NUMERIC_RATE
    order = np.lexsort((itemid, spec_t[k], spec_si[k]))
    k, itemid, val, nonnum, lo, hi, uom = k[order], itemid[order], val[order], nonnum[order], lo[order], hi[order], uom[order]
    si, t = spec_si[k], spec_t[k]
    valuenum = pl.Series(np.where(nonnum, np.nan, val)).fill_nan(None)
    text = pl.select(_num_str(pl.lit(pl.Series(val)))).to_series()
    text = text.scatter(np.nonzero(nonnum)[0], pl.Series(NON_NUMERIC[rng.integers(0, 3, nonnum.sum())].tolist(), dtype=pl.String))
    flag = np.where(~nonnum & ((val < lo) | (val > hi)), "abnormal", None)
    sick = w.hourly["sev"][si, np.minimum(spec_h[k], w.hours - 1)] > 1.5
    main = frame("labevents", dict(
        labevent_id=np.zeros(len(k), np.int64), specimen_id=spec_id[k],
        itemid=itemid.astype(np.int64), charttime=("ts", t), storetime=("ts", t + 60 * rng.integers(30, 150, len(t))),
        value=text, valuenum=valuenum, valueuom=pl.Series(uom.tolist(), dtype=pl.String),
        ref_range_lower=lo.astype(np.float64), ref_range_upper=hi.astype(np.float64),
        flag=pl.Series(flag.tolist(), dtype=pl.String),
        priority=pl.Series(np.where(sick, "STAT", "ROUTINE").tolist(), dtype=pl.String)), ids, si)
    esi, et, eitem, etext, enum, espec = extra
    m = len(esi)
    gases = frame("labevents", dict(
        labevent_id=np.zeros(m, np.int64), specimen_id=espec.astype(np.int64), itemid=eitem.astype(np.int64),
        charttime=("ts", et), storetime=("ts", et + 60 * gas_rng.integers(10, 40, m)),
        value=pl.Series(etext.tolist(), dtype=pl.String), valuenum=pl.Series(enum).fill_nan(None),
        valueuom=pl.Series(np.where(eitem == GAS_FIO2_ITEM, "%", None).tolist(), dtype=pl.String),
        priority=pl.Series(["STAT"] * m, dtype=pl.String)), ids, esi)
    gases = gases.select(pl.col(c).cast(main.schema[c]) for c in main.columns)
    out = pl.concat([main.with_columns(pl.lit(0).alias("_k"), pl.int_range(pl.len()).alias("_r")),
                     gases.with_columns(pl.lit(1).alias("_k"), pl.int_range(pl.len()).alias("_r"))],
                    how="vertical")
    si_all = np.concatenate([si, esi])
    out = out.with_columns(pl.Series("_si", si_all)).sort("_si", "charttime", "_k", "itemid", "_r")
    out = out.drop("_si", "_k", "_r")
    return out.with_columns(pl.int_range(first_id, first_id + out.height, dtype=pl.Int64).alias("labevent_id"))


LABS_ITEM = {name: OBS_BY_NAME[name].items[0].itemid for name in
             ("ph", "po2", "pco2", "lactate", *PANELS[0], *PANELS[1], *PANELS[2])}
URINE_DEVICE = (226559, 226560, 226561, 227489)  # Foley, Void, Condom Cath, GU irrigant out
URINE_DEVICE_P = (0.80, 0.12, 0.05, 0.03)


def outputevents(w: World, ids, intime, los_s, rng) -> pl.DataFrame:
    """Urine charted most hours; an uncharted hour's urine is in the next charted value.
    GU-irrigant stays chart irrigant in (227488) and irrigant+urine out (227489)."""
    n, H = w.n, w.hours
    device = np.array(URINE_DEVICE)[rng.choice(len(URINE_DEVICE), n, p=URINE_DEVICE_P)]
    charted = w.hourly["active"] & (rng.random((n, H)) < 0.85)
    cum = np.cumsum(w.hourly["urine_ml"], axis=1, dtype=np.float64)  # (N, H)
    si, h = np.nonzero(charted)
    c = cum[si, h]
    first = np.r_[True, si[1:] != si[:-1]]
    vol = np.round(c - np.where(first, 0.0, np.roll(c, 1)))
    itemid = device[si]
    irr = itemid == 227489
    irr_in = np.round(rng.uniform(100, 400, irr.sum()))
    vol[irr] += irr_in
    t = event_times(si, in_hour(rng, si, h, los_s), intime, los_s)
    si = np.concatenate([si, si[irr]])
    t = np.concatenate([t, t[irr]])
    itemid = np.concatenate([itemid, np.full(irr.sum(), 227488)])
    vol = np.concatenate([vol, irr_in])
    order = np.lexsort((itemid, t, si))
    si, t, itemid, vol = si[order], t[order], itemid[order], vol[order]
    return frame("outputevents", dict(
        caregiver_id=rng.integers(10000, 99999, len(t)), charttime=("ts", t),
        storetime=("ts", t + 60 * rng.integers(0, 30, len(t))), itemid=itemid.astype(np.int64),
        value=vol.astype(np.float64), valueuom=pl.Series(["ml"] * len(t), dtype=pl.String)), ids, si)
