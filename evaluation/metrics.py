"""Binary-classification metrics with bootstrap confidence intervals clustered by stay.

Everything is computed from one sort of the scores: per-stay cumulative positive and
negative counts at each distinct threshold, (G, K). A bootstrap replicate draws stays
with replacement (counts c, (G,)), so its TP/FP curves are c @ counts: the 500-replicate
bootstrap is two matrix products.

- AUROC: trapezoidal area under the ROC curve (ties handled as scikit-learn does).
- AUPRC: average precision, sum over thresholds of (R_k - R_{k-1}) * P_k (as
  ``sklearn.metrics.average_precision_score``).
- recall at precision p: the largest time-point recall whose precision is >= p.
- event recall at precision p (EEP): threshold = the lowest one whose time-point
  precision is >= p; recall = fraction of stays with a positive row in which at least one
  positive row scores at or above it (HiRID-ICU-Benchmark style).
"""

from __future__ import annotations

import numpy as np

MAX_BOOT_THRESHOLDS = 1000  # rank bins of the replicate curves (point estimates are exact)



def _check(y, score, groups=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    y = np.asarray(y)
    score = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or y.shape != score.shape:
        raise ValueError(f"labels {y.shape} and scores {score.shape} must be 1-D of equal length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1; map the task's labels to integers first")
    if not np.isfinite(score).all():
        raise ValueError("scores contain NaN/inf; check the model's predictions")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != y.shape:
            raise ValueError(f"groups {groups.shape} must match labels {y.shape}")
    return y.astype(np.float64), score, groups


def _stay_curves(y: np.ndarray, score: np.ndarray, groups: np.ndarray,
                 max_thresholds: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-stay cumulative positive / negative counts at each distinct threshold, descending:
    (G, K) each. A replicate with stay counts c (B, G) has TP = c @ pos, FP = c @ neg.
    ``max_thresholds`` > 0 merges the sorted rows into at most that many equal-size rank
    bins (bootstrap replicates only: bounds the (B, K) work, pairs inside a bin count as ties)."""
    order = np.argsort(-score, kind="mergesort")
    s, ys = score[order], y[order]
    tie = np.r_[0, np.cumsum(np.diff(s) != 0)]  # (n,) threshold index of each sorted row
    if max_thresholds and tie[-1] + 1 > max_thresholds:
        tie = np.maximum(tie * max_thresholds // (tie[-1] + 1), 0)  # (n,) rank bin, still monotone
    _, inv = np.unique(groups, return_inverse=True)
    G, K = int(inv.max()) + 1, int(tie[-1]) + 1
    pos, neg = np.zeros((G, K)), np.zeros((G, K))
    np.add.at(pos, (inv[order], tie), ys)
    np.add.at(neg, (inv[order], tie), 1.0 - ys)
    return np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)  # (G, K)


def _curves(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative TP, FP (1, K) at each distinct threshold (descending), unweighted."""
    return _stay_curves(y, score, np.zeros(len(y), dtype=np.int64))


def _from_curves(tp: np.ndarray, fp: np.ndarray, precision: float) -> dict[str, np.ndarray]:
    """(B, K) cumulative counts -> AUROC, AUPRC, recall at precision (B,), NaN without both classes."""
    P, N = tp[:, -1:], fp[:, -1:]  # (B, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr, fpr = tp / P, fp / N  # (B, K)
        dtpr = np.diff(tpr, axis=1, prepend=0.0)  # (B, K)
        dfpr = np.diff(fpr, axis=1, prepend=0.0)
        auroc = np.sum(dfpr * (tpr - dtpr / 2.0), axis=1)  # trapezoids
        prec = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 1.0)
        auprc = np.sum(dtpr * prec, axis=1)
        rec = np.where(prec >= precision, tpr, 0.0).max(axis=1)
    bad = (P[:, 0] <= 0) | (N[:, 0] <= 0)
    for a in (auroc, auprc, rec):
        a[bad] = np.nan
    return {"auroc": auroc, "auprc": auprc, "recall_at_precision": rec}


def auroc(y, score) -> float:
    y, score, _ = _check(y, score)
    return float(_from_curves(*_curves(y, score), 0.5)["auroc"][0])


def auprc(y, score) -> float:
    y, score, _ = _check(y, score)
    return float(_from_curves(*_curves(y, score), 0.5)["auprc"][0])


def recall_at_precision(y, score, precision: float = 0.5) -> float:
    y, score, _ = _check(y, score)
    return float(_from_curves(*_curves(y, score), precision)["recall_at_precision"][0])


def event_recall_at_precision(y, score, groups, precision: float = 0.5) -> float:
    """Fraction of stays with an event whose positive rows raise an alarm at the threshold
    where time-point precision first reaches ``precision`` (NaN when it never does)."""
    y, score, groups = _check(y, score, groups)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    s, ys = score[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = np.cumsum(ys)[ends], np.cumsum(1 - ys)[ends]
    ok = np.flatnonzero(tp / (tp + fp) >= precision)
    if len(ok) == 0:
        return 0.0
    thr = s[ends[ok[-1]]]  # lowest threshold meeting the precision
    pos = y == 1
    event_stays = np.unique(groups[pos])
    alarmed = np.unique(groups[pos & (score >= thr)])
    return float(len(alarmed) / len(event_stays))


def _stay_counts(groups: np.ndarray, n_boot: int, rng: np.random.Generator):
    """Yield (b, G) draw counts: G stays drawn with replacement per replicate (sorted stay order)."""
    G = len(np.unique(groups))
    chunk = max(1, 2_000_000 // max(G, 1))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        yield rng.multinomial(G, np.full(G, 1.0 / G), size=b).astype(np.float64)  # (b, G)
        done += b


def _ci(values: np.ndarray, alpha: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(np.quantile(v, alpha / 2)), float(np.quantile(v, 1 - alpha / 2))


def bootstrap_metrics(y, score, groups, n_boot: int = 500, seed: int = 0, precision: float = 0.5,
                      alpha: float = 0.05) -> dict[str, dict[str, float]]:
    """Point estimate and percentile CI of AUROC, AUPRC and recall at precision.

    Returns ``{metric: {"value", "lo", "hi"}}`` plus ``prevalence`` and ``n``.
    """
    y, score, groups = _check(y, score, groups)
    if groups is None:
        groups = np.arange(len(y))
    point = _from_curves(*_curves(y, score), precision)  # exact
    pos, neg = _stay_curves(y, score, groups, MAX_BOOT_THRESHOLDS)  # (G, K)
    rng = np.random.default_rng(seed)
    reps = {k: [] for k in point}
    for c in _stay_counts(groups, n_boot, rng):
        out = _from_curves(c @ pos, c @ neg, precision)  # (b, K) replicate curves
        for k in reps:
            reps[k].append(out[k])
    result: dict = {}
    for k, v in point.items():
        lo, hi = _ci(np.concatenate(reps[k]), alpha)
        result[k] = {"value": float(v[0]), "lo": lo, "hi": hi}
    result["prevalence"] = float(y.mean()) if len(y) else float("nan")
    result["n"] = int(len(y))
    result["n_stays"] = int(len(np.unique(groups)))
    return result


def paired_bootstrap_test(y, score_a, score_b, groups, n_boot: int = 500, seed: int = 0,
                          metric: str = "auroc", alpha: float = 0.05) -> dict[str, float]:
    """Paired, stay-clustered bootstrap of metric(a) - metric(b) on the same rows.

    Returns delta, its CI and a two-sided p-value (2 x the smaller tail around 0).
    """
    y, score_a, groups = _check(y, score_a, groups)
    _, score_b, _ = _check(y, score_b)
    if groups is None:
        groups = np.arange(len(y))
    delta = _from_curves(*_curves(y, score_a), 0.5)[metric][0] - _from_curves(*_curves(y, score_b), 0.5)[metric][0]
    pa, na = _stay_curves(y, score_a, groups, MAX_BOOT_THRESHOLDS)  # (G, Ka)
    pb, nb = _stay_curves(y, score_b, groups, MAX_BOOT_THRESHOLDS)  # (G, Kb)
    rng = np.random.default_rng(seed)
    diffs = []
    for c in _stay_counts(groups, n_boot, rng):  # the same stays for both models
        diffs.append(_from_curves(c @ pa, c @ na, 0.5)[metric] - _from_curves(c @ pb, c @ nb, 0.5)[metric])
    d = np.concatenate(diffs)
    d = d[np.isfinite(d)]
    lo, hi = _ci(d, alpha)
    p = float(min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean()))) if len(d) else float("nan")
    # n_boot: the replicates behind p; p = 0 only says p < 1 / n_boot (the report prints it so)
    return {"delta": float(delta), "lo": lo, "hi": hi, "p_value": p, "metric": metric, "n_boot": int(len(d))}


def bootstrap_ratio_of_medians(a, b, n_boot: int = 500, seed: int = 0, alpha: float = 0.05) -> dict[str, float]:
    """median(a) / median(b) with a percentile CI (each group resampled on its own)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return {"value": float("nan"), "lo": float("nan"), "hi": float("nan")}
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.median(a) / np.median(b)
        ra = np.median(a[rng.integers(0, len(a), (n_boot, len(a)))], axis=1)  # (B,)
        rb = np.median(b[rng.integers(0, len(b), (n_boot, len(b)))], axis=1)  # (B,)
        lo, hi = _ci(ra / rb, alpha)
    return {"value": float(value), "lo": lo, "hi": hi}


def bootstrap_ratio_curve(err, n_boot: int = 500, seed: int = 0, alpha: float = 0.05) -> dict[str, list]:
    """Percentile CI of the curve mean(err[:, h]) / mean(err[:, 0]) with rows (stays) resampled.

    err (N, H) per-stay errors; returns ``{"lo": (H,), "hi": (H,)}`` (NaN where undefined).
    """
    err = np.asarray(err, dtype=np.float64)
    lo, hi = np.full(err.shape[1], np.nan), np.full(err.shape[1], np.nan)
    if len(err) == 0:
        return {"lo": lo.tolist(), "hi": hi.tolist()}
    rng = np.random.default_rng(seed)
    curves = []
    for c in _stay_counts(np.arange(len(err)), n_boot, rng):  # (b, N) draw counts
        sums = c @ err  # (b, H)
        with np.errstate(divide="ignore", invalid="ignore"):
            curves.append(sums / sums[:, :1])
    cur = np.concatenate(curves)  # (B, H)
    for h in range(err.shape[1]):
        lo[h], hi[h] = _ci(cur[:, h], alpha)
    return {"lo": lo.tolist(), "hi": hi.tolist()}
