"""Metrics agree with scikit-learn; stay-clustered bootstrap CIs cover the truth."""

from __future__ import annotations

import numpy as np
import pytest
from clin_jepa.evaluation import metrics
from scipy.stats import norm
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_auprc_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 400)
    score = np.round(y * 0.7 + rng.normal(size=400), 1)  # rounding creates ties
    assert metrics.auroc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert metrics.auprc(y, score) == pytest.approx(average_precision_score(y, score), abs=1e-12)


def test_recall_at_precision_matches_pr_curve():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    score = y + rng.normal(scale=1.2, size=500)
    prec, rec, _ = precision_recall_curve(y, score)
    assert metrics.recall_at_precision(y, score, 0.5) == pytest.approx(rec[prec >= 0.5].max())


def test_event_recall_counts_stays_not_rows():
    # stay 1: two positive rows, one scored high; stay 2: positive rows all scored low
    y = np.array([1, 1, 0, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.1, 0.2, 0.001, 0.002, 0.5, 0.45, 0.3, 0.01])
    g = np.array([1, 1, 1, 2, 2, 3, 3, 3, 3])
    # precision by threshold: 0.9 -> 1, 0.5 -> 1/2, then below 1/2: the threshold is 0.5,
    # only stay 1 has a positive row at or above it -> 1 of 2 event stays
    assert metrics.event_recall_at_precision(y, s, g, 0.5) == pytest.approx(0.5)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="0/1"):
        metrics.auroc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        metrics.auroc([0, 1], [0.1, np.nan])
    assert np.isnan(metrics.auroc([1, 1, 1], [0.1, 0.2, 0.3]))  # no negatives: undefined, not 0


def test_bootstrap_ci_coverage_clustered():
    """200 simulated data sets with a known AUROC and correlated rows within stays:
    the 95 % stay-clustered CI covers the truth at about the nominal rate."""
    delta = 1.0
    truth = norm.cdf(delta / np.sqrt(2))  # binormal AUROC, equal variances
    hits, reps = 0, 200
    for r in range(reps):
        rng = np.random.default_rng(1000 + r)
        stays = 120
        y_stay = rng.integers(0, 2, stays)
        rows = rng.integers(1, 5, stays)
        g = np.repeat(np.arange(stays), rows)
        y = y_stay[g]
        score = y * delta + rng.normal(size=len(y))
        out = metrics.bootstrap_metrics(y, score, g, n_boot=200, seed=r)
        hits += out["auroc"]["lo"] <= truth <= out["auroc"]["hi"]
    assert 0.88 <= hits / reps <= 0.99


def test_paired_test_detects_a_better_model_and_not_a_copy():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(300), 2)
    y = rng.integers(0, 2, 300)[g]
    good = y * 1.5 + rng.normal(size=len(y))
    weak = y * 0.3 + rng.normal(size=len(y))
    res = metrics.paired_bootstrap_test(y, good, weak, g, n_boot=300)
    assert res["delta"] > 0 and res["lo"] > 0 and res["p_value"] < 0.01
    same = metrics.paired_bootstrap_test(y, good, good + 1e-12, g, n_boot=100)
    assert same["delta"] == pytest.approx(0.0) and same["p_value"] == 1.0


def test_ratio_of_medians_ci_contains_value():
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(np.log(4.0), 0.3, 200), rng.lognormal(0.0, 0.3, 200)
    r = metrics.bootstrap_ratio_of_medians(a, b, n_boot=300)
    assert r["lo"] < r["value"] < r["hi"] and 3.0 < r["value"] < 5.3


def test_binned_replicate_curves_match_exact_ci(monkeypatch):
    """Above MAX_BOOT_THRESHOLDS distinct scores the replicate curves use rank bins; the CI
    must match the exact one closely and the point estimate must stay exact."""
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(150), 20)
    y = (rng.random(len(g)) < 0.2).astype(int)
    s = y * 0.7 + rng.normal(size=len(g))
    binned = metrics.bootstrap_metrics(y, s, g, n_boot=200, seed=1)
    monkeypatch.setattr(metrics, "MAX_BOOT_THRESHOLDS", 0)
    exact = metrics.bootstrap_metrics(y, s, g, n_boot=200, seed=1)
    assert binned["auroc"]["value"] == exact["auroc"]["value"] == pytest.approx(roc_auc_score(y, s))
    for m in ("auroc", "auprc"):
        assert binned[m]["lo"] == pytest.approx(exact[m]["lo"], abs=0.005)
        assert binned[m]["hi"] == pytest.approx(exact[m]["hi"], abs=0.005)
