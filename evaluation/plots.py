"""PNG plots for the report (matplotlib, Agg backend): drift curves, displacement
distributions, ROC curves, training curves. Inputs are the aggregate eval JSONs; every
function writes one file atomically and returns its path (None when there is nothing to plot).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from clin_jepa.utils import atomic_path  # noqa: E402

METHOD_STYLE = {"model": ("C0", "-"), "copy_forward": ("C1", "--"), "linear": ("C2", ":")}
TRAIN_TAGS = ("train/loss", "train/tf", "train/rollout", "val/loss", "train/z_std", "val/z_std")


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def drift_curves(drift: dict, path: Path) -> Path | None:
    ctxs = sorted((c for c in drift["contexts"].values() if "methods" in c), key=lambda c: c["context"])
    if not ctxs:
        return None
    fig, axes = plt.subplots(1, len(ctxs), figsize=(4 * len(ctxs), 3.2), squeeze=False)
    for ax, c in zip(axes[0], ctxs):
        for m, res in c["methods"].items():
            if res["ratio"][0] is None:
                continue
            color, ls = METHOD_STYLE.get(m, ("k", "-"))
            ax.plot(range(1, len(res["ratio"]) + 1), res["ratio"], color=color, ls=ls, label=m)
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.set(title=f"context {c['context']} h (n={c['n_stays']})", xlabel="hours ahead h", ylabel="L1(h) / L1(1)")
        ax.set_yscale("log")
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def displacement_distributions(disp: dict, path: Path) -> Path | None:
    spaces = disp.get("spaces", {})
    if not spaces:
        return None
    fig, axes = plt.subplots(1, 2 * len(spaces), figsize=(3.6 * 2 * len(spaces), 3.2), squeeze=False)
    i = 0
    for space, res in spaces.items():
        for measure in ("endpoint", "path"):
            ax = axes[0][i]
            i += 1
            data = [res["values"][c][measure] for c in ("stable", "deteriorating")]
            if all(len(d) for d in data):
                ax.boxplot(data, showfliers=False)
                ax.set_xticks([1, 2], [f"stable\n(n={len(data[0])})", f"deteriorating\n(n={len(data[1])})"])
            ratio = res[measure].get("ratio")
            title = f"{space} {measure}" + (f": {ratio['value']:.2f}x" if ratio and ratio.get("value") else "")
            ax.set(title=title, ylabel="L2 distance")
    return _save(fig, path)


def roc_curves(tasks: dict, path: Path, methods: list[str] | None = None) -> Path | None:
    ok = [(t, e) for t, e in tasks["tasks"].items() if e["status"] == "ok"]
    if not ok:
        return None
    cols = 5
    rows = (len(ok) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.flat[len(ok):]:
        ax.axis("off")
    for ax, (task, e) in zip(axes.flat, ok):
        for m, roc in e["roc"].items():
            if methods and m not in methods:
                continue
            auc = e["methods"][m]["auroc"]["value"]
            ax.plot(roc["fpr"], roc["tpr"], lw=1, label=f"{m} {auc:.2f}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
        ax.set_title(task, fontsize=9)
        ax.legend(fontsize=6, loc="lower right")
    return _save(fig, path)


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


def training_curves(scalars: dict, path: Path) -> Path | None:
    tags = [t for t in TRAIN_TAGS if t in scalars] or sorted(scalars)[:6]
    if not tags:
        return None
    fig, axes = plt.subplots(1, len(tags), figsize=(3.6 * len(tags), 3), squeeze=False)
    for ax, tag in zip(axes[0], tags):
        steps, vals = zip(*scalars[tag])
        ax.plot(steps, vals, lw=1)
        ax.set(title=tag, xlabel="optimizer step")
    return _save(fig, path)
