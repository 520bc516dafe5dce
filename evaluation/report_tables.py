"""The report's tables: eval JSON -> (tidy records, paper views) for :func:`tables.write_table`.

Each builder returns ``(records, views)``: records hold every number in its own CSV column
(estimate, CI low, CI high, n, p, ...), views hold what a paper shows (display names,
CIs under estimates, references in the caption, empty rows dropped with a note).
"""

from __future__ import annotations

from clin_jepa.evaluation import names, reference
from clin_jepa.evaluation.tables import GROUP, Est, View, format_p
from clin_jepa.evaluation.tasks import FAMILIES, result_families, result_tasks

DRIFT_STEPS = (6, 12, 24, 48)  # hours ahead shown in the drift table (h = 1 is 1 by definition)


def _ci(m: dict | None) -> tuple:
    return (m.get("value"), m.get("lo"), m.get("hi")) if m else (None, None, None)


# ---------------------------------------------------------------------- #
# drift
# ---------------------------------------------------------------------- #


def drift_table(drift: dict) -> tuple[list[dict], list[View]]:
    records, rows, notes = [], [], []
    for c in sorted(drift["contexts"].values(), key=lambda c: c["context"]):
        if "methods" not in c:
            notes.append(f"Context {c['context']} h not evaluable: {c.get('status', 'no stays')}.")
            records.append({"context_h": c["context"], "horizon_h": c["horizon"], "n_stays": c.get("n_stays", 0),
                            "status": c.get("status", "")})
            continue
        rows.append([GROUP, f"Context {c['context']} h: {c['n_stays']:,} test stays, rolled out {c['horizon']} h"])
        for m in names.ordered(c["methods"]):
            res = c["methods"][m]
            ratio, ci = res["ratio"], res.get("ratio_ci") or {}
            rec = {"context_h": c["context"], "horizon_h": c["horizon"], "n_stays": c["n_stays"],
                   "method": names.method(m), "status": "ok"}
            cells = [names.method(m)]
            for h in DRIFT_STEPS:
                ok = h <= len(ratio) and ratio[h - 1] is not None
                v = ratio[h - 1] if ok else None
                lo = ci["lo"][h - 1] if ok and ci else None
                hi = ci["hi"][h - 1] if ok and ci else None
                rec |= {f"ratio_h{h}": v, f"ratio_h{h}_ci_low": lo, f"ratio_h{h}_ci_high": hi}
                cells.append(Est(v, nd=2))
            d, dci = res["drift_pct"], res.get("drift_pct_ci") or [None, None]
            rec |= {"drift_pct": d, "drift_pct_ci_low": dci[0], "drift_pct_ci_high": dci[1],
                    "n_bootstrap": res.get("n_boot")}
            nd = 1 if d is None or abs(d) < 100 else 0  # keeps +2734 [2551, 2931] as narrow as -2.4 [-17.0, 12.3]
            cells.append(Est(d, dci[0], dci[1], nd=nd, sign=True) if d is not None else "undefined")
            records.append(rec)
            rows.append(cells)
    caption = (f"Latent rollout drift on the test split. Columns h: L1(h)/L1(1), the mean L1 error of the "
               f"latent predicted h hours ahead over that of the one-hour-ahead one. Drift % = "
               f"(L1(H)/L1(1) - 1) x 100 at the last hour H rolled out; 95 % CI over stays (bootstrap) "
               f"under each estimate. {reference.PAPER}: {reference.DRIFT_PCT['model']:+.1f} % for its "
               f"predictor; its other world models and encoders +{reference.DRIFT_OTHERS_RANGE[0]:g} to "
               f"+{reference.DRIFT_OTHERS_RANGE[1]:g} % (copy-forward and linear extrapolation are latent "
               f"baselines, not those models).")
    header = ["Method", *[f"h={h}" for h in DRIFT_STEPS], "Drift %"]
    return records, [View(caption, "tab:drift", header, rows, notes)]


def skill_table(drift: dict) -> tuple[list[dict], list[View]]:
    """Absolute L1 and skill against the reference predictors (hour mean, copy-forward) per context."""
    from clin_jepa.evaluation.drift import REFERENCES

    records, rows, notes = [], [], []
    for c in sorted(drift["contexts"].values(), key=lambda c: c["context"]):
        if "methods" not in c:
            notes.append(f"Context {c['context']} h not evaluable: {c.get('status', 'no stays')}.")
            continue
        H = c["horizon"]
        rows.append([GROUP, f"Context {c['context']} h: {c['n_stays']:,} test stays, rolled out {H} h"])
        for m in names.ordered(c["methods"]):
            res = c["methods"][m]
            l1, l1ci = res["l1"], res.get("l1_ci") or {"lo": [None] * len(res["l1"]), "hi": [None] * len(res["l1"])}
            rec = {"context_h": c["context"], "horizon_h": H, "n_stays": c["n_stays"], "method": names.method(m)}
            for h in sorted({1, *[s for s in DRIFT_STEPS if s <= H], H}):
                rec |= {f"l1_h{h}": l1[h - 1], f"l1_h{h}_ci_low": l1ci["lo"][h - 1],
                        f"l1_h{h}_ci_high": l1ci["hi"][h - 1]}
            cells = [names.method(m), Est(l1[0], nd=2), Est(l1[-1], nd=2)]  # their CIs: CSV (one column wide)
            for ref in REFERENCES:
                sk = res.get("skill", {}).get(ref)
                if sk is None:
                    cells.append("-")
                    continue
                lo, hi = sk["mean_ci"]
                rec |= {f"skill_vs_{ref}": sk["mean"], f"skill_vs_{ref}_ci_low": lo, f"skill_vs_{ref}_ci_high": hi}
                rec |= {f"skill_vs_{ref}_h{h}": sk["curve"][h - 1] for h in (1, *DRIFT_STEPS) if h <= H}
                big = sk["mean"] is not None and abs(sk["mean"]) >= 10
                cells.append(Est(sk["mean"], lo, hi, nd=0 if big else 2, sign=True))
            records.append(rec)
            rows.append(cells)
    refs = " and ".join(names.method(r).lower() for r in REFERENCES)
    caption = ("Rollout error in absolute terms and against trivial predictors (test split). L1: mean L1 "
               "error of the latent predicted 1 and H hours ahead (encoder units, H = hours rolled out). "
               f"Skill against {refs}: 1 - sum_h L1(h) / sum_h L1_ref(h) over h = 1..H "
               "(1 = perfect, 0 = no better than the reference, below 0 = worse); the hour mean is the "
               "train-split mean latent of each hour since admission, the same for every patient. "
               "95 % CI over stays (paired bootstrap) under each skill; the CIs of L1 are in skill.csv. The "
               "drift ratio alone cannot "
               "separate a world model from these predictors.")
    short = {"hour_mean": "hour mean", "copy_forward": "copy-fwd."}  # narrow headers: one column of a paper
    header = ["Method", "L1(1)", "L1(H)", *[f"Skill: {short.get(r, names.method(r).lower())}" for r in REFERENCES]]
    return records, [View(caption, "tab:skill", header, rows, notes, wide=True)]  # two CI columns: page width


# ---------------------------------------------------------------------- #
# rollout decoding
# ---------------------------------------------------------------------- #

DECODE_STEPS = (1, 6, 12, 24, 48)  # hours ahead in the decoding summary
DECODE_VARIABLE_STEPS = (6, 24)  # hours ahead in the per-variable tables


def _at(curve: list | None, h: int):
    return curve[h - 1] if curve is not None and h <= len(curve) else None


def _mase(entry: dict, h: int, nd: int = 2) -> Est:
    ci = entry.get("mase_ci") or {}
    return Est(_at(entry["mase"], h), _at(ci.get("lo"), h), _at(ci.get("hi"), h), nd=nd)


def decoding_table(dec: dict) -> tuple[list[dict], list[View]]:
    """Rollout decoding: group-mean MASE per method and horizon (summary view) and per-variable
    MAE/MASE at DECODE_VARIABLE_STEPS (one view per group); CSV: every variable, method, horizon."""
    from clin_jepa.models.decoders import DECODE_GROUPS

    methods = names.ordered(dec["methods"])
    ref = dec.get("reference", "lvcf")
    groups = [g for g in DECODE_GROUPS if g in dec["per_group"]]  # the library's order: vitals, labs, SOFA
    steps = [h for h in DECODE_STEPS if h <= dec["horizon"]]
    records: list[dict] = []  # tidy: one row per variable, method and horizon
    for v, e in dec["per_variable"].items():
        base = {"variable": names.variable(v), "group": names.decode_group(_group_of(dec, v)),
                "mase_scale": e["scale"]}
        for m in methods:
            ci = e[m].get("mase_ci") or {}
            d = e["model_minus_lvcf"] if m == "model" else None
            for h in range(1, dec["horizon"] + 1):
                rec = base | {"method": names.method(m), "horizon_h": h, "n_values": e["n"][h - 1],
                              "mae": _at(e[m]["mae"], h), "mase": _at(e[m]["mase"], h),
                              "mase_ci_low": _at(ci.get("lo"), h), "mase_ci_high": _at(ci.get("hi"), h)}
                if d is not None:
                    rec |= {"delta_mase_vs_reference": _at(d["mase"], h), "delta_ci_low": _at(d["mase_ci"]["lo"], h),
                            "delta_ci_high": _at(d["mase_ci"]["hi"], h), "reference": names.method(ref)}
                records.append(rec)
    rows = []
    for g in groups:
        e = dec["per_group"][g]
        n_var = len(dec["groups"][g])
        rows.append([GROUP, f"{names.decode_group(g)} ({n_var} variable{'s' if n_var > 1 else ''})"])
        for m in methods:
            rows.append([names.method(m), *[_mase(e[m], h) for h in steps]])
        d = e["model_minus_lvcf"]
        rows.append([f"{names.method('model')} - {names.method(ref)}",
                     *[Est(_at(d["mase"], h), _at(d["mase_ci"]["lo"], h), _at(d["mase_ci"]["hi"], h), nd=2, sign=True)
                       for h in steps]])
    n_ctx = ", ".join(f"{c} h ({x['n_stays']:,} stays)" for c, x in sorted(dec["contexts"].items(),
                                                                           key=lambda kv: int(kv[0])))
    lgbm = ", ".join(str(h) for h in dec.get("lightgbm_horizons", []))
    caption = (f"Rollout decoding on the test split: mean MASE over a group's variables, h hours ahead "
               f"(contexts {n_ctx}, pooled). MASE = MAE / the train stays' one-hour-ahead naive MAE (last "
               f"value carried forward from every train hour): 1 = as good as that. {names.method('model')}: "
               f"the rolled-out latent through decoders fitted on train encoder latents; "
               f"{names.method('encoder_latent')}: the same decoders on the predicted hour's own encoder latent (the "
               f"decoders' floor, not a forecast); {names.method('ridge')} and {names.method('lightgbm')}: "
               f"forecasters on the raw features at the context end and the real actions (LightGBM at h = "
               f"{lgbm} only). 95 % CI over stays (bootstrap) under each estimate; last row of a group: paired "
               f"difference to {names.method(ref).lower()} (below 0 = the model is better). Horizons beyond a "
               f"context's rollout pool the other contexts only. Slowly changing variables (SOFA) have a small "
               f"one-hour naive error, hence large MASE at long horizons.")
    notes = [f"Not evaluable: {dec['status']}."] if dec.get("status") else []
    views = [View(caption, "tab:decoding", ["Method", *[f"h={h}" for h in steps]], rows, notes, wide=True)]
    header = ["Variable", "n", "MAE", *[f"MASE: {_short(m)}" for m in methods], "Delta MASE"]
    for g in groups:  # one view per group and horizon: a page holds each
        for h in (h for h in DECODE_VARIABLE_STEPS if h <= dec["horizon"]):
            vrows = []
            for v in dec["groups"][g]:
                e = dec["per_variable"][v]
                d = e["model_minus_lvcf"]
                vrows.append([names.variable(v), e["n"][h - 1], Est(_at(e["model"]["mae"], h), nd=2),
                              *[Est(_at(e[m]["mase"], h), nd=2) for m in methods],
                              Est(_at(d["mase"], h), _at(d["mase_ci"]["lo"], h), _at(d["mase_ci"]["hi"], h), nd=2,
                                  sign=True)])
            cap = (f"Rollout decoding, {names.decode_group(g)}, {h} h ahead: MAE of "
                   f"{names.method('model')} (the variable's unit) and MASE of every method, per variable; n = "
                   f"values scored; last column: MASE difference model - {names.method(ref).lower()} with its "
                   f"95 % CI over stays. Definitions as in the decoding summary table.")
            views.append(View(cap, f"tab:decoding-{g}-h{h}", header, vrows, wide=True))
    return records, views


SHORT = {"model": "Clin-JEPA", "encoder_latent": "Encoder", "lvcf": "LVCF", "ridge": "Ridge", "lightgbm": "LightGBM"}


def _short(m: str) -> str:
    """Narrow column headers for the per-variable tables (one word a method)."""
    return SHORT.get(m, names.method(m))


def _group_of(dec: dict, v: str) -> str:
    return next(g for g, vs in dec["groups"].items() if v in vs)


# ---------------------------------------------------------------------- #
# displacement
# ---------------------------------------------------------------------- #


def _data_bound(spaces: dict) -> str:
    """Caption sentence: the reference spaces' endpoint ratios on these data, beside the paper's."""
    refs = []
    for space in ("perfect_encoder", "raw"):
        r = (spaces.get(space) or {}).get("endpoint", {}).get("ratio")
        if r and r.get("value") is not None:
            ci = f" [{r['lo']:.2f}, {r['hi']:.2f}]" if r.get("lo") is not None and r.get("hi") is not None else ""
            refs.append(f"{names.space(space).lower()} {r['value']:.2f}x{ci}")
    if not refs:
        return ""
    return (f" Reference on these data (endpoint): {'; '.join(refs)}. The perfect per-hour encoder holds each "
            "hour's exact standardised values and charted flags, all an hour's text carries: a ratio near its "
            "ratio is what these data allow an encoder of the hourly texts; the paper's "
            f"{reference.DISPLACEMENT_RATIO['latent']:.2f}x was measured on MIMIC-IV.")


def displacement_table(disp: dict) -> tuple[list[dict], list[View]]:
    records, rows = [], []
    spaces = disp.get("spaces", {})
    for space in sorted(spaces, key=lambda s: list(names.SPACES).index(s) if s in names.SPACES else len(names.SPACES)):
        res = spaces[space]
        rows.append([GROUP, names.space(space)])
        for measure in ("endpoint", "path"):
            r = res[measure]
            v, lo, hi = _ci(r.get("ratio"))
            records.append({"space": names.space(space), "measure": names.measure(measure),
                            "n_deteriorating": r["n_deteriorating"], "n_stable": r["n_stable"],
                            "median_deteriorating": r["median_deteriorating"], "median_stable": r["median_stable"],
                            "ratio": v, "ratio_ci_low": lo, "ratio_ci_high": hi, "status": r.get("status", "ok")})
            rows.append([names.measure(measure), r["n_deteriorating"], r["n_stable"],
                         Est(r["median_deteriorating"], nd=2), Est(r["median_stable"], nd=2),
                         Est(v, lo, hi, nd=2) if v is not None else r.get("status", "-")])
    window = disp.get("window_hours")
    rule = disp.get("cohort_rule", {})
    caption = (f"Cohort displacement over hours 0-{window} of the test stays: median L2 distance travelled "
               f"by deteriorating and stable stays (latent: encoder units; raw and perfect encoder: standardised features) and "
               f"their ratio with a 95 % bootstrap CI"
               + (f"; SOFA baseline and admission period hours 0-{rule['baseline_hours']}" if rule else "")
               + f". {reference.PAPER}: {reference.DISPLACEMENT_RATIO['latent']:.2f}x in its latent "
               f"space; baseline encoders <= {reference.DISPLACEMENT_BASELINE_MAX:.2f}x." + _data_bound(spaces))
    header = ["Measure", "n det.", "n stable", "Median det.", "Median stable", "Ratio"]
    return records, [View(caption, "tab:displacement", header, rows)]


# ---------------------------------------------------------------------- #
# tasks and families
# ---------------------------------------------------------------------- #


def _methods(tasks: dict) -> list[str]:
    ms = list(tasks.get("methods") or [])
    return [m for m in ms if m.startswith("probe")] + [m for m in ms if not m.startswith("probe")]


def task_records(tasks: dict) -> list[dict]:
    """One row per task and method (one per task when it was not evaluable)."""
    n_boot, seeds = tasks["bootstrap"], tasks.get("seeds") or []
    records = []
    for fam in result_families(tasks):
        for t in result_tasks(tasks, fam):
            e = tasks["tasks"][t]
            base = {"family": names.family(fam), "task": names.task(t), "status": e["status"]}
            if e["status"] != "ok":
                records.append(base | {"n_rows": e["n"]["test"]})
                continue
            for m in _methods(tasks):
                r = e["methods"].get(m)
                if r is None:
                    continue
                rec = base | {"method": names.method(m), "n_stays": r.get("n_stays"), "n_rows": r["n"],
                              "prevalence": r["prevalence"]}
                for k in ("auroc", "auprc"):
                    rec |= dict(zip((k, f"{k}_ci_low", f"{k}_ci_high"), _ci(r[k])))
                rec["event_recall"] = r.get("event_recall")
                rec["event_recall_at_precision"] = tasks["recall_precision"] if fam == "eep" else None
                test = e.get("vs_best_baseline", {}).get(m)
                rec |= {"best_baseline": names.method(test["baseline"]) if test else None,
                        "delta_auroc_vs_best_baseline": test["delta"] if test else None,
                        "delta_ci_low": test["lo"] if test else None, "delta_ci_high": test["hi"] if test else None,
                        "p_value": test["p_value"] if test else None,
                        "p_value_resolution": 1.0 / test.get("n_boot", n_boot) if test else None}
                sel = r.get("selected")
                rec["probe_selected_on_validation"] = names.PROBE_KINDS.get(sel["kind"], sel["kind"]) if sel else None
                s = r["auroc_seeds"]
                if s["n"] >= 2:  # seed statistics only when there is a spread to show
                    rec |= {"auroc_seed_mean": s["mean"], "auroc_seed_sd": s["sd"], "n_seeds": s["n"]}
                    rec |= {f"auroc_seed_{sd}": v for sd, v in zip(seeds, s.get("values", []))}
                records.append(rec)
    return records


GRID_METHODS = 6  # method columns a task grid holds and still fits a two-column page's width (tested)


def _grids(tasks: dict, fam: str, metric: str, title: str, label: str) -> list[View]:
    """The task grid of one family and metric; with more than GRID_METHODS methods, two grids:
    the Clin-JEPA probes beside the family's best baseline, then every baseline."""
    methods = [m for m in _methods(tasks) if any(m in tasks["tasks"][t].get("methods", {})
                                                   for t in result_tasks(tasks, fam))]
    if len(methods) <= GRID_METHODS:
        return [_grid(tasks, fam, metric, title, label, methods)]
    best = tasks["families"].get(fam, {}).get("best_baseline")
    probes = [m for m in methods if m.startswith("probe")] + ([best] if best else [])
    base = [m for m in methods if not m.startswith("probe")]
    return [_grid(tasks, fam, metric, f"{title} Clin-JEPA probes and the best baseline.", label, probes),
            _grid(tasks, fam, metric, f"{title} Baselines.", f"{label}-baselines", base)]


def _grid(tasks: dict, fam: str, metric: str, title: str, label: str, methods: list[str]) -> View:
    rows, notes = [], []
    for t in result_tasks(tasks, fam):
        e = tasks["tasks"][t]
        if e["status"] != "ok":
            notes.append(f"{names.task(t)}: not evaluable ({e['status']}).")
            continue
        first = next(iter(e["methods"].values()))
        cells = [names.task(t), first.get("n_stays") or first["n"], Est(first["prevalence"], nd=2)]
        for m in methods:
            r = e["methods"].get(m)
            if r is None:
                cells.append("-")
            elif metric == "event_recall":
                cells.append(Est(r.get("event_recall"), nd=2))
            else:
                cells.append(Est(*_ci(r[metric])))
        rows.append(cells)
    absent = [names.method(m) for m in _methods(tasks) if not any(m in tasks["tasks"][t].get("methods", {})
                                                                  for t in result_tasks(tasks, fam))]
    if absent:
        notes.append(f"Not evaluated on this family: {', '.join(absent)}.")
    header = ["Task", "Stays", "Prev.", *[names.method(m) for m in methods]]
    return View(title, label, header, rows, notes, wide=len(header) > 5)


def _tests_view(tasks: dict, fam: str) -> View | None:
    rows = []
    for t in result_tasks(tasks, fam):
        for m, test in tasks["tasks"][t].get("vs_best_baseline", {}).items():
            rows.append([names.task(t), names.method(m), names.method(test["baseline"]),
                         Est(test["delta"], test["lo"], test["hi"], sign=True),
                         format_p(test["p_value"], test.get("n_boot", tasks["bootstrap"]))])
    if not rows:
        return None
    caption = (f"{names.family(fam)}: AUROC difference to the family's best baseline on the same test stays "
               f"(paired stay-clustered bootstrap, {tasks['bootstrap']} replicates; two-sided p).")
    return View(caption, f"tab:tests-{fam}", ["Task", "Model", "Baseline", "Delta AUROC", "p"], rows, wide=True)


def task_table(tasks: dict) -> tuple[list[dict], list[View]]:
    views = []
    ci = "95 % stay-clustered bootstrap CI under each estimate"
    for fam in result_families(tasks):
        if not result_tasks(tasks, fam):
            continue
        fname = names.family(fam)
        anchors = "".join(f" {reference.YAIB}, {names.method(m)}, {names.task(t)} on MIMIC-IV: {v:.3f}."
                          for (t, m), v in reference.TASK_AUROC.items() if t in FAMILIES.get(fam, ()))
        views += _grids(tasks, fam, "auroc", f"{fname}: AUROC on the test split ({ci}).{anchors}",
                        f"tab:auroc-{fam}")
        views += _grids(tasks, fam, "auprc", f"{fname}: AUPRC on the test split ({ci}).", f"tab:auprc-{fam}")
        if fam == "eep":
            views += _grids(tasks, fam, "event_recall",
                            f"{fname}: event recall at time-point precision {tasks['recall_precision']:g} "
                            "(share of stays with an event alarmed at least once before it).",
                            f"tab:recall-{fam}")
        tv = _tests_view(tasks, fam)
        if tv:
            views.append(tv)
    return task_records(tasks), views


def family_table(tasks: dict) -> tuple[list[dict], list[View]]:
    records, rows, notes = [], [], []
    for fam, f in tasks["families"].items():
        if not f["n_tasks_ok"]:
            notes.append(f"{names.family(fam)}: no evaluable task.")
            continue
        rows.append([GROUP, names.family(fam)])
        for m in _methods(tasks):
            v = f["means"].get(m)
            if not v or v["n_tasks"] == 0:
                if v is not None:
                    notes.append(f"{names.method(m)} is not evaluated on {names.family(fam).lower()}.")
                continue
            best = m == f["best_baseline"]
            records.append({"family": names.family(fam), "method": names.method(m), "mean_auroc": v["mean_auroc"],
                            "mean_auprc": v["mean_auprc"], "n_tasks": v["n_tasks"], "n_tasks_family": f["n_tasks"],
                            "best_baseline": best})
            rows.append([names.method(m) + (" *" if best else ""), Est(v["mean_auroc"]), Est(v["mean_auprc"]),
                         f"{v['n_tasks']}/{f['n_tasks']}"])
    notes.insert(0, "*: best baseline of the family (highest mean AUROC).")
    paper = "; ".join(f"{names.family(f).split(' (')[0].lower()} {v:.3f}" for f, v in reference.MEAN_AUROC.items())
    caption = (f"Mean AUROC and AUPRC over the evaluable tasks of each family (test split). "
               f"{reference.PAPER} on MIMIC-IV, mean AUROC of its probe: {paper}.")
    return records, [View(caption, "tab:families", ["Method", "AUROC", "AUPRC", "Tasks"], rows, notes)]
