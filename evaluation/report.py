"""`clin-jepa report`: RUN/eval/*.json -> Markdown, CSV and LaTeX tables, PNG plots and a
manifest (METHOD 8). Aggregates only: nothing patient-level leaves the run directory.

Tables: drift (per context: n, L1(h)/L1(1) at h = 1, 6, 12, 24, 48, drift %), displacement
(latent and raw spaces, endpoint and path length), tasks (per task and method: AUROC and
AUPRC with 95 % CIs, prevalence, EEP event recall, paired test vs the best baseline),
family means, and with ``--compare`` a grid of runs (mean +- sd over runs that differ only
in seeds). Each table carries the paper's published figure in a reference column.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np

from clin_jepa.utils import REPO_ROOT, atomic_path, get_logger, write_json
from evaluation import plots, reference
from evaluation.suite import read_eval

log = get_logger(__name__)

DRIFT_STEPS = (1, 6, 12, 24, 48)
PACKAGES = ("torch", "transformers", "peft", "accelerate", "duckdb", "polars", "numpy", "scikit-learn",
            "lightgbm", "clin-jepa")


def fmt(x, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def fmt_ci(m: dict | None, nd: int = 3) -> str:
    if not m or m.get("value") is None:
        return "-"
    return f"{fmt(m['value'], nd)} [{fmt(m.get('lo'), nd)}, {fmt(m.get('hi'), nd)}]"


# ---------------------------------------------------------------------- #
# tables
# ---------------------------------------------------------------------- #


def write_table(out: Path, name: str, columns: list[str], rows: list[list], caption: str) -> list[Path]:
    """name.md (GitHub table), name.csv, name.tex (tabular), each atomic."""
    cells = [[str(c) for c in r] for r in rows]
    md = [f"**{caption}**", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in cells]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    w.writerows(cells)

    def tex(s: str) -> str:
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                     ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("~", r"\~{}"), ("^", r"\^{}")):
            s = s.replace(a, b) if a != "\\" else s.replace(a, "\0")
        return s.replace("\0", r"\textbackslash{}").replace("+-", r"$\pm$")

    lines = [r"\begin{table}[ht]", r"\centering", r"\small", f"\\caption{{{tex(caption)}}}",
             r"\begin{tabular}{" + "l" * len(columns) + "}", r"\hline",
             " & ".join(tex(c) for c in columns) + r" \\", r"\hline"]
    lines += [" & ".join(tex(c) for c in r) + r" \\" for r in cells]
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    paths = []
    for ext, text in (("md", "\n".join(md) + "\n"), ("csv", buf.getvalue()), ("tex", "\n".join(lines) + "\n")):
        p = out / f"{name}.{ext}"
        with atomic_path(p) as tmp:
            tmp.write_text(text)
        paths.append(p)
    return paths


def drift_rows(drift: dict) -> list[list]:
    rows = []
    for c in sorted(drift["contexts"].values(), key=lambda c: c["context"]):
        if "methods" not in c:
            rows.append([c["context"], c["horizon"], c["n_stays"], "-", *["-"] * len(DRIFT_STEPS),
                         c.get("status", "-"), "-"])
            continue
        for m, res in c["methods"].items():
            ratios = [fmt(res["ratio"][h - 1], 2) if h <= len(res["ratio"]) else "-" for h in DRIFT_STEPS]
            d = res["drift_pct"]
            rows.append([c["context"], c["horizon"], c["n_stays"], m, *ratios,
                         "undefined (L1(1)=0)" if d is None else f"{d:+.1f}", reference.drift_reference(m)])
    return rows


def displacement_rows(disp: dict) -> list[list]:
    rows = []
    for space, res in disp.get("spaces", {}).items():
        for measure in ("endpoint", "path"):
            r = res[measure]
            ratio = fmt_ci(r["ratio"], 2) if r.get("ratio") else r.get("status", "-")
            rows.append([space, measure, r["n_deteriorating"], r["n_stable"], fmt(r["median_deteriorating"]),
                         fmt(r["median_stable"]), ratio,
                         reference.displacement_reference(space) if measure == "endpoint" else "-"])
    return rows


def task_rows(tasks: dict) -> list[list]:
    rows = []
    for task, e in tasks["tasks"].items():
        if e["status"] != "ok":
            rows.append([task, e["family"], e["status"], e["n"]["test"], "-", "-", "-", "-", "-", "-", "-", "-", "-"])
            continue
        for m, r in e["methods"].items():
            test = e.get("vs_best_baseline", {}).get(m)
            p = f"{test['delta']:+.3f} vs {test['baseline']} (p={fmt(test['p_value'])})" if test else "-"
            seeds = r["auroc_seeds"]
            sd = f"{fmt(seeds['mean'])} +- {fmt(seeds['sd'])} (n={seeds['n']})"
            chosen = r.get("selected", {}).get("kind", "-")  # probes: candidate chosen on validation loss
            rows.append([task, e["family"], "ok", r["n"], fmt(r["prevalence"]), m, chosen, fmt_ci(r["auroc"]), sd,
                         fmt_ci(r["auprc"]), fmt(r.get("event_recall")), p, reference.task_reference(task, m)])
    return rows


def family_rows(tasks: dict) -> list[list]:
    rows = []
    for fam, f in tasks["families"].items():
        for m, v in f["means"].items():
            best = " (best baseline)" if m == f["best_baseline"] else ""
            rows.append([fam, m + best, fmt(v["mean_auroc"]), fmt(v["mean_auprc"]),
                         f"{v['n_tasks']}/{f['n_tasks']}",
                         reference.family_reference(fam) if m == "probe" else "-"])
    return rows


# ---------------------------------------------------------------------- #
# headline, comparison, manifest
# ---------------------------------------------------------------------- #


def headline(run_dir) -> dict:
    """Headline figures of one run: drift %, displacement ratio, mean AUROC per family for the
    model (latent probe) and the best baseline. Missing evaluations give None."""
    out: dict = {"drift_pct": None, "displacement_ratio": None, "mean_auroc": {}}
    try:
        out["drift_pct"] = read_eval(run_dir, "drift")["summary"]["model"]["mean_drift_pct"]
    except (FileNotFoundError, KeyError):
        pass
    try:
        r = read_eval(run_dir, "displacement")["spaces"]["latent"]["endpoint"]["ratio"]
        out["displacement_ratio"] = r["value"] if r else None
    except (FileNotFoundError, KeyError):
        pass
    try:
        tasks = read_eval(run_dir, "tasks")
        for fam, f in tasks["families"].items():
            best = f["best_baseline"]
            out["mean_auroc"][fam] = {
                "model": f["means"].get("probe", {}).get("mean_auroc"),
                "best_baseline": best,
                "best_baseline_auroc": f["means"][best]["mean_auroc"] if best else None,
                "n_tasks": f["n_tasks_ok"],
            }
    except FileNotFoundError:
        pass
    return out


def _config(run_dir: Path) -> dict:
    import yaml

    p = Path(run_dir) / "config.yaml"
    return yaml.safe_load(p.read_text()) if p.exists() else {}


def _group_key(cfg: dict) -> str:
    """The config with seeds and paths removed: runs sharing it differ only in seeds."""
    def strip(d):
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items()
                    if "seed" not in k and k not in ("run_dir", "data_dir", "mimic_dir")}
        return d
    c = strip(cfg)
    return json.dumps({k: c.get(k) for k in ("train", "loss", "encoder", "predictor", "optim", "sft")}, sort_keys=True)


def compare_rows(run_dirs: list[Path]) -> list[list]:
    groups: dict[str, list[Path]] = {}
    for r in run_dirs:
        groups.setdefault(_group_key(_config(r)), []).append(r)
    rows = []
    for runs in groups.values():
        cfg = _config(runs[0])
        heads = [headline(r) for r in runs]

        def stat(vals):
            v = [x for x in vals if x is not None]
            if not v:
                return "-"
            return f"{np.mean(v):.3f} +- {np.std(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"

        name = cfg.get("train", {}).get("curriculum", "?")
        drop = cfg.get("train", {}).get("drop_phases") or []
        rows.append([
            name + (f" -{'-'.join(drop)}" if drop else ""), ", ".join(r.name for r in runs), len(runs),
            stat([h["drift_pct"] for h in heads]), stat([h["displacement_ratio"] for h in heads]),
            *[stat([h["mean_auroc"].get(f, {}).get(k) for h in heads]) for f in ("binary", "eep")
              for k in ("model", "best_baseline_auroc")],
        ])
    rows.append(["paper (Clin-JEPA)", "-", "-", f"{reference.DRIFT_PCT['model']:+.1f}",
                 f"{reference.DISPLACEMENT_RATIO['latent']:.2f}", f"{reference.MEAN_AUROC['binary']:.3f}", "-",
                 f"{reference.MEAN_AUROC['eep']:.3f}", "-"])
    return rows


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


def build_report(run_dirs: list, out_dir=None) -> Path:
    """Write the report of ``run_dirs[0]`` (plus a comparison grid when several) to ``out_dir``
    (default RUN/report); returns the directory."""
    run_dirs = [Path(r) for r in run_dirs]
    main = run_dirs[0]
    out = Path(out_dir) if out_dir else main / "report"
    out.mkdir(parents=True, exist_ok=True)
    drift, disp, tasks = (read_eval(main, n) for n in ("drift", "displacement", "tasks"))
    files: list[Path] = []
    files += write_table(out, "drift", ["context (h)", "horizon (h)", "n stays", "method",
                                        *[f"L1({h})/L1(1)" for h in DRIFT_STEPS], "drift %", "reference"],
                         drift_rows(drift), "Latent rollout drift on the test split")
    files += write_table(out, "displacement", ["space", "measure", "n deteriorating", "n stable",
                                               "median deteriorating", "median stable", "ratio [95% CI]",
                                               "reference"],
                         displacement_rows(disp),
                         f"Cohort displacement over hours 0-{disp['window_hours']} (test split"
                         + (f"; SOFA baseline and admission period: hours 0-{disp['cohort_rule']['baseline_hours']})"
                            if "cohort_rule" in disp else ")"))
    files += write_table(out, "tasks", ["task", "family", "status", "n test", "prevalence", "method",
                                        "probe chosen on val", "AUROC [95% CI]", "AUROC over seeds", "AUPRC [95% CI]",
                                        "event recall @ precision", "vs best baseline", "reference"],
                         task_rows(tasks), "Risk prediction on the test split (stay-clustered bootstrap CIs)")
    files += write_table(out, "families", ["family", "method", "mean AUROC", "mean AUPRC", "tasks", "reference"],
                         family_rows(tasks), "Mean over the evaluable tasks of each family")
    if len(run_dirs) > 1:
        files += write_table(out, "comparison", ["configuration", "runs", "n", "drift %", "displacement ratio",
                                                 "binary AUROC (model)", "binary AUROC (best baseline)",
                                                 "EEP AUROC (model)", "EEP AUROC (best baseline)"],
                             compare_rows(run_dirs), "Ablations and paradigms (mean +- sd over seeds)")
    for p in (plots.drift_curves(drift, out / "drift_curves.png"),
              plots.displacement_distributions(disp, out / "displacement.png"),
              plots.roc_curves(tasks, out / "roc_curves.png"),
              plots.training_curves(plots.read_training_scalars(main), out / "training_curves.png")):
        if p is not None:
            files.append(p)
    head = headline(main)
    write_json(out / "headline.json", head)
    files.append(out / "headline.json")
    index = ["# Clin-JEPA evaluation report", "", f"Run: `{main.name}`", ""]
    for name in ("drift", "displacement", "families", "tasks", "comparison"):
        if (out / f"{name}.md").exists() and out / f"{name}.md" in files:
            index += [(out / f"{name}.md").read_text(), ""]
    index += [f"![{p.stem}]({p.name})" for p in files if p.suffix == ".png"]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(index) + "\n")
    files.append(out / "report.md")
    write_json(out / "manifest.json", manifest(run_dirs, files + [out / "manifest.json"]))
    log.info("report written to %s (%d files)", out, len(files) + 1)
    return out
