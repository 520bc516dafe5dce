"""Counterfactual fidelity on the embedded default: the world model's predicted treatment
effects scored against the simulator's true ones (docs/whatif.md).

For each contrast (A, B) of a scenario file and each stay of the cohort:

    predicted effect  p(v, h) = decoded v on A's rollout - decoded v on B's, at hour K+h-1
    true effect       y(v, h) = v under A - v under B in the simulator's replay of the stay
                                (clin_jepa.data.synth_replay: same patient, same noise)

per variable v (decoded vitals and labs the simulator reports; SOFA is not simulated) and
horizon h = 1..H:

- sign accuracy: share of stays where sign(p) = sign(y), over stays whose true effect is
  material (|y| > TOL x the variable's sd); p = 0 counts one half;
- correlation: Pearson r of p and y over stays; MAE: mean |p - y|.

References on the same stays: ``action_blind`` (effect 0: sign accuracy 1/2, MAE = mean |y|)
and ``regression``, a per-variable least-squares model of the value at hour K+h-1 on the last
value observed before K, the horizon and the action input of the hour before (NEE,
ventilation, RRT, antibiotics, bolus litres), fitted on the train split's observational
rows at the same K: its effect is the change of its prediction when the actions change. Like the world
model it learns from confounded data; neither can be judged on real data this way.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from clin_jepa.config import SynthConfig
from clin_jepa.data.synth import population
from clin_jepa.data.synth_replay import REPLAY_VARIABLES, counterfactuals
from clin_jepa.whatif_scenarios import ScenarioSet, simulator_overrides

METHODS = ("model", "action_blind", "regression")
TOL = 0.01  # a true effect below TOL x sd(variable) is no effect: left out of the sign accuracy
REG_ACTIONS = ("nee", "ventilation", "rrt", "antibiotics", "fluid_bolus_ml")
MIN_STAYS = 5  # fewer eligible stays: no score (an aggregate of 1-4 stays is patient-level)


def synthetic_config(wi=None, cfg=None) -> SynthConfig | None:
    """The run's synth settings when its cohort (of a WhatIf ``wi``, or read from the data
    directory of the RunConfig ``cfg``: cheap, before any model is loaded) is stays of that
    synthetic MIMIC-IV, else None (real data, or other synth settings: nothing to replay)."""
    if wi is not None:
        cfg, stays = wi.cfg, wi.corpus.stay_ids
    else:
        import polars as pl

        stays = pl.read_parquet(cfg.data_path / "cohort.parquet", columns=["stay_id"])["stay_id"].to_numpy()
    return cfg.synth if len(stays) and np.isin(stays, population(cfg.synth)["stay_ids"]).all() else None


def _last_before(values: np.ndarray, rows: np.ndarray, K: int) -> np.ndarray:
    """(n, V) last value observed in hours 0..K-1 (NaN if none)."""
    x = values[rows, :K]  # (n, K, V)
    seen = np.isfinite(x)
    last = K - 1 - np.argmax(seen[:, ::-1], axis=1)  # (n, V)
    out = np.take_along_axis(x, last[:, None, :], axis=1)[:, 0]
    return np.where(seen.any(axis=1), out, np.nan)


def _action_features(wi, rows, K, H, settings) -> np.ndarray:
    """(n, H, A) for the value at hour K+h-1: the action input just before it, a_{K+h-2} (bolus
    in litres). (A running mean over a_{K-1}.. as well made the two collinear and their
    coefficients cancel with opposite signs on the planted-effect simulator.)"""
    _, acts = wi.scenario_actions(rows, K, H, settings)
    a = np.array(acts.select(REG_ACTIONS).fill_null(0.0).to_numpy(), np.float64).reshape(len(rows), H, -1)
    a[..., -1] /= 1000.0
    return a


def _design(last: np.ndarray, acts: np.ndarray, mean: float) -> np.ndarray:
    """(n, H, 1+H+A) rows: [last value before K (train mean if none), horizon one-hot, actions]."""
    n, H, _ = acts.shape
    lv = np.where(np.isfinite(last), last, mean)[:, None, None].repeat(H, axis=1)
    hot = np.broadcast_to(np.eye(H)[None], (n, H, H))
    return np.concatenate([lv, hot, acts], axis=-1)  # (n, H, 1+H+A)


def regression_effects(wi, rows, K, H, scenarios: ScenarioSet, variables) -> dict[str, np.ndarray]:
    """scenario -> (n, H, V) predictions of the per-variable action regression (fitted on train)."""
    from sklearn.linear_model import Ridge

    values = wi.values()  # (N, T, V_dec)
    col = [wi.variables.index(v) for v in variables]
    train = wi.eligible(K, H, "train")
    a_tr = _action_features(wi, train, K, H, ())
    last_tr, last_te = _last_before(values, train, K)[:, col], _last_before(values, rows, K)[:, col]
    y_tr = np.full((len(train), H, len(col)), np.nan, np.float32)  # (n_tr, H, V) observed, hours K..K+H-1
    seen = values[train, K: K + H][:, :, col]  # hours past the window stay NaN
    y_tr[:, : seen.shape[1]] = seen
    feats = {s: _action_features(wi, rows, K, H, st) for s, st in scenarios.scenarios.items()}
    out = {s: np.full((len(rows), H, len(variables)), np.nan, np.float32) for s in scenarios.scenarios}
    for j in range(len(variables)):
        mean = float(np.nanmean(last_tr[:, j])) if np.isfinite(last_tr[:, j]).any() else 0.0
        X = _design(last_tr[:, j], a_tr, mean).reshape(-1, 1 + H + a_tr.shape[-1])
        y = y_tr[:, :, j].reshape(-1)
        ok = np.isfinite(y)
        if ok.sum() < 20:
            continue
        reg = Ridge(alpha=1e-3).fit(X[ok], y[ok])
        for s, f in feats.items():
            out[s][:, :, j] = reg.predict(_design(last_te[:, j], f, mean).reshape(-1, X.shape[1])).reshape(len(rows), H)
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation, None when undefined (fewer than 3 values, or a constant side: a spread
    of rounding size gives a non-finite value, not a warning)."""
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    with np.errstate(all="ignore"):
        r = float(np.corrcoef(a, b)[0, 1])
    return r if np.isfinite(r) else None


def _metrics(p: np.ndarray, y: np.ndarray, tol: float) -> dict:
    """(n, H) predicted and true effects -> per-horizon sign accuracy, correlation, MAE (None = undefined)."""
    sign, corr, mae = [], [], []
    for h in range(y.shape[1]):
        ok = np.isfinite(y[:, h]) & np.isfinite(p[:, h])
        mat = ok & (np.abs(y[:, h]) > tol)
        hit = np.where(p[mat, h] == 0, 0.5, np.sign(p[mat, h]) == np.sign(y[mat, h]))
        sign.append(float(hit.mean()) if mat.any() else None)
        mae.append(float(np.abs(p[ok, h] - y[ok, h]).mean()) if ok.any() else None)
        corr.append(_corr(p[ok, h], y[ok, h]))
    return {"sign_accuracy": sign, "correlation": corr, "mae": mae}


def _pooled(p: np.ndarray, y: np.ndarray, tol: float) -> dict:
    ok = np.isfinite(y) & np.isfinite(p)
    mat = ok & (np.abs(y) > tol)
    hit = np.where(p[mat] == 0, 0.5, np.sign(p[mat]) == np.sign(y[mat]))
    return {"sign_hits": float(hit.sum()), "material": int(mat.sum()),
            "correlation": _corr(p[ok], y[ok]),
            "mae": float(np.abs(p[ok] - y[ok]).mean()) if ok.any() else None,
            "mae_blind": float(np.abs(y[ok]).mean()) if ok.any() else None}


def score(wi, scenarios: ScenarioSet, from_hour: int, horizon: int, rows: np.ndarray,
          synth: SynthConfig, base=None) -> dict:
    """Fidelity of the run's predicted effects for ``rows`` (corpus rows, >= MIN_STAYS) -> JSON-ready
    aggregates (no stay id). See the module docstring. ``base``: the policy hook the synthetic
    data was generated with (``synth.generate(policy=...)``), if any."""
    t0 = time.perf_counter()
    K, H = int(from_hour), int(horizon)
    if len(rows) < MIN_STAYS:
        return {"status": f"{len(rows)} eligible stays (< {MIN_STAYS}): not scored", "n_stays": int(len(rows))}
    sim = {s: simulator_overrides(st) for s, st in scenarios.scenarios.items()}
    variables = [v for v in wi.variables if v in REPLAY_VARIABLES]
    col = [wi.variables.index(v) for v in variables]
    pred = {s: x[:, :, col] for s, x in wi.scenario_rollouts(rows, K, scenarios, H).items()}  # (n, H, V)
    t_model = time.perf_counter() - t0
    truth = counterfactuals(synth, wi.corpus.stay_ids[rows], K, H, sim, base)
    t_sim = time.perf_counter() - t0 - t_model
    reg = regression_effects(wi, rows, K, H, scenarios, variables)
    out: dict = {"from_hour": K, "horizon": H, "n_stays": int(len(rows)), "scenario_file": scenarios.name,
                 "variables": variables, "tolerance_sd": TOL, "contrasts": {}}
    pooled = {m: [] for m in METHODS}
    for a, b in scenarios.contrasts:
        y = np.stack([truth[a][v] - truth[b][v] for v in variables], axis=-1)  # (n, H, V)
        effects = {"model": pred[a] - pred[b], "action_blind": np.zeros_like(y), "regression": reg[a] - reg[b]}
        entry: dict = {"variables": {}, "summary": {}}
        for j, v in enumerate(variables):
            fact = np.concatenate([truth[s][v].ravel() for s in (a, b)])
            tol = TOL * float(np.nanstd(fact)) if np.isfinite(fact).sum() > 1 else 0.0
            entry["variables"][v] = {"true_effect_mean": _nanmean(y[:, :, j]),
                                     **{m: _metrics(e[:, :, j], y[:, :, j], tol) for m, e in effects.items()}}
            for m, e in effects.items():
                pooled[m].append(_pooled(e[:, :, j], y[:, :, j], tol) | {"contrast": f"{a} - {b}"})
        for m in METHODS:
            rs = [r for r in pooled[m] if r["contrast"] == f"{a} - {b}"]
            entry["summary"][m] = _summarize(rs)
        out["contrasts"][f"{a} - {b}"] = entry
    out["summary"] = {m: _summarize(pooled[m]) for m in METHODS}
    out["timing_s"] = {"model": round(t_model, 2), "simulator": round(t_sim, 2),
                      "total": round(time.perf_counter() - t0, 2)}
    return out


def _nanmean(x: np.ndarray) -> list:
    with warnings.catch_warnings():  # a column without any finite value is None, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0) if np.isfinite(x).any() else np.full(x.shape[1], np.nan)
    return [float(v) if np.isfinite(v) else None for v in m]


def _summarize(rs: list[dict]) -> dict:
    """Pooled over variables (and contrasts): sign accuracy over all material (stay, hour, variable)
    effects; median over variables of the correlation and of MAE / the action-blind MAE (units cancel)."""
    mat = sum(r["material"] for r in rs)
    corr = [r["correlation"] for r in rs if r["correlation"] is not None]
    ratio = [r["mae"] / r["mae_blind"] for r in rs if r["mae"] is not None and r["mae_blind"]]
    return {"sign_accuracy": sum(r["sign_hits"] for r in rs) / mat if mat else None, "material_effects": int(mat),
            "median_correlation": float(np.median(corr)) if corr else None,
            "median_mae_ratio": float(np.median(ratio)) if ratio else None}


__all__ = ["METHODS", "MIN_STAYS", "regression_effects", "score", "synthetic_config"]
