"""The synthetic ICU world: hidden severity, organ latents, physiology and clinicians.

``simulate(rng, n)`` advances ``n`` ICU stays hour by hour: one Python loop over hours,
numpy vectors over the stays still in the ICU (finished stays are dropped from the state
at a few fixed hours, so the loop costs O(active stays)). Each stay has a hidden
severity process with regimes stable / deteriorating / recovering; organ latents follow
it; vitals and labs are read off the organs with noise; clinicians act on what they
*chart* (with delays) and their actions move the physiology; death and discharge follow
severity. All values are in
canonical units (mmHg, mcg/kg/min, mL, mg/dL); ``synth_events`` turns them into
MIMIC-IV rows. docs/synthetic.md describes the model and its limits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

STABLE, DETERIORATING, RECOVERING = 0, 1, 2
REGIMES = ("stable", "deteriorating", "recovering")
REGIME_P0 = (0.5, 0.3, 0.2)  # initial regime of a stay
# hourly regime switches (row: from, column: to); deteriorating -> recovering gets
# TREATED_RECOVERY more per hour while any organ support or antibiotic is running
TRANSITION = np.array([[0.990, 0.006, 0.004],
                       [0.000, 0.985, 0.015],
                       [0.020, 0.004, 0.976]])
TREATED_RECOVERY = 0.015

ORGANS = ("cv", "resp", "renal", "hepatic", "coag", "neuro")  # infection is its own latent
PRIMARY = ("sepsis", "respiratory", "cardiac", "renal", "neuro", "postop")
PRIMARY_P = (0.25, 0.15, 0.20, 0.08, 0.10, 0.22)
# primary problem -> organ weights (cv, resp, renal, hepatic, coag, neuro)
PRIMARY_W = np.array([[0.9, 0.5, 0.6, 0.4, 0.5, 0.3],
                      [0.4, 1.2, 0.3, 0.2, 0.2, 0.3],
                      [1.2, 0.5, 0.5, 0.3, 0.2, 0.2],
                      [0.4, 0.3, 1.3, 0.2, 0.2, 0.2],
                      [0.3, 0.4, 0.2, 0.1, 0.1, 1.3],
                      [0.5, 0.4, 0.3, 0.3, 0.4, 0.2]])
SEPSIS, POSTOP = PRIMARY.index("sepsis"), PRIMARY.index("postop")

H_MAX = 336  # hours: stays still in the ICU after 14 days are discharged then
COMPACT_AT = frozenset((12, 24, 48, 72, 120, 168, 240))  # hours at which finished stays leave the loop
FIRST_LINE = ("norepinephrine", "phenylephrine", "dopamine")
FIRST_LINE_P = (0.85, 0.10, 0.05)

VITALS = ("heart_rate", "sbp", "dbp", "mbp", "resp_rate", "spo2", "temperature", "fio2",
          "gcs_eye", "gcs_verbal", "gcs_motor")
POLICY_ACTIONS = ("ne1", "vaso", "epi", "vent", "rrt", "abx")  # treatments a ``simulate`` policy may set
LABS = ("ph", "po2", "pco2", "lactate", "sodium", "potassium", "chloride", "bicarbonate", "bun",
        "creatinine", "glucose", "bilirubin", "hemoglobin", "platelets", "wbc", "inr")


@dataclass
class World:
    """Simulated stays. Per-stay arrays are (N,); per-hour arrays are (N, H), hour 0 = intime."""

    n: int
    hours: int  # H
    stay: dict[str, np.ndarray] = field(default_factory=dict)  # per-stay attributes (N,)
    hourly: dict[str, np.ndarray] = field(default_factory=dict)  # latents, actions, masks (N, H)
    vitals: dict[str, np.ndarray] = field(default_factory=dict)  # charted values, NaN = not charted (N, H)
    labs: dict[str, np.ndarray] = field(default_factory=dict)  # true values every hour (N, H)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def simulate(rng: np.random.Generator, n: int, fixed_hours: np.ndarray | None = None,
             age: np.ndarray | None = None, female: np.ndarray | None = None,
             can_die: np.ndarray | None = None, h_max: int = H_MAX,
             policy: Callable[[int, np.ndarray, dict], dict] | None = None) -> World:
    """Simulate ``n`` stays. With ``fixed_hours`` (N,) the stays last exactly that long
    (no death/discharge decisions): used to chart given real stays. ``age`` (years) and
    ``female`` are drawn when not given; stays with ``can_die`` False survive the ICU
    (a patient readmitted later survived the earlier stay).

    ``policy(t, stays, actions) -> actions`` (``synth_replay``): called once per hour after
    the clinicians' decisions for hour t+1, with the original stay index of each row
    (``stays``, (n,)) and the decided treatments (POLICY_ACTIONS, each (n,)); what it returns
    is what runs during hour t+1. It draws no random number, so every other draw is
    unchanged."""
    fixed = fixed_hours is not None
    if fixed:
        fixed_hours = np.asarray(fixed_hours, float)
        hours_fixed = np.maximum(np.ceil(fixed_hours), 1)  # hour slots with data
    H = max(int(hours_fixed.max()) if fixed else h_max, 1)
    if not fixed:
        hours_fixed = np.full(n, H)
    f32 = np.float32

    # ---- per-stay draws ------------------------------------------------ #
    primary = rng.choice(len(PRIMARY), n, p=PRIMARY_P)
    regime = rng.choice(3, n, p=REGIME_P0)
    regime0 = regime.copy()
    sev = np.choose(regime, [rng.uniform(0.3, 1.0, n), rng.uniform(0.6, 1.4, n), rng.uniform(1.0, 2.0, n)])
    sev_base = rng.uniform(0.3, 0.9, n)  # where a stable stay settles
    det_rate = rng.uniform(0.015, 0.05, n)  # severity units per hour while deteriorating
    w = PRIMARY_W[primary] * rng.uniform(0.6, 1.4, (n, 6))  # (N, 6)
    organ = w * sev[:, None] * rng.uniform(0.7, 1.3, (n, 6))  # (N, 6)
    infection = np.where(primary == SEPSIS, rng.uniform(0.8, 2.0, n),
                         np.where(rng.random(n) < 0.12, rng.uniform(0.3, 1.0, n), 0.0))
    resistant = rng.random(n) < 0.15  # infection clears slowly on antibiotics
    age_draw = np.clip(np.rint(rng.normal(64, 16, n)), 18, 91).astype(np.int64)  # years
    female_draw = rng.random(n) < 0.44
    age = age_draw if age is None else np.asarray(age)
    female = female_draw if female is None else np.asarray(female, bool)
    can_die = np.ones(n, bool) if can_die is None else np.asarray(can_die, bool)
    weight = np.round(np.clip(rng.normal(np.where(female, 72, 85), 18), 40, 180), 1)  # kg
    base_map = rng.normal(82, 7, n)  # mmHg
    base_hr = rng.normal(82, 10, n)  # bpm
    pulse_p = np.clip(rng.normal(50, 10, n), 30, 80)  # mmHg
    base_cr = np.exp(rng.normal(np.log(0.9), 0.25, n)) * np.where(rng.random(n) < 0.1, 2.2, 1.0)  # mg/dL
    base_plt = np.clip(rng.normal(230, 70, n), 60, 500)  # K/uL
    base_hb = np.clip(rng.normal(11.5, 1.6, n), 7, 16)  # g/dL
    base_na = rng.normal(139, 2.5, n)  # mEq/L
    base_glu = 115 + 60 * (rng.random(n) < 0.25)  # mg/dL, diabetics higher
    vent_rr = rng.normal(18, 2, n)  # set ventilator rate, /min
    sedated = rng.random(n) < 0.7  # sedated while ventilated
    pressor_delay = rng.integers(1, 4, n)  # charted hours of MAP < 65 before a pressor
    vent_delay = rng.integers(1, 3, n)  # charted hours of SpO2 < 90 before intubation
    rrt_delay = rng.integers(2, 7, n)  # hours from RRT criteria to CRRT start
    abx_delay = rng.integers(0, 4, n)  # hours from suspicion (cultures) to antibiotics
    temp_phase, gcs_phase = rng.integers(0, 4, n), rng.integers(0, 4, n)
    first_line = rng.choice(3, n, p=FIRST_LINE_P)
    postop_vent = (primary == POSTOP) & (rng.random(n) < 0.4)
    extubate_at = rng.integers(3, 13, n)  # postop: hours to extubation
    prophylaxis = (primary == POSTOP) & (rng.random(n) < 0.5)  # cefazolin, first 24 h
    short_end = np.where(~fixed & (rng.random(n) < 0.03), rng.uniform(1.5, 5.5, n), np.inf)  # hours
    end_frac = rng.uniform(0.05, 0.95, n)

    # ---- state ------------------------------------------------------------ #
    cr = base_cr * (1 + 1.6 * organ[:, 2])
    bun = 14 + 28 * organ[:, 2] + 6 * organ[:, 3]
    ne1 = np.zeros(n)  # first-line pressor, norepinephrine-equivalent mcg/kg/min
    vaso = np.zeros(n)  # vasopressin units/hour
    epi = np.zeros(n)  # epinephrine mcg/kg/min
    vent = postop_vent | (organ[:, 1] > 2.2)
    rrt = np.zeros(n, bool)
    abx = prophylaxis.copy()
    abx_on = np.zeros(n)  # hours on antibiotics
    abx_left = np.where(prophylaxis, 24.0, 0.0)
    abx_pending = np.where(primary == SEPSIS, abx_delay, -1)
    last_abx_stop = np.full(n, -1000.0)
    rrt_pending = np.full(n, -1)
    low_cnt = np.zeros(n)
    hyp_cnt = np.zeros(n)
    calm_cnt = np.zeros(n)
    oligo_cnt = np.zeros(n)
    renal_ok_cnt = np.zeros(n)
    boluses = np.zeros(n)
    last_bolus = np.full(n, -100.0)
    bolus_eff = np.zeros(n)
    last_cr, last_k, last_pf = cr.copy(), np.full(n, 4.0), np.full(n, 400.0)
    map_prev, spo2_prev = base_map.copy(), np.full(n, 97.0)
    next_draw = rng.uniform(-1, 2, n)  # hours to the next lab panel
    active = np.ones(n, bool)
    # per-stay results, indexed by the original stay (the loop runs on `rows` only)
    stay = dict(primary=primary, regime0=regime0, age=age, female=female, weight=weight,
                first_line=first_line, prophylaxis=prophylaxis, los_h=np.full(n, float(H)),
                died_icu=np.zeros(n, bool), sev_end=sev.copy(), sev_max=sev.copy())
    n0, rows = n, np.arange(n)

    # filled hour by hour as (H, N) rows (contiguous writes), returned as (N, H)
    hourly = {k: np.zeros((H, n), f32) for k in ("sev", "ne1", "vaso", "epi", "urine_ml", "bolus_ml",
                                                  "infection")}
    hourly.update({k: np.zeros((H, n), bool) for k in ("active", "vent", "rrt", "abx", "culture",
                                                       "lab_draw", "gas_draw")})
    hourly["regime"] = np.zeros((H, n), np.int8)
    vitals = {k: np.full((H, n), np.nan, f32) for k in VITALS}
    labs = {k: np.zeros((H, n), f32) for k in LABS}

    for t in range(H):
        act = active & (t < hours_fixed)
        if t in COMPACT_AT and act.mean() < 0.8:  # drop finished stays: the loop costs O(active)
            keep = np.nonzero(act)[0]
            (primary, regime, sev, sev_base, det_rate, w, organ, infection, resistant, age, can_die, weight,
             base_map, base_hr, pulse_p, base_cr, base_plt, base_hb, base_na, base_glu, vent_rr, sedated,
             pressor_delay, vent_delay, rrt_delay, abx_delay, temp_phase, gcs_phase, postop_vent, extubate_at,
             short_end, end_frac, hours_fixed, cr, bun, ne1, vaso, epi, vent, rrt, abx, abx_on, abx_left,
             abx_pending, last_abx_stop, rrt_pending, low_cnt, hyp_cnt, calm_cnt, oligo_cnt, renal_ok_cnt,
             boluses, last_bolus, bolus_eff, last_cr, last_k, last_pf, map_prev, spo2_prev, next_draw, act,
             rows) = (x[keep] for x in (
                primary, regime, sev, sev_base, det_rate, w, organ, infection, resistant, age, can_die, weight,
                base_map, base_hr, pulse_p, base_cr, base_plt, base_hb, base_na, base_glu, vent_rr, sedated,
                pressor_delay, vent_delay, rrt_delay, abx_delay, temp_phase, gcs_phase, postop_vent, extubate_at,
                short_end, end_frac, hours_fixed, cr, bun, ne1, vaso, epi, vent, rrt, abx, abx_on, abx_left,
                abx_pending, last_abx_stop, rrt_pending, low_cnt, hyp_cnt, calm_cnt, oligo_cnt, renal_ok_cnt,
                boluses, last_bolus, bolus_eff, last_cr, last_k, last_pf, map_prev, spo2_prev, next_draw, act,
                rows))
            n = len(keep)
        z = rng.standard_normal((n, 24))
        u = rng.random((n, 16))
        # -- hidden severity process ------------------------------------- #
        treated = (ne1 > 0) | vent | rrt | abx
        p = TRANSITION[regime].copy()  # (N, 3)
        boost = np.where((regime == DETERIORATING) & treated, TREATED_RECOVERY, 0.0)
        p[:, 1] -= boost
        p[:, 2] += boost
        regime = np.where(t > 0, (u[:, :1] > np.cumsum(p, axis=1)).sum(axis=1), regime)
        abx_eff = abx & (abx_on >= 3)
        drift = np.choose(regime, [0.03 * (sev_base - sev), det_rate, np.full(n, -0.025)])
        drift = drift + 0.012 * infection * ~abx_eff + 0.015 * (map_prev < 60) + 0.015 * (spo2_prev < 88)
        sev = np.clip(sev + drift + 0.03 * z[:, 0], 0.05, 6.0)
        infection = np.where(abx_eff, infection * np.where(resistant & (abx_on < 48), 0.99, 0.95),
                             np.minimum(infection * 1.01 + 0.004 * (infection > 0), 4.0))
        target = w * sev[:, None]  # (N, 6)
        target[:, 0] += 0.35 * infection
        organ = np.clip(organ + 0.15 * (target - organ) + 0.04 * z[:, 1:7], 0.0, 6.0)
        cv, resp, renal, hepatic, coag, neuro = organ.T

        # -- physiology (true values) ------------------------------------ #
        nee = ne1 + epi + vaso * 2.5 / 60
        mbp = base_map - 13 * cv + 32 * (1 - np.exp(-nee / 0.12)) + bolus_eff + 3 * z[:, 7]
        bolus_eff *= 0.6
        temp = 36.9 + 0.8 * infection - 0.4 * np.maximum(cv - 2.5, 0) + 0.25 * z[:, 8]
        hr = base_hr + 9 * cv + 7 * infection + 4 * resp + 6 * (temp - 37) + 200 * epi + 4 * z[:, 9]
        resp_eff = np.maximum(resp - 1.0 * vent, 0.0)  # ventilation offsets one unit of lung failure
        spo2 = np.minimum(97.5 - 4.5 * resp_eff ** 1.3 + 1.0 * z[:, 10], 100.0)
        rr = np.where(vent, vent_rr + z[:, 11], 15 + 5 * resp + 2 * infection + 2 * z[:, 11])
        fio2 = np.where(vent, np.clip(35 + 18 * resp, 30, 100), np.clip(24 + 18 * resp, 21, 100))
        fio2 = np.clip(np.rint(fio2 / 5) * 5, 21, 100)
        on_o2 = vent | (resp > 0.5)
        pf = np.clip(420 * np.exp(-0.6 * resp_eff) + 25 * z[:, 12], 40, 600)  # PaO2:FiO2, mmHg
        deficit = np.clip(3.3 * neuro + 1.5 * np.maximum(sev - 2.5, 0) + 0.7 * z[:, 13], 0, 12)
        deficit = np.where(vent & sedated, np.maximum(deficit, 7), deficit)
        urine = (1.1 * np.exp(-1.4 * renal) * np.where(mbp < 60, 0.6, 1.0) * np.where(rrt, 0.25, 1.0)
                 * weight * np.exp(0.35 * z[:, 14]))  # mL this hour
        cr_target = base_cr * (1 + 1.6 * renal)
        cr = np.where(rrt, cr + (1.3 * base_cr - cr) / 6, cr + (cr_target - cr) / 14)
        bun = np.where(rrt, bun + (18 - bun) / 6, bun + (14 + 28 * renal + 6 * hepatic - bun) / 18)
        lactate = (0.9 + 1.0 * cv + 0.5 * infection + 0.4 * hepatic + 1.2 * (mbp < 60)) * np.exp(0.1 * z[:, 15])
        hco3 = 25 - 1.8 * (lactate - 1) - 1.4 * renal + 2.5 * rrt + 1.0 * z[:, 16]
        pco2 = np.where(vent, 40 + 2 * z[:, 17], 40 + 5 * resp_eff - 0.8 * (24 - hco3) + 2 * z[:, 17])
        pco2 = np.clip(pco2, 18, 120)
        hco3 = np.clip(hco3, 5, 45)
        na = base_na + 0.8 * z[:, 18]
        labs_t = dict(
            ph=6.1 + np.log10(hco3 / (0.03 * pco2)), po2=np.clip(pf * fio2 / 100, 35, 550), pco2=pco2,
            lactate=lactate, sodium=na, potassium=4.0 + 0.55 * renal - 0.7 * rrt + 0.25 * z[:, 19],
            chloride=na - hco3 - (10 + (lactate - 1)) + z[:, 20], bicarbonate=hco3, bun=bun, creatinine=cr,
            glucose=(base_glu + 25 * infection + 12 * sev) * np.exp(0.12 * z[:, 21]),
            bilirubin=0.6 * np.exp(0.8 * hepatic), hemoglobin=base_hb - 0.015 * t - 0.5 * coag + 0.2 * z[:, 22],
            platelets=base_plt * np.exp(-0.55 * coag), wbc=7.5 * np.exp(0.35 * infection + 0.1 * z[:, 23]),
            inr=1.05 + 0.45 * coag + 0.3 * hepatic)
        for k, v in labs_t.items():
            labs[k][t, rows] = v

        # -- charting (what clinicians see) ------------------------------ #
        m_bp = act & (u[:, 1] < 0.9)
        m_spo2 = act & (u[:, 2] < 0.92)
        m_temp = act & (((t % 4) == temp_phase) & (u[:, 3] < 0.9) | (u[:, 3] < 0.04))
        m_gcs = act & (((t % 4) == gcs_phase) | (u[:, 4] < 0.03))
        draw = act & (next_draw <= 0)
        next_draw = np.where(draw, np.clip(24 - 9 * sev + 2 * z[:, 5], 4, 24), next_draw - 1)
        gas = act & (draw & (vent | (sev > 1.5)) | vent & (u[:, 5] < 0.15))
        e = np.clip(np.rint(4 - deficit * 0.25), 1, 4)
        v = np.where(vent, 1, np.clip(np.rint(5 - deficit * 0.4), 1, 5))
        m = np.clip(np.rint(6 - deficit * 0.35), 1, 6)
        # clinicians act on the charted (rounded) values
        mbp_c, spo2_c, temp_c = np.rint(mbp), np.rint(spo2), np.round(temp, 1)
        sbp_c = mbp + pulse_p * 2 / 3 + 2 * z[:, 6]
        charted = dict(heart_rate=(act & (u[:, 0] < 0.93), hr), mbp=(m_bp, mbp_c), sbp=(m_bp, sbp_c),
                       dbp=(m_bp, mbp - pulse_p / 3 + z[:, 4]), resp_rate=(act & (u[:, 6] < 0.9), rr),
                       spo2=(m_spo2, spo2_c), temperature=(m_temp, temp_c),
                       fio2=(act & on_o2 & (u[:, 7] < np.where(vent, 0.5, 0.3)), fio2),
                       gcs_eye=(m_gcs, e), gcs_verbal=(m_gcs, v), gcs_motor=(m_gcs, m))
        for k, (mask, val) in charted.items():
            vitals[k][t, rows] = np.where(mask, val, np.nan)
        hourly["lab_draw"][t, rows] = draw
        hourly["gas_draw"][t, rows] = gas
        last_cr = np.where(draw, cr, last_cr)
        last_k = np.where(draw, labs_t["potassium"], last_k)
        last_pf = np.where(gas, pf, last_pf)

        # -- record this hour's actions ---------------------------------- #
        rec = dict(sev=sev, regime=regime, active=act, infection=infection, ne1=ne1 * act, vaso=vaso * act,
                   epi=epi * act, vent=vent & act, rrt=rrt & act, abx=abx & act, urine_ml=urine * act)
        for k, v in rec.items():
            hourly[k][t, rows] = v
        stay["sev_max"][rows] = np.maximum(stay["sev_max"][rows], np.where(act, sev, 0))
        stay["sev_end"][rows] = np.where(act, sev, stay["sev_end"][rows])
        map_prev, spo2_prev = mbp, spo2

        # -- clinicians decide for the next hour ------------------------- #
        low, ok = m_bp & (mbp_c < 65), m_bp & (mbp_c >= 65)
        low_cnt = np.where(low, low_cnt + 1, np.where(ok, 0, low_cnt))
        bolus = act & low & (boluses < 3) & (t - last_bolus >= 3) & (u[:, 8] < 0.6)
        if t + 1 < H:
            hourly["bolus_ml"][t + 1, rows] = np.where(bolus, np.where(u[:, 9] < 0.6, 500.0, 1000.0), 0.0)
        bolus_eff += np.where(bolus, np.where(u[:, 9] < 0.6, 6.0, 10.0), 0.0)
        boluses += bolus
        last_bolus = np.where(bolus, t, last_bolus)
        start = act & (ne1 == 0) & (low_cnt >= pressor_delay)
        on = (ne1 > 0) & ~start
        ne1 = np.where(start, 0.06, ne1)
        ne1 = np.where(on & low, np.minimum(ne1 * 1.3 + 0.02, 1.0), ne1)
        ne1 = np.where(on & ok & (mbp_c > 75), ne1 * 0.7, ne1)
        ne1 = np.where(on & ok & (ne1 < 0.03), 0.0, ne1)
        vaso = np.where(ne1 > 0.25, 2.4, np.where(ne1 < 0.1, 0.0, vaso))
        epi = np.where(ne1 > 0.5, 0.05, np.where(ne1 < 0.3, 0.0, epi))

        hyp, okox = m_spo2 & (spo2_c < 90), m_spo2 & (spo2_c >= 93)
        hyp_cnt = np.where(hyp, hyp_cnt + 1, np.where(okox, 0, hyp_cnt))
        low_gcs = m_gcs & (e + v + m <= 8) & ~vent
        intubate = act & ~vent & ((hyp_cnt >= vent_delay) | (low_gcs & (u[:, 10] < 0.5))
                                  | ((last_pf < 150) & (u[:, 10] < 0.3)))
        calm_cnt = np.where(vent & (resp < 0.8) & (neuro < 1.2), calm_cnt + 1, 0)
        extubate = vent & (((calm_cnt >= 12) & (u[:, 11] < 0.25)) | (postop_vent & (t + 1 == extubate_at)
                                                                       & (resp < 1.0)))
        vent = (vent | intubate) & ~extubate
        hyp_cnt = np.where(intubate, 0, hyp_cnt)

        oligo_cnt = np.where(act & (urine < 0.3 * weight), oligo_cnt + 1,
                             np.where(urine > 0.5 * weight, 0, oligo_cnt))
        crit = (last_cr > 4.5) | (last_k > 6.5) | ((oligo_cnt >= 12) & (last_cr > 3.0))
        rrt_pending = np.where(act & ~rrt & (rrt_pending < 0) & crit, rrt_delay, rrt_pending)
        rrt = rrt | (rrt_pending == 0)
        rrt_pending = np.where(rrt_pending >= 0, rrt_pending - 1, rrt_pending)
        renal_ok_cnt = np.where(rrt & (renal < 1.0), renal_ok_cnt + 1, 0)
        rrt = rrt & ~(renal_ok_cnt >= 24)

        febrile = m_temp & ((temp_c > 38.3) | (temp_c < 35.8))
        leuko = draw & ((labs_t["wbc"] > 13) | (labs_t["wbc"] < 3))
        suspect = act & ~abx & (abx_pending < 0) & (febrile | leuko) & (t - last_abx_stop > 24)
        hourly["culture"][t, rows] = (suspect | ((t == 0) & (primary == SEPSIS))) & act
        abx_pending = np.where(suspect, abx_delay, abx_pending)
        begin = abx_pending == 0
        abx = abx | begin
        abx_left = np.where(begin, rng.uniform(120, 240, n), abx_left - abx)
        abx_pending = np.where(abx_pending >= 0, abx_pending - 1, abx_pending)
        abx_on = np.where(abx, abx_on + 1, 0)
        stop = abx & (abx_left <= 0)
        last_abx_stop = np.where(stop, t, last_abx_stop)
        abx = abx & ~stop
        if policy is not None:
            new = policy(t, rows, dict(ne1=ne1, vaso=vaso, epi=epi, vent=vent, rrt=rrt, abx=abx))
            ne1, vaso, epi = (np.asarray(new[k], float) for k in ("ne1", "vaso", "epi"))
            vent, rrt, abx_new = (np.asarray(new[k], bool) for k in ("vent", "rrt", "abx"))
            abx_on = np.where(abx_new != abx, abx_new.astype(float), abx_on)  # a forced course starts now
            abx = abx_new

        # -- death and discharge ------------------------------------------ #
        if not fixed:
            haz = 0.0002 + 0.04 * _sigmoid(2.5 * (sev - 3.4)) * np.exp(0.025 * (age - 65))
            die = act & can_die & (u[:, 12] < haz)
            calm = (sev < 0.9) & (regime != DETERIORATING) & (ne1 == 0) & ~vent & ~rrt
            leave = act & ~die & (((t >= 6) & calm & (u[:, 13] < np.where(primary == POSTOP, 0.12, 0.06)))
                                  | (t + 1 >= short_end))
            end = die | leave
            los = t + np.where(t + 1 >= short_end, short_end - t, end_frac)
            stay["los_h"][rows] = np.where(end, los, stay["los_h"][rows])
            stay["died_icu"][rows] = stay["died_icu"][rows] | die
            act = act & ~end
        active = act
        if not active.any():
            break

    if fixed:
        stay["los_h"] = fixed_hours
    n = n0
    stay.update(art_line=rng.random(n) < np.clip(0.3 + 0.25 * stay["sev_max"], 0, 0.9),
                temp_f=rng.random(n) < 0.3, fio2_frac=rng.random(n) < 0.15)
    T = lambda d: {k: np.ascontiguousarray(v.T) for k, v in d.items()}  # noqa: E731  (H, N) -> (N, H)
    return World(n=n, hours=H, stay=stay, hourly=T(hourly), vitals=T(vitals), labs=T(labs))
