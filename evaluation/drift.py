"""Latent rollout drift (METHOD 7) and its copy-forward / linear-extrapolation baselines.

For a context of C hours (hours 0..C-1 of a test stay) the predictor rolls out H_c =
min(eval.horizon, window - C) hours with the REAL actions; prediction h (1-based) is for
hour index C+h-1 and is compared with the same model's encoder latent of that hour:

    L1(h) = sum_d |z_hat_h - z_{C+h-1}|, averaged over the eligible stays
    curve = L1(h) / L1(1);  drift % = (L1(H_c) / L1(1) - 1) x 100

Eligible stays have at least C + H_c hours of data, so every point of a curve averages
the same stays (a fixed cohort; n is reported per context). The latent baselines use the
context only: copy-forward repeats z_{C-1}; linear extrapolation continues the last step,
z_{C-1} + h (z_{C-1} - z_{C-2}).
"""

from __future__ import annotations

import numpy as np
import torch
from clin_jepa.evaluation.streaming import STAY_CHUNK, chunks

from clin_jepa.utils import get_logger, progress

log = get_logger(__name__)

METHODS = ("model", "copy_forward", "linear")


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
    """(N, H) per-stay per-step errors -> mean curve, normalised curve and drift %, with
    percentile CIs over ``n_boot`` bootstrap resamples of the stays (``ratio_ci``, ``drift_pct_ci``)."""
    from clin_jepa.evaluation.metrics import bootstrap_ratio_curve

    l1 = err.mean(axis=0)  # (H,)
    if l1[0] <= 0 or not np.isfinite(l1[0]):
        return {"l1": l1.tolist(), "ratio": [None] * len(l1), "drift_pct": None}  # perfect first step: undefined
    ci = bootstrap_ratio_curve(err, n_boot, seed)
    return {"l1": l1.tolist(), "ratio": (l1 / l1[0]).tolist(), "drift_pct": float((l1[-1] / l1[0] - 1.0) * 100.0),
            "ratio_ci": ci, "drift_pct_ci": [(ci["lo"][-1] - 1.0) * 100.0, (ci["hi"][-1] - 1.0) * 100.0],
            "n_boot": int(n_boot)}


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
                  stay_chunk: int = STAY_CHUNK) -> dict:
    """Drift curves per context for the model and the two latent baselines.

    latents (U, D) indexed by the corpus ids (a memory-mapped file is read a chunk of
    ``stay_chunk`` stays at a time: only (chunk, C+H, D) arrays are ever built);
    state_ids/action_ids (N, T) with -1 padding; ``predictor=None`` computes the baselines only.
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
            if predictor is not None:
                a = np.asarray(latents[action_ids[sub, : C + H]], dtype=np.float32)  # (n, C+H, D)
                d = np.asarray(latents[demo_ids[sub]], dtype=np.float32)  # (n, D)
                preds["model"] = model_rollout(predictor, d, s_ctx, a, H, batch_size)
            for name, p in preds.items():
                errs.setdefault(name, []).append(l1_per_step(p, z))  # (n, H)
        entry["methods"] = {name: summarize(np.concatenate(e)) for name, e in errs.items()}
        result["contexts"][str(C)] = entry
    result["summary"] = _summary(result["contexts"])
    return result


def _summary(contexts: dict) -> dict:
    """Mean drift % over the contexts that had eligible stays, per method."""
    out = {}
    for m in METHODS:
        vals = [c["methods"][m]["drift_pct"] for c in contexts.values()
                if "methods" in c and m in c["methods"] and c["methods"][m]["drift_pct"] is not None]
        out[m] = {"mean_drift_pct": float(np.mean(vals)) if vals else None, "n_contexts": len(vals)}
    return out
