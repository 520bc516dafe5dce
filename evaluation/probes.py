"""Probes on frozen latents (a linear probe and a small MLP, chosen on validation), and the
shared early-stopped training loop.

Representation of a stay at hour k (its ``last_hour``), from the run's online encoder
latents and the trained predictor (both frozen):

    probe:          [d, s_k, mean(s_0..s_k), f_k]          (4D)
    probe_rollout:  [d, s_k, mean(r_1..r_R), r_R]          (4D)

d = demographics latent, s_t = state latent of hour t, f_k = the predictor's one-step
forecast for hour k+1 from the teacher-forced window (block-causal, so it sees only
hours <= k), r_1..r_R = the latents rolled out R = eval.probe_rollout_hours hours from
context 0..k with the LAST OBSERVED action repeated (real future actions would leak the
outcome). Without a predictor, f_k / r are left out.

The probe (docs/evaluation.md): inputs standardised with train-row statistics; candidates
``linear`` (an MLP with no hidden layer: Linear(4D, 1); L2-penalised logistic regression
fitted to convergence by full-batch L-BFGS, once per penalty in eval.probe_l2) and ``mlp``
(Linear(4D, hidden) - GELU - Dropout - Linear(hidden, 1); AdamW with weight decay, early
stopping on validation loss, best weights restored, the untrained start included). Output
layers start at zero weights and the train log-odds bias (= predicting the prevalence).
The candidate with the lowest validation BCE is used (``prior``, a constant at the train
prevalence, when none beats it); the test split is never looked at.
d is nearly unique per stay, so a wide MLP memorises stays at once: the validation loss
(other stays) is what keeps it honest.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from clin_jepa.evaluation.streaming import STAY_CHUNK, HourLatents, chunks
from torch import nn

from clin_jepa.utils import get_logger

log = get_logger(__name__)


def fit_binary(model: nn.Module, forward: Callable[[nn.Module, np.ndarray], tuple[torch.Tensor, torch.Tensor]],
               train_units: np.ndarray, val_units: np.ndarray, epochs: int, lr: float, patience: int,
               batch_size: int, seed: int, weight_decay: float = 1e-4) -> float:
    """Train ``model``; forward(model, units) -> (logits (R,), targets (R,)) for a batch of
    units (rows, or stays for sequence models). Early stopping on validation BCE, best
    weights (the untrained start included) restored. Returns the best validation BCE."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    logits, target = predict_logits(model, forward, val_units, batch_size)
    best, bad = float(loss_fn(logits, target)), 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for _ in range(epochs):
        model.train()
        perm = rng.permutation(train_units)
        for i in range(0, len(perm), batch_size):
            logits, target = forward(model, perm[i: i + batch_size])
            loss = loss_fn(logits, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        logits, target = predict_logits(model, forward, val_units, batch_size)
        val = float(loss_fn(logits, target))
        if val < best - 1e-5:
            best, bad = val, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return best


@torch.no_grad()
def predict_logits(model: nn.Module, forward, units: np.ndarray, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, targets) over ``units`` in batches, eval mode."""
    model.eval()
    out = [forward(model, units[i: i + batch_size]) for i in range(0, len(units), batch_size)]
    if not out:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])


PROBE_KINDS = ("linear", "mlp")


class Probe(nn.Module):
    """``linear``: Linear(P, 1); ``mlp``: Linear(P, hidden) - GELU - Dropout - Linear(hidden, 1).
    The output layer starts at zero weights and bias ``prior_logit`` (the train log-odds)."""

    def __init__(self, kind: str, dim: int, hidden: int, dropout: float, prior_logit: float):
        super().__init__()
        if kind not in PROBE_KINDS:
            raise ValueError(f"unknown probe kind {kind!r}; set eval.probe_kinds to a subset of {PROBE_KINDS}")
        head = nn.Linear(dim if kind == "linear" else hidden, 1)
        nn.init.zeros_(head.weight)
        nn.init.constant_(head.bias, prior_logit)
        body = [] if kind == "linear" else [nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*body, head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # (B,)


def standardize(x: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
    """x (R, P) -> (R, P) float32 standardised with the mean / sd of rows ``train_idx``."""
    mean = x[train_idx].mean(axis=0, dtype=np.float64)
    sd = x[train_idx].std(axis=0, dtype=np.float64)
    sd = np.where(sd > 1e-6, sd, 1.0)  # constant features stay 0
    return ((x - mean) / sd).astype(np.float32)


def fit_predict_probe(x: np.ndarray, y: np.ndarray, train_idx, val_idx, test_idx, cfg,
                      seed: int) -> tuple[np.ndarray, dict]:
    """Fit each of eval.probe_kinds on rows ``train_idx`` of x (R, P); keep the one with the
    lowest validation BCE (the linear probe once per penalty in eval.probe_l2; ``prior``, the
    train prevalence as a constant, when nothing beats it). Returns
    (test probabilities, {"kind": chosen candidate, "val_loss": {candidate: BCE}})."""
    xt = torch.from_numpy(standardize(x, train_idx))  # (R, P)
    yt = torch.from_numpy(y.astype(np.float32))
    prev = float(np.clip(y[train_idx].mean(), 1e-4, 1 - 1e-4)) if len(train_idx) else 0.5
    prior = float(np.log(prev / (1 - prev)))

    def forward(m, idx):
        return m(xt[idx]), yt[idx]

    yv = yt[torch.from_numpy(np.asarray(val_idx, dtype=np.int64))]
    prior_loss = float(nn.functional.binary_cross_entropy_with_logits(torch.full_like(yv, prior), yv))
    candidates = [("prior", None, prior_loss)]  # (name, model, validation BCE); prior = predict the prevalence
    for kind in cfg.probe_kinds:
        torch.manual_seed(seed)
        if kind == "linear":
            for l2 in sorted(cfg.probe_l2, reverse=True):  # strongest penalty first (ties keep it)
                model = Probe(kind, x.shape[1], cfg.probe_hidden, cfg.probe_dropout, prior)
                candidates.append((f"linear(l2={l2:g})", model, fit_linear(model, xt, yt, train_idx, val_idx, l2)))
        else:
            model = Probe(kind, x.shape[1], cfg.probe_hidden, cfg.probe_dropout, prior)
            loss = fit_binary(model, forward, train_idx, val_idx, cfg.probe_epochs, cfg.probe_lr, cfg.patience,
                              cfg.probe_batch_size, seed, weight_decay=cfg.probe_weight_decay)
            candidates.append((kind, model, loss))
    losses = {name: round(loss, 6) for name, _, loss in candidates}
    lowest = min(loss for _, _, loss in candidates)
    best_kind, best_model, _ = next(c for c in candidates if c[2] <= lowest + 1e-7)  # ties: prior / stronger L2
    if best_model is None:  # nothing beats the prevalence on validation: a constant (test AUROC 0.5)
        return np.full(len(test_idx), prev, dtype=np.float32), {"kind": best_kind, "val_loss": losses}
    probs = torch.sigmoid(predict_logits(best_model, forward, test_idx, cfg.probe_batch_size)[0]).numpy()
    return probs, {"kind": best_kind, "val_loss": losses}


def fit_linear(model: Probe, xt: torch.Tensor, yt: torch.Tensor, train_idx, val_idx, l2: float) -> float:
    """Full-batch L-BFGS on mean train BCE + l2/2 * ||w||^2 (bias free); returns the validation BCE.
    Convex, so the optimum does not depend on the seed."""
    head = model.net[-1]
    ti = torch.from_numpy(np.asarray(train_idx, dtype=np.int64))
    x, y = xt[ti], yt[ti]  # (n, P), (n,)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=200, tolerance_grad=1e-6,
                            line_search_fn="strong_wolfe")
    loss_fn = nn.BCEWithLogitsLoss()

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y) + 0.5 * l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    model.train()
    opt.step(closure)
    model.eval()
    with torch.no_grad():
        vi = torch.from_numpy(np.asarray(val_idx, dtype=np.int64))
        return float(loss_fn(model(xt[vi]), yt[vi]))


def fit_predict_mlp(x: np.ndarray, y: np.ndarray, train_idx, val_idx, test_idx, cfg, seed: int) -> np.ndarray:
    """Test probabilities of :func:`fit_predict_probe` (the selected probe)."""
    return fit_predict_probe(x, y, train_idx, val_idx, test_idx, cfg, seed)[0]


# ---------------------------------------------------------------------- #
# latent representations
# ---------------------------------------------------------------------- #


# Parts of a probe's input at hour k, by name (each (R, D), except c: (R, W) with W = predictor.width)
PARTS = {
    "d": "demographics latent",
    "s": "state latent of hour k",
    "mean_s": "mean of the state latents of hours 0..k",
    "f": "the predictor's teacher-forced forecast of hour k+1",
    "c": "the predictor's contextual state at hour k (final hidden state of the hour-k state token)",
    "a": "action latent of hour k",
    "mean_a": "mean of the action latents of hours 0..k",
}
PREDICTOR_PARTS = ("f", "c")  # left out without a predictor
# Probes on the frozen latents (METHOD 8: ``probe``) and on what the world model adds (issue 11):
# its contextual state alone, and with the treatment history. Names are the tasks.json methods.
REPRESENTATIONS: dict[str, tuple[str, ...]] = {
    "probe": ("d", "s", "mean_s", "f"),
    "probe_context": ("c",),
    "probe_actions": ("c", "mean_a"),
}
WORLD_MODEL_PROBES = ("probe_context", "probe_actions")  # candidates: eval.world_probe_kinds (default linear)


@torch.no_grad()
def teacher_forced(predictor, d: np.ndarray, s: np.ndarray, a: np.ndarray, mask: np.ndarray,
                   batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """d (N,D), s/a (N,T,D), mask (N,T) -> forecasts (N,T,D), out[:, k] = forecast of hour k+1,
    and contextual states (N,T,W), zero on padding: the predictor's final hidden state (after its
    last LayerNorm) at the state token of hour k, i.e. the input of its output projection
    (f_k = predictor.out(c_k)), read with a forward hook in the same pass. Block-causal: the
    hour-k token attends to d and the pairs (s_t, a_t) of hours t <= k only."""
    predictor.eval()
    seen: list[torch.Tensor] = []
    hook = predictor.out.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0]))
    f_out, c_out = [], []
    try:
        for i in range(0, len(d), batch_size):
            sl = slice(i, i + batch_size)
            seen.clear()
            m = torch.from_numpy(mask[sl])
            f = predictor(torch.from_numpy(d[sl]), torch.from_numpy(s[sl]), torch.from_numpy(a[sl]), m)  # (B, T, D)
            if len(seen) != 1:  # the forward pass applies the output projection once, to the state tokens
                raise RuntimeError(f"predictor.out ran {len(seen)} times in one teacher-forced pass (expected 1)")
            c = seen[0].masked_fill(~m[..., None], 0.0)  # (B, T, W)
            f_out.append(f.float().numpy())
            c_out.append(c.float().numpy())
    finally:
        hook.remove()
    return np.concatenate(f_out, axis=0), np.concatenate(c_out, axis=0)


def teacher_forced_forecasts(predictor, d: np.ndarray, s: np.ndarray, a: np.ndarray, mask: np.ndarray,
                             batch_size: int = 64) -> np.ndarray:
    """d (N,D), s/a (N,T,D), mask (N,T) -> (N,T,D): out[:, k] = forecast of hour k+1."""
    return teacher_forced(predictor, d, s, a, mask, batch_size)[0]


_ALIASES = {"cummean": "mean_s", "forecast": "f"}  # older names of two parts


def _cummean(x: np.ndarray) -> np.ndarray:
    """(n, T, D) -> (n, T, D): out[:, k] = mean of x[:, 0..k]."""
    return (np.cumsum(x, axis=1) / np.arange(1, x.shape[1] + 1, dtype=np.float32)[None, :, None]).astype(np.float32)


class StayFeatures:
    """Per-stay probe representations, computed a chunk of stays at a time (never (N, T, D)
    for all stays): ``block(rows)`` -> d (n,D), s (n,T,D) zeros on padding, a (n,T,D) zeros on
    padding, mean_s and mean_a (n,T,D) running means, f (n,T,D) forecasts and c (n,T,W)
    contextual states (None without a predictor)."""

    def __init__(self, latents: np.ndarray, demo_ids, state_ids, action_ids, lengths, predictor,
                 batch_size: int = 64, stay_chunk: int = STAY_CHUNK):
        self.latents, self.demo_ids, self.lengths, self.predictor = latents, demo_ids, lengths, predictor
        self.batch_size, self.stay_chunk = batch_size, stay_chunk
        self.T, self.D = state_ids.shape[1], latents.shape[1]
        self.states = HourLatents(latents, self._masked(state_ids, lengths), fill=0, zero_padding=True)
        self.actions = HourLatents(latents, self._masked(action_ids, lengths), fill=1, zero_padding=True)

    @staticmethod
    def _masked(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """ids with hours at or past a stay's length set to -1 (padding)."""
        mask = np.arange(ids.shape[1])[None, :] < lengths[:, None]  # (N, T)
        return np.where(mask, ids, -1)

    def width(self, part: str) -> int:
        """Columns of one part (c: the predictor's width; the others: the latent size D)."""
        return self.predictor.config.width if part == "c" else self.D

    def block(self, rows: np.ndarray) -> dict[str, np.ndarray | None]:
        mask = np.arange(self.T)[None, :] < self.lengths[rows][:, None]  # (n, T)
        d = np.asarray(self.latents[self.demo_ids[rows]], dtype=np.float32)  # (n, D)
        s, a = self.states[rows], self.actions[rows]  # (n, T, D) each
        f = c = None
        if self.predictor is not None:
            f, c = teacher_forced(self.predictor, d, s, a, mask, self.batch_size)  # (n, T, D), (n, T, W)
        return {"d": d, "s": s, "a": a, "mean_s": _cummean(s), "mean_a": _cummean(a), "f": f, "c": c}

    def __getitem__(self, key: str) -> np.ndarray | None:
        """One representation for ALL stays, e.g. feats["f"] (N, T, D): materialises it,
        for inspection of small inputs (the evaluation itself uses by_chunk)."""
        return self.block(np.arange(len(self.lengths)))[_ALIASES.get(key, key)]

    def by_chunk(self, rows: np.ndarray):
        """Yield (positions into ``rows``, block of their stays, local index of each position's
        stay in the block) over chunks of the distinct stays of ``rows`` (R,)."""
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        stays = np.unique(rows)
        for part in chunks(len(stays), self.stay_chunk):
            cs = stays[part]
            lo, hi = np.searchsorted(sorted_rows, cs[0], "left"), np.searchsorted(sorted_rows, cs[-1], "right")
            sel = order[lo:hi]
            yield sel, self.block(cs), np.searchsorted(cs, rows[sel])


def state_features(latents: np.ndarray, demo_ids, state_ids, action_ids, lengths, predictor,
                   batch_size: int = 64, stay_chunk: int = STAY_CHUNK) -> StayFeatures:
    """Per-stay features for the probes, streamed (:class:`StayFeatures`)."""
    return StayFeatures(latents, demo_ids, state_ids, action_ids, lengths, predictor, batch_size, stay_chunk)


def available(representation: tuple[str, ...], has_predictor: bool) -> tuple[str, ...]:
    """The parts of a representation that can be computed (the predictor's need a predictor)."""
    bad = [p for p in representation if p not in PARTS]
    if bad:
        raise ValueError(f"unknown probe input parts {bad}; choose from {', '.join(PARTS)}")
    return tuple(p for p in representation if has_predictor or p not in PREDICTOR_PARTS)


_SYMBOLS = {"d": "d", "s": "s_k", "mean_s": "mean(s_0..s_k)", "f": "f_k", "c": "c_k", "a": "a_k",
            "mean_a": "mean(a_0..a_k)"}


def describe(parts: tuple[str, ...]) -> str:
    """'[d, s_k, mean(s_0..s_k), f_k]' for a tuple of PARTS (tasks.json ``representation``)."""
    return "[" + ", ".join(_SYMBOLS[p] for p in parts) + "]"


def probe_inputs(feats: StayFeatures, rows: np.ndarray, last_hour: np.ndarray,
                 parts: tuple[str, ...] = REPRESENTATIONS["probe"]) -> np.ndarray:
    """(R, P) rows' inputs at hour ``last_hour``: the ``parts`` (PARTS) side by side, e.g. the
    default [d, s_k, mean(s_0..s_k), f_k] (4D; 3D without a predictor). Streamed over chunks of stays."""
    parts = available(parts, feats.predictor is not None)
    if not parts:
        raise ValueError("this probe reads only the predictor's outputs and there is no predictor")
    out = np.zeros((len(rows), sum(feats.width(p) for p in parts)), dtype=np.float32)
    for sel, b, loc in feats.by_chunk(rows):
        k = last_hour[sel]
        out[sel] = np.concatenate([b[p][loc] if p == "d" else b[p][loc, k] for p in parts], axis=1)
    return out


def multi_probe_inputs(feats: StayFeatures, rows: np.ndarray, last_hour: np.ndarray,
                       representations: dict[str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    """{name: (R, P_name)} for several representations in ONE pass over the stays (the
    predictor runs once per chunk of stays for all of them)."""
    has = feats.predictor is not None
    reps = {n: available(p, has) for n, p in representations.items()}
    reps = {n: p for n, p in reps.items() if p}  # predictor-only probes without a predictor: none
    out = {n: np.zeros((len(rows), sum(feats.width(q) for q in p)), dtype=np.float32) for n, p in reps.items()}
    for sel, b, loc in feats.by_chunk(rows):
        k = last_hour[sel]
        cols = {q: (b[q][loc] if q == "d" else b[q][loc, k]) for q in {q for p in reps.values() for q in p}}
        for n, p in reps.items():
            out[n][sel] = np.concatenate([cols[q] for q in p], axis=1)
    return out


@torch.no_grad()
def rollout_inputs(feats: StayFeatures, predictor, rows: np.ndarray, last_hour: np.ndarray, hours: int,
                   batch_size: int = 64) -> np.ndarray:
    """(R, 4D): [d, s_k, mean(r_1..r_R), r_R], rolled out from context 0..k, last action repeated."""
    predictor.eval()
    R, D = len(rows), feats.D
    out = np.zeros((R, 4 * D), dtype=np.float32)
    for sel, blk, loc in feats.by_chunk(rows):
        d, s, act = blk["d"], blk["s"], blk["a"]
        out[sel, :D], out[sel, D: 2 * D] = d[loc], s[loc, last_hour[sel]]
        for k in np.unique(last_hour[sel]):
            at_k = sel[last_hour[sel] == k]
            lk = loc[last_hour[sel] == k]
            C = int(k) + 1
            H = min(hours, feats.T - C)  # the predictor holds at most T steps
            for i in range(0, len(at_k), batch_size):
                b, r = at_k[i: i + batch_size], lk[i: i + batch_size]
                if H < 1:  # context fills the window: nothing to roll out, use the last state
                    out[b, 2 * D:] = np.concatenate([s[r, k], s[r, k]], axis=1)
                    continue
                a_last = act[r, C - 1: C]  # (B, 1, D)
                a = np.concatenate([act[r, :C], np.repeat(a_last, H, axis=1)], axis=1)  # (B, C+H, D)
                z = predictor.rollout(torch.from_numpy(d[r]), torch.from_numpy(s[r, :C]),
                                      torch.from_numpy(a), horizon=H).float().numpy()  # (B, H, D)
                out[b, 2 * D:] = np.concatenate([z.mean(axis=1), z[:, -1]], axis=1)
    return out
