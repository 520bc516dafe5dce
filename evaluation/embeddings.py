"""RUN/embeddings: every distinct text of the run's corpus encoded once by the final
online encoder, reused by all evaluations.

    RUN/embeddings/texts.parquet   text_id, text
    RUN/embeddings/latents.npy     (U, D) float32, row = text_id
    RUN/embeddings/fingerprint.json  hash of the final weights + the text table

The directory is written atomically (temporary sibling, then rename). ``compute`` skips
the work when the stored fingerprint matches the current weights and texts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl

from clin_jepa.utils import atomic_path, get_logger, progress, write_json

log = get_logger(__name__)

ENCODE_CHUNK = 1024  # texts per encode call (progress granularity)


def _hash_tree(h, root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())


def fingerprint(run_dir: Path, cfg, texts: list[str]) -> str:
    """sha256 of the final encoder adapters (+ the debug base and tokenizer), the encoder
    config and the text table."""
    run_dir = Path(run_dir)
    final = run_dir / "final" / "encoder"
    if not (final / "online").is_dir():
        raise FileNotFoundError(f"{final}/online not found: train the run first (`clin-jepa pretrain --run {run_dir}`)")
    h = hashlib.sha256()
    _hash_tree(h, final)
    from clin_jepa.models.encoder_flavors import spec

    if spec(cfg.encoder.flavor).own_tokenizer:  # the run's own base and tokenizer are part of the weights
        for sub in ("sft/base", "tokenizer"):
            if (run_dir / sub).is_dir():
                _hash_tree(h, run_dir / sub)
    h.update(json.dumps(cfg.to_dict()["encoder"], sort_keys=True).encode())
    h.update(hashlib.sha256("\n\x00".join(texts).encode()).digest())
    return h.hexdigest()


def load_final_encoder(run_dir: Path, cfg):
    """The run's SFT encoder with the final online/target adapters loaded."""
    from clin_jepa.run import RunDir

    return RunDir(run_dir).load_final_encoder(cfg)


def compute(run_dir, cfg, force: bool = False) -> Path:
    """Encode the corpus texts with the final online encoder unless the fingerprint is current."""
    import torch

    from clin_jepa.data.windows import load_corpus

    run_dir = Path(run_dir)
    out = run_dir / "embeddings"
    corpus = load_corpus(cfg.data_path, cfg.data.window_hours)
    fp = fingerprint(run_dir, cfg, corpus.texts)
    stored = out / "fingerprint.json"
    if not force and stored.exists() and json.loads(stored.read_text()).get("fingerprint") == fp:
        log.info("embeddings in %s are current (fingerprint %s...); nothing to do", out, fp[:12])
        return out
    enc = load_final_encoder(run_dir, cfg)
    chunks = []
    with torch.no_grad():
        for i in progress(range(0, len(corpus.texts), ENCODE_CHUNK), desc="embed", unit="chunk"):
            chunks.append(enc.encode(corpus.texts[i: i + ENCODE_CHUNK], adapter="online").float().cpu().numpy())
    latents = np.concatenate(chunks, axis=0).astype(np.float32)  # (U, D)
    if not np.isfinite(latents).all():
        raise ValueError("the final encoder produced NaN/inf latents; the run diverged; retrain it")
    with atomic_path(out) as tmp:
        tmp.mkdir()
        pl.DataFrame({"text_id": np.arange(len(corpus.texts), dtype=np.int64), "text": corpus.texts}
                     ).write_parquet(tmp / "texts.parquet")
        np.save(tmp / "latents.npy", latents)
        write_json(tmp / "fingerprint.json", {"fingerprint": fp, "n_texts": len(corpus.texts),
                                              "dim": int(latents.shape[1])})
    log.info("encoded %d distinct texts -> %s (D=%d)", len(corpus.texts), out, latents.shape[1])
    return out


def load(run_dir, texts: list[str]) -> np.ndarray:
    """(len(texts), D) latents of ``texts`` (the corpus text table) from RUN/embeddings."""
    out = Path(run_dir) / "embeddings"
    if not (out / "latents.npy").exists() or not (out / "texts.parquet").exists():
        raise FileNotFoundError(f"{out}/latents.npy not found: run `clin-jepa embed --run {run_dir}` first")
    try:
        latents = np.load(out / "latents.npy")
        stored = pl.read_parquet(out / "texts.parquet")
    except Exception as e:  # noqa: BLE001 - truncated npy / parquet raise several kinds
        raise ValueError(f"{out} is unreadable ({e}); rerun `clin-jepa embed --run {run_dir} --force`") from None
    if latents.ndim != 2 or latents.shape[0] != stored.height:
        raise ValueError(f"{out}: latents {latents.shape} do not match {stored.height} texts; "
                         f"rerun `clin-jepa embed --run {run_dir} --force`")
    if stored["text"].to_list() == list(texts):
        return latents
    index = dict(zip(stored["text"].to_list(), stored["text_id"].to_list()))
    missing = sum(t not in index for t in texts)
    if missing:
        raise ValueError(f"{missing} corpus texts have no embedding in {out} (the data changed); "
                         f"rerun `clin-jepa embed --run {run_dir}`")
    return latents[np.array([index[t] for t in texts])]


def load_final_predictor(run_dir):
    """The trained predictor from RUN/final/predictor.{json,safetensors}, in eval mode."""
    from clin_jepa.run import RunDir

    return RunDir(run_dir).load_final_predictor()
