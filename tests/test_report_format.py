"""The report's form: tables a researcher can paste (tidy CSV, booktabs LaTeX that compiles and
fits a two-column page), display names instead of code names, p-values at the bootstrap's
resolution, seed statistics only with seeds, figures in PDF + PNG, training curves with the
curriculum's phase boundaries."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess

import pytest
from clin_jepa.evaluation import names, plots
from clin_jepa.evaluation.report import build_report
from clin_jepa.evaluation.tables import Est, View, format_p, render_tex, seed_stat
from test_report import FIGURES, TABLE_STEMS, _make_run

from clin_jepa.training.checkpoint import STATE_FILE, TrainState, boundary_name

NUMERIC = re.compile(r"^(n_.*|.*_h\d+.*|context_h|horizon_h|prevalence|auroc.*|auprc.*|event_recall.*|"
                     r"drift_pct.*|ratio.*|l1_.*|skill_.*|median_.*|mean_.*|delta.*|p_value.*|.*_seed_.*)$")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    run, _ = _make_run(root)
    return run, build_report([run], root / "out")


def test_every_csv_is_tidy_and_numeric(report):
    _, out = report
    for stem in TABLE_STEMS:
        rows = list(csv.DictReader((out / f"{stem}.csv").open()))
        assert rows, stem
        numeric = [c for c in rows[0] if NUMERIC.match(c)]
        assert numeric, f"{stem}.csv has no numeric column"
        for r in rows:
            for c in numeric:
                if r.get(c):
                    float(r[c])  # one number per cell, never "0.885 [0.844, 0.922]"
        for r in rows:
            assert not any("[" in v for v in r.values() if v), f"{stem}.csv packs a CI into a string"


def test_display_names_replace_code_names(report):
    _, out = report
    text = "".join((out / f"{s}.{e}").read_text() for s in TABLE_STEMS for e in ("md", "tex", "csv"))
    text += (out / "report.md").read_text()
    for display in ("Clin-JEPA probe", "Logistic regression", "Copy-forward", "Linear extrapolation", "Hour mean",
                    "Hospital mortality", "Clin-JEPA latent"):
        assert display in text
    for code in sorted(names.code_names()):
        if code in {"model", "linear", "probe", "latent", "raw"}:  # plain words inside display names
            continue
        assert not re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", text), f"code name {code!r} in the report"


def test_p_values_at_bootstrap_resolution():
    assert format_p(0.0, 500) == "p < 0.002"
    assert format_p(0.004, 500) == "p = 0.004"
    assert format_p(0.0, 50) == "p < 0.02"
    assert format_p(None, 500) == "-"


def test_single_seed_has_no_spread_and_two_seeds_do(report, tmp_path):
    _, out = report
    for stem in TABLE_STEMS:
        for ext in ("md", "tex", "csv"):
            assert "+- 0.000" not in (out / f"{stem}.{ext}").read_text()
    assert "auroc_seed_sd" not in (out / "tasks.csv").read_text()
    assert seed_stat(0.8, 0.0, 1) == "-" and seed_stat(0.8, 0.01, 2) == "0.800 +- 0.010 (n=2)"

    run, _ = _make_run(tmp_path, seeds=(0, 1))
    rows = list(csv.DictReader((build_report([run], tmp_path / "out") / "tasks.csv").open()))
    probe = next(r for r in rows if r["method"] == "Clin-JEPA probe")
    assert probe["n_seeds"] == "2" and probe["auroc_seed_0"] and probe["auroc_seed_1"]
    assert float(probe["auroc_seed_mean"]) == pytest.approx(
        (float(probe["auroc_seed_0"]) + float(probe["auroc_seed_1"])) / 2)


def _latex_document(table_tex: str) -> str:
    filler = "Text of the paper. " * 120
    return ("\\documentclass[twocolumn]{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
            f"{filler}\n{table_tex}\n{filler}\n\\end{{document}}\n")


@pytest.mark.parametrize("stem", TABLE_STEMS)
def test_latex_tables_compile_and_fit_a_two_column_page(report, tmp_path, stem):
    _, out = report
    tex = (out / f"{stem}.tex").read_text()
    for token in ("\\toprule", "\\midrule", "\\bottomrule", "\\caption{", "\\label{tab:"):
        assert token in tex, f"{stem}.tex lacks {token}"
    assert "\\hline" not in tex
    assert tex.count("\\begin{table") == tex.count("\\end{table")
    if shutil.which("pdflatex") is None:
        pytest.skip("no TeX engine installed (pdflatex); booktabs structure checked only")
    (tmp_path / "paper.tex").write_text(_latex_document(tex))
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert res.returncode == 0, log[-2000:]
    assert "Overfull \\hbox" not in log, f"{stem}.tex is wider than its column/page"
    assert "Float too large" not in log


def test_wide_task_grid_fits_the_page(tmp_path):
    """A full task grid (report_tables.GRID_METHODS = six methods) is a table* and fits the text width
    of a two-column page (more methods are split in two grids)."""
    from clin_jepa.evaluation.report_tables import GRID_METHODS

    methods = ("probe", "probe_context", "probe_actions", "probe_rollout", "logreg", "lightgbm")
    assert len(methods) == GRID_METHODS
    cells = [Est(0.912, 0.871, 0.944)] * len(methods)
    rows = [[names.task(t), 1234, Est(0.12, nd=2), *cells] for t in list(names.TASKS)[:8]]
    header = ["Task", "Stays", "Prev.", *[names.method(m) for m in methods]]
    tex = render_tex([View("AUROC.", "tab:x", header, rows, ["a note"], wide=True)])
    assert "\\begin{table*}" in tex
    if shutil.which("pdflatex") is None:
        pytest.skip("no TeX engine installed (pdflatex)")
    (tmp_path / "paper.tex").write_text(_latex_document(tex))
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "paper.tex"], cwd=tmp_path, capture_output=True,
                   timeout=120)
    assert "Overfull \\hbox" not in (tmp_path / "paper.log").read_text(errors="replace")


def test_figures_are_pdf_and_png(report):
    _, out = report
    for stem in FIGURES:
        assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_curves_mark_every_phase_change(tmp_path):
    phases = ["warmup", "joint", "align", "sync", "finalize"]
    ends = [30, 90, 120, 120, 150]  # global step at the end of each phase; sync is instant
    for i, (p, step) in enumerate(zip(phases, ends)):
        d = tmp_path / "checkpoints" / boundary_name(i, p)
        d.mkdir(parents=True)
        state = TrainState(global_step=step, phase_index=i + 1, phases=phases, curriculum="full")
        (d / STATE_FILE).write_text(json.dumps(state.to_dict()))
    (tmp_path / "checkpoints" / "last").mkdir()  # not a phase boundary
    bounds = plots.phase_boundaries(tmp_path)
    assert bounds == [(30, "joint"), (90, "align"), (120, "sync"), (120, "finalize")]

    scalars = {"train/loss": [(s, 10.0 / s) for s in range(1, 151)], "val/loss": [(50, 0.3), (150, 0.1)]}
    fig = plots.training_figure(scalars, bounds)
    for ax in fig.axes:
        lines = [ln for ln in ax.get_lines() if ln.get_gid() == plots.BOUNDARY_GID]
        assert [(ln.get_xdata()[0], ln.get_label().lstrip("_")) for ln in lines] == bounds
        assert ax.get_xlabel() and ax.get_ylabel()
    assert fig.axes[0].get_yscale() == "log"  # loss spans 10 .. 0.07: a linear axis would hide the end
    labels = [t.get_text().strip() for t in fig.axes[0].texts]
    assert labels == ["joint", "align", "sync + finalize"]


def test_auroc_plot_accepts_a_ci_that_misses_its_estimate(report, tmp_path):
    """Binned bootstrap replicates can put a percentile CI beside the exact estimate (the
    ablation's tiny runs do): the whisker on that side is drawn with length 0."""
    run, _ = report
    tasks = json.loads((run / "eval" / "tasks.json").read_text())
    a = tasks["tasks"]["mort_hosp"]["methods"]["probe"]["auroc"]
    a["lo"], a["hi"] = a["value"] + 0.01, a["value"] + 0.05
    assert plots.auroc_intervals(tasks, tmp_path / "auroc_ci")[1].is_file()


def test_task_grids_with_many_methods_split_in_two(tmp_path):
    """Four probes and four baselines: the probes beside the best baseline, then the baselines;
    every grid within GRID_METHODS method columns (so within the page)."""
    import numpy as np
    import polars as pl
    from clin_jepa.evaluation import tasks
    from clin_jepa.evaluation.report_tables import GRID_METHODS, task_table

    from clin_jepa.config import EvalConfig

    rng = np.random.default_rng(0)
    n = 120
    y = rng.integers(0, 2, n)
    split = np.array(["train"] * 60 + ["val"] * 30 + ["test"] * 30)
    labels = pl.DataFrame({"stay_id": np.arange(n), "task": ["mort_hosp"] * n, "hour": [24] * n, "label": y})
    rows, dropped = tasks.task_rows(labels, np.arange(n), np.full(n, 30), split, 48)
    codes = ("probe", "probe_context", "probe_actions", "probe_rollout", "logreg", "lightgbm", "lstm", "tcn")
    methods = {m: (lambda r, yy, tr, va, te, s, k=k: np.clip(yy[te] * 0.1 * k + rng.random(len(te)), 0, None))
               for k, m in enumerate(codes)}
    res = tasks.evaluate_tasks(rows, methods, EvalConfig(bootstrap=20), dropped)
    views = [v for v in task_table(res)[1] if v.label.startswith("tab:auroc-binary")]
    assert [v.label for v in views] == ["tab:auroc-binary", "tab:auroc-binary-baselines"]
    best = names.method(res["families"]["binary"]["best_baseline"])
    assert views[0].header[3:] == [*(names.method(m) for m in codes[:4]), best]
    assert views[1].header[3:] == [names.method(m) for m in codes[4:]]
    assert all(len(v.header) - 3 <= GRID_METHODS for v in views)
