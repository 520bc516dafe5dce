"""Cohort displacement on constructed latents and cohort definitions on constructed events."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from evaluation import displacement as disp


def _trajectories(speeds, T=30, D=8, seed=0):
    """Straight lines from a random start in a random direction, |step| = speed per hour."""
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(len(speeds), 1, D))
    direction = rng.normal(size=(len(speeds), 1, D))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    t = np.arange(T)[None, :, None]
    return start + np.asarray(speeds)[:, None, None] * t * direction  # (N, T, D)


def test_known_ratio_endpoint_and_path():
    speeds = np.r_[np.full(40, 3.0), np.full(60, 1.0)]
    groups = np.array([disp.DETERIORATING] * 40 + [disp.STABLE] * 60)
    x = _trajectories(speeds)
    lengths = np.full(100, 30)
    out = disp.evaluate_displacement({"latent": x}, lengths, groups, window=24, min_hours=6, n_boot=200)
    lat = out["spaces"]["latent"]
    assert lat["endpoint"]["median_stable"] == pytest.approx(24.0)
    assert lat["endpoint"]["ratio"]["value"] == pytest.approx(3.0)
    assert lat["path"]["ratio"]["value"] == pytest.approx(3.0)
    assert out["n_by_cohort"] == {"deteriorating": 40, "stable": 60, "other": 0}


def test_window_end_uses_last_hour_and_path_exceeds_endpoint_for_a_detour():
    x = np.zeros((1, 6, 2))
    x[0, 1:4, 0] = [1, 2, 3]  # go out to 3 and come back
    x[0, 4, 0], x[0, 5, 0] = 1, 0
    endpoint, path = disp.displacement(x, np.array([4]))
    assert endpoint[0] == pytest.approx(1.0) and path[0] == pytest.approx(5.0)
    assert disp.window_end(np.array([10, 40]), 24).tolist() == [9, 24]


def test_short_stays_are_not_eligible_and_empty_cohort_is_reported():
    x = _trajectories(np.ones(4))
    out = disp.evaluate_displacement({"raw": x}, np.array([30, 30, 3, 30]),
                                     np.array([disp.STABLE] * 4), window=24, min_hours=6, n_boot=50)
    assert out["n_eligible"] == 3
    assert out["spaces"]["raw"]["endpoint"]["ratio"] is None
    assert "empty" in out["spaces"]["raw"]["endpoint"]["status"]


def test_cohort_definitions():
    stays = np.array([1, 2, 3, 4, 5, 6, 7])
    events = pl.DataFrame({
        "stay_id": [1, 2, 3, 4, 6],
        "event": ["death", "vasopressor", "vasopressor", "death", "ventilation"],
        "onset_hour": [10.0, 5.0, 0.0, 500.0, 30.0],
    })
    cohort = pl.DataFrame({"stay_id": stays, "los_hours": [12.0, 50, 50, 100, 50, 50, 50]})
    sofa = {5: [2, 3, 5], 7: [2, 3, 3]}  # stay 5: +3 -> deteriorating; stay 7: +1
    hourly = pl.DataFrame([{"stay_id": s, "hour": h, "sofa": v} for s, vs in sofa.items()
                           for h, v in enumerate(vs)])
    g = disp.cohorts(stays, events, hourly, cohort, window=24)
    # 1 ICU death in window; 2 new vasopressor; 3 vasopressor from hour 0 (not new, not stable);
    # 4 died after discharge (not stable); 5 SOFA rise 3; 6 ventilation after the window -> stable
    assert g.tolist() == ["deteriorating", "deteriorating", "other", "other", "deteriorating",
                          "stable", "stable"]
