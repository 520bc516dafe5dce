"""`clin-jepa report`: RUN/eval/*.json -> tables (tidy CSV, Markdown, booktabs LaTeX), plots
(PDF + PNG) and a manifest (METHOD 8). Aggregates only: nothing patient-level leaves the run.

Tables (each built here as tidy records + paper views, written by :mod:`clin_jepa.evaluation.tables`):
drift (per context and method: L1(h)/L1(1) and drift % with CIs over stays), skill (absolute
L1 and skill against the hour-mean and copy-forward predictors), decoding (MASE of the decoded
rollouts and the raw-feature forecasters per variable group and variable; when the run has
eval/decoding.json), displacement (latent space and
the raw / perfect-encoder references, endpoint and path length, ratio with CI), tasks (one grid per family
and metric: AUROC, AUPRC, event recall; CSV one row per task and method), family means, and
with ``--compare`` a grid of runs (evaluation.compare: mean +- sd over seeds, paired tests). Every name
a reader sees comes from :mod:`clin_jepa.evaluation.names`; the paper's figures sit in the captions.
"""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

from clin_jepa.evaluation import names, plots, reference
from clin_jepa.evaluation.compare import comparison_tables
from clin_jepa.evaluation.report_tables import (
    decoding_table,
    displacement_table,
    drift_table,
    family_table,
    skill_table,
    task_table,
)
from clin_jepa.evaluation.suite import read_eval
from clin_jepa.evaluation.tables import write_table
from clin_jepa.evaluation.whatif_table import whatif_table

from clin_jepa.utils import REPO_ROOT, atomic_path, get_logger, write_json

log = get_logger(__name__)

PACKAGES = ("torch", "transformers", "peft", "accelerate", "duckdb", "polars", "numpy", "scikit-learn",
            "lightgbm", "clin-jepa")
TABLES = ("drift", "skill", "decoding", "displacement", "families", "tasks", "comparison", "comparison_tests",
          "whatif")  # report.md order


def _baseline_average(means: dict) -> tuple[float | None, int]:
    """Mean over the baselines (every method but the probes) of their family-mean AUROC, and their count."""
    vals = [v["mean_auroc"] for m, v in means.items()
            if not m.startswith("probe") and v.get("n_tasks") and v.get("mean_auroc") is not None]
    return (float(sum(vals) / len(vals)) if vals else None), len(vals)


def _other_probes(means: dict, best: float | None, avg: float | None) -> dict:
    """{probe method: {auroc, minus_best_baseline, minus_baseline_average}} for the probes besides
    the headline's ``probe`` (the world-model probes, the rollout probe) with a family mean."""
    out = {}
    for m, v in means.items():
        a = v.get("mean_auroc")
        if m.startswith("probe") and m != "probe" and v.get("n_tasks") and a is not None:
            out[m] = {"auroc": a, "minus_best_baseline": a - best if best is not None else None,
                      "minus_baseline_average": a - avg if avg is not None else None}
    return out


def headline(run_dir) -> dict:
    """Headline figures of one run: drift %, displacement ratio (and the reference spaces' ratios on
    the same data), mean AUROC per family for the model (latent probe), the best baseline and the
    baseline average (the paper's gains are against the average), with the model's differences
    to both. Missing evaluations give None."""
    out: dict = {"drift_pct": None, "displacement_ratio": None, "displacement_reference": {}, "mean_auroc": {}}
    try:
        out["drift_pct"] = read_eval(run_dir, "drift")["summary"]["model"]["mean_drift_pct"]
    except (FileNotFoundError, KeyError):
        pass
    try:
        spaces = read_eval(run_dir, "displacement")["spaces"]
        r = spaces["latent"]["endpoint"]["ratio"]
        out["displacement_ratio"] = r["value"] if r else None
        for ref in ("perfect_encoder", "raw"):  # the bound of the data: perfect per-hour encoder, raw features
            rr = spaces.get(ref, {}).get("endpoint", {}).get("ratio")
            if rr:
                out["displacement_reference"][ref] = rr["value"]
    except (FileNotFoundError, KeyError):
        pass
    try:
        tasks = read_eval(run_dir, "tasks")
        for fam, f in tasks["families"].items():
            best = f["best_baseline"]
            model = f["means"].get("probe", {}).get("mean_auroc")
            best_auroc = f["means"][best]["mean_auroc"] if best else None
            avg, n_base = _baseline_average(f["means"])
            out["mean_auroc"][fam] = {
                "model": model,
                "best_baseline": best,
                "best_baseline_auroc": best_auroc,
                "baseline_average_auroc": avg,
                "n_baselines": n_base,
                "model_minus_best_baseline": model - best_auroc if None not in (model, best_auroc) else None,
                "model_minus_baseline_average": model - avg if None not in (model, avg) else None,
                "n_tasks": f["n_tasks_ok"],
                "other_probes": _other_probes(f["means"], best_auroc, avg),
            }
    except FileNotFoundError:
        pass
    return out


def format_headline(h: dict) -> str:
    """The headline as aligned lines for the terminal (display names, 3 significant decimals)."""
    def f(x, spec):
        return "n/a" if x is None else format(x, spec)

    probe = names.method("probe")
    lines = [
        f"  {'Latent rollout drift (mean over contexts)':<44} {f(h.get('drift_pct'), '+.1f'):>7} %"
        f"   paper {reference.DRIFT_PCT['model']:+.1f} %",
        f"  {'Displacement ratio, deteriorating / stable':<44} {f(h.get('displacement_ratio'), '.2f'):>7} x"
        f"   paper {reference.DISPLACEMENT_RATIO['latent']:.2f} x",
    ]
    for ref, v in (h.get("displacement_reference") or {}).items():
        lines.append(f"    {'same data, ' + names.space(ref).lower():<42} {f(v, '.2f'):>7} x")
    for fam in ("binary", "eep"):
        m = h.get("mean_auroc", {}).get(fam)
        if not m:
            continue
        best = names.method(m["best_baseline"]) if m.get("best_baseline") else "n/a"
        n = m.get("n_tasks", 0)
        lines.append(f"  Mean AUROC, {names.family(fam)} [{n} task{'' if n == 1 else 's'}]")
        lines.append(f"    {probe:<42} {f(m.get('model'), '.3f'):>7}     paper {reference.MEAN_AUROC[fam]:.3f}")
        lines.append(f"    {'best baseline: ' + best:<42} {f(m.get('best_baseline_auroc'), '.3f'):>7}"
                     f"     model {f(m.get('model_minus_best_baseline'), '+.3f')}")
        k = m.get("n_baselines", 0)
        lines.append(f"    {f'baseline average ({k} baseline' + ('' if k == 1 else 's') + ')':<42} "
                     f"{f(m.get('baseline_average_auroc'), '.3f'):>7}     model {f(m.get('model_minus_baseline_average'), '+.3f')}")
        for name, o in (m.get("other_probes") or {}).items():
            lines.append(f"    {names.method(name):<42} {f(o['auroc'], '.3f'):>7}     vs best "
                         f"{f(o['minus_best_baseline'], '+.3f')}, vs average {f(o['minus_baseline_average'], '+.3f')}")
    return "\n".join(lines)


def _config(run_dir: Path) -> dict:
    import yaml

    p = Path(run_dir) / "config.yaml"
    return yaml.safe_load(p.read_text()) if p.exists() else {}


def _data_fingerprint(data_dir: Path) -> str | None:
    import hashlib

    if not data_dir.is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(data_dir.glob("*.parquet")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def manifest(run_dirs: list[Path], files: list[Path]) -> dict:
    from clin_jepa.config import load_run_config

    try:
        code = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        code = None
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    runs = []
    for r in run_dirs:
        cfg = load_run_config(r)
        runs.append({"run": r.name, "config": cfg.to_dict(), "data_fingerprint": _data_fingerprint(cfg.data_path),
                     "seeds": {"synth": cfg.synth.seed, "split": cfg.data.split_seed, "sft": cfg.sft.seed,
                               "train": cfg.train.seed, "eval": list(cfg.eval.seeds)}})
    return {"code_version": code, "packages": versions, "runs": runs,
            "files": sorted(p.name for p in files)}


def _optional_eval(run_dir: Path, name: str) -> dict | None:
    """An evaluation added after runs existed (decoding): None, logged, when the run has none."""
    try:
        return read_eval(run_dir, name)
    except FileNotFoundError:
        log.info("no RUN/eval/%s.json: its tables and plots are left out (`clin-jepa evaluate --only %s`)",
                 name, name)
        return None


def _eval_settings(run_dir: Path) -> dict:
    """Settings older eval JSONs do not carry (bootstrap replicates, recall precision)."""
    e = _config(run_dir).get("eval", {})
    return {"bootstrap": e.get("bootstrap", 500), "recall_precision": e.get("recall_precision", 0.5)}


def build_report(run_dirs: list, out_dir=None) -> Path:
    """Write the report of ``run_dirs[0]`` (plus a comparison grid when several) to ``out_dir``
    (default RUN/report); returns the directory."""
    run_dirs = [Path(r) for r in run_dirs]
    main = run_dirs[0]
    out = Path(out_dir) if out_dir else main / "report"
    drift, disp, tasks = (read_eval(main, n) for n in ("drift", "displacement", "tasks"))
    settings = _eval_settings(main)
    tasks.setdefault("bootstrap", settings["bootstrap"])
    tasks.setdefault("recall_precision", settings["recall_precision"])
    out.mkdir(parents=True, exist_ok=True)
    built = {"drift": drift_table(drift), "skill": skill_table(drift), "displacement": displacement_table(disp),
             "families": family_table(tasks), "tasks": task_table(tasks)}
    decoding = _optional_eval(main, "decoding")
    if decoding is not None:
        built["decoding"] = decoding_table(decoding)
    if len(run_dirs) > 1:
        built |= comparison_tables(run_dirs, [_config(r) for r in run_dirs])  # mean +- sd over seeds, paired tests
    whatif = whatif_table(run_dirs, [_config(r) for r in run_dirs])  # synthetic default only
    if whatif is not None:
        built["whatif"] = whatif
    files: list[Path] = []
    for name, (records, views) in built.items():
        files += write_table(out, name, records, views)
    figures = [plots.drift_curves(drift, out / "drift_curves"),
               plots.decoding_curves(decoding, out / "decoding") if decoding is not None else None,
               plots.displacement_distributions(disp, out / "displacement"),
               plots.auroc_intervals(tasks, out / "auroc_ci"),
               plots.roc_curves(tasks, out / "roc_curves"),
               plots.training_curves(plots.read_training_scalars(main), plots.phase_boundaries(main),
                                     out / "training_curves")]
    for written in figures:
        files += written or []
    head = headline(main)
    write_json(out / "headline.json", head)
    files.append(out / "headline.json")
    index = ["# Clin-JEPA evaluation report", "", f"Run: `{main.name}`", "", "```", format_headline(head), "```", ""]
    index += [(out / f"{n}.md").read_text() for n in TABLES if n in built]
    index += [f"![{p.stem}]({p.name})" for p in files if p.suffix == ".png"]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(index) + "\n")
    files.append(out / "report.md")
    write_json(out / "manifest.json", manifest(run_dirs, files + [out / "manifest.json"]))
    log.info("report written to %s (%d files)", out, len(files) + 1)
    return out


__all__ = ["build_report", "format_headline", "headline", "manifest"]
