"""Scale paths on real parts (debug encoder): where the latent cache lives and in which
dtype, streamed evaluation from a memory-mapped latents file, gradient checkpointing,
packed encoding, bf16 autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from test_trainer import SMALL, WINDOW, encoder, make_cfg
from test_windows import write_tiny_data

from clin_jepa.data.tokenizer import train_tokenizer
from clin_jepa.data.windows import load_corpus
from clin_jepa.training.latent_cache import LatentCache

BF16_REL = 2 ** -7  # bf16 keeps 8 significant bits: relative rounding error <= 2^-8 per value, 2x slack
FP16_REL = 2 ** -10  # fp16 keeps 11 significant bits
BF16_RUN_TOL = 0.1  # predictor |w_bf16 - w_fp32| / |w_fp32 - w_0| after the small curriculum (8 steps)
BF16_LORA_TOL = 0.4  # the same for the online LoRA (see the test's docstring)
BF16_VAL_TOL = 0.02  # relative difference of the final validation loss (observed 0.2 % with the rollout term
# averaged over its steps, 1.3 % since it is summed as in the reference: bf16 keeps ~3 significant digits)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scale")
    data = write_tiny_data(root / "data", stays=12, hours=8)
    train_tokenizer(load_corpus(data, WINDOW).texts * 3, 300, root / "tokenizer")
    (root / "small.yaml").write_text(yaml.safe_dump(SMALL))
    return root


@pytest.fixture(scope="module")
def enc_corpus(base):
    cfg = make_cfg(base, base / "unused")
    return encoder(base, cfg), load_corpus(base / "data", WINDOW)


@pytest.mark.parametrize("storage", ["device", "host", "memmap"])
def test_latent_cache_storages_give_the_same_fp32_latents(enc_corpus, storage, tmp_path):
    enc, corpus = enc_corpus
    ids = torch.tensor([0, 3, 9, 17, 30])
    ref = LatentCache(enc, corpus.texts, block=8, storage="device", dtype=torch.float32).get(ids)
    cache = LatentCache(enc, corpus.texts, block=8, storage=storage, dtype="float32", cache_dir=str(tmp_path))
    got = cache.get(ids)
    assert got.dtype == torch.float32 and torch.equal(got, ref)  # fp32 mode is exact wherever it lives
    assert torch.equal(cache.get(ids), ref) and cache.hits == 4
    if storage == "memmap":
        assert len(list(tmp_path.glob("latent_cache_*"))) == 1
        cache.close()
        assert not list(tmp_path.glob("latent_cache_*"))  # the temporary file is removed


@pytest.mark.parametrize("storage,dtype,rel", [("host", "bfloat16", BF16_REL), ("memmap", "bfloat16", FP16_REL),
                                               ("host", "float16", FP16_REL)])
def test_latent_cache_half_storage_within_rounding(enc_corpus, storage, dtype, rel, tmp_path):
    enc, corpus = enc_corpus
    ids = torch.arange(len(corpus.texts))
    ref = LatentCache(enc, corpus.texts, block=8, dtype=torch.float32).get(ids)
    cache = LatentCache(enc, corpus.texts, block=8, storage=storage, dtype=dtype, cache_dir=str(tmp_path))
    got = cache.get(ids)
    assert cache.nbytes == ref.numel() * 2  # half the bytes of fp32
    err = ((got - ref).abs() / ref.abs().clamp_min(1e-3)).max()
    assert 0 < float(err) <= rel


def test_latent_cache_auto_dtype_follows_the_encoder(enc_corpus):
    enc, corpus = enc_corpus
    assert LatentCache(enc, corpus.texts, dtype="auto").dtype == torch.float32  # fp32 debug encoder on CPU
    with pytest.raises(ValueError, match="train.cache_storage"):
        LatentCache(enc, corpus.texts, storage="gpu")


# ---------------------------------------------------------------------- streamed evaluation
def _eval_inputs(tmp_path, n=120, T=24, D=16, seed=0):
    """Demo-sized corpus arrays (120 test stays, 24 h, every hour its own text) + the latents
    written as latents.npy and read back memory-mapped, as evaluation.embeddings.load does."""
    import numpy as np

    rng = np.random.default_rng(seed)
    U = n * T * 2 + n
    latents = rng.normal(size=(U, D)).astype(np.float32).cumsum(axis=0) / 30  # drifting, like hours of a stay
    state_ids = np.arange(n * T).reshape(n, T)
    action_ids = n * T + state_ids
    demo_ids = 2 * n * T + np.arange(n)
    lengths = rng.integers(4, T + 1, n)
    for i, L in enumerate(lengths):
        state_ids[i, L:] = action_ids[i, L:] = -1
    np.save(tmp_path / "latents.npy", latents)
    mm = np.load(tmp_path / "latents.npy", mmap_mode="r")
    assert isinstance(mm, np.memmap)
    return latents, mm, demo_ids, state_ids, action_ids, lengths


def test_memmap_streamed_evaluation_matches_in_memory(tmp_path):
    import numpy as np
    from clin_jepa.evaluation import displacement, drift, probes
    from clin_jepa.evaluation.streaming import HourLatents

    from clin_jepa.config import PredictorConfig
    from clin_jepa.models import build_predictor

    latents, mm, demo_ids, state_ids, action_ids, lengths = _eval_inputs(tmp_path)
    torch.manual_seed(0)
    pred = build_predictor("debug", PredictorConfig(max_steps=24), latent_dim=latents.shape[1]).eval()
    whole = 10 ** 9  # one chunk: today's in-memory computation
    hm_ref = drift.hour_means(latents, state_ids, lengths, stay_chunk=whole)  # (T, D) hour-mean reference
    hm = drift.hour_means(mm, state_ids, lengths, stay_chunk=7)
    np.testing.assert_allclose(hm, hm_ref, rtol=1e-5, atol=1e-6)
    ref = drift.rollout_drift(latents, demo_ids, state_ids, action_ids, lengths, pred, (6, 12), 12, stay_chunk=whole,
                              hour_mean=hm_ref)
    got = drift.rollout_drift(mm, demo_ids, state_ids, action_ids, lengths, pred, (6, 12), 12, stay_chunk=7,
                              hour_mean=hm)
    for c in ("6", "12"):
        assert got["contexts"][c]["n_stays"] == ref["contexts"][c]["n_stays"] > 0
        for m in drift.METHODS:
            np.testing.assert_allclose(got["contexts"][c]["methods"][m]["l1"], ref["contexts"][c]["methods"][m]["l1"],
                                       rtol=1e-6)

    groups = np.where(np.arange(len(lengths)) % 3 == 0, displacement.DETERIORATING, displacement.STABLE)
    ids = np.where(state_ids >= 0, state_ids, 0)
    ref = displacement.evaluate_displacement({"latent": latents[ids].astype(np.float64)}, lengths, groups, 12, 6, 50)
    got = displacement.evaluate_displacement({"latent": HourLatents(mm, state_ids)}, lengths, groups, 12, 6, 50,
                                             stay_chunk=7)
    for kind in ("endpoint", "path"):  # float64 in memory vs float32 streamed: same to ~1e-6
        r, g = ref["spaces"]["latent"][kind], got["spaces"]["latent"][kind]
        assert g["n_deteriorating"] == r["n_deteriorating"] and g["n_stable"] == r["n_stable"]
        np.testing.assert_allclose(g["median_deteriorating"], r["median_deteriorating"], rtol=1e-5)
        np.testing.assert_allclose(list(g["ratio"].values()), list(r["ratio"].values()), rtol=1e-5)

    rows = np.repeat(np.arange(len(lengths)), 2)[::-1].copy()  # several rows per stay, out of order
    hours = np.minimum(lengths[rows] - 1, np.tile([2, 9], len(lengths))[: len(rows)])
    f_ref = probes.state_features(latents, demo_ids, state_ids, action_ids, lengths, pred, stay_chunk=whole)
    f_got = probes.state_features(mm, demo_ids, state_ids, action_ids, lengths, pred, stay_chunk=5)
    np.testing.assert_allclose(probes.probe_inputs(f_got, rows, hours), probes.probe_inputs(f_ref, rows, hours),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probes.rollout_inputs(f_got, pred, rows, hours, 4),
                               probes.rollout_inputs(f_ref, pred, rows, hours, 4), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- sharded embedding
def test_embed_gives_identical_latents_with_one_and_two_processes(base, tmp_path):
    """`accelerate launch -m clin_jepa.pipelines.embed` (2 gloo processes on CPU) writes the same bytes
    as one process: chunks of texts are fixed by eval.encode_chunk and dealt out to ranks."""
    import os
    import shutil
    import subprocess
    import sys

    import numpy as np
    from clin_jepa.pipelines.cli import main as cli_main

    from clin_jepa.training.sft import load_sft_encoder, run_sft
    from clin_jepa.utils import REPO_ROOT

    run = tmp_path / "run"
    cfg = make_cfg(base, run, "sft.steps=1", "tokenizer.vocab_size=300", "eval.encode_chunk=16")
    shutil.copytree(base / "tokenizer", run / "tokenizer")
    run_sft(run, cfg)
    cfg.save(run / "config.yaml")
    enc = load_sft_encoder(run, cfg)
    with torch.no_grad():  # a "trained" online adapter that differs from the SFT one
        for p in enc.online_parameters():
            p.add_(0.02 * torch.randn_like(p))
    enc.save_adapters(run / "final" / "encoder")
    assert cli_main(["embed", "--run", str(run)]) == 0
    one = np.load(run / "embeddings" / "latents.npy")
    assert one.shape[0] > 2 * 16  # several chunks: both ranks get work
    env = dict(os.environ, CLIN_JEPA_PROGRESS="0", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO_ROOT / "configs" / "accelerate" / "cpu_ddp.yaml"), "--main_process_port", "29561",
           "-m", "clin_jepa.pipelines.embed", "--run", str(run), "--force"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on 2 process(es)" in proc.stderr + proc.stdout
    two = np.load(run / "embeddings" / "latents.npy")
    np.testing.assert_array_equal(one, two)
    assert not list(run.glob(".embeddings*"))  # no staging directory left behind


# ---------------------------------------------------------------------- packing, checkpointing, bf16
def _encoder(base, *overrides):
    cfg = make_cfg(base, base / "unused", *overrides)
    return encoder(base, cfg)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_packed_encoding_equals_padded(base, enc_corpus, pooling):
    _, corpus = enc_corpus
    texts = corpus.texts[:60] + corpus.texts[:5]  # duplicates too
    padded = _encoder(base, "encoder.packing=off", f"encoder.pooling={pooling}")
    packed = _encoder(base, "encoder.packing=on", "encoder.pack_row_tokens=256", "encoder.encode_batch_tokens=512",
                      f"encoder.pooling={pooling}")
    assert packed.packing and not padded.packing
    lengths = [len(r) for r in packed._token_ids(list(dict.fromkeys(texts)))]
    batches = packed._packs(lengths)
    assert sum(len(row) for b in batches for row in b) == len(lengths)
    assert max(len(row) for b in batches for row in b) > 1  # several texts really share a row
    assert all(sum(lengths[i] for i in row) <= 256 for b in batches for row in b)
    a, b = padded.encode(texts), packed.encode(texts)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)  # fp32: only the summation order differs


def _lora_grads(enc, texts):
    enc.set_online_trainable(True)
    for p in enc.online_parameters():
        p.grad = None
    z = enc.encode(texts, grad=True)
    with torch.no_grad():  # as in the joint phase: a target encode between forward and backward
        target = enc.encode(texts, adapter="target")
    (z - target).pow(2).sum().backward()
    return [p.grad.clone() for p in enc.online_parameters()]


def test_gradient_checkpointing_recomputes_layers_and_keeps_gradients(base, enc_corpus):
    _, corpus = enc_corpus
    texts = corpus.texts[:24]
    plain = _encoder(base, "encoder.gradient_checkpointing=off")
    ckpt = _encoder(base, "encoder.gradient_checkpointing=on")
    for enc in (plain, ckpt):  # make target differ from online, identically in both
        torch.manual_seed(1)
        with torch.no_grad():
            for p in enc.online_parameters():
                p.add_(0.05 * torch.randn_like(p))
    calls = []
    hook = ckpt._layers[0].self_attn.register_forward_hook(lambda *a: calls.append(1))
    g_ckpt = _lora_grads(ckpt, texts)
    n_fwd = len(calls)
    calls.clear()
    with torch.no_grad():
        ckpt.encode(texts)
        ckpt.encode(texts, adapter="target")
    hook.remove()
    assert n_fwd - len(calls) == len(calls) // 2 > 0  # the online batches ran again in the backward: live
    for g1, g0 in zip(g_ckpt, _lora_grads(plain, texts)):
        torch.testing.assert_close(g1, g0, rtol=1e-5, atol=1e-7)
    assert not ckpt._layers[0].training  # eval mode restored after the encode


def test_flags_default_on_for_real_flavors_only():
    from clin_jepa.config import EncoderConfig

    assert not EncoderConfig(flavor="debug").enabled("packing")
    assert EncoderConfig(flavor="qwen3-8b").enabled("packing")
    assert EncoderConfig(flavor="qwen3-0.6b").enabled("gradient_checkpointing")
    assert not EncoderConfig(flavor="qwen3-8b", gradient_checkpointing="off").enabled("gradient_checkpointing")
    with pytest.raises(ValueError, match="attn_implementation"):
        EncoderConfig(attn_implementation="flash").validate()


def test_bf16_autocast_cpu_run_agrees_with_fp32(base, tmp_path):
    """train.mixed_precision=bf16 on CPU (accelerate's CPU autocast) trains the debug flavor; after
    the same 8 steps its validation loss is within BF16_VAL_TOL of the fp32 run's and its predictor
    within BF16_RUN_TOL (relative to the fp32 weight change). The LoRA adapters get a looser bound,
    BF16_LORA_TOL: Adam moves every weight by ~lr on its first steps whatever the gradient's size,
    so near-zero gradients whose sign bf16 rounding flips move as much as large ones."""
    from accelerate.state import AcceleratorState
    from test_trainer import snap, trainer

    from clin_jepa.training.curriculum import behaviour

    runs = {}
    for mp in ("no", "bf16"):
        AcceleratorState._reset_state(reset_partial_state=True)
        tr = trainer(base, tmp_path / mp, f"train.mixed_precision={mp}")
        start = snap(tr)
        assert tr.run()["finished"] and tr.acc.mixed_precision == mp
        with tr.acc.autocast():
            val = tr.validate(behaviour(tr.cur.phases[-1]))["val/loss"]
        runs[mp] = (start, snap(tr), val)
    AcceleratorState._reset_state(reset_partial_state=True)
    (s0, fp32, val32), (_, bf16, val16) = runs["no"], runs["bf16"]
    assert abs(val16 - val32) / val32 < BF16_VAL_TOL, (val16, val32)
    for part, tol in (("predictor", BF16_RUN_TOL), ("online", BF16_LORA_TOL)):
        change = (fp32[part] - s0[part]).norm()
        rel = float((bf16[part] - fp32[part]).norm() / change)
        assert change > 0 and 0 < rel < tol, (part, rel)  # > 0: bf16 really ran


def test_gpu_check_cpu_smoke_runs_every_code_path(capsys):
    """benchmarks/gpu_check.py --cpu-smoke: the CUDA check's code paths on the debug flavor."""
    import sys

    from clin_jepa.utils import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import gpu_check

    rows = gpu_check.main(["--cpu-smoke"])
    checks = [r["check"] for r in rows]
    assert checks.count("debug encode") == 2 and checks.count("debug joint step") == 4
    steps = [r for r in rows if r["check"] == "debug joint step"]
    assert {(r["packing"], r["grad_ckpt"]) for r in steps} == {(p, c) for p in (False, True) for c in (False, True)}
    assert all(r["step_s"] > 0 and r["tokens"] > 0 and "status" not in r for r in steps)
    cur = next(r for r in rows if r["check"] == "debug curriculum")
    assert cur["finished"] and cur["steps"] == 4
    assert "| check |" in capsys.readouterr().out  # the one table
