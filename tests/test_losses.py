"""The JEPA objective against hand computations; rollout modes; regularisers; collapse monitors."""

from __future__ import annotations

import math

import pytest
import torch

from clin_jepa.config import LossConfig, load_config
from clin_jepa.models.predictor import build_predictor
from clin_jepa.training.losses import (
    effective_rank,
    jepa_loss,
    sample_rollout_starts,
    sigreg,
    vicreg_reg,
    z_std,
)


def _pred(D: int, seed: int = 0):
    torch.manual_seed(seed)
    return build_predictor("debug", latent_dim=D).eval()


def _batch(B=3, T=6, D=8, lengths=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    d, s, a, tgt = (torch.randn(*shape, generator=g) for shape in ((B, D), (B, T, D), (B, T, D), (B, T, D)))
    lengths = torch.full((B,), T) if lengths is None else torch.tensor(lengths)
    mask = torch.arange(T)[None] < lengths[:, None]
    return d, s, a, tgt, mask


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------- #
# teacher forcing + rollout against hand computations
# ---------------------------------------------------------------------- #


@pytest.mark.parametrize("mode", ["native", "teacher_forced"])
def test_loss_matches_hand_computation_with_a_constant_predictor(mode):
    p = _pred(D=2)
    with torch.no_grad():  # output layer -> constant prediction c = (1, 0) at every valid hour
        p.out.weight.zero_()
        p.out.bias.copy_(torch.tensor([1.0, 0.0]))
    target = torch.tensor([[[0.0, 0.0], [2.0, 1.0], [0.0, 3.0]],
                           [[5.0, 5.0], [1.0, -1.0], [9.0, 9.0]]])  # (B=2, T=3, D=2); stay 1 has 2 hours
    mask = torch.tensor([[True, True, True], [True, True, False]])
    d, s, a = torch.zeros(2, 2), torch.randn(2, 3, 2), torch.randn(2, 3, 2)
    r = jepa_loss(p, d, s, a, target, mask, LossConfig(tf_weight=2.0, rollout_weight=0.5), mode, _gen())
    # tf pairs: stay 0: |c-(2,1)| = 2, |c-(0,3)| = 4; stay 1: |c-(1,-1)| = 1 (hour 2 is padding) -> 7/3
    assert r["tf"].item() == pytest.approx(7 / 3, abs=1e-5)
    # rollout (2 steps) needs 3 hours: only stay 0, k = 0, targets of hours 1, 2 -> summed over the
    # steps as in the reference code: 2 + 4
    assert r["rollout"].item() == pytest.approx(6.0, abs=1e-5)
    assert r["loss"].item() == pytest.approx(2 * 7 / 3 + 0.5 * 6.0, abs=1e-5)
    assert "reg" not in r
    # rollout_reduction=mean averages over the steps instead: (2 + 4) / 2
    m = jepa_loss(p, d, s, a, target, mask, LossConfig(tf_weight=2.0, rollout_weight=0.5,
                                                       rollout_reduction="mean"), mode, _gen())
    assert m["rollout"].item() == pytest.approx(3.0, abs=1e-5)
    assert m["loss"].item() == pytest.approx(2 * 7 / 3 + 0.5 * 3.0, abs=1e-5)


def test_teacher_forced_rollout_matches_manual_computation():
    p = _pred(D=8)
    d, s, a, tgt, mask = _batch(B=4, T=7, lengths=[7, 5, 3, 2])
    r = jepa_loss(p, d, s, a, tgt, mask, LossConfig(), "teacher_forced", _gen(3))
    k, eligible = sample_rollout_starts(mask.sum(1), 2, _gen(3))
    with torch.no_grad():
        out = p(d, s, a, mask)
    tf_terms, roll_terms = [], []
    for b in range(4):
        n = int(mask[b].sum())
        tf_terms += [(out[b, t] - tgt[b, t + 1]).abs().sum() for t in range(n - 1)]
        if n >= 3:
            assert eligible[b] and 0 <= k[b] <= n - 3
            roll_terms += [(out[b, k[b] + j] - tgt[b, k[b] + j + 1]).abs().sum() for j in range(2)]
        else:
            assert not eligible[b]
    assert r["tf"].item() == pytest.approx(torch.stack(tf_terms).mean().item(), rel=1e-5)
    assert r["rollout"].item() == pytest.approx(2 * torch.stack(roll_terms).mean().item(), rel=1e-5)  # sum of 2 steps


def test_native_rollout_matches_autoregressive_rollout():
    p = _pred(D=8)
    d, s, a, tgt, mask = _batch(B=3, T=6, lengths=[6, 6, 4])
    r = jepa_loss(p, d, s, a, tgt, mask, LossConfig(rollout_steps=3), "native", _gen(7))
    k, eligible = sample_rollout_starts(mask.sum(1), 3, _gen(7))
    assert eligible.all()
    with torch.no_grad():
        z = p.rollout(d, s[:, :int(k.max()) + 1], a, horizon=3, use_cache=False, ctx_lengths=k + 1)
    rows = torch.arange(3)[:, None]
    expected = (z - tgt[rows, k[:, None] + torch.arange(1, 4)]).abs().sum(-1).sum(-1).mean()  # sum of 3 steps
    assert r["rollout"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_native_gradients_flow_through_the_chain_only_from_the_past():
    p = _pred(D=8)
    d, s, a, tgt, mask = _batch(B=3, T=6)
    cfg = LossConfig(tf_weight=0.0)  # rollout term alone
    grads = {}
    for mode in ("native", "teacher_forced"):
        s_in = s.clone().requires_grad_(True)
        jepa_loss(p, d, s_in, a, tgt, mask, cfg, mode, _gen(1))["loss"].backward()
        grads[mode] = s_in.grad.abs().sum(-1)  # (B, T)
    k, _ = sample_rollout_starts(mask.sum(1), 2, _gen(1))
    for b in range(3):
        kb = int(k[b])
        # native: the 2nd step is fed the model's own prediction, so the true s_{k+1} is never used
        assert (grads["native"][b, :kb + 1] > 0).all()
        assert (grads["native"][b, kb + 1:] == 0).all()
        # teacher-forced: the 2nd step reads the true s_{k+1}
        assert grads["teacher_forced"][b, kb + 1] > 0


def test_padding_does_not_change_the_loss():
    p = _pred(D=8)
    d, s, a, tgt, mask = _batch(B=2, T=6, lengths=[6, 3])
    r1 = jepa_loss(p, d, s, a, tgt, mask, LossConfig(), "native", _gen(2))
    s2, a2, t2 = s.clone(), a.clone(), tgt.clone()
    s2[1, 3:], a2[1, 3:], t2[1, 3:] = 1e4, -1e4, 1e4
    r2 = jepa_loss(p, d, s2, a2, t2, mask, LossConfig(), "native", _gen(2))
    for key in ("loss", "tf", "rollout"):
        assert r1[key].item() == pytest.approx(r2[key].item(), rel=1e-6)


def test_loss_is_deterministic_under_a_seeded_generator():
    p = _pred(D=8)
    d, s, a, tgt, mask = _batch(B=2, T=10)
    vals = [jepa_loss(p, d, s, a, tgt, mask, LossConfig(), "native", _gen(seed))["rollout"].item()
            for seed in (0, 0, 1, 2, 3, 4)]
    assert vals[0] == vals[1]
    assert len(set(vals)) > 2  # different seeds pick different start hours


def test_target_gets_no_gradient():
    p = _pred(D=8)
    d, s, a, tgt, mask = _batch()
    tgt = tgt.clone().requires_grad_(True)
    jepa_loss(p, d, s, a, tgt, mask, LossConfig(), "teacher_forced", _gen())["loss"].backward()
    assert tgt.grad is None


# ---------------------------------------------------------------------- #
# regularisers
# ---------------------------------------------------------------------- #


@pytest.mark.parametrize("reg", ["vicreg", "sigreg"])
def test_regularisers_are_finite_differentiable_and_weighted(reg):
    p = _pred(D=8)
    d, s, a, tgt, mask = _batch(lengths=[6, 4, 2])
    s = s.clone().requires_grad_(True)
    off = jepa_loss(p, d, s, a, tgt, mask, LossConfig(regularizer=reg, reg_weight=0.0), "native", _gen())
    on = jepa_loss(p, d, s, a, tgt, mask, LossConfig(regularizer=reg, reg_weight=0.5), "native", _gen())
    assert torch.isfinite(on["reg"]) and on["reg"].item() > 0
    assert off["loss"].item() == pytest.approx((off["tf"] + off["rollout"]).item(), rel=1e-6)
    assert on["loss"].item() == pytest.approx((on["tf"] + on["rollout"] + 0.5 * on["reg"]).item(), rel=1e-6)
    (g,) = torch.autograd.grad(on["reg"], s)
    assert g[mask].abs().sum() > 0 and (g[~mask] == 0).all()  # only valid state latents


@pytest.mark.parametrize("reg", ["vicreg", "sigreg"])
def test_regularisers_stay_fp32_under_bf16_autocast(reg):
    p = _pred(D=8)
    batch = _batch(lengths=[6, 5, 4])
    cfg = LossConfig(regularizer=reg)
    ref = jepa_loss(p, *batch, cfg, "native", _gen())["reg"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = jepa_loss(p, *batch, cfg, "native", _gen())["reg"]
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(ref.item(), rel=1e-6)


def test_regularisers_are_off_by_default():
    cfg = LossConfig()
    assert cfg.regularizer == "none" and cfg.reg_weight == 0.0
    p = _pred(D=8)
    r = jepa_loss(p, *_batch(), cfg, "native", _gen())
    assert set(r) == {"loss", "tf", "rollout"}


def test_vicreg_hand_values():
    collapsed = torch.ones(10, 4)
    assert vicreg_reg(collapsed).item() == pytest.approx(1 - math.sqrt(1e-4), abs=1e-6)
    x = torch.tensor([[-2.0, -2.0], [2.0, 2.0]])  # var 8 per feature, perfectly correlated
    assert vicreg_reg(x).item() == pytest.approx(0.04 * 2 * 8**2 / 2, rel=1e-5)


def test_sigreg_prefers_isotropic_gaussian():
    g = torch.Generator().manual_seed(0)
    gauss = torch.randn(4000, 8, generator=g)
    vals = {name: sigreg(z, 64, generator=_gen(1)).item()
            for name, z in {"gauss": gauss, "collapsed": torch.zeros(4000, 8), "scaled": 4 * gauss,
                            "shifted": gauss + 2}.items()}
    assert vals["gauss"] < 0.01
    assert min(vals["collapsed"], vals["scaled"], vals["shifted"]) > 10 * vals["gauss"]


# ---------------------------------------------------------------------- #
# collapse monitors
# ---------------------------------------------------------------------- #


def test_z_std_and_effective_rank():
    collapsed = torch.full((50, 16), 3.0)
    assert z_std(collapsed) == pytest.approx(0.0, abs=1e-6)
    assert effective_rank(collapsed) == 0.0  # centred: nothing varies
    assert effective_rank(collapsed, centered=False) == pytest.approx(1.0, abs=1e-6)  # RankMe as published
    iso = torch.randn(4000, 16, generator=torch.Generator().manual_seed(0))
    assert 0.95 < z_std(iso) < 1.05
    assert effective_rank(iso) > 15.5
    # a large shared offset dominates the uncentred spectrum but not the centred one
    shifted = iso + 50.0 * torch.ones(16)
    assert effective_rank(shifted, centered=False) < 2.0
    assert effective_rank(shifted) == pytest.approx(effective_rank(iso), rel=1e-6)
    two = torch.zeros(10, 16)
    two[::2, 0] = 1.0
    two[1::2, 1] = 1.0  # two orthogonal directions, equal energy
    assert effective_rank(two, centered=False) == pytest.approx(2.0, abs=1e-9)
    assert effective_rank(two) == pytest.approx(1.0, abs=1e-9)  # centred: one direction (e0 - e1)
    assert effective_rank(torch.zeros(5, 4)) == 0.0


# ---------------------------------------------------------------------- #
# bad input
# ---------------------------------------------------------------------- #


def test_bad_inputs_raise_clear_errors():
    p = _pred(D=8)
    d, s, a, tgt, mask = _batch(B=2, T=4)
    cfg = LossConfig()
    with pytest.raises(ValueError, match="rollout_mode"):
        jepa_loss(p, d, s, a, tgt, mask, cfg, "free_running")
    holes = mask.clone()
    holes[0, 1] = False
    with pytest.raises(ValueError, match="prefix"):
        jepa_loss(p, d, s, a, tgt, holes, cfg)
    with pytest.raises(ValueError, match="window_hours >= 2"):
        jepa_loss(p, d, s[:, :1], a[:, :1], tgt[:, :1], mask[:, :1], cfg)
    with pytest.raises(ValueError, match="must all be"):
        jepa_loss(p, d, s, a[:, :3], tgt, mask, cfg)
    with pytest.raises(ValueError, match="d has shape"):
        jepa_loss(p, d[:1], s, a, tgt, mask, cfg)
    with pytest.raises(ValueError, match="z_std needs"):
        z_std(torch.zeros(5))


@pytest.mark.parametrize("override, match", [
    ("loss.reg_weight=1.0", "regularizer is none"),
    ("loss.regularizer=barlow", "use one of none, vicreg, sigreg"),
    ("loss.rollout_steps=0", "rollout_steps"),
    ("loss.rollout_reduction=median", r"use sum \(reference\) or mean"),
    ("loss.tf_weight=-1", ">= 0"),
])
def test_bad_loss_config_raises(override, match):
    with pytest.raises(ValueError, match=match):
        load_config(overrides=[override])
