"""RUN/embeddings: every distinct text of the run's corpus encoded once by the final
online encoder, reused by all evaluations.

    RUN/embeddings/texts.parquet   text_id, text
    RUN/embeddings/latents.npy     (U, D) float32, row = text_id (read memory-mapped)
    RUN/embeddings/fingerprint.json  hash of the final weights + the text table

The directory is written atomically (a staging sibling, then rename); under `accelerate
launch` the texts are encoded by all processes (:func:`compute`). ``compute`` skips
the work when the stored fingerprint matches the current weights and texts.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl

from clin_jepa.utils import atomic_path, get_logger, progress, write_json

log = get_logger(__name__)

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


def load_final_encoder(run_dir: Path, cfg, device=None):
    """The run's SFT encoder with the final online/target adapters loaded (on ``device``)."""
    from clin_jepa.run import RunDir

    return RunDir(run_dir).load_final_encoder(cfg, device)


def encode_threads(flavor: str) -> int:
    """torch threads of the embedding stage on CPU: 1 for the debug model (its tiny matmuls
    gain nothing from more and stall on a busy CPU: BENCHMARKS.md, Embedding stage), the
    torch default otherwise; the same rule as train.cpu_threads / sft.cpu_threads."""
    import torch

    from clin_jepa.models.encoder_flavors import spec

    return 1 if spec(flavor).tiny else torch.get_num_threads()


def my_chunks(n_texts: int, rank: int, world: int, chunk: int) -> list[tuple[int, int]]:
    """(lo, hi) chunks of ``chunk`` (eval.encode_chunk) consecutive text ids for process ``rank`` of ``world``.

    Chunks are fixed by n_texts alone and dealt round-robin, so every text is encoded in the
    same chunk (same batches, same float sums) whatever the number of processes: latents are
    identical with 1 or N processes."""
    bounds = [(lo, min(lo + chunk, n_texts)) for lo in range(0, n_texts, chunk)]
    return bounds[rank::world]


def compute(run_dir, cfg, force: bool = False) -> Path:
    """Encode the corpus texts with the final online encoder unless the fingerprint is current.

    Under ``accelerate launch`` the chunks of texts are shared out across the processes
    (:func:`my_chunks`); each process writes its rows straight into one memory-mapped
    latents.npy in the temporary output directory (the run directory is shared, as it is for
    checkpoints), so no process ever holds more than one chunk of latents and nothing of
    size (U, D) crosses the process group; the main process then publishes the directory.
    """
    import torch
    from accelerate import PartialState

    from clin_jepa.data.windows import run_corpus

    state = PartialState(cpu=not torch.cuda.is_available())
    run_dir = Path(run_dir)
    out = run_dir / "embeddings"
    corpus = run_corpus(cfg)
    fp = fingerprint(run_dir, cfg, corpus.texts)
    stored = out / "fingerprint.json"
    if not force and stored.exists() and json.loads(stored.read_text()).get("fingerprint") == fp:
        log.info("embeddings in %s are current (fingerprint %s...); nothing to do", out, fp[:12])
        return out
    enc = load_final_encoder(run_dir, cfg, device=state.device)
    n, dim = len(corpus.texts), enc.hidden_size
    staging = out.parent / f".{out.name}.{fp[:12]}.partial"  # same name on every rank
    threads = torch.get_num_threads()
    if state.device.type == "cpu":
        torch.set_num_threads(encode_threads(cfg.encoder.flavor))
    try:
        if state.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            np.lib.format.open_memmap(staging / "latents.npy", mode="w+", dtype=np.float32, shape=(n, dim))
        state.wait_for_everyone()
        latents = np.load(staging / "latents.npy", mmap_mode="r+")  # (U, D) float32, shared file
        mine = my_chunks(n, state.process_index, state.num_processes, cfg.eval.encode_chunk)
        quiet = {} if state.is_local_main_process else {"disable": True}
        with torch.no_grad():
            for lo, hi in progress(mine, desc="embed", unit="chunk", **quiet):
                z = enc.encode(corpus.texts[lo:hi], adapter="online").float().cpu().numpy()  # (chunk, D)
                if not np.isfinite(z).all():
                    raise ValueError("the final encoder produced NaN/inf latents; the run diverged; retrain it")
                latents[lo:hi] = z
        latents.flush()
        del latents
    finally:
        torch.set_num_threads(threads)
    state.wait_for_everyone()
    if state.is_main_process:
        pl.DataFrame({"text_id": np.arange(n, dtype=np.int64), "text": corpus.texts}
                     ).write_parquet(staging / "texts.parquet")
        write_json(staging / "fingerprint.json", {"fingerprint": fp, "n_texts": n, "dim": int(dim)})
        with atomic_path(out) as tmp:
            staging.rename(tmp)
        log.info("encoded %d distinct texts on %d process(es) -> %s (D=%d)", n, state.num_processes, out, dim)
    state.wait_for_everyone()
    return out


def load(run_dir, texts: list[str]) -> np.ndarray:
    """(len(texts), D) float32 latents of ``texts`` (the corpus text table) from RUN/embeddings,
    memory-mapped read-only when stored in that order (clin_jepa.run.RunDir.load_latents)."""
    from clin_jepa.run import RunDir

    return RunDir(run_dir).load_latents(texts)


def load_final_predictor(run_dir):
    """The trained predictor from RUN/final/predictor.{json,safetensors}, in eval mode."""
    from clin_jepa.run import RunDir

    return RunDir(run_dir).load_final_predictor()
