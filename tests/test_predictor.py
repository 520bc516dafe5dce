"""The block-causal predictor: mask semantics, padding, KV-cached rollout, size, determinism, errors."""

from __future__ import annotations

import pytest
import torch

from clin_jepa.config import PredictorConfig, load_config
from clin_jepa.models.predictor import FLAVORS, Predictor, build_predictor

D = 16  # small latent for fast tests


def _model(seed: int = 0, **over) -> Predictor:
    torch.manual_seed(seed)
    cfg = PredictorConfig(**over) if over else None
    return build_predictor("debug", cfg, latent_dim=D).eval()


def _inputs(B: int = 3, T: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, D, generator=g), torch.randn(B, T, D, generator=g), torch.randn(B, T, D, generator=g))


# ---------------------------------------------------------------------- #
# size and configuration
# ---------------------------------------------------------------------- #


def test_paper_flavor_has_92_5m_parameters():
    with torch.device("meta"):  # no memory, no init cost
        p = build_predictor("paper")
    assert p.config.latent_dim == 4096 and p.config.width == 1024 and p.config.layers == 6
    assert p.config.heads == 8 and p.config.ffn == 4096
    assert (p.config.dropout_ffn, p.config.dropout_attn) == (0.15, 0.10)
    assert abs(p.num_parameters() - 92.5e6) <= 1e6


def test_config_fields_and_latent_dim_override_the_flavor():
    with torch.device("meta"):
        p = build_predictor("paper", PredictorConfig(layers=2, dropout_attn=0.0, max_steps=100), latent_dim=32)
    c = p.config
    assert (c.layers, c.dropout_attn, c.max_steps, c.latent_dim, c.width) == (2, 0.0, 100, 32, 1024)
    assert c.dropout_ffn == 0.15  # negative -> flavor default
    assert p.in_state.in_features == 32 and p.out.out_features == 32 and p.time_emb.num_embeddings == 100
    # flavor from cfg when not given; debug latent = debug encoder hidden size
    assert build_predictor(cfg=PredictorConfig(flavor="debug")).config.latent_dim == 64
    assert set(FLAVORS) >= {"debug", "paper"}


@pytest.mark.parametrize("kwargs, match", [
    (dict(flavor="huge"), "unknown predictor flavor"),
    (dict(cfg=PredictorConfig(width=60, heads=7)), "divisible"),
    (dict(cfg=PredictorConfig(dropout_ffn=1.5)), "dropout_ffn"),
])
def test_bad_predictor_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_predictor(kwargs.pop("flavor", "debug"), **kwargs)


def test_bad_predictor_yaml_values_raise():
    with pytest.raises(ValueError, match="predictor.flavor"):
        load_config(overrides=["predictor.flavor=giant"])
    with pytest.raises(ValueError, match="predictor.layers"):
        load_config(overrides=["predictor.layers=-1"])
    with pytest.raises(ValueError, match="unknown config key predictor.depth"):
        load_config(overrides=["predictor.depth=3"])


# ---------------------------------------------------------------------- #
# block-causal attention and padding
# ---------------------------------------------------------------------- #


def test_block_causal_mask():
    p = _model()
    T = 6
    d, s, a = _inputs(B=1, T=T)
    variants = [(j, which) for j in range(T) for which in ("s", "a")]
    s_all, a_all = s.repeat(len(variants), 1, 1), a.repeat(len(variants), 1, 1)  # (V, T, D)
    for v, (j, which) in enumerate(variants):  # one perturbed token per variant
        (s_all if which == "s" else a_all)[v, j] += 1.0
    with torch.no_grad():
        base = p(d, s, a)[0]  # (T, D)
        outs = p(d.expand(len(variants), -1), s_all, a_all)  # (V, T, D)
        moved_by_d = p(d + 1.0, s, a)[0]
    for v, (j, which) in enumerate(variants):
        diff = (outs[v] - base).abs().amax(dim=-1)  # (T,) change of the output at each s_k
        for k in range(T):
            if j > k:  # later pairs are invisible to s_k
                assert diff[k] < 1e-6, (k, j, which)
            else:  # s_j / a_j of earlier pairs and a_k of the same pair are seen
                assert diff[k] > 1e-3, (k, j, which)
    assert ((moved_by_d - base).abs().amax(dim=-1) > 1e-3).all()  # every pair sees d


def test_padding_neither_seen_nor_predicted():
    p = _model()
    d, s, a = _inputs(B=2, T=6)
    lengths = torch.tensor([6, 4])
    mask = torch.arange(6)[None] < lengths[:, None]
    with torch.no_grad():
        out = p(d, s, a, mask)
        s2, a2 = s.clone(), a.clone()
        s2[1, 4:] = 1e3  # garbage in padded hours
        a2[1, 4:] = -1e3
        out2 = p(d, s2, a2, mask)
        short = p(d[1:], s[1:, :4], a[1:, :4])  # the same stay without padding
    torch.testing.assert_close(out, out2, rtol=0, atol=1e-6)
    assert (out[1, 4:] == 0).all()
    torch.testing.assert_close(out[1, :4], short[0], rtol=0, atol=1e-5)


# ---------------------------------------------------------------------- #
# rollout
# ---------------------------------------------------------------------- #


def _manual_rollout(p: Predictor, d, s_ctx, a, H):
    """Reference written from the definition: rerun the full sequence, append the last output."""
    seq = s_ctx
    preds = []
    for _ in range(H):
        L = seq.shape[1]
        z = p(d, seq, a[:, :L])[:, -1]  # (B, D) prediction for hour L
        preds.append(z)
        seq = torch.cat([seq, z[:, None]], dim=1)
    return torch.stack(preds, dim=1)


@pytest.mark.parametrize("C, H", [(1, 1), (3, 2), (5, 8), (2, 20)])
def test_cached_rollout_equals_full_recomputation(C, H):
    p = _model()
    d, s, a = _inputs(B=3, T=C + H)
    with torch.no_grad():
        cached = p.rollout(d, s[:, :C], a, horizon=H, use_cache=True)
        full = p.rollout(d, s[:, :C], a, horizon=H, use_cache=False)
        manual = _manual_rollout(p, d, s[:, :C], a, H)
    assert cached.shape == (3, H, D)
    torch.testing.assert_close(cached, full, rtol=0, atol=1e-5)
    torch.testing.assert_close(full, manual, rtol=0, atol=1e-5)


def test_rollout_per_sample_context_lengths():
    p = _model()
    C, H = 6, 5
    d, s, a = _inputs(B=3, T=C + H)
    lengths = torch.tensor([6, 3, 1])
    with torch.no_grad():
        cached = p.rollout(d, s[:, :C], a, horizon=H, ctx_lengths=lengths)
        full = p.rollout(d, s[:, :C], a, horizon=H, use_cache=False, ctx_lengths=lengths)
        for b, cb in enumerate(lengths.tolist()):  # each sample alone, with exactly its context
            alone = _manual_rollout(p, d[b:b + 1], s[b:b + 1, :cb], a[b:b + 1], H)
            torch.testing.assert_close(cached[b:b + 1], alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(cached, full, rtol=0, atol=1e-5)


def test_rollout_uses_the_real_future_actions():
    p = _model()
    C, H = 4, 3
    d, s, a = _inputs(B=2, T=C + H)
    with torch.no_grad():
        base = p.rollout(d, s[:, :C], a, horizon=H)
        a2 = a.clone()
        a2[:, C] += 1.0  # action of the first rolled-out hour
        moved = p.rollout(d, s[:, :C], a2, horizon=H)
        a3 = a.clone()
        a3[:, C + H - 1] += 1.0  # action of an hour after the last prediction: unused
        unused = p.rollout(d, s[:, :C], a3, horizon=H)
    torch.testing.assert_close(moved[:, 0], base[:, 0], rtol=0, atol=1e-6)
    assert (moved[:, 1:] - base[:, 1:]).abs().max() > 1e-3
    torch.testing.assert_close(unused, base, rtol=0, atol=1e-6)


def test_rollout_is_differentiable():
    p = _model()
    d, s, a = _inputs(B=2, T=6)
    s_ctx = s[:, :3].clone().requires_grad_(True)
    for use_cache in (True, False):
        p.zero_grad()
        s_ctx.grad = None
        p.rollout(d, s_ctx, a, horizon=3, use_cache=use_cache)[:, -1].pow(2).sum().backward()
        assert s_ctx.grad is not None and s_ctx.grad.abs().sum() > 0
        assert p.in_state.weight.grad.abs().sum() > 0


def test_chained_forward_matches_rollout():
    p = _model()
    d, s, a = _inputs(B=3, T=7)
    k = torch.tensor([0, 3, 4])
    with torch.no_grad():
        out, chain = p(d, s, a, rollout_from=k, rollout_steps=3)
        ref = p.rollout(d, s[:, :5], a, horizon=3, use_cache=False, ctx_lengths=k + 1)
    torch.testing.assert_close(chain, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(chain[:, 0], out[torch.arange(3), k], rtol=0, atol=0)


# ---------------------------------------------------------------------- #
# determinism, dropout, errors
# ---------------------------------------------------------------------- #


def test_same_seed_same_model_and_outputs():
    d, s, a = _inputs()
    p1, p2, p3 = _model(seed=5), _model(seed=5), _model(seed=6)
    with torch.no_grad():
        torch.testing.assert_close(p1(d, s, a), p2(d, s, a), rtol=0, atol=0)
        assert (p1(d, s, a) - p3(d, s, a)).abs().max() > 1e-3
        p1.train()
        torch.manual_seed(0)
        o1 = p1(d, s, a)
        o2 = p1(d, s, a)
        torch.manual_seed(0)
        o3 = p1(d, s, a)
    assert (o1 - o2).abs().max() > 1e-4  # dropout is active in train mode
    torch.testing.assert_close(o1, o3, rtol=0, atol=0)


def test_bad_inputs_raise_clear_errors():
    p = _model()
    d, s, a = _inputs(B=2, T=6)
    with pytest.raises(ValueError, match="latent_dim=encoder.hidden_size"):
        p(d, s[..., :8], a)
    with pytest.raises(ValueError, match="mask must be bool"):
        p(d, s, a, torch.ones(2, 6))
    with pytest.raises(ValueError, match="must both be"):
        p(d, s, a[:, :5])
    long = torch.randn(1, 73, D)
    with pytest.raises(ValueError, match="max_steps"):
        p(d[:1], long, long)
    with pytest.raises(ValueError, match="max_steps"):
        p.rollout(d[:1], long[:, :40], long, horizon=34)  # 40 + 34 - 1 = 73 hours
    with pytest.raises(ValueError, match="real actions"):
        p.rollout(d, s[:, :4], a[:, :5], horizon=3)
    with pytest.raises(ValueError, match="ctx_lengths"):
        p.rollout(d, s[:, :4], a, horizon=2, ctx_lengths=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="horizon"):
        p.rollout(d, s[:, :4], a, horizon=0)
    with torch.no_grad():
        _, cache = p(d, s, a, return_cache=True)
    with pytest.raises(ValueError, match="max_steps"):
        p.step(cache, s[:, 0], a[:, 0], torch.tensor([72, 3]))
    with pytest.raises(ValueError, match="rollout_from"):
        p(d, s, a, rollout_from=torch.tensor([5, 0]), rollout_steps=2)  # hour 6 has no action
