"""MLP probes on constructed latents (planted signal) and the latent representations built
with a real (debug, untrained) predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clin_jepa.config import EvalConfig
from clin_jepa.models import build_predictor
from evaluation import probes
from evaluation.metrics import auroc

N, T, D = 300, 12, 16


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one torch thread is much faster (as eval.threads)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _corpus(seed=0):
    """Text ids: 0 = no observation, 1 = no action, 2.. states/demos with random latents;
    stays with y = 1 drift along a planted direction from hour 4 on."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, N)
    direction = rng.normal(size=D).astype(np.float32)
    states = rng.normal(size=(N, T, D)).astype(np.float32)
    states += (y[:, None, None] * (np.arange(T) >= 4)[None, :, None] * 0.8 * direction).astype(np.float32)
    demos = rng.normal(size=(N, D)).astype(np.float32)
    latents = np.concatenate([rng.normal(size=(2, D)).astype(np.float32), demos, states.reshape(N * T, D)])
    demo_ids = 2 + np.arange(N)
    state_ids = 2 + N + np.arange(N * T).reshape(N, T)
    action_ids = np.ones((N, T), dtype=np.int64)
    lengths = np.full(N, T)
    lengths[:20] = 8  # some shorter stays: padding must not leak into the features
    state_ids[:20, 8:] = -1
    action_ids[:20, 8:] = -1
    return y, latents, demo_ids, state_ids, action_ids, lengths


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return build_predictor("debug", latent_dim=D).eval()


def test_representation_shapes_and_causality(predictor):
    y, latents, demo_ids, state_ids, action_ids, lengths = _corpus()
    feats = probes.state_features(latents, demo_ids, state_ids, action_ids, lengths, predictor)
    rows, hours = np.arange(N), np.full(N, 6)
    x = probes.probe_inputs(feats, rows, hours)
    assert x.shape == (N, 4 * D)
    np.testing.assert_allclose(x[:, D:2 * D], latents[state_ids[:, 6]], rtol=1e-6)
    np.testing.assert_allclose(x[:, 2 * D:3 * D], latents[state_ids[:, :7]].mean(axis=1), rtol=1e-5, atol=1e-6)
    # the forecast at hour 6 must not depend on hours > 6 (block-causal predictor)
    changed = state_ids.copy()
    changed[:, 9] = state_ids[:, 0]
    f2 = probes.state_features(latents, demo_ids, changed, action_ids, lengths, predictor)
    np.testing.assert_allclose(f2["forecast"][:, 6], feats["forecast"][:, 6], atol=1e-5)
    r = probes.rollout_inputs(feats, predictor, rows[20:30], np.array([3] * 5 + [T - 1] * 5), hours=4)
    assert r.shape == (10, 4 * D) and np.isfinite(r).all()
    np.testing.assert_allclose(r[5:, 2 * D:3 * D], latents[state_ids[25:30, T - 1]], rtol=1e-6)  # nothing to roll out


def test_probe_learns_planted_signal_not_shuffled(predictor):
    y, latents, demo_ids, state_ids, action_ids, lengths = _corpus()
    feats = probes.state_features(latents, demo_ids, state_ids, action_ids, lengths, predictor)
    x = probes.probe_inputs(feats, np.arange(N), np.minimum(lengths - 1, 7))
    tr, va, te = np.arange(0, 180), np.arange(180, 230), np.arange(230, N)
    cfg = EvalConfig(probe_epochs=40, patience=5, batch_size=64)
    p = probes.fit_predict_mlp(x, y, tr, va, te, cfg, seed=0)
    assert auroc(y[te], p) > 0.8
    shuffled = np.random.default_rng(2).permutation(y)
    assert abs(auroc(shuffled[te], probes.fit_predict_mlp(x, shuffled, tr, va, te, cfg, seed=0)) - 0.5) < 0.17
    np.testing.assert_array_equal(p, probes.fit_predict_mlp(x, y, tr, va, te, cfg, seed=0))  # deterministic


def test_without_predictor_the_forecast_is_left_out():
    y, latents, demo_ids, state_ids, action_ids, lengths = _corpus()
    feats = probes.state_features(latents, demo_ids, state_ids, action_ids, lengths, None)
    assert feats["forecast"] is None
    assert probes.probe_inputs(feats, np.arange(3), np.array([1, 2, 3])).shape == (3, 3 * D)
