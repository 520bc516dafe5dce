"""Encoder flavors: a registry of specs, each a factory that builds a Qwen3 base model and
its tokenizer plus the facts the stages need (own tokenizer, trainable base, tiny).

- ``debug``: a tiny Qwen3 built from a config (a few hundred thousand parameters) with the
  BPE tokenizer trained on the run's own texts (``tokenizer_dir`` required); ``model_dir``
  optionally holds an SFT-trained base saved with ``save_pretrained``. The unit tests' flavor.
- ``small``: the embedded default's encoder, built the same way from ``SMALL_ARCH``.
- ``qwen3-0.6b`` / ``qwen3-8b``: the real architectures, weights and tokenizer read from a
  LOCAL directory (``local_files_only``); ``random_weights=True`` builds the architecture with
  random weights (benchmarks). Nothing is ever downloaded from the hub.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase, Qwen3Config, Qwen3ForCausalLM

from clin_jepa.config import EncoderConfig
from clin_jepa.data.tokenizer import fit_tokenizer_to_vocab, load_tokenizer, sample_clinical_texts
from clin_jepa.utils import get_logger

log = get_logger(__name__)

# Published Qwen3 architectures (config.json of Qwen/Qwen3-0.6B and Qwen/Qwen3-8B).
QWEN3_ARCH: dict[str, dict] = {
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True),
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False),
}
DEBUG_ARCH = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, tie_word_embeddings=True)
# The embedded default's encoder (with encoder.pooling=mean): 128 wide x 2 layers (0.6M base
# parameters), chosen by measured latent content vs cost (docs/models.md, BENCHMARKS.md "Latent
# content"): of 64x2 (400 and 1,200 SFT steps), 96x2 and 128x2 it is the only candidate with ridge
# R^2 >= 0.8 for HR, MAP and SOFA; it costs 1.8x per SFT step and 1.9x per encoding against 64x2.
# Kept separate from `debug` (the unit tests' flavor) so that the default can change without
# touching the tests.
SMALL_ARCH = dict(DEBUG_ARCH, hidden_size=128, intermediate_size=512, num_attention_heads=8)

DOWNLOAD_HINT = {
    "qwen3-0.6b": "Qwen/Qwen3-0.6B",
    "qwen3-8b": "Qwen/Qwen3-8B",
}

BaseAndTokenizer = tuple[Qwen3ForCausalLM, PreTrainedTokenizerBase]


def resolve_dtype(cfg: EncoderConfig, device: torch.device) -> torch.dtype:
    """encoder.dtype -> torch dtype (auto: bf16 on GPU, fp32 on CPU)."""
    if cfg.dtype == "float32":
        return torch.float32
    if cfg.dtype == "bfloat16":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def check_model_dir(path: str | os.PathLike | None, flavor: str, need_tokenizer: bool = True) -> Path:
    """Raise FileNotFoundError naming every missing file of a local Hugging Face model directory."""
    if flavor in DOWNLOAD_HINT:
        hint = (f"download {DOWNLOAD_HINT[flavor]} on a machine with internet (`hf download {DOWNLOAD_HINT[flavor]} "
                "--local-dir DIR`), copy DIR here and set encoder.model_dir=DIR")
    else:
        hint = f"re-run `clin-jepa sft --run RUN` to write the {flavor} base (RUN/sft/base)"
    if not path:
        raise FileNotFoundError(f"encoder flavor {flavor!r} needs a local model directory (encoder.model_dir is empty); "
                                f"{hint}, or pass random_weights=True for benchmarks")
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {path} does not exist; {hint}")
    missing = []
    if not (path / "config.json").exists():
        missing.append("config.json")
    if not list(path.glob("*.safetensors")):
        missing.append("*.safetensors (model weights)")
    elif (path / "model.safetensors.index.json").exists():
        import json

        try:
            shards = set(json.loads((path / "model.safetensors.index.json").read_text())["weight_map"].values())
        except (json.JSONDecodeError, KeyError) as e:
            raise ValueError(f"{path / 'model.safetensors.index.json'} is corrupt ({e!r}); {hint}") from None
        missing += sorted(s for s in shards if not (path / s).exists())
    if need_tokenizer and not ((path / "tokenizer.json").exists()
                               or ((path / "vocab.json").exists() and (path / "merges.txt").exists())):
        missing.append("tokenizer files (tokenizer.json, or vocab.json + merges.txt)")
    if missing:
        raise FileNotFoundError(f"model directory {path} is incomplete, missing: {', '.join(missing)}; {hint}")
    return path


def _load_pretrained(path: Path, dtype: torch.dtype, attn: str, device: torch.device | None = None
                     ) -> Qwen3ForCausalLM:
    device_map = {"": device} if device is not None and device.type != "cpu" else None  # weights read onto it
    try:
        model = Qwen3ForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype, attn_implementation=attn,
                                                 device_map=device_map)
    except Exception as e:  # truncated safetensors, wrong architecture, ...
        raise ValueError(f"could not load Qwen3 weights from {path}: {e}; re-download the model files "
                         "(config.json, *.safetensors) into that directory") from e
    if model.config.model_type != "qwen3":
        raise ValueError(f"{path} holds a {model.config.model_type!r} model, not qwen3; point encoder.model_dir "
                         "at a Qwen3 download")
    return model


def _own(name: str, arch: dict) -> Callable[..., BaseAndTokenizer]:
    """A small Qwen3 built from ``arch`` with the run's own BPE tokenizer (debug, small)."""

    def factory(cfg: EncoderConfig, model_dir, tokenizer_dir, random_weights: bool, dtype,
                device=None) -> BaseAndTokenizer:
        if not tokenizer_dir:
            raise ValueError(f"the {name} encoder needs tokenizer_dir (the BPE trained on the run's texts, "
                             "RUN/tokenizer); run `clin-jepa sft --run RUN` or clin_jepa.data.tokenizer.train_tokenizer "
                             "first")
        tok = load_tokenizer(tokenizer_dir)
        if model_dir and not random_weights:
            base = _load_pretrained(check_model_dir(model_dir, name, need_tokenizer=False), dtype,
                                    cfg.attn_implementation)
            if base.config.vocab_size < len(tok):
                raise ValueError(f"base in {model_dir} has vocab {base.config.vocab_size} < tokenizer {len(tok)}: the "
                                 "base and RUN/tokenizer come from different runs; re-run `clin-jepa sft`")
            return base, tok
        qcfg = Qwen3Config(vocab_size=len(tok), max_position_embeddings=max(cfg.max_length, 64),
                           pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                           attn_implementation=cfg.attn_implementation, **arch)
        return Qwen3ForCausalLM(qcfg).to(dtype), tok

    return factory


def _real(flavor: str) -> Callable[..., BaseAndTokenizer]:
    def factory(cfg: EncoderConfig, model_dir, tokenizer_dir, random_weights: bool, dtype,
                device: torch.device | None = None) -> BaseAndTokenizer:
        """``device``: where the base is built or loaded (the rank's device: no CPU round trip)."""
        device = torch.device(device) if device is not None else torch.device("cpu")
        arch = QWEN3_ARCH[flavor]
        if random_weights:
            if tokenizer_dir:
                tok = load_tokenizer(tokenizer_dir)
            else:  # any BPE whose ids fit the vocabulary: throughput/memory only
                tok = fit_tokenizer_to_vocab(sample_clinical_texts(400, seed=0), arch["vocab_size"])
            if len(tok) > arch["vocab_size"]:
                raise ValueError(f"tokenizer has {len(tok)} tokens > {flavor} vocab {arch['vocab_size']}")
            qcfg = Qwen3Config(max_position_embeddings=40960, rope_parameters={"rope_type": "default",
                               "rope_theta": 1_000_000.0}, rms_norm_eps=1e-6, pad_token_id=tok.pad_token_id,
                               eos_token_id=tok.eos_token_id, attn_implementation=cfg.attn_implementation, **arch)
            with torch.device(device):  # random init straight on the device
                base = Qwen3ForCausalLM(qcfg).to(dtype)
            return base, tok
        path = check_model_dir(model_dir, flavor, need_tokenizer=not tokenizer_dir)
        tok = load_tokenizer(tokenizer_dir or path)
        base = _load_pretrained(path, dtype, cfg.attn_implementation, device)
        if base.config.hidden_size != arch["hidden_size"]:
            log.warning("%s: %s has hidden size %d (expected %d for this flavor)", flavor, path,
                        base.config.hidden_size, arch["hidden_size"])
        return base, tok

    return factory


@dataclass(frozen=True)
class FlavorSpec:
    build: Callable[..., BaseAndTokenizer]  # (cfg, model_dir, tokenizer_dir, random_weights, dtype, device)
    own_tokenizer: bool = False  # SFT trains a BPE on the run's texts (RUN/tokenizer)
    trainable_base: bool = False  # SFT may train the base too (sft.train_base); saved in RUN/sft/base
    tiny: bool = False  # matmuls too small to gain from a second CPU thread (sft/train cpu_threads=0 -> 1)

    def __call__(self, *args, **kwargs) -> BaseAndTokenizer:
        return self.build(*args, **kwargs)


FLAVORS: dict[str, FlavorSpec] = {
    "debug": FlavorSpec(_own("debug", DEBUG_ARCH), own_tokenizer=True, trainable_base=True, tiny=True),
    "small": FlavorSpec(_own("small", SMALL_ARCH), own_tokenizer=True, trainable_base=True, tiny=True),
    "qwen3-0.6b": FlavorSpec(_real("qwen3-0.6b")),
    "qwen3-8b": FlavorSpec(_real("qwen3-8b")),
}


def spec(flavor: str) -> FlavorSpec:
    if flavor not in FLAVORS:
        raise ValueError(f"unknown encoder flavor {flavor!r}; use one of {', '.join(FLAVORS)}")
    return FLAVORS[flavor]
