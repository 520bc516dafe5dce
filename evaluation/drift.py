"""Latent rollout drift (METHOD 7) and its copy-forward / linear-extrapolation baselines.

For a context of C hours (hours 0..C-1 of a test stay) the predictor rolls out H_c =
min(eval.horizon, window - C) hours with the REAL actions; prediction h (1-based) is for
hour index C+h-1 and is compared with the same model's encoder latent of that hour:

    L1(h) = sum_d |z_hat_h - z_{C+h-1}|, averaged over the eligible stays
    curve = L1(h) / L1(1);  drift % = (L1(H_c) / L1(1) - 1) x 100

Eligible stays have at least C + H_c hours of data, so every point of a curve averages
the same stays (a fixed cohort; n is reported per context). The latent baselines use the
context only: copy-forward repeats z_{C-1}; linear extrapolation continues the last step,
z_{C-1} + h (z_{C-1} - z_{C-2}); the hour-mean predictor ignores the patient: it predicts
m_{C+h-1}, the train-split mean state latent of that hour since admission.

The drift ratio cannot tell a world model from a trivial one (the hour-mean predictor drifts
about as little), so each method also gets its absolute L1(h) curve and a skill score against
the two reference predictors R (hour-mean, copy-forward), on the same stays:

    skill_R(h) = 1 - L1_m(h) / L1_R(h)             (per horizon)
    skill_R    = 1 - sum_h L1_m(h) / sum_h L1_R(h)  (over horizons 1..H_c)

1 = perfect, 0 = no better than R, < 0 = worse. CIs: stays resampled with replacement, the
same draw for the method and the reference (paired).
"""

from __future__ import annotations

import numpy as np
import torch
from clin_jepa.evaluation.metrics import _ci, _stay_counts  # stays drawn as the drift-ratio CIs draw them
from clin_jepa.evaluation.streaming import STAY_CHUNK, chunks

from clin_jepa.utils import get_logger, progress

log = get_logger(__name__)

METHODS = ("model", "copy_forward", "linear", "hour_mean")
REFERENCES = ("hour_mean", "copy_forward")  # skill scores are against these


def hour_means(latents: np.ndarray, state_ids: np.ndarray, lengths: np.ndarray,
               stay_chunk: int = STAY_CHUNK) -> np.ndarray:
    """(T, D) mean state latent of each hour since admission over the given (train) stays,
    hours with data only; an hour no stay reaches takes the last defined hour's mean.
    Streamed: sums of ``stay_chunk`` stays at a time (float64 sums of (T, D) only)."""
    N, T = state_ids.shape
    total, count = np.zeros((T, latents.shape[1])), np.zeros(T)  # (T, D), (T,)
    for part in chunks(N, stay_chunk):
        valid = np.arange(T)[None, :] < lengths[part, None]  # (n, T)
        ids = np.where(valid, state_ids[part], 0)
        x = np.asarray(latents[ids], dtype=np.float32) * valid[..., None]  # (n, T, D)
        total += x.sum(axis=0)
        count += valid.sum(axis=0)
    if count[0] == 0:
        raise ValueError("no train stay has data: the hour-mean predictor needs train stays; check data.split_fractions")
    for t in range(1, T):  # carry the last defined hour forward
        if count[t] == 0:
            total[t], count[t] = total[t - 1] / count[t - 1], 1
    return (total / count[:, None]).astype(np.float32)



def l1_per_step(z_hat: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(N, H, D) predictions vs (N, H, D) targets -> (N, H) L1 summed over latent dims."""
    if z_hat.shape != z.shape:
        raise ValueError(f"predictions {z_hat.shape} and targets {z.shape} differ in shape")
    return np.abs(z_hat - z).sum(axis=-1)


def copy_forward(s_ctx: np.ndarray, horizon: int) -> np.ndarray:
    """(N, C, D) context -> (N, H, D): the last context latent repeated."""
    return np.repeat(s_ctx[:, -1:, :], horizon, axis=1)


def linear_extrapolation(s_ctx: np.ndarray, horizon: int) -> np.ndarray:
    """(N, C, D) context (C >= 2) -> (N, H, D): last latent + h x last step."""
    if s_ctx.shape[1] < 2:
        raise ValueError("linear extrapolation needs a context of at least 2 hours")
    step = s_ctx[:, -1, :] - s_ctx[:, -2, :]  # (N, D)
    h = np.arange(1, horizon + 1, dtype=s_ctx.dtype)[None, :, None]  # (1, H, 1)
    return s_ctx[:, -1:, :] + h * step[:, None, :]  # (N, H, D)


def summarize(err: np.ndarray, n_boot: int = 500, seed: int = 0) -> dict:
    """(N, H) per-stay per-step errors -> mean curve (``l1``, CI ``l1_ci``), normalised curve and
    drift %, with percentile CIs over ``n_boot`` bootstrap resamples of the stays (``ratio_ci``,
    ``drift_pct_ci``)."""
    from clin_jepa.evaluation.metrics import bootstrap_ratio_curve

    l1 = err.mean(axis=0)  # (H,)
    out = {"l1": l1.tolist(), "l1_ci": bootstrap_mean_curve(err, n_boot, seed), "n_boot": int(n_boot)}
    if l1[0] <= 0 or not np.isfinite(l1[0]):
        return out | {"ratio": [None] * len(l1), "drift_pct": None}  # perfect first step: undefined
    ci = bootstrap_ratio_curve(err, n_boot, seed)
    return out | {"ratio": (l1 / l1[0]).tolist(), "drift_pct": float((l1[-1] / l1[0] - 1.0) * 100.0),
                  "ratio_ci": ci, "drift_pct_ci": [(ci["lo"][-1] - 1.0) * 100.0, (ci["hi"][-1] - 1.0) * 100.0]}


def skill(err: np.ndarray, ref: np.ndarray, n_boot: int = 500, seed: int = 0) -> dict:
    """Skill of a method against a reference predictor from (N, H) per-stay errors of both on
    the same stays: per horizon 1 - L1_m(h)/L1_R(h) (``curve``) and over horizons
    1 - sum_h L1_m / sum_h L1_R (``mean``), with paired stay-bootstrap CIs (None where L1_R = 0)."""
    err, ref = np.asarray(err, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if err.shape != ref.shape:
        raise ValueError(f"method errors {err.shape} and reference errors {ref.shape} differ in shape")
    m, r = err.mean(axis=0), ref.mean(axis=0)  # (H,)

    def score(num, den):  # (..., H) sums -> skill per horizon, and over horizons
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 - num / den, 1.0 - num.sum(axis=-1) / den.sum(axis=-1)

    curve, mean = score(m, r)
    reps = [score(c @ err, c @ ref) for c in _stay_counts(np.arange(len(err)), n_boot, np.random.default_rng(seed))]
    rc, rm = np.concatenate([x[0] for x in reps]), np.concatenate([x[1] for x in reps])  # (B, H), (B,)
    bounds = [_ci(rc[:, h], 0.05) for h in range(err.shape[1])]
    mlo, mhi = _ci(rm, 0.05)
    return {"curve": _finite(curve), "curve_ci": {"lo": _finite([b[0] for b in bounds]),
                                                  "hi": _finite([b[1] for b in bounds])},
            "mean": _finite([mean])[0], "mean_ci": _finite([mlo, mhi]), "n_boot": int(n_boot)}


def bootstrap_mean_curve(err: np.ndarray, n_boot: int = 500, seed: int = 0) -> dict:
    """(N, H) per-stay errors -> percentile CI {"lo", "hi"} (H,) of the mean over stays."""
    err = np.asarray(err, dtype=np.float64)
    counts = _stay_counts(np.arange(len(err)), n_boot, np.random.default_rng(seed))
    means = np.concatenate([(c @ err) / len(err) for c in counts])  # (B, H)
    bounds = [_ci(means[:, h], 0.05) for h in range(err.shape[1])]
    return {"lo": _finite([b[0] for b in bounds]), "hi": _finite([b[1] for b in bounds])}


def _finite(values) -> list:
    """JSON-safe list: NaN / inf -> None."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


@torch.no_grad()
def model_rollout(predictor, d: np.ndarray, s_ctx: np.ndarray, a: np.ndarray, horizon: int,
                  batch_size: int = 64) -> np.ndarray:
    """Predictor rollout with real actions: d (N,D), s_ctx (N,C,D), a (N,C+H,D) -> (N,H,D)."""
    predictor.eval()
    out = []
    for i in range(0, len(d), batch_size):
        sl = slice(i, i + batch_size)
        z_hat = predictor.rollout(torch.from_numpy(d[sl]), torch.from_numpy(s_ctx[sl]),
                                  torch.from_numpy(a[sl]), horizon=horizon)  # (B, H, D)
        out.append(z_hat.float().cpu().numpy())
    return np.concatenate(out, axis=0)


def rollout_drift(latents: np.ndarray, demo_ids: np.ndarray, state_ids: np.ndarray, action_ids: np.ndarray,
                  lengths: np.ndarray, predictor, contexts, horizon: int, batch_size: int = 64,
                  stay_chunk: int = STAY_CHUNK, hour_mean: np.ndarray | None = None, n_boot: int = 500,
                  seed: int = 0) -> dict:
    """Drift curves per context for the model and the latent baselines, and skill scores.

    latents (U, D) indexed by the corpus ids (a memory-mapped file is read a chunk of
    ``stay_chunk`` stays at a time: only (chunk, C+H, D) arrays are ever built);
    state_ids/action_ids (N, T) with -1 padding; ``predictor=None`` computes the baselines only;
    ``hour_mean`` (T, D) (:func:`hour_means` of the train stays) adds the hour-mean predictor.
    Each method gets ``skill`` {reference: :func:`skill`} against the references present.
    """
    T = state_ids.shape[1]
    result: dict = {"contexts": {}, "horizon": int(horizon), "window_hours": int(T)}
    for C in progress(list(contexts), desc="drift", unit="context"):
        H = int(min(horizon, T - C))
        entry: dict = {"context": int(C), "horizon": H}
        if H < 1:
            entry.update(n_stays=0, status=f"context {C} h leaves no hour to predict in a {T} h window")
            result["contexts"][str(C)] = entry
            continue
        idx = np.flatnonzero(lengths >= C + H)
        entry["n_stays"] = int(len(idx))
        if len(idx) == 0:
            entry["status"] = f"no test stay has the {C + H} hours needed"
            result["contexts"][str(C)] = entry
            continue
        errs: dict[str, list[np.ndarray]] = {}
        for part in chunks(len(idx), stay_chunk):
            sub = idx[part]
            s = np.asarray(latents[state_ids[sub, : C + H]], dtype=np.float32)  # (n, C+H, D)
            s_ctx, z = s[:, :C], s[:, C:]  # (n, C, D), (n, H, D)
            preds = {"copy_forward": copy_forward(s_ctx, H), "linear": linear_extrapolation(s_ctx, H)}
            if hour_mean is not None:
                preds["hour_mean"] = np.broadcast_to(hour_mean[None, C: C + H], z.shape)  # (n, H, D)
            if predictor is not None:
                a = np.asarray(latents[action_ids[sub, : C + H]], dtype=np.float32)  # (n, C+H, D)
                d = np.asarray(latents[demo_ids[sub]], dtype=np.float32)  # (n, D)
                preds["model"] = model_rollout(predictor, d, s_ctx, a, H, batch_size)
            for name, p in preds.items():
                errs.setdefault(name, []).append(l1_per_step(p, z))  # (n, H)
        err = {name: np.concatenate(e) for name, e in errs.items()}  # name -> (n_stays, H)
        entry["methods"] = {name: summarize(e, n_boot, seed) for name, e in err.items()}
        for name, e in err.items():
            entry["methods"][name]["skill"] = {r: skill(e, err[r], n_boot, seed)
                                               for r in REFERENCES if r in err and r != name}
        result["contexts"][str(C)] = entry
    result["summary"] = _summary(result["contexts"])
    return result


def _summary(contexts: dict) -> dict:
    """Mean drift % and mean skill (per reference) over the contexts that had eligible stays, per method."""
    out = {}
    for m in METHODS:
        res = [c["methods"][m] for c in contexts.values() if "methods" in c and m in c["methods"]]
        vals = [r["drift_pct"] for r in res if r["drift_pct"] is not None]
        out[m] = {"mean_drift_pct": float(np.mean(vals)) if vals else None, "n_contexts": len(vals)}
        for ref in REFERENCES:
            sk = [r["skill"][ref]["mean"] for r in res if ref in r.get("skill", {})
                  and r["skill"][ref]["mean"] is not None]
            if sk:
                out[m][f"mean_skill_vs_{ref}"] = float(np.mean(sk))
    return out
