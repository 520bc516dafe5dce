"""MLP probes on constructed latents (planted signal) and the latent representations built
with a real (debug, untrained) predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from clin_jepa.evaluation import probes
from clin_jepa.evaluation.metrics import auroc

from clin_jepa.config import EvalConfig
from clin_jepa.models import build_predictor

N, T, D = 300, 12, 16



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


def _memorisation_trap(seed=0, n_stays=240, rows_per_stay=10, unique_dims=48):
    """Rows of stays: a weak planted signal in 2 dims plus per-stay unique random features (constant
    within a stay, like the demographics latent d) and a per-stay label propensity, so memorising
    stays fits the train rows perfectly and transfers to no other stay."""
    rng = np.random.default_rng(seed)
    stay = np.repeat(np.arange(n_stays), rows_per_stay)
    propensity = rng.uniform(-1.5, 1.5, n_stays)[stay]  # stay-specific, not in the features
    signal = rng.normal(size=(len(stay), 2))
    logit = 1.5 * signal[:, 0] - 1.0 * signal[:, 1] + propensity
    y = (rng.random(len(stay)) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    unique = rng.normal(scale=5.0, size=(n_stays, unique_dims))[stay]  # large-scale stay fingerprints
    x = np.concatenate([signal + rng.normal(scale=0.3, size=signal.shape), unique], axis=1).astype(np.float32)
    split = np.select([stay < 0.6 * n_stays, stay < 0.8 * n_stays], [0, 1], 2)
    return x, y, stay, *(np.flatnonzero(split == k) for k in range(3))


def test_probe_generalises_through_a_memorisation_trap():
    x, y, stay, tr, va, te = _memorisation_trap()
    cfg = EvalConfig()
    p, info = probes.fit_predict_probe(x, y, tr, va, te, cfg, seed=0)
    assert auroc(y[te], p) > 0.75  # the planted signal, found in other stays
    assert info["kind"] in info["val_loss"] and set(info["val_loss"]) >= {"mlp", "linear(l2=1)"}
    # the chosen candidate is the one with the lowest validation loss (never the test split)
    assert info["val_loss"][info["kind"]] == min(info["val_loss"].values())
    # shuffled labels (by stay, so stays keep their row structure): nothing to find
    perm = np.random.default_rng(3).permutation(stay.max() + 1)
    ys = y.reshape(-1, 10)[perm].reshape(-1)
    ps, info_s = probes.fit_predict_probe(x, ys, tr, va, te, cfg, seed=0)
    assert abs(auroc(ys[te], ps) - 0.5) < 0.1
    p2, info2 = probes.fit_predict_probe(x, y, tr, va, te, cfg, seed=0)
    np.testing.assert_array_equal(p, p2)  # deterministic
    assert info2 == info


def test_prior_is_used_when_no_candidate_beats_it_on_validation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    y[200:300] = 1 - y[200:300]  # validation rows: the train relation reversed
    tr, va, te = np.arange(200), np.arange(200, 300), np.arange(300, 400)
    p, info = probes.fit_predict_probe(x, y, tr, va, te, EvalConfig(probe_epochs=5), seed=0)
    assert info["kind"] == "prior"
    assert info["val_loss"]["prior"] <= min(info["val_loss"].values())  # the mlp may tie (its untrained start)
    np.testing.assert_allclose(p, y[tr].mean(), rtol=1e-6)  # the train prevalence for every test row


def test_probe_inputs_are_standardised_with_train_rows_only():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=3.0, scale=2.0, size=(100, 4)).astype(np.float32)
    x[:, 3] = 7.0  # constant feature stays finite (0)
    x[80:, :3] += 100.0  # test rows far off: their statistics must not enter
    xs = probes.standardize(x, np.arange(60))
    np.testing.assert_allclose(xs[:60, :3].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(xs[:60, :3].std(axis=0), 1, atol=1e-4)
    assert (xs[80:, :3] > 20).all() and (xs[:, 3] == 0).all()


def test_bad_probe_config_names_the_fix():
    with pytest.raises(ValueError, match="probe_kinds"):
        EvalConfig(probe_kinds=("linear", "svm")).validate()
    with pytest.raises(ValueError, match="probe_l2"):
        EvalConfig(probe_l2=()).validate()


def test_rollout_and_probe_inputs_see_no_hour_after_the_prediction_hour(predictor):
    y, latents, demo_ids, state_ids, action_ids, lengths = _corpus()
    action_ids = state_ids.copy()  # informative actions (random latents), -1 on padding
    rows, hours = np.arange(30, 40), np.full(10, 5)
    feats = probes.state_features(latents, demo_ids, state_ids, action_ids, lengths, predictor)
    changed_s, changed_a = state_ids.copy(), action_ids.copy()
    rng = np.random.default_rng(1)
    changed_s[:, 6:] = rng.permutation(state_ids[:, 6:].reshape(-1)).reshape(N, -1)  # future hours scrambled
    changed_a[:, 6:] = rng.permutation(action_ids[:, 6:].reshape(-1)).reshape(N, -1)
    f2 = probes.state_features(latents, demo_ids, changed_s, changed_a, lengths, predictor)
    np.testing.assert_allclose(probes.probe_inputs(f2, rows, hours), probes.probe_inputs(feats, rows, hours),
                               atol=1e-5)
    np.testing.assert_allclose(probes.rollout_inputs(f2, predictor, rows, hours, hours=4),
                               probes.rollout_inputs(feats, predictor, rows, hours, hours=4), atol=1e-5)


def test_evaluate_tasks_stores_the_probe_chosen_on_validation():
    import polars as pl
    from clin_jepa.evaluation.tasks import evaluate_tasks

    x, y, stay, tr, va, te = _memorisation_trap(n_stays=120)
    split = np.empty(len(y), dtype=object)
    split[tr], split[va], split[te] = "train", "val", "test"
    rows = pl.DataFrame({"stay_id": stay, "task": ["eep_aki"] * len(y), "hour": np.tile(np.arange(10), 120),
                         "label": y.astype(np.int8), "row": stay, "last_hour": np.tile(np.arange(10), 120),
                         "split": split.astype(str)})
    cfg = EvalConfig(bootstrap=20, probe_epochs=5)

    def probe(r, yy, a, b, c, seed):
        return probes.fit_predict_probe(x[r], yy, a, b, c, cfg, seed)

    out = evaluate_tasks(rows, {"probe": probe}, cfg)
    m = out["tasks"]["eep_aki"]["methods"]["probe"]
    assert m["selected"]["kind"] in m["selected"]["val_loss"] and m["selected"]["kind_per_seed"] == [m["selected"]["kind"]]
    assert m["auroc"]["value"] > 0.7 and out["tasks"]["mort_hosp"]["status"] == "no label rows"


def test_world_model_probes_shapes_parts_and_causality(predictor):
    """probe_context = [c_k] (W), probe_actions = [c_k, mean(a_0..a_k)] (W + D): the
    predictor's contextual state at hour k, computed in the teacher-forced pass; nothing after
    hour k changes any of them."""
    y, latents, demo_ids, state_ids, action_ids, lengths = _corpus()
    action_ids = state_ids.copy()  # informative actions (random latents), -1 on padding
    W = predictor.config.width
    feats = probes.state_features(latents, demo_ids, state_ids, action_ids, lengths, predictor, stay_chunk=64)
    rows = np.arange(N)
    hours = np.minimum(lengths - 1, np.random.default_rng(0).integers(0, T, N))  # every hour, inside each stay
    reps = {n: probes.REPRESENTATIONS[n] for n in ("probe", "probe_context", "probe_actions")}
    x = probes.multi_probe_inputs(feats, rows, hours, reps)
    assert x["probe"].shape == (N, 4 * D) and x["probe_context"].shape == (N, W)
    assert x["probe_actions"].shape == (N, W + D)
    np.testing.assert_array_equal(x["probe"], probes.probe_inputs(feats, rows, hours))  # one pass = separate passes
    np.testing.assert_array_equal(x["probe_context"], x["probe_actions"][:, :W])
    mean_a = np.stack([latents[action_ids[i, :hours[i] + 1]].mean(axis=0) for i in rows])
    np.testing.assert_allclose(x["probe_actions"][:, W:], mean_a, rtol=1e-5, atol=1e-6)
    # c_k is the input of the output projection: predictor.out(c_k) is the forecast f_k
    with torch.no_grad():
        f = predictor.out(torch.from_numpy(x["probe_context"])).numpy()
    np.testing.assert_allclose(f, x["probe"][:, 3 * D:], atol=1e-5)
    assert np.abs(x["probe_context"]).sum(axis=1).min() > 0
    # causality: every hour after each row's k scrambled (states and actions) -> the same features
    rng = np.random.default_rng(1)
    after = np.arange(T)[None, :] > hours[:, None]
    changed_s, changed_a = state_ids.copy(), action_ids.copy()
    changed_s[after & (state_ids >= 0)] = rng.permutation(state_ids[state_ids >= 0])[: (after & (state_ids >= 0)).sum()]
    changed_a[after & (action_ids >= 0)] = rng.permutation(action_ids[action_ids >= 0])[: (after & (action_ids >= 0)).sum()]
    f2 = probes.state_features(latents, demo_ids, changed_s, changed_a, lengths, predictor, stay_chunk=7)
    x2 = probes.multi_probe_inputs(f2, rows, hours, reps)
    for name in reps:
        np.testing.assert_allclose(x2[name], x[name], atol=1e-5, err_msg=name)
    # and the features do read the hours up to k (the check above can fail)
    changed_a = action_ids.copy()
    changed_a[:, 0] = state_ids[:, 1]
    f3 = probes.state_features(latents, demo_ids, state_ids, changed_a, lengths, predictor)
    assert not np.allclose(probes.multi_probe_inputs(f3, rows, hours, reps)["probe_context"], x["probe_context"])


def test_world_model_probes_need_a_predictor():
    y, latents, demo_ids, state_ids, action_ids, lengths = _corpus()
    feats = probes.state_features(latents, demo_ids, state_ids, action_ids, lengths, None)
    x = probes.multi_probe_inputs(feats, np.arange(3), np.array([1, 2, 3]), probes.REPRESENTATIONS)
    assert set(x) == {"probe", "probe_actions"} and x["probe_actions"].shape == (3, D)  # [mean(a)]
    with pytest.raises(ValueError, match="no predictor"):
        probes.probe_inputs(feats, np.arange(3), np.array([1, 2, 3]), probes.REPRESENTATIONS["probe_context"])
    with pytest.raises(ValueError, match="eval.probes"):
        EvalConfig(probes=("probe", "probe_future")).validate()
