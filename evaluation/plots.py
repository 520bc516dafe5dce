"""Report figures (matplotlib, Agg): drift curves, rollout decoding (MASE per variable group),
displacement, AUROC intervals, ROC curves, training curves. Inputs are the aggregate eval JSONs and the run's training logs.

Every figure is written as vector PDF and 300-dpi PNG (``<stem>.pdf``, ``<stem>.png``,
atomically); each function returns the written paths, or None when there is nothing to plot.
Methods are named and coloured through :mod:`clin_jepa.evaluation.names`, the same in every figure;
every panel has axis labels with units, and CIs are drawn wherever the tables have them.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from clin_jepa.evaluation import names, reference  # noqa: E402
from clin_jepa.evaluation.tasks import result_families, result_tasks  # noqa: E402

from clin_jepa.utils import atomic_path  # noqa: E402

DPI = 300
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
         "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False}
COHORT_COLORS = {"stable": "#999999", "deteriorating": "#D55E00"}
TRAIN_PANELS = (  # (title, y label, tags); panels without any logged tag are left out
    ("JEPA loss", "loss (L1 in latent units)", ("train/loss", "val/loss")),
    ("Teacher-forced and rollout terms", "loss (L1 in latent units)", ("train/tf", "train/rollout")),
    ("Latent spread", "z std (latent units)", ("train/z_std", "val/z_std")),
)
TAG_LABELS = {"train/loss": "train", "val/loss": "validation", "train/tf": "teacher-forced (train)",
              "train/rollout": "rollout (train)", "train/z_std": "train", "val/z_std": "validation"}
BOUNDARY_GID = "phase-boundary"


def _save(fig, stem: Path) -> list[Path]:
    paths = []
    for ext in ("pdf", "png"):
        p = Path(f"{stem}.{ext}")
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format=ext, dpi=DPI, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def _whisker(a, b) -> float:
    """Length a - b of one CI whisker; 0 when undefined or when a percentile CI from binned
    replicates does not contain its exact point estimate."""
    if a is None or b is None or not np.isfinite(a - b):
        return 0.0
    return max(0.0, float(a - b))


def _legend_below(fig, handles, labels) -> None:
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False,
               bbox_to_anchor=(0.5, -0.02))


# ---------------------------------------------------------------------- #
# drift
# ---------------------------------------------------------------------- #


def _curve(ax, m: str, res: dict) -> None:
    h = np.arange(1, len(res["ratio"]) + 1)
    ax.plot(h, res["ratio"], color=names.color(m), ls=names.linestyle(m), lw=1.3, label=names.method(m))
    ci = res.get("ratio_ci")
    if ci:
        lo, hi = (np.array(ci[k], dtype=float) for k in ("lo", "hi"))
        ax.fill_between(h, lo, hi, color=names.color(m), alpha=0.2, lw=0)


def _band(ax, h, values, ci, color, **kw) -> None:
    """A curve with its CI band (None values are skipped)."""
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    ax.plot(h, v, color=color, lw=1.3, **kw)
    if ci:
        lo, hi = (np.array([np.nan if x is None else x for x in ci[k]], dtype=float) for k in ("lo", "hi"))
        ax.fill_between(h, lo, hi, color=color, alpha=0.2, lw=0)


def drift_curves(drift: dict, stem: Path) -> list[Path] | None:
    """Per context (columns): row 1, L1(h)/L1(1) of the model and the near-flat baselines (linear
    axis around 1); row 2, linear extrapolation on its own log axis (its ratios are orders of
    magnitude larger); row 3, absolute L1(h); row 4, the model's skill against the hour-mean and
    copy-forward predictors (0 = no better than the reference). CI bands over stays."""
    from clin_jepa.evaluation.drift import REFERENCES

    ctxs = sorted((c for c in drift["contexts"].values() if "methods" in c), key=lambda c: c["context"])
    if not ctxs:
        return None
    has_skill = any("skill" in r for c in ctxs for r in c["methods"].values())
    n_rows = 4 if has_skill else 3
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(n_rows, len(ctxs), figsize=(2.3 * len(ctxs), 2.1 * n_rows + 0.3), squeeze=False,
                                 gridspec_kw={"height_ratios": [2, 1, 1.6, 1.6][:n_rows]})
        for j, c in enumerate(ctxs):
            top, bottom, absolute = axes[0][j], axes[1][j], axes[2][j]
            for m in names.ordered(c["methods"]):
                res = c["methods"][m]
                h = np.arange(1, len(res["l1"]) + 1)
                if m != "linear":  # absolute errors: linear extrapolation would flatten the rest
                    _band(absolute, h, res["l1"], res.get("l1_ci"), names.color(m), ls=names.linestyle(m),
                          label=names.method(m))
                if res["ratio"][0] is None:
                    continue
                _curve(bottom if m == "linear" else top, m, res)
            top.axhline(1.0, color="black", lw=0.5)
            top.set(title=f"context {c['context']} h (n = {c['n_stays']:,} stays)", ylabel="L1(h) / L1(1)")
            bottom.set(ylabel="L1(h) / L1(1), log")
            bottom.set_yscale("log")
            bottom.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            bottom.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            absolute.set(ylabel="L1(h) (encoder units)")
            absolute.set_ylim(bottom=0)
            if has_skill:
                ax = axes[3][j]
                model = c["methods"].get("model", {})
                for ref in REFERENCES:
                    sk = model.get("skill", {}).get(ref)
                    if sk:
                        h = np.arange(1, len(sk["curve"]) + 1)
                        _band(ax, h, sk["curve"], sk.get("curve_ci"), names.color(ref), ls=names.linestyle(ref),
                              label=f"{names.method('model')} skill vs {names.method(ref).lower()}")
                ax.axhline(0.0, color="black", lw=0.5)
                ax.set(ylabel="predictor skill\n1 - L1(h) / L1_ref(h)")
            axes[-1][j].set(xlabel="hours ahead h")
        handles, labels = [], []
        for ax in axes.flat:
            for hd, lb in zip(*ax.get_legend_handles_labels()):
                if lb not in labels:
                    handles.append(hd)
                    labels.append(lb)
        _legend_below(fig, handles, labels)
        fig.text(0.5, -0.05, "shaded: 95 % CI over stays (bootstrap); row 2: linear extrapolation on its own log "
                 "scale; rows 3-4: absolute error and skill (0 = no better than the reference predictor)",
                 ha="center", fontsize=7)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        return _save(fig, stem)


# ---------------------------------------------------------------------- #
# rollout decoding
# ---------------------------------------------------------------------- #


def _nan(values) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in values], dtype=float)


def decoding_curves(dec: dict, stem: Path) -> list[Path] | None:
    """One figure per variable group (``<stem>_<group>``): left, mean MASE of the group's variables
    against hours ahead, one line per method (LightGBM: points at its horizons), CI bands over
    stays; right, the model's paired difference to last value carried forward with its CI."""
    from clin_jepa.models.decoders import DECODE_GROUPS

    groups = [g for g in DECODE_GROUPS if dec.get("per_group", {}).get(g)]
    if not groups:
        return None
    ref = dec.get("reference", "lvcf")
    ends = sorted({c["horizon"] for c in dec["contexts"].values() if 0 < c["horizon"] < dec["horizon"]})
    paths: list[Path] = []
    for g in groups:
        e = dec["per_group"][g]
        with plt.rc_context(STYLE):
            fig, (ax, dx) = plt.subplots(1, 2, figsize=(6.5, 2.6), gridspec_kw={"width_ratios": [1.6, 1]})
            for m in names.ordered(dec["methods"]):
                v = _nan(e[m]["mase"])
                h = np.arange(1, len(v) + 1)
                ci = e[m].get("mase_ci")
                if m == "lightgbm":  # fitted at a few horizons only
                    ok = np.isfinite(v)
                    lo, hi = _nan(ci["lo"]), _nan(ci["hi"])
                    err = [np.nan_to_num(np.clip(v - lo, 0, None))[ok], np.nan_to_num(np.clip(hi - v, 0, None))[ok]]
                    ax.errorbar(h[ok], v[ok], yerr=err, fmt="s", ms=3, capsize=2, lw=1, color=names.color(m),
                                label=names.method(m))
                    continue
                _band(ax, h, e[m]["mase"], ci, names.color(m), ls=names.linestyle(m), label=names.method(m))
            ax.axhline(1.0, color="grey", lw=0.5)
            n_var = len(dec["groups"][g])
            ax.set(title=f"{names.decode_group(g)} ({n_var} variable{'s' if n_var > 1 else ''})",
                   xlabel="hours ahead h", ylabel="MASE (mean over variables)" if n_var > 1 else "MASE")
            ax.set_ylim(bottom=0)
            d = e["model_minus_lvcf"]
            h = np.arange(1, len(d["mase"]) + 1)
            _band(dx, h, d["mase"], d.get("mase_ci"), names.color("model"))
            dx.axhline(0.0, color="black", lw=0.5)
            dx.set(title=f"{names.method('model')}\nminus {names.method(ref).lower()}", xlabel="hours ahead h",
                   ylabel="MASE difference\n(below 0: model better)")
            for a in (ax, dx):
                for end in ends:  # a context's rollout ends: fewer stays pooled beyond
                    a.axvline(end + 0.5, color="grey", lw=0.6, ls=":")
            handles, labels = _legend_entries([ax])
            fig.tight_layout(rect=(0, 0.1, 1, 1))
            _legend_below(fig, handles, labels)
            fig.text(0.5, -0.04, "shaded / bars: 95 % CI over stays (bootstrap); MASE 1 = the train one-hour-ahead "
                     "naive error;\ndotted verticals: a context's rollout ends there (fewer stays pooled beyond)",
                     ha="center", va="top", fontsize=7)
            paths += _save(fig, Path(f"{stem}_{g}"))
    return paths


# ---------------------------------------------------------------------- #
# displacement
# ---------------------------------------------------------------------- #

UNITS = {"latent": "encoder units", "raw": "standardised units", "perfect_encoder": "standardised units"}


def displacement_distributions(disp: dict, stem: Path) -> list[Path] | None:
    """Per space and measure: distance distributions of the two cohorts (every point shown:
    box = quartiles, whiskers = 1.5 IQR, dots beyond); last panel: the ratios with their CIs."""
    spaces = disp.get("spaces", {})
    if not spaces:
        return None
    order = [s for s in names.SPACES if s in spaces] + [s for s in spaces if s not in names.SPACES]
    cells = [(s, m) for s in order for m in ("endpoint", "path")]
    with plt.rc_context(STYLE):  # one row per space (endpoint, path length), the ratios on the right
        mosaic = [[f"{s}/endpoint", f"{s}/path", "ratio"] for s in order]
        fig, ax_by = plt.subplot_mosaic(mosaic, figsize=(7.0, 2.3 * len(order)),
                                        gridspec_kw={"width_ratios": [1, 1, 1.3]})
        for space, measure in cells:
            ax = ax_by[f"{space}/{measure}"]
            data = [np.asarray(spaces[space]["values"][c][measure], dtype=float) for c in COHORT_COLORS]
            if all(len(d) for d in data):
                bp = ax.boxplot(data, widths=0.6, patch_artist=True, medianprops={"color": "black"},
                                flierprops={"marker": ".", "markersize": 2, "alpha": 0.5})
                for patch, c in zip(bp["boxes"], COHORT_COLORS):
                    patch.set(facecolor=COHORT_COLORS[c], alpha=0.5)
            ax.set_xticks([1, 2], [f"{c}\n(n = {len(d):,})" for c, d in zip(COHORT_COLORS, data)])
            ax.set(title=f"{names.space(space)}\n{names.measure(measure).lower()}",
                   ylabel=f"L2 distance ({UNITS.get(space, 'units')})")
        ax = ax_by["ratio"]  # forest plot: one line per space and measure, top to bottom as the rows
        for i, (space, measure) in enumerate(cells):
            r = spaces[space][measure].get("ratio") or {}
            if r.get("value") is None:
                continue
            err = [[_whisker(r["value"], r.get("lo"))], [_whisker(r.get("hi"), r["value"])]]
            ax.errorbar([r["value"]], [i], xerr=err, fmt="o", color=names.color(space), capsize=3)
        ax.axvline(1.0, color="black", lw=0.5)
        ax.axvline(reference.DISPLACEMENT_RATIO["latent"], color=names.color("latent"), lw=0.8, ls="--")
        ax.text(reference.DISPLACEMENT_RATIO["latent"], -0.6, "paper\n(latent)", fontsize=6, va="bottom",
                ha="right")
        ax.set_yticks(range(len(cells)), [f"{names.space(s)},\n{names.measure(m).lower()}" for s, m in cells],
                      fontsize=6)
        ax.set(title="ratio deteriorating / stable (95 % CI)", xlabel="ratio of medians (x)",
               ylim=(len(cells) - 0.5, -0.8))
        fig.tight_layout()
        return _save(fig, stem)


# ---------------------------------------------------------------------- #
# tasks
# ---------------------------------------------------------------------- #


def _legend_entries(axes) -> tuple[list, list[str]]:
    """One legend entry per label over several panels, in first-seen order."""
    handles, labels = [], []
    for ax in axes:
        for hd, lb in zip(*ax.get_legend_handles_labels()):
            if lb not in labels:
                handles.append(hd)
                labels.append(lb)
    return handles, labels


def _task_methods(tasks: dict) -> list[str]:
    ms = list(tasks.get("methods") or [])
    return [m for m in ms if m.startswith("probe")] + [m for m in ms if not m.startswith("probe")]


def auroc_intervals(tasks: dict, stem: Path) -> list[Path] | None:
    """AUROC with its 95 % CI per task and method, one panel per family (forest plot)."""
    fams = {f: [t for t in result_tasks(tasks, f) if tasks["tasks"][t]["status"] == "ok"] for f in result_families(tasks)}
    fams = {f: ts for f, ts in fams.items() if ts}
    if not fams:
        return None
    methods = _task_methods(tasks)
    heights = [len(ts) for ts in fams.values()]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(fams), 1, figsize=(6.5, 0.45 * sum(heights) + 1.4), squeeze=False,
                                 gridspec_kw={"height_ratios": heights})
        step = 0.8 / max(len(methods), 1)
        for ax, (fam, ts) in zip(axes[:, 0], fams.items()):
            for j, m in enumerate(methods):
                ys, xs, lo, hi = [], [], [], []
                for i, t in enumerate(ts):
                    r = tasks["tasks"][t]["methods"].get(m)
                    if r is None:
                        continue
                    a = r["auroc"]
                    ys.append(i - 0.4 + step * (j + 0.5))
                    xs.append(a["value"])
                    lo.append(_whisker(a["value"], a["lo"]))
                    hi.append(_whisker(a["hi"], a["value"]))
                if xs:
                    ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", ms=3, lw=1, color=names.color(m),
                                label=names.method(m))
            ax.axvline(0.5, color="black", lw=0.5)
            ax.set_yticks(range(len(ts)), [names.task(t) for t in ts])
            ax.invert_yaxis()
            ax.set(title=names.family(fam), xlabel="AUROC (95 % CI, test split)")
        handles, labels = _legend_entries(axes.flat)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        _legend_below(fig, handles, labels)
        return _save(fig, stem)


def roc_curves(tasks: dict, stem: Path) -> list[Path] | None:
    ok = [t for f in result_families(tasks) for t in result_tasks(tasks, f) if tasks["tasks"][t]["status"] == "ok"]
    if not ok:
        return None
    cols = min(5, len(ok))
    rows = (len(ok) + cols - 1) // cols
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows + 0.5), squeeze=False)
        for ax in axes.flat[len(ok):]:
            ax.axis("off")
        for ax, t in zip(axes.flat, ok):
            e = tasks["tasks"][t]
            for m in _task_methods(tasks):
                if m in e["roc"]:
                    ax.plot(e["roc"][m]["fpr"], e["roc"][m]["tpr"], lw=1, color=names.color(m),
                            ls=names.linestyle(m), label=names.method(m))
            ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls=":")
            ax.set(title=names.task(t), xlabel="false positive rate", ylabel="true positive rate",
                   xlim=(0, 1), ylim=(0, 1), aspect="equal")
        handles, labels = _legend_entries(axes.flat)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        _legend_below(fig, handles, labels)
        return _save(fig, stem)


# ---------------------------------------------------------------------- #
# training
# ---------------------------------------------------------------------- #


def read_training_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars from RUN/logs: TensorBoard event files, or metrics*.jsonl lines {"step", key: value}."""
    logs = Path(run_dir) / "logs"
    out: dict[str, list[tuple[int, float]]] = {}
    if not logs.is_dir():
        return out
    for f in sorted(logs.rglob("*.jsonl")):
        for line in f.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            step = rec.get("step")
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)) and step is not None:
                    out.setdefault(k, []).append((int(step), float(v)))
    events = sorted({p.parent for p in logs.rglob("events.out.tfevents.*")})
    if events:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        for d in events:
            acc = EventAccumulator(str(d), size_guidance={"scalars": 0})
            acc.Reload()
            for tag in acc.Tags().get("scalars", []):
                out.setdefault(tag, []).extend((e.step, float(e.value)) for e in acc.Scalars(tag))
    return {k: sorted(v) for k, v in out.items()}


def phase_boundaries(run_dir: Path) -> list[tuple[int, str]]:
    """(global step, name of the phase that starts there) for every phase change of the run,
    read from the phase-boundary checkpoints RUN/checkpoints/<NN>_<phase>/train_state.json."""
    ends = []
    for d in sorted((Path(run_dir) / "checkpoints").glob("[0-9][0-9]_*")):
        f = d / "train_state.json"
        if f.is_file():
            s = json.loads(f.read_text())
            ends.append((int(d.name[:2]), int(s["global_step"]), list(s.get("phases") or [])))
    out = []
    for index, step, phases in sorted(ends):
        if index < len(phases):  # the last phase's end is the end of training, not a change
            out.append((step, phases[index]))
    return out


def _log_scale_needed(values) -> bool:
    v = np.asarray([x for x in values if x > 0], dtype=float)
    return len(v) > 1 and v.max() / v.min() > 5  # a fast early drop would flatten the rest


def training_figure(scalars: dict, boundaries: list[tuple[int, str]]):
    """The training-curve figure (not saved): one panel per quantity, phase boundaries as
    vertical lines (gid ``phase-boundary``, label = the phase that starts) on every panel."""
    panels = [(t, y, [g for g in tags if g in scalars]) for t, y, tags in TRAIN_PANELS]
    panels = [p for p in panels if p[2]]
    if not panels:
        fallback = sorted(scalars)[:3]
        panels = [(tag, "value", [tag]) for tag in fallback]
    if not panels:
        return None
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.6), squeeze=False)
        for ax, (title, ylabel, tags) in zip(axes[0], panels):
            for k, tag in enumerate(tags):
                steps, vals = zip(*scalars[tag])
                ax.plot(steps, vals, lw=1, color=("#0072B2", "#D55E00")[k % 2], label=TAG_LABELS.get(tag, tag),
                        marker="o" if len(steps) < 30 else None, ms=2)
            if _log_scale_needed([v for tag in tags for _, v in scalars[tag]]):
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
                ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                ylabel += ", log"
            ax.set(xlabel="optimizer step", ylabel=ylabel)
            ax.set_title(title, pad=22 if boundaries else 6)
            ax.legend(frameon=False)
            for step, phase in boundaries:
                ax.axvline(step, color="grey", lw=0.7, ls="--", gid=BOUNDARY_GID, label=f"_{phase}")
        ax0 = axes[0][0]
        by_step: dict[int, list[str]] = {}
        for step, phase in boundaries:
            by_step.setdefault(step, []).append(phase)
        for step, phases in by_step.items():  # instant phases (hard sync) share their step with the next
            ax0.text(step, 1.0, " " + " + ".join(phases), transform=ax0.get_xaxis_transform(),
                     va="bottom", ha="left", fontsize=6, color="dimgrey", rotation=30)
        fig.tight_layout()
    return fig


def training_curves(scalars: dict, boundaries: list[tuple[int, str]], stem: Path) -> list[Path] | None:
    fig = training_figure(scalars, boundaries)
    return _save(fig, stem) if fig is not None else None
