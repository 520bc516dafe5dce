"""An independent polars formulation of MIT-LCP mimic-code's MIMIC-IV concepts (SOFA
components, KDIGO stages, suspicion of infection) for the cross-check against the SQL
extraction (tests/test_mimic_code_crosscheck.py).

Written from mimic-code's definitions (mimic-iv/concepts/score/sofa.sql,
measurement/bg.sql, gcs.sql, urine_output_rate.sql, organfailure/kdigo_creatinine.sql,
kdigo_uo.sql, kdigo_stages.sql, medication/antibiotic.sql, sepsis/
suspicion_of_infection.sql), working on charting times with polars, NOT on the hourly
tables of sql/. Only the hour grid is shared: hour h of a stay is
[intime + h, intime + h + 1) (mimic-code's icustay_hourly uses clock-hour boundaries;
docs/data.md). Every function takes raw source frames and returns per (stay_id, hour).
"""

from __future__ import annotations

import polars as pl

H = 3600.0


def hour_of(t: str, intime: str = "intime") -> pl.Expr:
    """floor((t - intime) / 1 h) as Int64."""
    return ((pl.col(t) - pl.col(intime)).dt.total_seconds() / H).floor().cast(pl.Int64)


def _score(x: pl.Expr, cuts: list[tuple[str, float, int]]) -> pl.Expr:
    """First matching (op, threshold, score) wins; 0 otherwise; NULL when x is NULL."""
    e = pl.when(x.is_null()).then(None)
    for op, v, s in cuts:
        e = e.when(x < v if op == "<" else x >= v).then(s)
    return e.otherwise(0)


# --------------------------------------------------------------------------- #
# SOFA (mimic-code score/sofa.sql), one score per organ and hour
# --------------------------------------------------------------------------- #


def lab_hours(le: pl.DataFrame, stays: pl.DataFrame, lookback_h: float = 6.0) -> pl.DataFrame:
    """Labs mapped to stay-hours: same hadm_id, from intime - lookback (hour 0) on."""
    return (le.join(stays.select("stay_id", "hadm_id", "intime", "n_hours"), on="hadm_id")
            .filter(pl.col("charttime") >= pl.col("intime") - pl.duration(seconds=lookback_h * H))
            .with_columns(hour=hour_of("charttime").clip(lower_bound=0))
            .filter(pl.col("hour") < pl.col("n_hours")))


def fio2_pct(v: pl.Expr, low_inclusive: bool) -> pl.Expr:
    """mimic-code FiO2 cleaning: (0.2, 1] x 100; [20, 100] (bg: (20, 100]) as is."""
    pct = (v >= 20) if low_inclusive else (v > 20)
    return pl.when((v > 0.2) & (v <= 1)).then(v * 100).when(pct & (v <= 100)).then(v).otherwise(None)


def respiration(le, ce, vent, stays) -> pl.DataFrame:
    gas = (le.filter(pl.col("itemid").is_in([52033, 50821, 50816]))
           .group_by("specimen_id")
           .agg(pl.col("hadm_id").max(), pl.col("charttime").max(),
                specimen=pl.col("value").filter(pl.col("itemid") == 52033).max(),
                po2=pl.col("valuenum").filter(pl.col("itemid") == 50821).max(),
                fio2_bg=fio2_pct(pl.col("valuenum"), False).filter(pl.col("itemid") == 50816).max())
           .filter((pl.col("specimen") == "ART.") & pl.col("po2").is_not_null()))
    gas = lab_hours(gas, stays).sort("charttime")
    chart = (ce.filter(pl.col("itemid") == 223835)
             .with_columns(fio2_chart=fio2_pct(pl.col("valuenum"), True))
             .filter(pl.col("fio2_chart").is_not_null())
             .group_by("stay_id", "charttime").agg(pl.col("fio2_chart").max()).sort("charttime"))
    gas = gas.join_asof(chart, on="charttime", by="stay_id", strategy="backward", tolerance="4h")
    gas = gas.with_columns(pf=100 * pl.col("po2") / pl.coalesce("fio2_bg", "fio2_chart")).filter(
        pl.col("pf").is_not_null())
    # ventilated when the gas lies inside an invasive-ventilation interval (mimic-code)
    on_vent = (gas.select("specimen_id", "stay_id", "charttime").join(vent, on="stay_id")
               .filter((pl.col("charttime") >= pl.col("starttime")) & (pl.col("charttime") <= pl.col("endtime")))
               .select("specimen_id").unique().with_columns(v=pl.lit(True)))
    gas = gas.join(on_vent, on="specimen_id", how="left").with_columns(pl.col("v").fill_null(False))
    score = (pl.when(pl.col("v") & (pl.col("pf") < 100)).then(4)
             .when(pl.col("v") & (pl.col("pf") < 200)).then(3)
             .when(pl.col("pf") < 300).then(2).when(pl.col("pf") < 400).then(1).otherwise(0))
    return gas.group_by("stay_id", "hour").agg(respiration=score.max())


def lab_scores(le, stays) -> pl.DataFrame:
    labs = lab_hours(le.filter(pl.col("itemid").is_in([51265, 50885, 50912]) & (pl.col("valuenum") > 0)), stays)
    agg = labs.group_by("stay_id", "hour").agg(
        plt=pl.col("valuenum").filter(pl.col("itemid") == 51265).min(),
        bili=pl.col("valuenum").filter(pl.col("itemid") == 50885).max(),
        cr=pl.col("valuenum").filter(pl.col("itemid") == 50912).max())
    return agg.select("stay_id", "hour",
                      coagulation=_score(pl.col("plt"), [("<", 20, 4), ("<", 50, 3), ("<", 100, 2), ("<", 150, 1)]),
                      liver=_score(pl.col("bili"), [(">=", 12, 4), (">=", 6, 3), (">=", 2, 2), (">=", 1.2, 1)]),
                      cr=pl.col("cr"))


def cardiovascular(ce, ie, stays) -> pl.DataFrame:
    mbp = (ce.filter(pl.col("itemid").is_in([220052, 220181, 225312]) & (pl.col("valuenum") > 0)
                     & (pl.col("valuenum") < 300))
           .join(stays.select("stay_id", "intime"), on="stay_id").with_columns(hour=hour_of("charttime"))
           .group_by("stay_id", "hour").agg(mbp=pl.col("valuenum").min()))
    drugs = {221906: "ne", 221289: "epi", 221662: "dopa", 221653: "dobu"}
    rate = (pl.when(pl.col("rateuom") == "mcg/kg/min").then(pl.col("rate"))
            .when(pl.col("rateuom") == "mg/kg/min").then(pl.col("rate") * 1000)
            .when(pl.col("rateuom") == "mcg/min").then(pl.col("rate") / pl.col("patientweight")))
    inf = (ie.filter(pl.col("itemid").is_in(list(drugs))).with_columns(r=rate, drug=pl.col("itemid").replace_strict(drugs))
           .join(stays.select("stay_id", "intime", "n_hours"), on="stay_id")
           .with_columns(h=pl.int_ranges(0, pl.col("n_hours"))).explode("h")
           # active at the END of the hour (mimic-code: starttime < hour end <= endtime)
           .with_columns(end=pl.col("intime") + pl.duration(hours=pl.col("h") + 1))
           .filter((pl.col("starttime") < pl.col("end")) & (pl.col("end") <= pl.col("endtime"))))
    vaso = inf.group_by("stay_id", pl.col("h").alias("hour")).agg(
        **{d: pl.col("r").filter(pl.col("drug") == d).max() for d in drugs.values()})
    both = mbp.join(vaso, on=["stay_id", "hour"], how="full", coalesce=True)
    s = (pl.when((pl.col("dopa") > 15) | (pl.col("epi") > 0.1) | (pl.col("ne") > 0.1)).then(4)
         .when((pl.col("dopa") > 5) | (pl.col("epi") > 0) | (pl.col("ne") > 0)).then(3)
         .when((pl.col("dopa") > 0) | (pl.col("dobu") > 0)).then(2)
         .when(pl.col("mbp") < 70).then(1).when(pl.col("mbp").is_null()).then(None).otherwise(0))
    return both.select("stay_id", "hour", cardiovascular=s)


def gcs(ce, stays) -> pl.DataFrame:
    """mimic-code gcs.sql: ETT verbal -> 15; previous charting < 6 h fills; else normal."""
    g = (ce.filter(pl.col("itemid").is_in([220739, 223900, 223901]))
         .group_by("stay_id", "charttime").agg(
             eye=pl.col("valuenum").filter(pl.col("itemid") == 220739).max(),
             verbal=pl.when(pl.col("value") == "No Response-ETT").then(0.0).otherwise(pl.col("valuenum"))
                      .filter(pl.col("itemid") == 223900).max(),
             motor=pl.col("valuenum").filter(pl.col("itemid") == 223901).max())
         .sort("stay_id", "charttime"))
    recent = (pl.col("charttime") - pl.col("charttime").shift(1).over("stay_id")) < pl.duration(hours=6)
    prev = {c: pl.when(recent).then(pl.col(c).shift(1).over("stay_id")) for c in ("eye", "verbal", "motor")}
    g = g.with_columns(pe=prev["eye"], pv=prev["verbal"], pm=prev["motor"])
    total = (pl.when(pl.col("verbal") == 0).then(15)
             .when(pl.col("verbal").is_null() & (pl.col("pv") == 0)).then(15)
             .when(pl.col("pv") == 0).then(pl.col("motor").fill_null(6) + pl.col("verbal").fill_null(5)
                                            + pl.col("eye").fill_null(4))
             .otherwise(pl.coalesce("motor", "pm", pl.lit(6)) + pl.coalesce("verbal", "pv", pl.lit(5))
                        + pl.coalesce("eye", "pe", pl.lit(4))))
    g = g.join(stays.select("stay_id", "intime", "n_hours"), on="stay_id").with_columns(
        gcs=total, hour=hour_of("charttime")).filter((pl.col("hour") >= 0) & (pl.col("hour") < pl.col("n_hours")))
    out = g.group_by("stay_id", "hour").agg(pl.col("gcs").min())
    return out.with_columns(cns=_score(pl.col("gcs"), [("<", 6, 4), ("<", 10, 3), ("<", 13, 2), ("<", 15, 1)]))


def urine(oe, stays) -> pl.DataFrame:
    """Urine per charting time (mimic-code urine_output: irrigant in subtracted)."""
    items = [226559, 226560, 226561, 226584, 226563, 226564, 226565, 226567, 226557, 226558, 227488, 227489]
    u = (oe.filter(pl.col("itemid").is_in(items) & pl.col("value").is_between(0, 5000))
         .with_columns(v=pl.when(pl.col("itemid") == 227488).then(-pl.col("value")).otherwise(pl.col("value")))
         .join(stays.select("stay_id", "intime", "n_hours"), on="stay_id")
         .filter((pl.col("charttime") >= pl.col("intime"))
                 & ((pl.col("charttime") - pl.col("intime")).dt.total_seconds() < pl.col("n_hours") * H))
         .group_by("stay_id", "charttime").agg(pl.col("v").sum(), pl.col("intime").first())
         .sort("stay_id", "charttime"))
    gap = (pl.col("charttime") - pl.col("charttime").shift(1).over("stay_id")).dt.total_seconds() / H
    return u.with_columns(gap=gap.fill_null(1.0),  # kdigo_uo: the first charting counts 1 h
                          gap_icu=gap.fill_null((pl.col("charttime") - pl.col("intime")).dt.total_seconds() / H),
                          hour=hour_of("charttime"))


def _window(u: pl.DataFrame, hours: int, value: str, out: str) -> pl.DataFrame:
    """Sum of ``value`` over the same stay's chartings in [t - hours, t] (a self join)."""
    w = (u.select("stay_id", "charttime").join(u.select("stay_id", pl.col("charttime").alias("t2"), value),
                                               on="stay_id")
         .filter((pl.col("t2") <= pl.col("charttime"))
                 & (pl.col("t2") >= pl.col("charttime") - pl.duration(hours=hours))))
    return w.group_by("stay_id", "charttime").agg(pl.col(value).sum().alias(out))


def renal(lab: pl.DataFrame, u: pl.DataFrame) -> pl.DataFrame:
    uo = (_window(u, 23, "v", "vol").join(_window(u, 23, "gap_icu", "tm"), on=["stay_id", "charttime"])
          .join(u.select("stay_id", "charttime", "hour"), on=["stay_id", "charttime"])
          .with_columns(uo24=pl.when(pl.col("tm").is_between(22, 30)).then(pl.col("vol") / pl.col("tm") * 24))
          .group_by("stay_id", "hour").agg(pl.col("uo24").max()))
    both = lab.select("stay_id", "hour", "cr").join(uo, on=["stay_id", "hour"], how="full", coalesce=True)
    s = (pl.when((pl.col("cr") >= 5) | (pl.col("uo24") < 200)).then(4)
         .when((pl.col("cr") >= 3.5) | (pl.col("uo24") < 500)).then(3)
         .when(pl.col("cr") >= 2).then(2).when(pl.col("cr") >= 1.2).then(1)
         .when(pl.col("cr").is_null() & pl.col("uo24").is_null()).then(None).otherwise(0))
    return both.select("stay_id", "hour", renal=s)


ORGANS = ("respiration", "coagulation", "liver", "cardiovascular", "cns", "renal")


def sofa_24h(grid: pl.DataFrame, parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Worst score of each organ in hours h-23..h (missing = 0) and their sum."""
    df = grid.select("stay_id", "hour")
    for p in parts:
        df = df.join(p.select("stay_id", "hour", *[c for c in p.columns if c in ORGANS]),
                     on=["stay_id", "hour"], how="left")
    df = df.sort("stay_id", "hour").with_columns(
        [pl.col(o).rolling_max(24, min_samples=1).over("stay_id").fill_null(0).cast(pl.Int64) for o in ORGANS])
    return df.with_columns(sofa=pl.sum_horizontal(*ORGANS))


# --------------------------------------------------------------------------- #
# KDIGO (kdigo_creatinine, kdigo_uo, kdigo_stages)
# --------------------------------------------------------------------------- #


def kdigo_creatinine(le, stays) -> pl.DataFrame:
    cr = (le.filter((pl.col("itemid") == 50912) & pl.col("valuenum").is_not_null() & (pl.col("valuenum") <= 150))
          .join(stays.select("stay_id", "subject_id", "intime", "outtime", "n_hours"), on="subject_id")
          .filter((pl.col("charttime") >= pl.col("intime") - pl.duration(days=7))
                  & (pl.col("charttime") <= pl.col("outtime")))
          .group_by("stay_id", "charttime").agg(creat=pl.col("valuenum").mean(), intime=pl.col("intime").first(),
                                                 n_hours=pl.col("n_hours").first()))
    pairs = (cr.select("stay_id", "charttime", "creat")
             .join(cr.select("stay_id", pl.col("charttime").alias("t2"), pl.col("creat").alias("c2")), on="stay_id")
             .filter(pl.col("t2") < pl.col("charttime")))
    low = pairs.group_by("stay_id", "charttime").agg(
        low48=pl.col("c2").filter(pl.col("t2") >= pl.col("charttime") - pl.duration(hours=48)).min(),
        low7=pl.col("c2").filter(pl.col("t2") >= pl.col("charttime") - pl.duration(days=7)).min())
    cr = cr.join(low, on=["stay_id", "charttime"], how="left")
    c, l48, l7 = pl.col("creat"), pl.col("low48"), pl.col("low7")
    stage = (pl.when(c >= 3 * l7).then(3)
             .when((c >= 4) & ((c >= l48 + 0.3) | (c >= 1.5 * l7))).then(3)
             .when(c >= 2 * l7).then(2).when(c >= l48 + 0.3).then(1).when(c >= 1.5 * l7).then(1).otherwise(0))
    cr = cr.with_columns(stage=stage, hour=hour_of("charttime"))
    cr = cr.filter((pl.col("hour") >= 0) & (pl.col("hour") < pl.col("n_hours")))
    return cr.group_by("stay_id", "hour").agg(creat_stage=pl.col("stage").max())


def weights(ce, stays) -> pl.DataFrame:
    """(stay_id, known_from, kg): charted weights; the first admission weight from intime - 2 h."""
    w = (ce.filter(pl.col("itemid").is_in([226512, 224639, 226531]))
         .with_columns(kg=pl.when(pl.col("itemid") == 226531).then(pl.col("valuenum") * 0.45359237)
                       .otherwise(pl.col("valuenum")), adm=pl.col("itemid") != 224639)
         .filter(pl.col("kg").is_between(20, 400)).sort("stay_id", "charttime")
         .join(stays.select("stay_id", "intime"), on="stay_id"))
    first_adm = pl.col("adm") & (pl.int_range(pl.len()).over("stay_id", "adm") == 0)
    return w.with_columns(known_from=pl.when(first_adm).then(
        pl.min_horizontal(pl.col("intime") - pl.duration(hours=2), pl.col("charttime"))).otherwise(pl.col("charttime")),
        admission=first_adm).select("stay_id", "known_from", "kg", "admission")


def kdigo_uo(u: pl.DataFrame, w: pl.DataFrame) -> pl.DataFrame:
    df = u.select("stay_id", "charttime", "hour", "intime")
    for hrs in (6, 12, 24):
        df = df.join(_window(u, hrs, "v", f"vol{hrs}").join(_window(u, hrs, "gap", f"tm{hrs}"),
                                                            on=["stay_id", "charttime"]),
                     on=["stay_id", "charttime"])
    known = w.sort("known_from").rename({"known_from": "charttime"}).select("stay_id", "charttime", "kg")
    adm = w.filter(pl.col("admission")).group_by("stay_id").agg(kg_adm=pl.col("kg").first())
    df = (df.sort("charttime").join_asof(known, on="charttime", by="stay_id", strategy="backward")
          .join(adm, on="stay_id", how="left").with_columns(kg=pl.coalesce("kg", "kg_adm")))
    rt = {h: pl.col(f"vol{h}") / pl.col("kg") / pl.col(f"tm{h}") for h in (6, 12, 24)}
    r6 = pl.when((pl.col("tm6") >= 6) & (pl.col("tm6") < 12)).then(rt[6])
    r12 = pl.when(pl.col("tm12") >= 12).then(rt[12])
    r24 = pl.when(pl.col("tm24") >= 24).then(rt[24])
    df = df.with_columns(r6=r6, r12=r12, r24=r24)
    stage = (pl.when(pl.col("r6").is_null()).then(None)
             .when(pl.col("charttime") <= pl.col("intime") + pl.duration(hours=6)).then(0)
             .when(pl.col("r24") < 0.3).then(3).when(pl.col("r12") == 0).then(3)
             .when(pl.col("r12") < 0.5).then(2).when(pl.col("r6") < 0.5).then(1).otherwise(0))
    return (df.with_columns(stage=stage).filter(pl.col("stage").is_not_null())
            .group_by("stay_id", "hour").agg(uo_stage=pl.col("stage").max()))


def crrt_hours(pe, stays) -> pl.DataFrame:
    """Hours overlapped by continuous RRT (procedureevents CRRT, CVVHD, CVVHDF, SCUF)."""
    p = (pe.filter(pl.col("itemid").is_in([225802, 225803, 225809, 225955]))
         .join(stays.select("stay_id", "intime", "n_hours"), on="stay_id")
         .with_columns(h0=hour_of("starttime").clip(lower_bound=0),
                       h1=((pl.col("endtime") - pl.col("intime")).dt.total_seconds() / H).ceil().cast(pl.Int64))
         .with_columns(hour=pl.int_ranges("h0", pl.max_horizontal(pl.col("h1"), pl.col("h0") + 1)))
         .explode("hour").filter(pl.col("hour") < pl.col("n_hours")))
    return p.select("stay_id", "hour").unique().with_columns(rrt_stage=pl.lit(3))
