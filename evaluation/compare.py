"""Comparison of runs (the ablation grid): mean +- sd over seeds per configuration and metric,
and paired tests of each configuration against the first one.

Runs that differ only in seeds (and paths, and which run refitted the baselines) form one
configuration. Its name is the common stem of the run names ``<name>_s<seed>`` (what
``clin-jepa ablate`` writes), else its curriculum.

Metrics of a run (:func:`run_metrics`), read generically from ``RUN/eval/*.json``:
- ``drift.json``: every number of ``summary.model`` (drift %, skill against the hour-mean
  and copy-forward predictors);
- ``displacement.json``: the latent endpoint ratio (deteriorating / stable);
- ``tasks.json``: the mean AUROC of every model probe per family (baselines are references);
- any other ``<name>.json`` with a top-level ``summary`` mapping: its numeric leaves (of
  ``summary.model`` when there is one), as ``<name>.<dotted key>`` (what-if fidelity); with a
  ``per_group`` mapping (rollout decoding): the model's MASE per group, mean over horizons,
  as ``<name>.mase_<group>``. A later evaluation joins the tables by writing such a summary.

Paired test (:func:`paired_auroc_test`): the difference in family-mean AUROC of the model
probe between a configuration and the reference, averaged over the seeds both have; its CI
and two-sided p from a stay-clustered paired bootstrap in which every replicate draws one
set of test stays, used for every task and every seed of both configurations. It needs the
runs' per-row test scores (``RUN/eval/task_scores.npz``, written by the evaluation; no stay
ids, only the stays' rank among the test stays) and identical test rows in both.
Seed statistics (sd) need >= 2 seeds; with one seed the value itself is shown.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
from clin_jepa.evaluation import names, reference
from clin_jepa.evaluation.metrics import MAX_BOOT_THRESHOLDS, _ci, _from_curves, _stay_counts, _stay_curves
from clin_jepa.evaluation.tables import GROUP, Est, View, format_p

from clin_jepa.utils import atomic_path

SCORES_FILE = "task_scores.npz"
CORE = ("drift", "displacement", "tasks")  # read by their own rules below; others through `summary`
SHORT_FAMILIES = {"binary": "Outcomes", "eep": "Early events"}  # narrow column headers of the AUROC view
MODEL = "probe"  # the method the paired test compares (the model's probe on its frozen latents)
_SEP = "__"  # npz key: <task>__<array>

LABELS = {"drift.mean_drift_pct": "Drift %", "drift.mean_skill_vs_hour_mean": "Skill vs hour mean",
          "drift.mean_skill_vs_copy_forward": "Skill vs copy-fwd.", "displacement.latent_ratio": "Disp. ratio",
          # rollout decoding: the model's MASE per variable group, mean over horizons (docs/evaluation.md)
          "decoding.mase_vitals": "Decoded vitals MASE", "decoding.mase_labs": "Decoded labs MASE",
          "decoding.mase_sofa": "Decoded SOFA MASE",
          # what-if fidelity against the simulator (docs/whatif.md)
          "whatif.sign_accuracy": "What-if sign acc.", "whatif.median_correlation": "What-if median corr.",
          "whatif.median_mae_ratio": "What-if median MAE ratio", "whatif.material_effects": "What-if effects (n)"}
COUNTS = ("material_effects",)  # metric keys ending so are counts: no decimals


# ---------------------------------------------------------------------- #
# per-row test scores (written by the evaluation, read by the paired test)
# ---------------------------------------------------------------------- #


def write_test_scores(path: Path, scores: dict) -> None:
    """``scores``: task -> {"y": (R,), "groups": (R,) stay ids, <method>: (R,) probabilities}.
    Stay ids are replaced by each stay's rank among all the tasks' test stays (no identifiers)."""
    stays = np.unique(np.concatenate([np.asarray(s["groups"]) for s in scores.values()])) if scores else []
    arrays = {}
    for task, s in scores.items():
        for key, v in s.items():
            v = np.searchsorted(stays, np.asarray(v)) if key == "groups" else np.asarray(v)
            arrays[f"{task}{_SEP}{'stay' if key == 'groups' else key}"] = v
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def read_test_scores(run_dir) -> dict[str, dict[str, np.ndarray]] | None:
    """task -> {"y", "stay", <method>...} from RUN/eval/task_scores.npz, or None when absent."""
    p = Path(run_dir) / "eval" / SCORES_FILE
    if not p.exists():
        return None
    out: dict = {}
    with np.load(p) as z:
        for key in z.files:
            task, _, name = key.partition(_SEP)
            out.setdefault(task, {})[name] = z[key]
    return out


# ---------------------------------------------------------------------- #
# metrics of one run
# ---------------------------------------------------------------------- #


def _read(run_dir: Path, name: str) -> dict | None:
    p = run_dir / "eval" / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _leaves(d, prefix: str) -> dict[str, float]:
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out |= _leaves(v, f"{prefix}.{k}")
    elif isinstance(d, (int, float)) and not isinstance(d, bool) and not prefix.endswith(".n_contexts"):
        out[prefix] = float(d)
    return out


def run_metrics(run_dir) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """(metrics of the model, reference figures: best baseline and baseline average per family)."""
    run_dir = Path(run_dir)
    metrics: dict[str, float | None] = {}
    refs: dict[str, float | None] = {}
    drift = _read(run_dir, "drift")
    if drift:
        metrics |= _leaves(drift.get("summary", {}).get("model", {}), "drift")
    disp = _read(run_dir, "displacement")
    if disp:
        r = disp.get("spaces", {}).get("latent", {}).get("endpoint", {}).get("ratio")
        metrics["displacement.latent_ratio"] = r.get("value") if r else None
    tasks = _read(run_dir, "tasks")
    for fam, f in (tasks or {}).get("families", {}).items():
        if not f.get("n_tasks_ok"):
            continue
        for m, v in f["means"].items():
            if m.startswith("probe"):
                metrics[f"auroc.{fam}.{m}"] = v.get("mean_auroc")
        base = [v["mean_auroc"] for m, v in f["means"].items() if not m.startswith("probe")
                and v.get("n_tasks") and v.get("mean_auroc") is not None]
        if base:
            refs[f"auroc.{fam}.best_baseline"] = f["means"][f["best_baseline"]]["mean_auroc"]
            refs[f"auroc.{fam}.baseline_average"] = float(np.mean(base))
    for p in sorted((run_dir / "eval").glob("*.json")):
        if p.stem in CORE:
            continue
        d = json.loads(p.read_text())
        s = d.get("summary")
        metrics |= _leaves(s.get("model", s) if isinstance(s, dict) else None, p.stem)
        for g, e in (d.get("per_group") or {}).items():  # rollout decoding: the model's MASE, mean over horizons
            mase = [v for v in (e.get("model") or {}).get("mase") or [] if v is not None]
            if mase:
                metrics[f"{p.stem}.mase_{g}"] = float(np.mean(mase))
    return metrics, refs


def label(metric: str) -> str:
    """Display name of a metric key."""
    if metric in LABELS:
        return LABELS[metric]
    if metric.startswith("auroc."):
        _, fam, m = metric.split(".", 2)
        fam_name = SHORT_FAMILIES.get(fam) or names.FAMILIES.get(fam, fam).split(" (")[0]
        who = {"best_baseline": "best baseline", "baseline_average": "baseline average"}.get(m) or names.method(m)
        return f"{fam_name}: {who}"
    return metric


# ---------------------------------------------------------------------- #
# configurations
# ---------------------------------------------------------------------- #


def _strip(d):
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items()
                if "seed" not in k and k not in ("run_dir", "data_dir", "mimic_dir", "baselines")}
    return d


def group_runs(run_dirs: list[Path], cfgs: list[dict]) -> list[tuple[str, list[int]]]:
    """[(configuration name, indices of its runs)] in first-seen order; runs of one
    configuration differ only in seeds, paths and eval.baselines."""
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(json.dumps(_strip(cfg), sort_keys=True, default=str), []).append(i)
    out = []
    for idx in groups.values():
        stems = {re.sub(r"_s\d+$", "", run_dirs[i].name) for i in idx}
        if len(stems) == 1 and all(re.search(r"_s\d+$", run_dirs[i].name) for i in idx):
            name = stems.pop()
        else:
            train = cfgs[idx[0]].get("train", {})
            drop = train.get("drop_phases") or []
            name = str(train.get("curriculum", "?")) + (f" -{'-'.join(drop)}" if drop else "")
        out.append((name, idx))
    return out


def _seed_stats(vals: list) -> dict:
    v = [float(x) for x in vals if x is not None and np.isfinite(x)]
    return {"mean": float(np.mean(v)) if v else None,
            "sd": float(np.std(v, ddof=1)) if len(v) >= 2 else None, "n_seeds": len(v)}


def _cell(s: dict, nd: int, sign: bool = False) -> str:
    if s["mean"] is None:
        return "-"
    fmt = f"{'+' if sign else ''}.{nd}f"
    return format(s["mean"], fmt) + (f" +- {s['sd']:.{nd}f}" if s["sd"] is not None else "")


def seed_cell(vals: list, nd: int = 3, sign: bool = False) -> str:
    """Mean +- sample sd over seeds of ``vals`` (one value without sd for a single seed)."""
    return _cell(_seed_stats(vals), nd, sign)


def _nd(metric: str) -> tuple[int, bool]:
    if metric == "drift.mean_drift_pct":
        return 1, True
    if metric.endswith(COUNTS):
        return 0, False
    return (3, False) if metric.startswith("auroc.") else (2, "skill" in metric)


# ---------------------------------------------------------------------- #
# paired test over seeds and test stays
# ---------------------------------------------------------------------- #


def _replicates(sc: dict, method: str, counts: np.ndarray) -> np.ndarray:
    """AUROC of ``method`` on one task under each replicate's stay counts (B,)."""
    uniq = np.unique(sc["stay"])  # the task's stays, sorted as _stay_curves indexes them
    pos, neg = _stay_curves(sc["y"].astype(np.float64), sc[method], sc["stay"], MAX_BOOT_THRESHOLDS)  # (G_t, K)
    c = counts[:, uniq]  # (B, G_t)
    return _from_curves(c @ pos, c @ neg, 0.5)["auroc"]


def _exact(sc: dict, method: str) -> float:
    y, s = sc["y"].astype(np.float64), sc[method]
    return float(_from_curves(*_stay_curves(y, s, np.zeros(len(y), dtype=np.int64)), 0.5)["auroc"][0])


def paired_auroc_test(ref: list[dict], other: list[dict], tasks: list[str], n_boot: int, seed: int = 0,
                      method: str = MODEL) -> dict:
    """Family-mean AUROC difference (other - ref) averaged over paired seeds, with a
    stay-clustered paired bootstrap CI and two-sided p. ``ref``/``other``: per seed the
    runs' test scores (read_test_scores), in the same seed order; ``tasks``: the family's
    evaluable tasks. Rows must be identical (labels and stays) in every run."""
    pairs = [(a, b) for a, b in zip(ref, other) if a is not None and b is not None]
    tasks = [t for t in tasks if all(t in a and t in b and method in a[t] and method in b[t] for a, b in pairs)]
    if not pairs or not tasks:
        return {"status": "no per-row test scores in both configurations"}
    for a, b in pairs:
        for t in tasks:
            if not (np.array_equal(a[t]["y"], b[t]["y"]) and np.array_equal(a[t]["stay"], b[t]["stay"])):
                return {"status": f"different test rows ({names.task(t)}): not paired"}
    G = int(max(a[t]["stay"].max() for a, _ in pairs for t in tasks)) + 1
    delta = float(np.mean([_exact(b[t], method) - _exact(a[t], method) for a, b in pairs for t in tasks]))
    reps = []
    for counts in _stay_counts(np.arange(G), n_boot, np.random.default_rng(seed)):  # (b, G): one draw for all
        d = [_replicates(b[t], method, counts) - _replicates(a[t], method, counts) for a, b in pairs for t in tasks]
        with warnings.catch_warnings():  # a replicate without both classes in every task: NaN, dropped below
            warnings.simplefilter("ignore", RuntimeWarning)
            reps.append(np.nanmean(np.stack(d), axis=0))  # (b,) mean over seed x task
    r = np.concatenate(reps)
    r = r[np.isfinite(r)]
    lo, hi = _ci(r, 0.05)
    p = float(min(1.0, 2 * min((r <= 0).mean(), (r >= 0).mean()))) if len(r) else float("nan")
    return {"status": "ok", "delta": delta, "lo": lo, "hi": hi, "p_value": p, "n_boot": int(len(r)),
            "n_seeds": len(pairs), "n_tasks": len(tasks), "n_stays": G}


# ---------------------------------------------------------------------- #
# tables
# ---------------------------------------------------------------------- #


def comparison_tables(run_dirs: list[Path], cfgs: list[dict]) -> dict[str, tuple[list[dict], list[View]]]:
    """{"comparison": mean +- sd per configuration and metric, "comparison_tests": paired tests
    against the first configuration} as (records, views) for tables.write_table."""
    groups = group_runs(run_dirs, cfgs)
    per_run = [run_metrics(r) for r in run_dirs]
    keys: list[str] = []
    for m, _ in per_run:
        keys += [k for k, v in m.items() if k not in keys and v is not None]
    records, stats = [], {}
    for name, idx in groups:
        for k in keys:
            vals = [per_run[i][0].get(k) for i in idx]
            s = stats[(name, k)] = _seed_stats(vals)
            seeds = [cfgs[i].get("train", {}).get("seed") for i in idx]
            records.append({"configuration": name, "metric": k, "label": label(k), **s,
                            **{f"seed_{sd}": v for sd, v in zip(seeds, vals)}})
    ref_keys: list[str] = []
    for _, r in per_run:
        ref_keys += [k for k in r if k not in ref_keys]
    for k in ref_keys:  # the baselines: the same data, splits and eval seeds in every run that fitted them
        vals = [r.get(k) for _, r in per_run if r.get(k) is not None]
        records.append({"configuration": "reference", "metric": k, "label": label(k), **_seed_stats(vals[:1])})
    views = _views(groups, keys, stats, per_run)
    return {"comparison": (records, views), "comparison_tests": _tests(run_dirs, cfgs, groups)}


def _reference_rows(cols: list[str], per_run) -> list[list]:
    """Best baseline, baseline average and the paper under each family's model-probe column."""
    refs: dict = {}
    for _, r in per_run:
        for k, v in r.items():
            refs.setdefault(k, v)
    fams = [k.split(".")[1] if k.endswith(f".{MODEL}") else None for k in cols]
    rows = []
    for who in ("best_baseline", "baseline_average"):
        vals = [refs.get(f"auroc.{f}.{who}") if f else None for f in fams]
        rows.append([who.replace("_", " "), "-", *["-" if v is None else f"{v:.3f}" for v in vals]])
    paper = [reference.MEAN_AUROC.get(f) if f else None for f in fams]
    rows.append(["paper (Clin-JEPA)", "-", *["-" if v is None else f"{v:.3f}" for v in paper]])
    return rows


def _views(groups, keys, stats, per_run) -> list[View]:
    n_seeds = max(len(idx) for _, idx in groups)
    spread = "mean +- sd over seeds (sample sd)" if n_seeds >= 2 else "one seed: no spread to show"
    latent = [k for k in keys if k.split(".")[0] in ("drift", "displacement")]
    auroc = [k for k in keys if k.startswith("auroc.")]
    other = [k for k in keys if k not in latent and k not in auroc]
    views = []
    for cols, title, lab in ((latent, "latent rollout and displacement", "tab:comparison-latent"),
                             (auroc, "mean AUROC per task family", "tab:comparison-auroc"),
                             (other, "other evaluations", "tab:comparison-other")):
        if not cols:
            continue
        rows = [[name, len(idx), *[_cell(stats[(name, k)], *_nd(k)) for k in cols]] for name, idx in groups]
        if cols is auroc:
            rows += _reference_rows(cols, per_run)
        elif cols is latent and "drift.mean_drift_pct" in cols:
            rows.append(["paper (Clin-JEPA)", "-", *[
                f"{reference.DRIFT_PCT['model']:+.1f}" if k == "drift.mean_drift_pct" else
                f"{reference.DISPLACEMENT_RATIO['latent']:.2f}" if k == "displacement.latent_ratio" else "-"
                for k in cols]])
        caption = (f"Ablations and paradigms, {title}: {spread}, test split. Model = {names.method(MODEL)}"
                   f" unless named; baselines are fitted once per data (same splits and seeds in every run); "
                   f"paper: {reference.PAPER}, MIMIC-IV.")
        views.append(View(caption, lab, ["Configuration", "Seeds", *[label(k) for k in cols]], rows, wide=True))
    return views


def _tests(run_dirs, cfgs, groups) -> tuple[list[dict], list[View]]:
    from clin_jepa.evaluation.tasks import result_tasks

    records, rows, notes = [], [], []
    if len(groups) < 2:
        return records, []
    scores = [read_test_scores(r) for r in run_dirs]
    ref_name, ref_idx = groups[0]
    tasks_json = _read(run_dirs[ref_idx[0]], "tasks") or {"tasks": {}, "families": {}}
    n_boot = int(tasks_json.get("bootstrap", 500))

    def by_seed(idx):
        return {cfgs[i].get("train", {}).get("seed"): scores[i] for i in idx}

    ref_seeds = by_seed(ref_idx)
    for name, idx in groups[1:]:
        mine = by_seed(idx)
        common = [s for s in ref_seeds if s in mine]
        rows.append([GROUP, f"{name} - {ref_name}"])
        for fam in tasks_json["families"]:
            ok = [t for t in result_tasks(tasks_json, fam) if tasks_json["tasks"][t]["status"] == "ok"]
            if not ok:
                continue
            res = paired_auroc_test([ref_seeds[s] for s in common], [mine[s] for s in common], ok, n_boot)
            rec = {"configuration": name, "reference": ref_name, "family": names.family(fam),
                   "metric": f"mean AUROC, {names.method(MODEL)}"} | res
            records.append(rec)
            if res["status"] != "ok":
                notes.append(f"{name}, {names.family(fam)}: {res['status']}.")
                continue
            rows.append([names.family(fam), res["n_seeds"], res["n_tasks"], res["n_stays"],
                         Est(res["delta"], res["lo"], res["hi"], sign=True), format_p(res["p_value"], res["n_boot"])])
    caption = (f"Each configuration against {ref_name}: difference in family-mean AUROC of the "
               f"{names.method(MODEL).lower()}, averaged over the seeds both have; 95 % CI and two-sided p from "
               f"a paired stay-clustered bootstrap ({n_boot} replicates) in which each replicate draws one set of "
               "test stays for every task and seed. Unadjusted for the number of comparisons.")
    return records, [View(caption, "tab:comparison-tests", ["Family", "Seeds", "Tasks", "Test stays",
                                                             "Delta AUROC", "p"], rows, notes, wide=True)]


__all__ = ["comparison_tables", "group_runs", "paired_auroc_test", "read_test_scores", "run_metrics",
           "write_test_scores"]
