"""Task tables (labels.parquet -> rows) and the hand-crafted inputs of the baselines.

A task row is (stay, task, hour, label). Its model input covers hours 0..``last_hour``:
- per-stay tasks (label hour = data.prediction_hour = 24): ``last_hour = 23``, i.e. the
  first 24 hours;
- EEP tasks (label at hour h = event within (h, h+12]): ``last_hour = h``, the data up to
  and including hour h; at most eval.max_eep_hours rows (the first ones) per stay.
Rows whose ``last_hour`` lies outside the stay's data in the window are dropped and
counted (``dropped_rows`` in tasks.json).

Hourly inputs (same for every baseline): the hourly.parquet features, standardised with
train-split statistics (observed values only), forward filled within the stay, 0 (the
train mean) before the first observation, plus one missing indicator per feature (1 when
the value was observed in that hour). Summaries up to ``last_hour``: last, mean, min,
max (standardised units, 0 when never observed) and the observation count, plus age, sex
and weight.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl

from clin_jepa.data import task_defs
from clin_jepa.data.features import ACTION_COLUMNS, DERIVED_COLUMNS, OBSERVATION_COLUMNS
from clin_jepa.utils import get_logger

log = get_logger(__name__)

# The default tasks (configs/tasks/, one file per task); a run with data.tasks_dir uses task_families().
FAMILIES: dict[str, tuple[str, ...]] = task_defs.families(task_defs.load_tasks())
BINARY_TASKS, EEP_TASKS = FAMILIES["binary"], FAMILIES["eep"]
HOURLY_FEATURES = OBSERVATION_COLUMNS + ACTION_COLUMNS + DERIVED_COLUMNS
SUMMARIES = ("last", "mean", "min", "max", "count")


EXTRA_FAMILY = "extra"  # tasks added at evaluation time (ACES configs, evaluation.aces_tasks)


def result_families(result: dict) -> list[str]:
    """Families present in a tasks.json result: the task files' order (binary, eep), then added
    ones (ACES: extra). Reports and plots follow the result, so a run's own tasks appear."""
    present = {e["family"] for e in result["tasks"].values()}
    return [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))


def result_tasks(result: dict, family: str) -> list[str]:
    """Tasks of one family in a tasks.json result, in the default task files' order first."""
    mine = [t for t, e in result["tasks"].items() if e["family"] == family]
    known = [t for t in FAMILIES.get(family, ()) if t in mine]
    return known + sorted(set(mine) - set(known))


def task_families(data_cfg) -> dict[str, tuple[str, ...]]:
    """family -> task names of the task files the extraction used (data.tasks_dir, default configs/tasks)."""
    return task_defs.families(task_defs.load_tasks(data_cfg))


def last_hour_expr() -> pl.Expr:
    """Of label rows (task, hour): the last hour of data the row may use (hours since ICU intime),
    ``hour - 1`` for per-stay tasks, ``hour`` for EEP tasks. ``last_hour + 1`` is the end of the
    input, the MEDS ``prediction_time``."""
    return pl.when(pl.col("task").str.starts_with("eep_")).then(pl.col("hour")).otherwise(pl.col("hour") - 1)


def read_table(data_dir: Path, name: str, columns: tuple[str, ...]) -> pl.DataFrame:
    """A data-dir parquet with its required columns, or a clear error naming the fix."""
    path = Path(data_dir) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `clin-jepa extract` to build the data directory")
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - corrupt parquet raises several kinds
        raise ValueError(f"{path} is not a readable parquet file ({e}); rerun `clin-jepa extract`") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; rerun `clin-jepa extract` with the current schema")
    return df


def task_rows(labels: pl.DataFrame, stay_ids: np.ndarray, lengths: np.ndarray, split: np.ndarray,
              max_eep_hours: int, extra: tuple[str, ...] = (),
              families: dict[str, tuple[str, ...]] | None = None) -> tuple[pl.DataFrame, dict]:
    """labels (stay_id, task, hour, label) -> rows with ``row`` (stay index), ``last_hour``, ``split``.

    ``extra``: names of added per-stay tasks (ACES) allowed besides the task files' (``families``).
    Returns the rows and the number dropped per task (no data at ``last_hour``).
    """
    known = {t for names in (families or FAMILIES).values() for t in names} | set(extra)
    unknown = sorted(set(labels["task"].unique().to_list()) - known)
    if unknown:
        raise ValueError(f"labels.parquet has unknown tasks {unknown} (no task file); extract with the same "
                         f"data.tasks_dir as this run (docs/labels.md)")
    bad = labels.filter(~pl.col("label").is_in([0, 1]) | pl.col("label").is_null())
    if bad.height:
        raise ValueError(f"labels.parquet has {bad.height} labels that are not 0/1; rerun `clin-jepa extract`")
    stays = pl.DataFrame({"stay_id": stay_ids.astype(np.int64), "row": np.arange(len(stay_ids)),
                          "length": lengths.astype(np.int64), "split": split})
    df = (labels.select(pl.col("stay_id").cast(pl.Int64), "task", pl.col("hour").cast(pl.Int64),
                        pl.col("label").cast(pl.Int8))
          .join(stays, on="stay_id", how="inner")
          .with_columns(last_hour_expr().alias("last_hour"))
          .sort("task", "stay_id", "hour"))
    eep = pl.col("task").str.starts_with("eep_")
    df = df.filter(~eep | (pl.int_range(pl.len()).over("task", "stay_id") < max_eep_hours))
    ok = (pl.col("last_hour") >= 0) & (pl.col("last_hour") < pl.col("length"))
    dropped = dict(df.filter(~ok).group_by("task").len().iter_rows())
    return df.filter(ok).drop("length"), {k: int(v) for k, v in dropped.items()}


def check_task(rows: pl.DataFrame, min_positives: int) -> str:
    """'ok' or the reason a task cannot be evaluated, e.g. 'insufficient positives (n=3 in val)'."""
    for s in ("train", "val", "test"):
        y = rows.filter(pl.col("split") == s)["label"].to_numpy()
        pos, neg = int((y == 1).sum()), int((y == 0).sum())
        if pos < min_positives:
            return f"insufficient positives (n={pos} in {s})"
        if neg == 0:
            return f"no negatives in {s} (n={len(y)})"
    return "ok"


# ---------------------------------------------------------------------- #
# hourly inputs
# ---------------------------------------------------------------------- #


def hourly_array(hourly: pl.DataFrame, stay_ids: np.ndarray, T: int) -> np.ndarray:
    """hourly.parquet -> (N, T, F) float64 with NaN where not observed (F = HOURLY_FEATURES)."""
    missing = [c for c in ("stay_id", "hour", *HOURLY_FEATURES) if c not in hourly.columns]
    if missing:
        raise ValueError(f"hourly.parquet lacks columns {missing}; rerun `clin-jepa extract`")
    h = hourly.select(pl.col("stay_id").cast(pl.Int64), pl.col("hour").cast(pl.Int64),
                      *[pl.col(c).cast(pl.Float64) for c in HOURLY_FEATURES])
    h = h.filter((pl.col("hour") >= 0) & (pl.col("hour") < T) & pl.col("stay_id").is_in(stay_ids.tolist()))
    order = np.argsort(stay_ids)
    pos = np.searchsorted(stay_ids[order], h["stay_id"].to_numpy())
    row = order[pos]
    x = np.full((len(stay_ids), T, len(HOURLY_FEATURES)), np.nan)
    x[row, h["hour"].to_numpy()] = h.select(HOURLY_FEATURES).to_numpy().astype(np.float64)
    return x


def fit_standardizer(x: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and sd over observed train values of x (N, T, F)."""
    xt = x[train].reshape(-1, x.shape[-1])  # (N_train*T, F)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, sd = np.nanmean(xt, axis=0), np.nanstd(xt, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    sd = np.where(np.isfinite(sd) & (sd > 1e-8), sd, 1.0)
    return mean, sd


def forward_fill(x: np.ndarray) -> np.ndarray:
    """Forward fill NaNs along time (axis 1) of (N, T, F)."""
    N, T, F = x.shape
    idx = np.where(np.isfinite(x), np.arange(T)[None, :, None], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out = np.take_along_axis(x, idx, axis=1)
    return out


def sequence_inputs(xs: np.ndarray) -> np.ndarray:
    """Standardised (N, T, F) with NaN -> (N, T, 2F) float32: forward-filled values (0 before the
    first observation) and observed-this-hour indicators."""
    observed = np.isfinite(xs)
    filled = np.nan_to_num(forward_fill(xs), nan=0.0)
    return np.concatenate([filled, observed], axis=-1).astype(np.float32)


def summary_features(xs: np.ndarray, rows: np.ndarray, last_hour: np.ndarray, static: np.ndarray) -> np.ndarray:
    """Standardised (N, T, F) -> (R, 5F + S) summaries over hours 0..last_hour of each row's stay."""
    obs = np.isfinite(xs)
    count = np.cumsum(obs, axis=1)  # (N, T, F)
    total = np.cumsum(np.where(obs, xs, 0.0), axis=1)
    mn = np.minimum.accumulate(np.where(obs, xs, np.inf), axis=1)
    mx = np.maximum.accumulate(np.where(obs, xs, -np.inf), axis=1)
    last = np.nan_to_num(forward_fill(xs), nan=0.0)
    c = count[rows, last_hour]  # (R, F)
    seen = c > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(seen, total[rows, last_hour] / np.maximum(c, 1), 0.0)
    parts = [last[rows, last_hour], mean, np.where(seen, mn[rows, last_hour], 0.0),
             np.where(seen, mx[rows, last_hour], 0.0), np.log1p(c), static[rows]]
    return np.concatenate(parts, axis=1).astype(np.float32)  # (R, 5F + S)


SEX_MALE = "male"  # the value sql/demographics/static.sql writes (female / male / NULL)


def static_features(static: pl.DataFrame, stay_ids: np.ndarray, train: np.ndarray) -> np.ndarray:
    """(N, 3): standardised age and weight (0 when missing), sex (1 = male)."""
    s = static.select(pl.col("stay_id").cast(pl.Int64), pl.col("age").cast(pl.Float64),
                      pl.col("weight_kg").cast(pl.Float64), (pl.col("sex") == SEX_MALE).cast(pl.Float64).alias("male"))
    s = pl.DataFrame({"stay_id": stay_ids.astype(np.int64)}).join(s, on="stay_id", how="left",
                                                                  maintain_order="left")
    x = s.select("age", "weight_kg", "male").to_numpy().astype(np.float64)  # (N, 3)
    x[:, 2] = np.nan_to_num(x[:, 2], nan=0.5)
    for j in (0, 1):
        col = x[train, j]
        col = col[np.isfinite(col)]
        m, sd = (col.mean(), col.std() or 1.0) if len(col) else (0.0, 1.0)
        x[:, j] = np.nan_to_num((x[:, j] - m) / sd, nan=0.0)
    return x.astype(np.float32)


# ---------------------------------------------------------------------- #
# multi-task evaluation
# ---------------------------------------------------------------------- #


def _roc_points(y: np.ndarray, p: np.ndarray, n: int = 101) -> dict:
    """ROC curve resampled at n false-positive rates (aggregate, for plots)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    grid = np.linspace(0, 1, n)
    return {"fpr": grid.round(4).tolist(), "tpr": np.interp(grid, fpr, tpr).round(4).tolist()}


def evaluate_tasks(rows: pl.DataFrame, methods: dict, cfg, dropped: dict | None = None,
                   extra: tuple[str, ...] = (), families: dict[str, tuple[str, ...]] | None = None,
                   test_scores: dict | None = None) -> dict:
    """Fit and score every method on every task (built-in, then ``extra``: added tasks, their own
    family); metrics with stay-clustered bootstrap CIs.

    methods: name -> fn(task_rows_index (R,), y (R,), train_idx, val_idx, test_idx, seed) -> test probs
    (or (test probs, {"kind", "val_loss"}) for probes that select a model on validation; stored as
    ``selected``), where the index points into ``rows`` (so each method gathers its own inputs).
    ``test_scores``: when a dict, filled with task -> {"y", "groups" (stay ids), method: test probs}
    (first eval seed) for paired comparisons between runs (evaluation.compare).
    """
    from clin_jepa.evaluation.metrics import auroc, bootstrap_metrics, event_recall_at_precision

    from clin_jepa.utils import progress

    rows = rows.with_row_index("ridx")
    out: dict = {"tasks": {}, "families": {}, "methods": list(methods), "seeds": list(cfg.seeds),
                 "bootstrap": int(cfg.bootstrap), "recall_precision": float(cfg.recall_precision)}
    scores: dict = {}
    families = (families or FAMILIES) | ({EXTRA_FAMILY: tuple(extra)} if extra else {})
    family_of = {t: fam for fam, names in families.items() for t in names}
    for task in progress(list(family_of), desc="tasks", unit="task"):
        tr = rows.filter(pl.col("task") == task)
        entry: dict = {"family": family_of[task], "dropped_rows": int((dropped or {}).get(task, 0)),
                       "n": {s: int((tr["split"] == s).sum()) for s in ("train", "val", "test")},
                       "positives": {s: int(tr.filter(pl.col("split") == s)["label"].sum())
                                     for s in ("train", "val", "test")}}
        entry["status"] = "no label rows" if tr.height == 0 else check_task(tr, cfg.min_positives)
        out["tasks"][task] = entry
        if entry["status"] != "ok":
            continue
        ridx = tr["ridx"].to_numpy()
        y = tr["label"].to_numpy().astype(np.int64)
        split = tr["split"].to_numpy()
        tri, vai, tei = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
        groups = tr["stay_id"].to_numpy()[tei]
        entry["methods"], entry["roc"], scores[task] = {}, {}, {}
        for name, fn in methods.items():
            t0 = time.perf_counter()
            per_seed = [fn(ridx, y, tri, vai, tei, seed) for seed in cfg.seeds]
            fit_s = time.perf_counter() - t0
            if per_seed[0] is None:  # method not applicable to this task (e.g. rollout probe on EEP)
                continue
            selected = [p[1] for p in per_seed if isinstance(p, tuple)]  # probes: (probs, selection info)
            per_seed = [p[0] if isinstance(p, tuple) else p for p in per_seed]
            per_seed = [np.asarray(p, dtype=np.float64) for p in per_seed]
            m = bootstrap_metrics(y[tei], per_seed[0], groups, cfg.bootstrap, seed=0,
                                  precision=cfg.recall_precision)
            aurocs = [m["auroc"]["value"], *[auroc(y[tei], p) for p in per_seed[1:]]]
            m["auroc_seeds"] = {"mean": float(np.mean(aurocs)), "sd": float(np.std(aurocs)), "n": len(aurocs),
                                "values": [float(v) for v in aurocs]}  # per eval seed, in cfg.seeds order
            if entry["family"] == "eep":
                m["event_recall"] = event_recall_at_precision(y[tei], per_seed[0], groups, cfg.recall_precision)
            m["fit_seconds"] = round(fit_s, 2)
            if selected:  # chosen on validation loss only, per seed
                m["selected"] = {"kind": selected[0]["kind"], "val_loss": selected[0]["val_loss"],
                                 "kind_per_seed": [s["kind"] for s in selected]}
            entry["methods"][name] = m
            log.info("%s %s: AUROC %.3f (fit %.1f s)", task, name, m["auroc"]["value"], fit_s)
            entry["roc"][name] = _roc_points(y[tei], per_seed[0])
            scores[task][name] = per_seed[0]
        entry["_y"], entry["_groups"] = y[tei], groups
    _families(out, scores, cfg, families)
    if test_scores is not None:
        test_scores |= {t: {"y": e["_y"], "groups": e["_groups"], **scores[t]}
                        for t, e in out["tasks"].items() if "_y" in e}
    for entry in out["tasks"].values():
        entry.pop("_y", None), entry.pop("_groups", None)
    return out


def _families(out: dict, scores: dict, cfg, families: dict[str, tuple[str, ...]]) -> None:
    """Family means per method, the best baseline per family and paired tests against it."""
    from clin_jepa.evaluation.metrics import paired_bootstrap_test

    model_methods = [m for m in out["methods"] if m.startswith("probe")]
    baselines = [m for m in out["methods"] if not m.startswith("probe")]
    for fam, names in families.items():
        ok = [t for t in names if out["tasks"][t]["status"] == "ok"]
        means = {}
        for m in out["methods"]:
            have = [out["tasks"][t]["methods"][m] for t in ok if m in out["tasks"][t]["methods"]]
            means[m] = {
                "mean_auroc": float(np.mean([h["auroc"]["value"] for h in have])) if have else None,
                "mean_auprc": float(np.mean([h["auprc"]["value"] for h in have])) if have else None,
                "n_tasks": len(have),
            }
        ranked = [b for b in baselines if means[b]["mean_auroc"] is not None]
        best = max(ranked, key=lambda b: means[b]["mean_auroc"]) if ranked else None
        out["families"][fam] = {"means": means, "best_baseline": best, "n_tasks_ok": len(ok),
                                "n_tasks": len(names)}
        if best is None:
            continue
        for t in ok:
            e = out["tasks"][t]
            e["vs_best_baseline"] = {
                m: paired_bootstrap_test(e["_y"], scores[t][m], scores[t][best], e["_groups"], cfg.bootstrap)
                | {"baseline": best} for m in model_methods if m in scores[t]}
