"""Rollout decoding (evaluation.rollout_decoding): MASE scale, LVCF, alignment of the decoded
rollout with the hour it predicts, and finite results on a planted world."""

from __future__ import annotations

import numpy as np
import pytest
from clin_jepa.evaluation import rollout_decoding as rd
from clin_jepa.evaluation.tasks import HOURLY_FEATURES

from clin_jepa.config import RunConfig
from clin_jepa.data.windows import Corpus
from clin_jepa.models.decoders import DECODE_VARIABLES

N, T = 60, 30
V = len(DECODE_VARIABLES)


def _values(rng, n=N, t=T, p_obs=0.5):
    """(n, t, V) random walks observed at random hours (NaN elsewhere)."""
    walk = 50 + np.cumsum(rng.normal(size=(n, t, V)), axis=1)
    return np.where(rng.random((n, t, V)) < p_obs, walk, np.nan).astype(np.float32), walk.astype(np.float32)


def test_lvcf_one_hour_ahead_from_every_train_hour_has_mase_exactly_one():
    """The MASE scale is the in-sample LVCF error one hour ahead; recomputed through lvcf() from every
    train hour it gives MASE 1 (an off-by-one hour in either function breaks this)."""
    rng = np.random.default_rng(0)
    values, _ = _values(rng)
    lengths = rng.integers(5, T + 1, N)
    train = np.arange(40)
    scale = rd.naive_scale(values, lengths, train)
    err, cnt = np.zeros(V), np.zeros(V)
    for C in range(1, T):
        rows = train[lengths[train] > C]
        pred = rd.lvcf(values, rows, C, np.full(V, np.nan))  # last value in hours 0..C-1, NaN if none
        y = values[rows, C]
        ok = np.isfinite(pred) & np.isfinite(y)
        err += np.where(ok, np.abs(pred - y), 0).sum(axis=0)
        cnt += ok.sum(axis=0)
    np.testing.assert_allclose(err / cnt / scale, 1.0, rtol=1e-5)
    # consecutive-hour differences only (a different, wrong scale for irregular series) differ
    d = np.abs(np.diff(values[train], axis=1))
    assert not np.allclose(np.nanmean(d, axis=(0, 1)), scale, rtol=1e-3)


def test_bootstrap_band_is_numpys_percentile_over_the_finite_replicates():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(200, 7))
    r[rng.random(r.shape) < 0.1] = np.nan
    r[:, 3] = np.nan  # undefined in every replicate
    band = rd._band(r)
    ref = np.nanquantile(np.delete(r, 3, axis=1), [0.025, 0.975], axis=0)
    np.testing.assert_allclose(np.delete(np.array(band["lo"], dtype=float), 3), ref[0], rtol=1e-5)
    np.testing.assert_allclose(np.delete(np.array(band["hi"], dtype=float), 3), ref[1], rtol=1e-5)
    assert band["lo"][3] is None and band["hi"][3] is None


def test_lvcf_falls_back_to_the_train_mean_and_ignores_hours_after_the_context():
    values = np.full((2, 6, V), np.nan, dtype=np.float32)
    values[0, 1, 0], values[0, 3, 0], values[0, 4, 0] = 7.0, 9.0, 100.0
    fallback = np.arange(V, dtype=np.float32)
    p = rd.lvcf(values, np.array([0, 1]), 4, fallback)  # context hours 0..3
    assert p[0, 0] == 9.0 and p[1, 0] == 0.0 and p[0, 1] == 1.0


class _TruthPredictor:
    """A perfect rollout: returns the encoder latents of the predicted hours, which the test knows."""

    def __init__(self, latents, state_ids):
        self.state_ids, self.latents = state_ids, latents

    def eval(self):
        return self

    def rollout(self, d, s_ctx, a, horizon):
        import torch

        rows = [self.state_ids[int(np.argmax(x)) - V] for x in d.numpy()]  # demo latent: one-hot of the stay
        C = s_ctx.shape[1]
        return torch.stack([torch.from_numpy(self.latents[r[C: C + horizon]]) for r in rows])


def _world(seed=0):
    """Corpus + latents whose state latent of hour t encodes the forward-filled values at t."""
    rng = np.random.default_rng(seed)
    values, _ = _values(rng)
    values[:, 0] = 50.0  # every variable observed at admission: the state is defined from hour 0
    from clin_jepa.models.decoders import forward_filled

    lengths = np.full(N, T)
    state = forward_filled(values, lengths)  # (N, T, V)
    D = V + N
    n_states = N * T
    lat = np.zeros((n_states + 2 * N, D), dtype=np.float32)
    lat[:n_states, :V] = ((state - 50) / 10).reshape(-1, V) + rng.normal(scale=0.01, size=(n_states, V))
    demo_ids = n_states + np.arange(N)
    lat[demo_ids, V + np.arange(N)] = 1.0  # one-hot demographics latent: identifies the stay
    action_ids = np.full((N, T), n_states + N)
    split = np.array(["train"] * 36 + ["val"] * 4 + ["test"] * 20)
    corpus = Corpus([], np.arange(N) + 30_000_000, demo_ids, np.arange(n_states).reshape(N, T), action_ids,
                    lengths, split)
    xs = rng.normal(size=(N, T, len(HOURLY_FEATURES))).astype(np.float32)
    return corpus, lat, values, xs


def test_perfect_rollout_decodes_like_the_encoder_and_every_method_is_finite():
    corpus, lat, values, xs = _world()
    cfg = RunConfig()
    cfg.eval.contexts, cfg.eval.horizon, cfg.eval.bootstrap = (6, 12), 8, 20
    cfg.eval.decode_lgbm_horizons = (1, 6)
    res = rd.evaluate_decoding(corpus, lat, _TruthPredictor(lat, corpus.state_ids), xs,
                               values, cfg)
    assert res["contexts"]["6"] == {"horizon": 8, "n_stays": 20} and res["n_test_stays"] == 20
    for v in DECODE_VARIABLES:
        e = res["per_variable"][v]
        # the model's prediction for hour C+h-1 is decoded from that hour's latent: same as the encoder's
        assert e["model"]["mae"] == pytest.approx(e["encoder_latent"]["mae"], rel=1e-5)
        assert e["model_minus_lvcf"]["mase"][0] is not None
        for m in ("model", "lvcf", "ridge"):
            assert all(x is not None and np.isfinite(x) for x in e[m]["mase"]), (v, m)
        lg = e["lightgbm"]["mase"]
        assert lg[0] is not None and lg[5] is not None and lg[1] is None  # only at its horizons
    vit = res["per_group"]["vitals"]
    # latents carry the state almost exactly: decoding beats carrying the last value forward
    assert vit["model"]["mase"][0] < 0.5 * vit["lvcf"]["mase"][0]
    lo, hi = vit["model_minus_lvcf"]["mase_ci"]["lo"][0], vit["model_minus_lvcf"]["mase_ci"]["hi"][0]
    assert lo <= vit["model_minus_lvcf"]["mase"][0] <= hi < 0


def test_a_wrong_hour_rollout_is_caught():
    """A predictor one hour late decodes worse than the encoder: the equality above can fail."""
    corpus, lat, values, xs = _world(1)

    class Late(_TruthPredictor):
        def rollout(self, d, s_ctx, a, horizon):
            import torch

            rows = [self.state_ids[int(np.argmax(x)) - V] for x in d.numpy()]
            C = s_ctx.shape[1]
            return torch.stack([torch.from_numpy(self.latents[r[C - 1: C - 1 + horizon]]) for r in rows])

    cfg = RunConfig()
    cfg.eval.contexts, cfg.eval.horizon, cfg.eval.bootstrap, cfg.eval.decode_lgbm_horizons = (6,), 6, 20, (1,)
    res = rd.evaluate_decoding(corpus, lat, Late(lat, corpus.state_ids), xs, values, cfg)
    g = res["per_group"]["vitals"]
    assert g["model"]["mase"][0] > 1.5 * g["encoder_latent"]["mase"][0]
    again = rd.evaluate_decoding(corpus, lat, Late(lat, corpus.state_ids), xs, values, cfg)
    assert again["per_variable"] == res["per_variable"]  # same seed and config -> same numbers


def test_no_scored_stay_is_reported_not_crashed():
    zeros = np.zeros((3, 4, V), np.float32)
    res = rd.summarize({m: zeros for m in rd.METHODS}, zeros, {m: np.zeros((4, V), bool) for m in rd.METHODS},
                       np.ones(V), 20, 0)
    assert res["per_group"] == {} and "shorten eval.contexts" in res["status"]
