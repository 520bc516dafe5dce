"""Rollout drift on hand-built latent trajectories."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from clin_jepa.evaluation import drift


class _Oracle(torch.nn.Module):
    """A 'predictor' that returns the true future latents (perfect rollout)."""

    def __init__(self, truth: np.ndarray):
        super().__init__()
        self.truth = torch.from_numpy(truth)  # (N, T, D)

    def rollout(self, d, s_ctx, a, horizon):
        C = s_ctx.shape[1]
        rows = [int(np.flatnonzero((self.truth[:, :C] == s_ctx[i]).all(dim=(1, 2)))[0]) for i in range(len(d))]
        return self.truth[rows, C: C + horizon]


def _linear_corpus(N=5, T=30, D=4, slope=0.5):
    """Ids 0..N*T-1 are state latents z_t = a + slope*t (per stay offset a); the rest are
    demo/action latents."""
    t = np.arange(T, dtype=np.float32)
    offsets = np.arange(N, dtype=np.float32)[:, None, None]
    z = offsets + slope * t[None, :, None] * np.ones((1, 1, D), dtype=np.float32)  # (N, T, D)
    latents = np.concatenate([z.reshape(N * T, D), np.zeros((2, D), np.float32)])
    state_ids = np.arange(N * T).reshape(N, T)
    action_ids = np.full((N, T), N * T + 1)
    demo_ids = np.full(N, N * T)
    return z, latents, demo_ids, state_ids, action_ids


def test_copy_forward_and_linear_on_a_linear_trajectory():
    z, latents, demo_ids, state_ids, action_ids = _linear_corpus(slope=0.5, D=4)
    lengths = np.full(len(z), z.shape[1])
    out = drift.rollout_drift(latents, demo_ids, state_ids, action_ids, lengths, None, contexts=(6,), horizon=10)
    c = out["contexts"]["6"]
    assert c["horizon"] == 10 and c["n_stays"] == 5
    cf = c["methods"]["copy_forward"]
    # copy-forward error at step h = slope * h * D
    np.testing.assert_allclose(cf["l1"], 0.5 * np.arange(1, 11) * 4, rtol=1e-6)
    np.testing.assert_allclose(cf["ratio"], np.arange(1, 11), rtol=1e-6)
    assert cf["drift_pct"] == pytest.approx(900.0)
    lin = c["methods"]["linear"]
    np.testing.assert_allclose(lin["l1"], 0.0, atol=1e-5)  # exact on a linear trajectory
    assert lin["drift_pct"] is None  # L1(1) = 0: the ratio is undefined, not a number


def test_perfect_predictor_has_zero_error_and_the_window_caps_the_horizon():
    z, latents, demo_ids, state_ids, action_ids = _linear_corpus(T=30)
    lengths = np.array([30, 30, 30, 20, 10])
    out = drift.rollout_drift(latents, demo_ids, state_ids, action_ids, lengths, _Oracle(z),
                              contexts=(6, 24, 30), horizon=48)
    c6, c24, c30 = (out["contexts"][k] for k in ("6", "24", "30"))
    assert c6["horizon"] == 24 and c6["n_stays"] == 3  # needs 30 hours: 3 stays
    np.testing.assert_allclose(c6["methods"]["model"]["l1"], 0.0, atol=0)
    assert c24["horizon"] == 6 and c24["n_stays"] == 3
    assert c30["n_stays"] == 0 and "no hour" in c30["status"]


def test_known_drift_for_a_noisy_model():
    """Predictions with error growing as 1 + 0.1 h give drift (L1(H)/L1(1) - 1) * 100."""
    err = np.stack([np.full((10, 3), 1 + 0.1 * h) for h in range(1, 13)], axis=1)  # (N, H, D)
    s = drift.summarize(drift.l1_per_step(np.zeros_like(err), err))
    assert s["drift_pct"] == pytest.approx(((1 + 1.2) / 1.1 - 1) * 100)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        drift.l1_per_step(np.zeros((2, 3, 4)), np.zeros((2, 4, 4)))


# ---------------------------------------------------------------------- #
# skill against the reference predictors (hour-mean, copy-forward)
# ---------------------------------------------------------------------- #


class _Constant(torch.nn.Module):
    """A 'predictor' that ignores the patient and returns fixed latents per hour (T, D)."""

    def __init__(self, per_hour: np.ndarray):
        super().__init__()
        self.per_hour = torch.from_numpy(per_hour)

    def rollout(self, d, s_ctx, a, horizon):
        C = s_ctx.shape[1]
        return self.per_hour[None, C: C + horizon].expand(len(d), -1, -1)


def test_hour_means_use_only_hours_with_data_and_carry_the_last_one_forward():
    latents = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 9.0]], dtype=np.float32)
    state_ids = np.array([[0, 1, 2], [1, 3, -1]])  # second stay: 2 hours of data
    m = drift.hour_means(latents, state_ids, np.array([3, 2]), stay_chunk=1)
    np.testing.assert_allclose(m, [[2.0, 1.0], [5.0, 5.5], [5.0, 4.0]])  # hour 2: the first stay only
    m = drift.hour_means(latents, state_ids, np.array([1, 1]))
    np.testing.assert_allclose(m, [[2.0, 1.0], [2.0, 1.0], [2.0, 1.0]])  # no stay reaches hours 1-2
    with pytest.raises(ValueError, match="train stays"):
        drift.hour_means(latents, state_ids, np.array([0, 0]))


def test_skill_is_known_for_perfect_trivial_and_copy_forward_predictors():
    z, latents, demo_ids, state_ids, action_ids = _linear_corpus(N=5, T=30, D=4, slope=0.5)
    lengths = np.full(len(z), z.shape[1])
    hm = drift.hour_means(latents, state_ids, lengths)  # offsets 0..4: mean offset 2 + slope t
    np.testing.assert_allclose(hm[:, 0], 2.0 + 0.5 * np.arange(30), rtol=1e-6)
    kw = dict(contexts=(6,), horizon=10, hour_mean=hm, n_boot=50)

    perfect = drift.rollout_drift(latents, demo_ids, state_ids, action_ids, lengths, _Oracle(z), **kw)
    c = perfect["contexts"]["6"]["methods"]
    for ref in drift.REFERENCES:
        s = c["model"]["skill"][ref]
        np.testing.assert_allclose(s["curve"], 1.0)
        assert s["mean"] == pytest.approx(1.0) and s["mean_ci"] == pytest.approx([1.0, 1.0])
    np.testing.assert_allclose(c["model"]["l1"], 0.0)
    np.testing.assert_allclose(c["hour_mean"]["l1"], 1.2 * 4)  # mean |offset - 2| x D, every hour

    trivial = drift.rollout_drift(latents, demo_ids, state_ids, action_ids, lengths, _Constant(hm), **kw)
    c = trivial["contexts"]["6"]["methods"]
    s = c["model"]["skill"]["hour_mean"]  # a model that predicts the hour means is no better than them
    np.testing.assert_allclose(s["curve"], 0.0, atol=1e-6)
    assert s["mean"] == pytest.approx(0.0, abs=1e-6) and s["mean_ci"] == pytest.approx([0.0, 0.0], abs=1e-6)

    # copy-forward L1(h) = slope h D against the hour mean's 1.2 D: skill 1 - 0.5 h / 1.2
    cf = c["copy_forward"]["skill"]["hour_mean"]
    h = np.arange(1, 11)
    np.testing.assert_allclose(cf["curve"], 1 - 0.5 * h / 1.2, rtol=1e-6)
    assert cf["mean"] == pytest.approx(1 - 0.5 * h.sum() / (1.2 * 10))
    assert cf["curve_ci"]["lo"][0] <= cf["curve"][0] <= cf["curve_ci"]["hi"][0]
    assert "hour_mean" not in c["hour_mean"]["skill"]  # never scored against itself
    lo, hi = c["copy_forward"]["l1_ci"]["lo"], c["copy_forward"]["l1_ci"]["hi"]
    np.testing.assert_allclose([lo[0], hi[0]], [2.0, 2.0], rtol=1e-6)  # the same error for every stay
    s = trivial["summary"]["model"]
    assert s["mean_skill_vs_hour_mean"] == pytest.approx(0.0, abs=1e-6) and "mean_skill_vs_copy_forward" in s


def test_skill_ci_is_paired_over_stays():
    """Method and reference errors vary together across stays: the paired CI is narrow."""
    rng = np.random.default_rng(0)
    ref = rng.uniform(1, 10, size=(200, 3))  # (N, H) very different stays
    s = drift.skill(0.5 * ref, ref, n_boot=200)
    assert s["mean_ci"] == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="shape"):
        drift.skill(ref[:, :2], ref)
