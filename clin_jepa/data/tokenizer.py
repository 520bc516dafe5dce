"""Byte-level BPE tokenizer trained on the project's own texts (the `debug` encoder flavor).

Saved and loaded in Hugging Face format (tokenizer.json + tokenizer_config.json), so
`AutoTokenizer.from_pretrained(dir)` reads it like any Qwen tokenizer. Training is
deterministic: the same texts in the same order give the same vocabulary and merges.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from clin_jepa.utils import atomic_path, get_logger

log = get_logger(__name__)

PAD_TOKEN = "<|pad|>"
EOS_TOKEN = "<|endoftext|>"
MIN_VOCAB = 300  # 256 byte symbols + special tokens + a few merges


def train_tokenizer(texts: Iterable[str], vocab_size: int,
                    out_dir: str | os.PathLike | None = None) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE (pad + eos special tokens) on ``texts``; save to ``out_dir`` if given."""
    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size={vocab_size} is too small for a byte-level BPE; use >= {MIN_VOCAB} "
                         "(tokenizer.vocab_size, e.g. 2048)")
    texts = [t for t in texts if isinstance(t, str) and t]
    if not texts:
        raise ValueError("train_tokenizer got no non-empty texts; check that texts.parquet has state/action texts "
                         "(run `clin-jepa extract` first)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN,
                                   padding_side="right", model_max_length=1 << 20)
    log.info("trained byte-level BPE tokenizer: %d tokens from %d texts", len(fast), len(texts))
    if out_dir is not None:
        with atomic_path(out_dir) as tmp:
            fast.save_pretrained(tmp)
    return fast


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerFast:
    """A Hugging Face tokenizer from a local directory (never the hub); right padding."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory {path} does not exist; run `clin-jepa sft --run RUN` to train "
                                "the debug tokenizer, or point encoder.model_dir at a local Qwen3 download")
    has_json = (path / "tokenizer.json").exists()
    has_bpe = (path / "vocab.json").exists() and (path / "merges.txt").exists()
    if not (has_json or has_bpe):
        raise FileNotFoundError(f"{path} has no tokenizer files (need tokenizer.json, or vocab.json + merges.txt); "
                                "copy them from the model's download or re-run `clin-jepa sft`")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # corrupt json, unknown class, ...
        raise ValueError(f"could not load the tokenizer in {path}: {e}; restore its files "
                         "(tokenizer.json, tokenizer_config.json) from the original download") from e
    tok.padding_side = "right"
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token
    return tok


def sample_clinical_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts in clin_jepa.data.texts' style (state, action, demographics) for tests/benchmarks."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.15:
            out.append("No new observations." if rng.random() < 0.5 else "No intervention.")
        elif kind < 0.3:
            acts = [f"Norepinephrine {rng.choice([0.02, 0.05, 0.08, 0.1, 0.2])} mcg/kg/min"]
            acts += rng.sample(["invasive ventilation", "antibiotics", "fluid bolus 500 mL", "RRT"], rng.randint(0, 2))
            out.append("; ".join(acts) + ".")
        elif kind < 0.35:
            out.append(f"Age {rng.randint(18, 89)}, {rng.choice(['female', 'male'])}, "
                       f"{rng.choice(['White', 'Black', 'Asian', 'Hispanic', 'Other'])}, "
                       f"{rng.choice(['emergency', 'elective', 'urgent'])} admission, weight {rng.randint(45, 140)} kg.")
        else:
            vitals = [f"HR {rng.randint(50, 140)} bpm", f"SBP {rng.randint(80, 170)} mmHg",
                      f"MAP {rng.randint(50, 110)} mmHg", f"RR {rng.randint(10, 35)} /min", f"SpO2 {rng.randint(85, 100)}%"]
            groups = [", ".join(rng.sample(vitals, rng.randint(2, 5)))]
            if rng.random() < 0.3:
                groups.append(f"pH {rng.uniform(7.1, 7.5):.2f}, Lactate {rng.uniform(0.5, 8):.1f} mmol/L")
            if rng.random() < 0.3:
                groups.append(f"Creatinine {rng.uniform(0.4, 4.0):.1f} mg/dL, Potassium {rng.uniform(3, 6):.1f} mEq/L")
            if rng.random() < 0.3:
                groups.append(f"GCS E{rng.randint(1, 4)} V{rng.randint(1, 5)} M{rng.randint(1, 6)}")
            if rng.random() < 0.3:
                groups.append(f"Urine {rng.randint(0, 300)} mL")
            out.append(f"Hour {i % 72}. " + "; ".join(groups) + f"; SOFA {rng.randint(0, 14)}, KDIGO {rng.randint(0, 3)}.")
    return out


def fit_tokenizer_to_vocab(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Benchmark helper: a BPE trained on ``texts`` whose ids all fit a model of ``vocab_size``."""
    return train_tokenizer(texts, min(max(MIN_VOCAB, vocab_size), 8192))
