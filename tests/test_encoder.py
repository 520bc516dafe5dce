"""Qwen3+LoRA encoder: real transformers/peft models (debug flavor), no mocks."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import Qwen3Config, Qwen3ForCausalLM

from clin_jepa.config import EncoderConfig
from clin_jepa.data.tokenizer import load_tokenizer, sample_clinical_texts, train_tokenizer
from clin_jepa.models import build_encoder

TEXTS = sample_clinical_texts(120, seed=1)



@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer(sample_clinical_texts(400, seed=0), 512, out)
    return out


def _perturb(params, seed, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=g) * scale)


@pytest.fixture()
def enc(tok_dir):
    e = build_encoder("debug", tokenizer_dir=tok_dir)
    _perturb(e.online_parameters(), seed=0)  # LoRA B starts at 0: make the adapter matter
    return e


def _requires_grad(e):
    return {n for n, p in e.model.named_parameters() if p.requires_grad}


def test_tokenizer_deterministic_and_hf_loadable(tok_dir, tmp_path):
    texts = sample_clinical_texts(400, seed=0)
    again = train_tokenizer(texts, 512, tmp_path / "again")
    assert (tmp_path / "again" / "tokenizer.json").read_text() == (tok_dir / "tokenizer.json").read_text()
    tok = load_tokenizer(tok_dir)
    ids = tok("Heart rate 88 bpm.", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "Heart rate 88 bpm." and tok.pad_token_id is not None
    assert len(again) <= 512 and tok.padding_side == "right"
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(texts, 100)
    with pytest.raises(ValueError, match="no non-empty texts"):
        train_tokenizer(["", ""], 512)


def test_only_lora_requires_grad(enc):
    assert _requires_grad(enc) == set()  # frozen until the trainer says otherwise
    enc.set_online_trainable(True)
    online = {n for n, p in enc.model.named_parameters() if ".lora_" in n and ".online." in n}
    assert online and _requires_grad(enc) == online
    enc.encode(TEXTS[:4], adapter="target")  # peft's set_adapter would flip flags: must not leak
    assert _requires_grad(enc) == online
    out = enc.encode(TEXTS[:6], adapter="online", grad=True)
    out.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.online_parameters())
    assert all(p.grad is None for p in enc.target_parameters() + enc.base_parameters())
    enc.set_online_trainable(False)
    assert _requires_grad(enc) == set()
    assert all(p.dtype == torch.float32 for p in enc.target_parameters())


def test_ema_arithmetic_exact(enc):
    _perturb(enc.target_parameters(), seed=1)
    t0 = [p.detach().double().clone() for p in enc.target_parameters()]
    o = [p.detach().double().clone() for p in enc.online_parameters()]
    v0, t0_version = enc.weights_version, enc.target_version
    enc.ema_update(0.9)
    for t, t_old, o_ in zip(enc.target_parameters(), t0, o):
        expect = 0.9 * t_old + 0.1 * o_
        torch.testing.assert_close(t.double(), expect, rtol=0, atol=1e-7)
    assert enc.target_version == t0_version + 1 and enc.weights_version == v0  # online weights untouched
    # tau=1 leaves the target alone; tau=0 copies online
    snap = [p.detach().clone() for p in enc.target_parameters()]
    enc.ema_update(1.0)
    assert all(torch.equal(a, b) for a, b in zip(snap, enc.target_parameters()))
    enc.ema_update(0.0)
    assert enc.online_target_gap() < 1e-7
    with pytest.raises(ValueError, match="tau"):
        enc.ema_update(1.5)


def test_hard_sync_and_target_untouched_by_online_updates(enc):
    assert enc.online_target_gap() > 1e-3  # online was perturbed after build
    gap = enc.hard_sync()
    assert gap < 1e-5 and enc.online_target_gap() < 1e-5
    torch.testing.assert_close(enc.encode(TEXTS[:8], "online"), enc.encode(TEXTS[:8], "target"), rtol=0, atol=1e-6)
    target_before = [p.detach().clone() for p in enc.target_parameters()]
    z_target = enc.encode(TEXTS[:8], "target")
    enc.set_online_trainable(True)
    opt = torch.optim.SGD(enc.online_parameters(), lr=0.5)
    for _ in range(2):
        opt.zero_grad()
        enc.encode(TEXTS[:8], "online", grad=True).pow(2).mean().backward()
        opt.step()
        enc.mark_updated()
    assert all(torch.equal(a, b) for a, b in zip(target_before, enc.target_parameters()))
    assert torch.equal(enc.encode(TEXTS[:8], "target"), z_target)
    assert not torch.allclose(enc.encode(TEXTS[:8], "online"), z_target, atol=1e-4)
    assert enc.online_target_gap() > 1e-4


def test_padding_and_batch_composition_invariance(tok_dir):
    cfg = EncoderConfig(encode_batch_tokens=300, max_length=256)  # several buckets
    e = build_encoder("debug", cfg, tokenizer_dir=tok_dir)
    _perturb(e.online_parameters(), seed=2)
    texts = TEXTS[:60]
    together = e.encode(texts)
    alone = torch.cat([e.encode([t]) for t in texts])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    shuffled = list(reversed(texts))
    torch.testing.assert_close(e.encode(shuffled), together.flip(0), rtol=1e-5, atol=1e-5)
    # a short text padded next to the longest one
    longest = max(texts, key=len)
    short = "No intervention."
    torch.testing.assert_close(e.encode([longest, short])[1], e.encode([short])[0], rtol=1e-5, atol=1e-5)


def test_buckets_bound_padding_and_budget(enc):
    lengths = [3, 4, 5, 9, 12, 12, 13, 20, 40, 41, 150, 153, 60, 61, 62, 7] * 20
    buckets = enc._buckets(lengths)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))  # each text exactly once
    for b in buckets:
        lo, hi = min(lengths[i] for i in b), max(lengths[i] for i in b)
        assert len(b) * hi <= enc.cfg.encode_batch_tokens
        assert hi <= max(1.25 * lo, lo + 8)  # padding bounded: no 3-token text padded to 153
    real = sum(lengths)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in buckets)
    assert padded < 1.25 * real


def test_duplicates_encoded_once(enc):
    rows = []
    emb_layer = enc.model.get_base_model().model.embed_tokens
    hook = emb_layer.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
    texts = ["No new observations.", "No intervention.", TEXTS[5], "No new observations.", TEXTS[5]] * 4
    try:
        out = enc.encode(texts)
    finally:
        hook.remove()
    assert sum(rows) == 3  # three distinct texts
    assert out.shape == (20, enc.hidden_size) and out.dtype == torch.float32
    assert torch.equal(out[0], out[3]) and torch.equal(out[2], out[4]) and not torch.equal(out[0], out[1])


def test_deterministic_under_seed(tok_dir):
    a = build_encoder("debug", EncoderConfig(init_seed=3), tokenizer_dir=tok_dir)
    torch.manual_seed(123)  # global RNG state must not matter
    b = build_encoder("debug", EncoderConfig(init_seed=3), tokenizer_dir=tok_dir)
    c = build_encoder("debug", EncoderConfig(init_seed=4), tokenizer_dir=tok_dir)
    assert torch.equal(a.encode(TEXTS[:10]), b.encode(TEXTS[:10]))
    assert not torch.allclose(a.encode(TEXTS[:10]), c.encode(TEXTS[:10]))


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_adapter_roundtrip_and_peft_alone(enc, tok_dir, tmp_path):
    _perturb(enc.target_parameters(), seed=5)
    enc.save_base(tmp_path / "base")
    enc.save_adapters(tmp_path / "adapters")
    for name in ("online", "target"):
        assert (tmp_path / "adapters" / name / "adapter_model.safetensors").exists()
    fresh = build_encoder("debug", EncoderConfig(init_seed=9), model_dir=tmp_path / "base", tokenizer_dir=tok_dir)
    v0 = fresh.weights_version
    fresh.load_adapters(tmp_path / "adapters")
    assert fresh.weights_version > v0
    for adapter in ("online", "target"):
        torch.testing.assert_close(fresh.encode(TEXTS[:12], adapter), enc.encode(TEXTS[:12], adapter),
                                   rtol=0, atol=1e-6)
    # a user with peft alone: base + adapter -> last-token final hidden state
    base = Qwen3ForCausalLM.from_pretrained(str(tmp_path / "base"), local_files_only=True)
    peft_model = PeftModel.from_pretrained(base, str(tmp_path / "adapters" / "online")).eval()
    tok = load_tokenizer(tok_dir)
    ref = []
    with torch.no_grad():
        for t in TEXTS[:12]:
            ids = tok([t], add_special_tokens=False, return_tensors="pt")["input_ids"]
            ref.append(peft_model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0, -1])
    torch.testing.assert_close(torch.stack(ref), enc.encode(TEXTS[:12], "online"), rtol=1e-5, atol=1e-5)


def test_corrupt_or_missing_adapter_files(enc, tmp_path):
    enc.save_adapters(tmp_path / "a")
    weights = tmp_path / "a" / "target" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="target/adapter_model.safetensors.*truncated or corrupt"):
        enc.load_adapters(tmp_path / "a")
    (tmp_path / "a" / "online" / "adapter_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="online/adapter_config.json"):
        enc.load_adapters(tmp_path / "a")
    enc.save_adapters(tmp_path / "b")
    conf = tmp_path / "b" / "online" / "adapter_config.json"
    conf.write_text(json.dumps({**json.loads(conf.read_text()), "r": 4}))
    with pytest.raises(ValueError, match="r=4"):
        enc.load_adapters(tmp_path / "b")


def test_model_dir_errors(tmp_path, tok_dir):
    with pytest.raises(FileNotFoundError, match="encoder.model_dir is empty"):
        build_encoder("qwen3-0.6b")
    with pytest.raises(FileNotFoundError, match="does not exist.*Qwen/Qwen3-0.6B"):
        build_encoder("qwen3-0.6b", model_dir=tmp_path / "nope")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"missing: \*\.safetensors.*tokenizer files"):
        build_encoder("qwen3-8b", model_dir=tmp_path / "partial")
    with pytest.raises(ValueError, match="tokenizer_dir"):
        build_encoder("debug")
    with pytest.raises(ValueError, match="unknown encoder flavor"):
        build_encoder("qwen2")
    with pytest.raises(ValueError, match="encode_batch_tokens"):
        build_encoder("debug", EncoderConfig(encode_batch_tokens=8), tokenizer_dir=tok_dir)


def test_real_flavor_loads_local_dir(tmp_path, tok_dir):
    """The qwen3 flavors read weights + tokenizer from a local directory (a tiny Qwen3 here)."""
    tok = load_tokenizer(tok_dir)
    tiny = Qwen3ForCausalLM(Qwen3Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                        head_dim=16))
    tiny.save_pretrained(tmp_path / "qwen")
    tok.save_pretrained(tmp_path / "qwen")
    e = build_encoder("qwen3-0.6b", model_dir=tmp_path / "qwen")
    assert e.hidden_size == 32 and e.encode(TEXTS[:3]).shape == (3, 32)
    next((tmp_path / "qwen").glob("*.safetensors")).unlink()
    with pytest.raises(FileNotFoundError, match=r"\*\.safetensors"):
        build_encoder("qwen3-0.6b", model_dir=tmp_path / "qwen")


def test_bf16_base_keeps_fp32_target(tok_dir):
    e = build_encoder("debug", EncoderConfig(dtype="bfloat16"), tokenizer_dir=tok_dir)
    assert all(p.dtype == torch.bfloat16 for p in e.base_parameters())
    assert all(p.dtype == torch.float32 for p in e.target_parameters())
    _perturb(e.online_parameters(), seed=3)
    e.ema_update(0.5)
    assert 0 < e.online_target_gap() < 1.0
    z = e.encode(TEXTS[:4], adapter="target")
    assert z.dtype == torch.float32 and torch.isfinite(z).all()


def test_bad_inputs(enc):
    with pytest.raises(ValueError, match="list of texts"):
        enc.encode("Heart rate 80 bpm.")
    with pytest.raises(ValueError, match="non-string"):
        enc.encode(["ok", None])
    with pytest.raises(ValueError, match="adapter="):
        enc.encode(["ok"], adapter="ema")
    assert enc.encode([]).shape == (0, enc.hidden_size)
    assert enc.encode([""]).shape == (1, enc.hidden_size)  # empty text -> the eos token


def test_mean_pooling_is_the_mean_over_real_tokens(tok_dir):
    """encoder.pooling=mean: each text's latent is the mean of its own final hidden states
    (a one-text forward of the plain transformers model), whatever it is batched/padded with."""
    e = build_encoder("debug", EncoderConfig(pooling="mean", encode_batch_tokens=300), tokenizer_dir=tok_dir)
    _perturb(e.online_parameters(), seed=3)
    texts = TEXTS[:20] + ["No intervention."]
    backbone = e.model.get_base_model().model
    ref = []
    with torch.no_grad():
        for row in e._token_ids(texts):
            ref.append(backbone(input_ids=torch.tensor([row])).last_hidden_state[0].mean(0))
    z = e.encode(texts)
    torch.testing.assert_close(z, torch.stack(ref), rtol=1e-5, atol=1e-5)
    last = build_encoder("debug", EncoderConfig(pooling="last"), tokenizer_dir=tok_dir)
    _perturb(last.online_parameters(), seed=3)
    assert not torch.allclose(last.encode(texts), z, atol=1e-3)  # the setting is live
    with pytest.raises(ValueError, match="encoder.pooling"):
        EncoderConfig(pooling="max").validate()


def test_lm_loss_equals_one_padded_batch(enc):
    """The length-bucketed SFT loss equals transformers' own loss on one right-padded batch
    (mean next-token cross-entropy over real tokens), and so do its gradients."""
    texts = TEXTS[:64]
    rows = [r + [enc._empty_id] for r in enc._token_ids(texts)]
    L = max(map(len, rows))
    ids = torch.tensor([r + [enc._pad_id] * (L - len(r)) for r in rows])
    labels = torch.tensor([r + [-100] * (L - len(r)) for r in rows])
    enc.set_online_trainable(True)
    ref = enc.model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels, use_cache=False).loss
    ref.backward()
    g_ref = [p.grad.clone() for p in enc.online_parameters()]
    for p in enc.online_parameters():
        p.grad = None
    ours = enc.lm_loss(texts)
    ours.backward()
    assert len(enc._buckets([len(r) for r in rows])) > 1  # really bucketed
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    for g, g0 in zip((p.grad for p in enc.online_parameters()), g_ref):
        torch.testing.assert_close(g, g0, rtol=1e-4, atol=1e-6)


def test_small_flavor_is_an_own_tokenizer_tiny_qwen3(tok_dir):
    from clin_jepa.models.encoder_flavors import SMALL_ARCH, spec

    e = build_encoder("small", tokenizer_dir=tok_dir)
    base = e.model.get_base_model().config
    assert (e.hidden_size, base.num_hidden_layers) == (SMALL_ARCH["hidden_size"], SMALL_ARCH["num_hidden_layers"])
    assert spec("small").own_tokenizer and spec("small").trainable_base and spec("small").tiny
    assert e.encode(TEXTS[:3]).shape == (3, SMALL_ARCH["hidden_size"])
    with pytest.raises(ValueError, match="small encoder needs tokenizer_dir"):
        build_encoder("small")
