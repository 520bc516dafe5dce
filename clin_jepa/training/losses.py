"""The JEPA objective (METHOD 5) and collapse monitors.

loss = tf_weight * teacher-forcing L1 + rollout_weight * rollout L1 (+ reg_weight * reg)

The rollout L1 is summed over its R steps (the reference code's weighting; `loss.rollout_reduction:
mean` averages them instead, which halves its weight relative to teacher forcing at R = 2).

Every L1 is summed over latent dimensions and averaged over valid (sample, hour) pairs.
Teacher forcing compares the predictions at s_1..s_{T-1} (1-based; out[:, :-1]) with the
target latents of hours 2..T (target[:, 1:]). The rollout term starts at a random hour k
per sample (drawn with ``generator``) and covers ``rollout_steps`` hours k+1..k+R:
"native" chains the predictor's own outputs (gradients flow through the chain);
"teacher_forced" reads the predictions from the true history. Samples with fewer than
R+1 valid hours are left out of the rollout term.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from clin_jepa.config import LossConfig

ROLLOUT_MODES = ("native", "teacher_forced")
REGULARIZERS = ("none", "vicreg", "sigreg")  # loss.regularizer (jepa_loss below)


def _l1(pred: Tensor, target: Tensor) -> Tensor:
    """(..., D), (..., D) -> (...) L1 summed over the latent dimension, in float32."""
    return (pred.float() - target.float()).abs().sum(dim=-1)


def _masked_mean(x: Tensor, valid: Tensor) -> Tensor:
    return (x * valid).sum() / valid.sum().clamp_min(1)


def _check_inputs(d: Tensor, s: Tensor, a: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Validate shapes; return per-sample lengths (B,) of the prefix mask."""
    if s.ndim != 3 or a.shape != s.shape or target.shape != s.shape:
        raise ValueError(f"jepa_loss: s {tuple(s.shape)}, a {tuple(a.shape)} and target {tuple(target.shape)} "
                         "must all be (B, T, D)")
    B, T, D = s.shape
    if d.shape != (B, D):
        raise ValueError(f"jepa_loss: d has shape {tuple(d.shape)}, expected (B, D) = {(B, D)}")
    if mask.shape != (B, T) or mask.dtype != torch.bool:
        raise ValueError(f"jepa_loss: mask must be bool (B, T) = {(B, T)}, got {mask.dtype} {tuple(mask.shape)}")
    if T < 2:
        raise ValueError(f"jepa_loss: windows of {T} hour cannot predict a next hour; use data.window_hours >= 2")
    lengths = mask.sum(dim=1)  # (B,)
    if not torch.equal(mask, torch.arange(T, device=mask.device)[None, :] < lengths[:, None]):
        raise ValueError("jepa_loss: mask must be a prefix per sample (valid hours first, then padding), "
                         "as Corpus.batch produces; re-pad the batch")
    return lengths


def sample_rollout_starts(lengths: Tensor, steps: int, generator: torch.Generator | None = None
                          ) -> tuple[Tensor, Tensor]:
    """Random start hour k per sample, uniform on [0, length - steps - 1].

    Returns (k (B,) long, eligible (B,) bool); ineligible samples (too short) get k = 0.
    The draw happens on ``generator``'s device (CPU by default) and is moved to ``lengths``.
    """
    n_choices = (lengths - steps).clamp_min(0)  # (B,) number of valid starts
    dev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(lengths.shape[0], generator=generator, device=dev).to(lengths.device)
    k = (u * n_choices).floor().long().clamp_max((n_choices - 1).clamp_min(0))
    return k, n_choices > 0


# ---------------------------------------------------------------------- #
# anti-collapse regularisers (off by default)
# ---------------------------------------------------------------------- #


def vicreg_reg(z: Tensor, std_target: float = 1.0, cov_weight: float = 0.04) -> Tensor:
    """VICReg variance + covariance terms on latents z (N, D) -> scalar.

    variance: mean_d relu(std_target - std_d); covariance: sum of squared off-diagonal
    covariances / D, weighted by ``cov_weight``.
    """
    z = z.float()
    N, D = z.shape
    if N < 2:
        raise ValueError("vicreg needs at least 2 latents (valid hours) in the batch")
    std = torch.sqrt(z.var(dim=0) + 1e-4)  # (D,)
    var_term = torch.relu(std_target - std).mean()
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / (N - 1)  # (D, D)
    off = cov - torch.diag(torch.diagonal(cov))
    return var_term + cov_weight * off.pow(2).sum() / D


def sigreg(z: Tensor, directions: int = 256, knots: int = 17, t_max: float = 3.0,
           generator: torch.Generator | None = None) -> Tensor:
    """SIGReg (LeJEPA): Epps-Pulley test of N(0, 1) along random unit directions -> scalar.

    For each 1-D projection x of z (N, D): int w(t) |phi_x(t) - exp(-t^2/2)|^2 dt with
    w(t) = exp(-t^2/2), by the trapezoid rule on t in [0, t_max] (doubled by symmetry),
    averaged over directions. Zero iff the projections look standard Gaussian; not scaled
    by N (reg_weight absorbs the batch size).
    """
    z = z.float()
    N, D = z.shape
    dev = generator.device if generator is not None else torch.device("cpu")
    dirs = torch.randn(D, directions, generator=generator, device=dev).to(z.device)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)  # (D, M) unit columns
    x = z @ dirs  # (N, M)
    t = torch.linspace(0.0, t_max, knots, device=z.device)  # (K,)
    w = torch.full((knots,), t_max / (knots - 1), device=z.device)
    w[0] = w[-1] = w[0] / 2  # trapezoid weights
    gauss = torch.exp(-0.5 * t**2)  # (K,) characteristic function of N(0,1) and the weight
    xt = x[..., None] * t  # (N, M, K)
    err = (torch.cos(xt).mean(0) - gauss) ** 2 + torch.sin(xt).mean(0) ** 2  # (M, K)
    return 2.0 * (err @ (w * gauss)).mean()


# ---------------------------------------------------------------------- #
# the objective
# ---------------------------------------------------------------------- #


def jepa_loss(pred, d: Tensor, s: Tensor, a: Tensor, target: Tensor, mask: Tensor, cfg: LossConfig,
              rollout_mode: str = "native", generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Clin-JEPA loss of one batch -> {"loss", "tf", "rollout"} (+ "reg" when a regulariser is on).

    pred: the predictor (or an accelerate/DDP wrapper of it); d (B, D) demographics latents;
    s (B, T, D) input state latents (may carry grad into the encoder); a (B, T, D) action
    latents; target (B, T, D) target latents (detached here); mask (B, T) bool prefix mask.
    """
    if rollout_mode not in ROLLOUT_MODES:
        raise ValueError(f"rollout_mode={rollout_mode!r}: use one of {ROLLOUT_MODES}")
    lengths = _check_inputs(d, s, a, target, mask)
    target = target.detach()
    B, T, _ = s.shape
    R = cfg.rollout_steps
    rows = torch.arange(B, device=s.device)
    k, eligible = sample_rollout_starts(lengths, R, generator)
    k = k.clamp_max(max(T - R, 0))  # ineligible samples: any in-range start, masked below
    native = rollout_mode == "native" and R <= T - 1

    if native:
        out, chain = pred(d, s, a, mask, rollout_from=k, rollout_steps=R)  # (B, T, D), (B, R, D)
    else:
        out = pred(d, s, a, mask)  # (B, T, D)

    # teacher forcing: out[:, t] vs target[:, t+1] where both hours are valid
    tf_valid = mask[:, :-1] & mask[:, 1:]  # (B, T-1)
    tf = _masked_mean(_l1(out[:, :-1], target[:, 1:]), tf_valid)

    # rollout: hours k+1..k+R
    steps = k[:, None] + torch.arange(R, device=s.device)  # (B, R) position of the input state
    idx = steps.clamp_max(T - 2)
    tgt = target[rows[:, None], idx + 1]  # (B, R, D) targets of hours k+1..k+R
    roll_valid = eligible[:, None].expand(B, R)  # (B, R)
    if native:
        rollout = _masked_mean(_l1(chain, tgt), roll_valid)
    elif rollout_mode == "teacher_forced":
        rollout = _masked_mean(_l1(out[rows[:, None], idx], tgt), roll_valid)
    else:  # native but no window is long enough for R steps
        rollout = out.new_zeros((), dtype=torch.float32)
    if cfg.rollout_reduction == "sum":  # the reference sums the per-step L1 over its R steps
        rollout = rollout * R  # every eligible sample has all R steps valid: sum = R x mean

    result = {"tf": tf, "rollout": rollout}
    loss = cfg.tf_weight * tf + cfg.rollout_weight * rollout
    if cfg.regularizer != "none":
        z = s[mask]  # (N, D) valid state latents
        with torch.autocast(device_type=z.device.type, enabled=False):  # fp32: cos/sin of projections
            if cfg.regularizer == "vicreg":
                reg = vicreg_reg(z, cfg.vicreg_std_target, cfg.vicreg_cov_weight)
            else:
                reg = sigreg(z, cfg.sigreg_directions, cfg.sigreg_knots, generator=generator)
        result["reg"] = reg
        loss = loss + cfg.reg_weight * reg
    result["loss"] = loss
    return result


# ---------------------------------------------------------------------- #
# collapse monitors
# ---------------------------------------------------------------------- #


@torch.no_grad()
def z_std(latents: Tensor) -> float:
    """Mean over features of the per-feature std of latents (N, D); ~0 when collapsed."""
    if latents.ndim != 2 or latents.shape[0] < 2:
        raise ValueError(f"z_std needs latents (N >= 2, D), got {tuple(latents.shape)}")
    return float(latents.float().std(dim=0).mean())


@torch.no_grad()
def effective_rank(latents: Tensor, centered: bool = True) -> float:
    """RankMe: exp(entropy) of the normalised singular values of latents (N, D).

    centered (default): the per-feature mean is removed first, so a shared offset (every
    latent of a last-token encoder carries one) does not count as a dominant direction;
    0 when all rows are identical (collapse). Uncentred (RankMe as published): 1 for
    identical non-zero rows. Up to min(N, D) when isotropic; 0 for all-zero input.
    """
    if latents.ndim != 2 or latents.shape[0] < 1:
        raise ValueError(f"effective_rank needs latents (N, D), got {tuple(latents.shape)}")
    x = latents.double()  # (N, D)
    if centered:
        x = x - x.mean(dim=0, keepdim=True)
    sv = torch.linalg.svdvals(x)
    total = sv.sum()
    if total <= 1e-12 * max(1.0, float(x.abs().max())):
        return 0.0
    p = sv / total
    p = p[p > 0]
    return float(math.exp(-(p * p.log()).sum()))
