"""Scale paths on real parts (debug encoder): where the latent cache lives and in which
dtype, streamed evaluation from a memory-mapped latents file, gradient checkpointing,
packed encoding, bf16 autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_trainer import WINDOW, encoder, make_cfg
from test_windows import write_tiny_data

from clin_jepa.data.tokenizer import train_tokenizer
from clin_jepa.data.windows import load_corpus
from clin_jepa.training.latent_cache import LatentCache

BF16_REL = 2 ** -7  # bf16 keeps 8 significant bits: relative rounding error <= 2^-8 per value, 2x slack
FP16_REL = 2 ** -10  # fp16 keeps 11 significant bits


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scale")
    data = write_tiny_data(root / "data", stays=12, hours=8)
    train_tokenizer(load_corpus(data, WINDOW).texts * 3, 300, root / "tokenizer")
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
