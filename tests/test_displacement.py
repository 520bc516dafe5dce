"""Cohort displacement on constructed latents and cohort definitions on constructed events."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from clin_jepa.evaluation import displacement as disp


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


def _hourly_sofa(series: dict[int, dict[int, int]], hours: int = 31) -> pl.DataFrame:
    """Hand-built hourly SOFA: stay -> {hour: sofa} breakpoints, each value held until the next."""
    rows = []
    for stay, points in series.items():
        value = None
        for h in range(hours):
            value = points.get(h, value)
            rows.append({"stay_id": stay, "hour": h, "sofa": value})
    return pl.DataFrame(rows, schema={"stay_id": pl.Int64, "hour": pl.Int64, "sofa": pl.Int64})


def test_cohort_definitions():
    stays = np.arange(1, 12)
    events = pl.DataFrame({
        "stay_id": [1, 2, 3, 4, 8],
        "event": ["death", "vasopressor", "vasopressor", "death", "ventilation"],
        "onset_hour": [10.0, 3.0, 12.0, 500.0, 30.0],
    })
    cohort = pl.DataFrame({"stay_id": stays, "los_hours": [12.0, 50, 50, 100, 50, 50, 50, 50, 50, 50, 50]})
    hourly = _hourly_sofa({
        5: {0: 0, 2: 5},           # admission labs arrive at hour 2: 0 -> 5 is not a rise (old rule: +5)
        6: {0: 3, 15: 6},          # +3 after the admission period
        7: {0: 3, 15: 4},          # +1
        9: {0: 2, 30: 9},          # the rise comes after the window
        10: {0: 1, 7: 3},          # +2 at the first hour after the admission period
        11: {0: 0, 6: 5, 7: 3},    # peak inside the admission period, lower later
    })
    g = disp.cohorts(stays, events, hourly, cohort, window=24, baseline_hours=6)
    # 1 ICU death in window; 2 vasopressor started in the admission period (not new, not stable);
    # 3 new vasopressor at hour 12; 4 died after discharge (not stable); 8 ventilation after the window
    assert g.tolist() == ["deteriorating", "other", "deteriorating", "other", "stable", "deteriorating",
                          "stable", "stable", "stable", "deteriorating", "stable"]
    rise = disp.sofa_rise(hourly, window=24, baseline_hours=6)
    assert dict(zip(rise["stay_id"].to_list(), rise["rise"].to_list())) == {
        5: 0.0, 6: 3.0, 7: 1.0, 9: 0.0, 10: 2.0, 11: -2.0}
    # with no admission period (B = 0) stay 5 would count as deteriorating: the artefact this rule avoids
    g0 = disp.cohorts(stays, events, hourly, cohort, window=24, baseline_hours=0)
    assert g0[4] == "deteriorating"


def test_stays_without_sofa_and_bad_baseline():
    stays = np.array([1, 2])
    events = pl.DataFrame(schema={"stay_id": pl.Int64, "event": pl.Utf8, "onset_hour": pl.Float64})
    cohort = pl.DataFrame({"stay_id": stays, "los_hours": [40.0, 40.0]})
    hourly = pl.DataFrame({"stay_id": [1, 1], "hour": [0, 10], "sofa": [None, None]},
                          schema={"stay_id": pl.Int64, "hour": pl.Int64, "sofa": pl.Int64})
    assert disp.cohorts(stays, events, hourly, cohort, window=24).tolist() == ["stable", "stable"]
    with pytest.raises(ValueError, match="displacement_baseline_hours"):
        disp.cohorts(stays, events, hourly, cohort, window=24, baseline_hours=24)
    from clin_jepa.config import EvalConfig

    with pytest.raises(ValueError, match="displacement_baseline_hours"):
        EvalConfig(displacement_baseline_hours=30).validate()


def test_perfect_per_hour_encoder_reads_the_hour_values_and_charted_flags():
    """The data's reference space: each hour's standardised values (0 when not charted, never
    carried forward) and a charted flag per item; streamed like the latents."""
    nan = np.nan
    xs = np.array([[[1.0, nan], [nan, nan], [2.0, -1.0]],
                   [[nan, 0.5], [3.0, nan], [nan, nan]]], dtype=np.float32)  # (N=2, T=3, F=2)
    ref = disp.PerHourState(xs)
    assert ref.shape == (2, 3, 4) and len(ref) == 2
    np.testing.assert_array_equal(ref[[0]][0], [[1, 0, 1, 0], [0, 0, 0, 0], [2, -1, 1, 1]])
    np.testing.assert_array_equal(ref[np.array([1])][0], [[0, 0.5, 0, 1], [3, 0, 1, 0], [0, 0, 0, 0]])
    groups = np.array([disp.DETERIORATING, disp.STABLE])
    out = disp.evaluate_displacement({"perfect_encoder": ref}, np.array([3, 3]), groups, window=2, min_hours=2, n_boot=20,
                                     stay_chunk=1)
    e = out["spaces"]["perfect_encoder"]["endpoint"]
    # stay 0: ||[2,-1,1,1] - [1,0,1,0]|| = sqrt(3); stay 1: ||0 - [0,.5,0,1]|| = sqrt(1.25)
    assert e["median_deteriorating"] == pytest.approx(np.sqrt(3.0))
    assert e["median_stable"] == pytest.approx(np.sqrt(1.25))
    assert e["ratio"]["value"] == pytest.approx(np.sqrt(3.0 / 1.25))
