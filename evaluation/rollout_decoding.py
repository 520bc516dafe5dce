"""Rollout decoding (METHOD 7, the reference code's forecasting protocol): does the rollout
predict the future patient, in clinical units?

Decoders (:mod:`clin_jepa.models.decoders`, ``eval.decode_kind``) map a latent to 24 clinical
variables; they are fitted on the ENCODER latents of train-split state hours. On the test split
the predictor rolls out exactly as in the drift evaluation (contexts ``eval.contexts``, horizons
1..H_c, real actions, stays with >= C + H_c hours); prediction h is for hour C+h-1 and is
decoded. Methods (each predicts variable v at hour C+h-1):

- ``model``: the decoded rolled-out latent;
- ``encoder_latent``: the decoded ENCODER latent of hour C+h-1 itself (not a forecast: the error of the
  decoders alone, the floor a perfect rollout would reach);
- ``lvcf``: the last value observed in hours 0..C-1 (the train mean when none);
- ``ridge`` / ``lightgbm``: per-variable, per-horizon regressors on the raw features: the
  standardised hourly features forward filled to hour C-1, the actions of hours C-1..C+h-2
  (mean and last; the model sees the same real actions), and C / window. Fitted on train
  stays at the same contexts (at most FORECAST_ANCHORS (stay, context) anchors, a seeded
  sample). LightGBM only at ``eval.decode_lgbm_horizons`` (time bound), small (LGBM_PARAMS).

Scored on the hours where v was observed. MAE in the variable's unit; MASE = MAE / scale_v with
scale_v the in-sample one-step naive MAE on the train stays: the mean |y_t - y_prev| over train
hours t where v was observed and observed before (y_prev its last earlier observation), i.e.
LVCF one hour ahead from every train hour (:func:`naive_scale`). Horizon h pools the contexts
with H_c >= h. CIs: stays resampled with replacement (one draw for all methods, paired), per
variable and per group (mean MASE of its variables); the model - LVCF difference gets its own CI.
Latents are gathered a chunk of stays at a time (evaluation.streaming); nothing (N, T, D).
"""

from __future__ import annotations

import numpy as np
from clin_jepa.evaluation.drift import model_rollout
from clin_jepa.evaluation.metrics import _stay_counts
from clin_jepa.evaluation.streaming import STAY_CHUNK, chunks
from clin_jepa.evaluation.tasks import HOURLY_FEATURES, forward_fill

from clin_jepa.data.features import ACTION_COLUMNS
from clin_jepa.models.decoders import DECODE_GROUPS, DECODE_VARIABLES, fit_train_decoders
from clin_jepa.utils import get_logger

log = get_logger(__name__)

METHODS = ("model", "encoder_latent", "lvcf", "ridge", "lightgbm")
REFERENCE = "lvcf"  # the model's difference to it gets a paired CI
FORECAST_ANCHORS = 5_000  # train (stay, context) anchors the ridge/LightGBM forecasters are fitted on, at most
RIDGE_ALPHA = 1.0  # on standardised features, thousands of rows: a light penalty
LGBM_PARAMS = {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 20,
               "subsample": 1.0, "verbose": -1}  # small: 24 variables x 5 horizons fits within seconds
ACTIONS = [HOURLY_FEATURES.index(c) for c in ACTION_COLUMNS]


def naive_scale(values: np.ndarray, lengths: np.ndarray, stays: np.ndarray) -> np.ndarray:
    """(V,) in-sample one-step naive MAE: mean |y_t - last earlier observation| over the hours t
    of ``stays`` where v is observed and was observed before (NaN when no such hour)."""
    y = values[stays]  # (S, T, V)
    T = y.shape[1]
    inside = np.arange(T)[None, :, None] < lengths[stays, None, None]
    y = np.where(inside, y, np.nan)
    prev = np.concatenate([np.full_like(y[:, :1], np.nan), forward_fill(y)[:, :-1]], axis=1)  # last obs before t
    d = np.abs(y - prev)  # NaN unless both exist
    n = np.isfinite(d).sum(axis=(0, 1))
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, np.nansum(d, axis=(0, 1)) / np.maximum(n, 1), np.nan)


def lvcf(values: np.ndarray, rows: np.ndarray, C: int, fallback: np.ndarray) -> np.ndarray:
    """(n, V): the last value observed in hours 0..C-1 of each row's stay, ``fallback`` (V,) if none."""
    last = forward_fill(values[rows, :C])[:, -1]  # (n, V)
    return np.where(np.isfinite(last), last, fallback[None, :]).astype(np.float32)


def forecaster_features(xs: np.ndarray, rows: np.ndarray, C: int, H: int) -> np.ndarray:
    """(n, H, F + 2A + 1) inputs of the raw-feature forecasters at horizons 1..H: the standardised
    features forward filled to hour C-1 (0 = train mean before the first observation), the mean
    and the last of the actions of hours C-1..C+h-2, and C / T."""
    n, T = len(rows), xs.shape[1]
    ctx = np.nan_to_num(forward_fill(xs[rows, :C])[:, -1], nan=0.0)  # (n, F)
    acts = np.nan_to_num(xs[rows, C - 1: C + H - 1][..., ACTIONS], nan=0.0)  # (n, H, A)
    mean = np.cumsum(acts, axis=1) / np.arange(1, H + 1)[None, :, None]
    parts = [np.broadcast_to(ctx[:, None], (n, H, ctx.shape[1])), mean, acts, np.full((n, H, 1), C / T)]
    return np.concatenate(parts, axis=-1).astype(np.float32)


def fit_forecasters(xs, values, lengths, train, contexts, horizon, lgbm_horizons, threads=1, seed=0):
    """Ridge (every horizon) and LightGBM (``lgbm_horizons``) per variable, fitted on train anchors.
    Returns {"ridge": (W (H, V, Fx), b (H, V)), "lightgbm": {(h, j): model}}."""
    from lightgbm import LGBMRegressor
    from sklearn.linear_model import Ridge

    T, V = values.shape[1], values.shape[2]
    anchors = [(s, C) for C in contexts if C < T for s in train if lengths[s] > C]
    if len(anchors) > FORECAST_ANCHORS:
        keep = np.sort(np.random.default_rng(seed).choice(len(anchors), FORECAST_ANCHORS, replace=False))
        anchors = [anchors[i] for i in keep]
    X, Y = [], []  # per anchor: (H, Fx) features and (H, V) targets (NaN beyond the stay or unobserved)
    for C in sorted({c for _, c in anchors}):
        rows = np.array([s for s, c in anchors if c == C])
        H = min(horizon, T - C)
        f = forecaster_features(xs, rows, C, H)
        y = values[rows, C: C + H].copy()
        y[np.arange(H)[None, :] >= (lengths[rows] - C)[:, None]] = np.nan
        pad = horizon - H
        X.append(np.pad(f, ((0, 0), (0, pad), (0, 0))))
        Y.append(np.pad(y, ((0, 0), (0, pad), (0, 0)), constant_values=np.nan))
    X, Y = np.concatenate(X), np.concatenate(Y)  # (A, horizon, Fx), (A, horizon, V)
    W = np.zeros((horizon, V, X.shape[-1]), dtype=np.float32)
    b = np.full((horizon, V), np.nan, dtype=np.float32)
    lgbm = {}
    for h in range(1, horizon + 1):
        for j in range(V):
            ok = np.isfinite(Y[:, h - 1, j])
            if ok.sum() < 20:
                continue
            x, y = X[ok, h - 1], Y[ok, h - 1, j]
            m = Ridge(alpha=RIDGE_ALPHA).fit(x, y)
            W[h - 1, j], b[h - 1, j] = m.coef_, m.intercept_
            if h in lgbm_horizons:
                lgbm[(h, j)] = LGBMRegressor(**LGBM_PARAMS, n_jobs=threads, random_state=seed).fit(x, y)
    return {"ridge": (W, b), "lightgbm": lgbm, "n_anchors": len(X)}


def evaluate_decoding(corpus, latents, predictor, xs: np.ndarray, values: np.ndarray, cfg,
                      stay_chunk: int = STAY_CHUNK) -> dict:
    """The decoding evaluation of one run (aggregates only). xs (N, T, F) standardised hourly
    features (NaN kept); values (N, T, V) of DECODE_VARIABLES in original units (NaN = not observed).
    BLAS runs on ``eval.threads`` threads (the many small ridge fits: oversubscribing a shared CPU)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, cfg.eval.threads)):
        return _evaluate(corpus, latents, predictor, xs, values, cfg, stay_chunk)


def _evaluate(corpus, latents, predictor, xs, values, cfg, stay_chunk) -> dict:
    e = cfg.eval
    clock = _Clock()
    seed = e.seeds[0]
    train, test = np.flatnonzero(corpus.split == "train"), np.flatnonzero(corpus.split == "test")
    if len(test) == 0:
        raise ValueError("the test split is empty; check data.split_fractions and rerun `clin-jepa extract`")
    T, V, D = values.shape[1], values.shape[2], latents.shape[1]
    dec = fit_train_decoders(corpus, latents, None, e.decode_kind, seed, e.decode_max_rows, values=values,
                             threads=max(1, e.threads))
    clock("decoders")
    scale = naive_scale(values, corpus.lengths, train)  # (V,)
    with np.errstate(all="ignore"):
        train_mean = np.nanmean(np.where(np.isfinite(values[train]), values[train], np.nan), axis=(0, 1))
    lgbm_h = tuple(h for h in e.decode_lgbm_horizons if h <= e.horizon)
    fc = fit_forecasters(xs, values, corpus.lengths, train, e.contexts, e.horizon, lgbm_h, e.threads, seed)
    W, b = fc["ridge"]
    clock("forecasters")

    Hmax = int(e.horizon)
    pos = {s: i for i, s in enumerate(test)}  # test stay -> accumulator row (stays pooled over contexts)
    err = {m: np.zeros((len(test), Hmax, V), np.float32) for m in METHODS}  # per-stay sums of |error| (n_test, H, V)
    count = np.zeros((len(test), Hmax, V), np.float32)  # values scored (exact in float32 below 2^24)
    undefined = {m: np.zeros((Hmax, V), dtype=bool) for m in METHODS}  # a method without a prediction there
    per_context = {}
    for C in e.contexts:
        H = int(min(Hmax, T - C))
        idx = test[corpus.lengths[test] >= C + H] if H >= 1 else test[:0]
        per_context[str(C)] = {"horizon": max(H, 0), "n_stays": int(len(idx))}
        for part in chunks(len(idx), stay_chunk):
            sub = idx[part]
            acc = np.array([pos[s] for s in sub])
            s = np.asarray(latents[corpus.state_ids[sub, : C + H]], dtype=np.float32)  # (n, C+H, D)
            a = np.asarray(latents[corpus.action_ids[sub, : C + H]], dtype=np.float32)
            d = np.asarray(latents[corpus.demo_ids[sub]], dtype=np.float32)
            z_hat = model_rollout(predictor, d, s[:, :C], a, H)  # (n, H, D)
            n = len(sub)
            f = forecaster_features(xs, sub, C, H)  # (n, H, Fx)
            preds = {"model": dec.predict(z_hat.reshape(-1, D)).reshape(n, H, V),
                     "encoder_latent": dec.predict(s[:, C:].reshape(-1, D)).reshape(n, H, V),
                     "lvcf": np.broadcast_to(lvcf(values, sub, C, train_mean)[:, None], (n, H, V)),
                     "ridge": np.einsum("nhf,hvf->nhv", f, W[:H]) + b[None, :H],
                     "lightgbm": np.full((n, H, V), np.nan, dtype=np.float32)}
            for (h, j), m in fc["lightgbm"].items():
                if h <= H:
                    preds["lightgbm"][:, h - 1, j] = m.predict(f[:, h - 1])
            y = values[sub, C: C + H]  # (n, H, V)
            obs = np.isfinite(y)
            count[acc, :H] += obs
            for m, p in preds.items():
                ok = np.isfinite(p)
                err[m][acc, :H] += np.where(obs & ok, np.abs(p - y), 0.0)
                undefined[m][:H] |= (obs & ~ok).any(axis=0)
    clock("rollouts and scoring")
    out = {"split": "test", "contexts": per_context, "horizon": Hmax, "variables": list(DECODE_VARIABLES),
           "groups": {g: list(vs) for g, vs in DECODE_GROUPS.items()}, "methods": list(METHODS),
           "reference": REFERENCE, "lightgbm_horizons": list(lgbm_h),
           "scale": _finite(scale), "n_test_stays": int((count.sum(axis=(1, 2)) > 0).sum()),
           "decoder": {"kind": dec.kind, "fit_rows": dec.n_rows, "alpha": dec.alpha, "split": "train"},
           "forecasters": {"train_anchors": int(fc["n_anchors"]), "ridge_alpha": RIDGE_ALPHA,
                           "lightgbm": {k: v for k, v in LGBM_PARAMS.items() if k != "verbose"}}}
    out |= summarize(err, count, undefined, scale, e.bootstrap, seed)
    clock("bootstrap")
    out["part_seconds"] = clock.parts
    return out


class _Clock:
    """Seconds spent per part, for decoding.json (the demo budget is ~30 s for this evaluation)."""

    def __init__(self):
        import time

        self._now, self.parts = time.perf_counter, {}
        self._t = self._now()

    def __call__(self, part: str) -> None:
        t = self._now()
        self.parts[part] = round(t - self._t, 2)
        self._t = t


def summarize(err: dict, count: np.ndarray, undefined: dict, scale: np.ndarray, n_boot: int, seed: int) -> dict:
    """Per-stay error sums {method: (n, H, V)} and counts (n, H, V) -> MAE/MASE per variable and
    horizon, group means, stay-bootstrap CIs. ``undefined`` {method: (H, V) bool}: where the method
    made no prediction (LightGBM off its horizons, a variable without a decoder): None there."""
    keep = count.sum(axis=(1, 2)) > 0  # stays scored at least once
    if not keep.any():
        return {"status": "no test stay has the hours a context needs, or no decoded variable was observed in "
                          "them; shorten eval.contexts / eval.horizon", "per_variable": {}, "per_group": {},
                "n_boot": int(n_boot)}
    err = {m: x[keep] for m, x in err.items()}
    count = count[keep]
    n, H, V = count.shape
    groups = {g: [DECODE_VARIABLES.index(v) for v in vs] for g, vs in DECODE_GROUPS.items()}

    def stats(sums, cnt, bad):  # (..., H, V) -> MAE, MASE, group MASE {g: (..., H)}
        with np.errstate(all="ignore"):
            mae = np.where((cnt > 0) & ~bad, sums / cnt, np.nan)
            mase = mae / scale
            return mae, mase, {g: _nanmean(mase[..., j], axis=-1) for g, j in groups.items()}

    point, reps = {}, {}
    c_tot = count.sum(axis=0)
    draws = list(_stay_counts(np.arange(n), n_boot, np.random.default_rng(seed)))  # same draws for all methods
    c_boot = np.concatenate([w @ count.reshape(n, -1) for w in draws]).reshape(-1, H, V)
    for m, x in err.items():
        mae, mase, grp = stats(x.sum(axis=0), c_tot, undefined[m])
        s_boot = np.concatenate([w @ x.reshape(n, -1) for w in draws]).reshape(-1, H, V)
        _, bm, bg = stats(s_boot, c_boot, undefined[m])  # (B, H, V), {g: (B, H)}
        point[m], reps[m] = (mae, mase, grp), (bm, bg)
    per_var, per_group = {}, {}
    for j, v in enumerate(DECODE_VARIABLES):
        entry = {"n": c_tot[:, j].astype(int).tolist(), "scale": _finite([scale[j]])[0]}
        for m in err:
            mae, mase, _ = point[m]
            entry[m] = {"mae": _finite(mae[:, j]), "mase": _finite(mase[:, j]), "mase_ci": _band(reps[m][0][..., j])}
        entry["model_minus_lvcf"] = _diff(point["model"][1][:, j], point[REFERENCE][1][:, j],
                                          reps["model"][0][..., j], reps[REFERENCE][0][..., j])
        per_var[v] = entry
    for g in groups:
        entry = {m: {"mase": _finite(point[m][2][g]), "mase_ci": _band(reps[m][1][g])} for m in err}
        entry["model_minus_lvcf"] = _diff(point["model"][2][g], point[REFERENCE][2][g],
                                          reps["model"][1][g], reps[REFERENCE][1][g])
        per_group[g] = entry
    return {"per_variable": per_var, "per_group": per_group, "n_boot": int(n_boot)}


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    ok = np.isfinite(x)
    with np.errstate(all="ignore"):
        return np.where(ok.any(axis=axis), np.where(ok, x, 0.0).sum(axis=axis) / ok.sum(axis=axis), np.nan)


def _band(reps: np.ndarray) -> dict:
    """(B, H) bootstrap replicates (NaN = undefined in a replicate) -> 95 % percentile CI
    {"lo", "hi"} per horizon, np.quantile's linear rule over the finite replicates (one sort:
    np.nanquantile took 3.5 s of the demo's decoding evaluation, this 0.1 s)."""
    r = np.sort(np.where(np.isfinite(reps), reps, np.inf), axis=0)  # undefined last
    k = np.isfinite(r).sum(axis=0)  # (H,)
    out = {}
    for name, q in (("lo", 0.025), ("hi", 0.975)):
        pos = q * np.maximum(k - 1, 0)
        i = np.floor(pos).astype(int)
        j = np.minimum(i + 1, np.maximum(k - 1, 0))
        cols = np.arange(r.shape[1])
        with np.errstate(invalid="ignore"):
            v = r[i, cols] + (pos - i) * (r[j, cols] - r[i, cols])
        out[name] = _finite(np.where(k > 0, v, np.nan))
    return out


def _diff(a: np.ndarray, b: np.ndarray, ra: np.ndarray, rb: np.ndarray) -> dict:
    """MASE difference a - b (H,) with its paired bootstrap CI (same stay draws)."""
    return {"mase": _finite(a - b), "mase_ci": _band(ra - rb)}


def _finite(values) -> list:
    """JSON-safe list, 6 significant digits (beyond any CI's resolution): NaN / inf -> None."""
    return [float(f"{v:.6g}") if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]
