"""Scale benchmarks (run by hand; results go to BENCHMARKS.md, "Scale: memory and threads").

1. ``memory``: peak host memory of the streamed evaluation (rollout drift baselines +
   cohort displacement over a memory-mapped latents.npy) and of the latent cache (host bf16
   table vs memmap fp16 table, every block filled once) against the number of stay-hours N
   (default 50k, 200k, 1M) at D = 4096, each N in a fresh subprocess. Reported: peak anonymous
   RSS (RssAnon, sampled every 10 ms: the process's own memory; file pages of the memmap are
   page cache the kernel can drop) and the bytes today's in-memory path would allocate
   (latents loaded whole + the float64 (N, T, D) copy of the old displacement). The old
   in-memory path is also RUN at the smallest N to check that formula.
2. ``threads``: the embedding stage's encode of the same texts with the debug model at torch's
   default thread count (today's behaviour) vs one thread (the fix), alternated, same process.

    python benchmarks/bench_memory.py memory --sizes 50000 200000 1000000
    python benchmarks/bench_memory.py threads --texts 4000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HOURS = 24  # hours per synthetic stay (T)


def _rss_anon_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakAnon:
    """Samples RssAnon every 10 ms in a thread; .peak in MiB."""

    def __enter__(self):
        self.peak, self._stop = _rss_anon_mib(), threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_anon_mib())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_anon_mib())


def _write_latents(path: Path, n: int, dim: int) -> None:
    """(n + 2, D) float32 latents.npy, written in chunks (random normal, seed 0)."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n + 2, dim))
    rng = np.random.default_rng(0)
    for lo in range(0, n + 2, 16384):
        hi = min(lo + 16384, n + 2)
        mm[lo:hi] = rng.standard_normal((hi - lo, dim), dtype=np.float32)
    mm.flush()
    del mm


def mem_child(n: int, dim: int, what: str, workdir: Path) -> dict:
    """One measurement in this (fresh) process."""
    from clin_jepa.evaluation import displacement, drift
    from clin_jepa.evaluation.streaming import HourLatents

    stays = n // HOURS
    state_ids = np.arange(stays * HOURS).reshape(stays, HOURS)
    lengths = np.full(stays, HOURS)
    groups = np.where(np.arange(stays) % 3 == 0, displacement.DETERIORATING, displacement.STABLE)
    path = workdir / "latents.npy"
    base = _rss_anon_mib()
    t0 = time.perf_counter()
    with PeakAnon() as peak:
        if what == "eval_stream":
            lat = np.load(path, mmap_mode="r")
            drift.rollout_drift(lat, np.full(stays, n), state_ids, np.full_like(state_ids, n + 1), lengths, None,
                                contexts=(6,), horizon=12)
            displacement.evaluate_displacement({"latent": HourLatents(lat, state_ids)}, lengths, groups, 23, 6, 20)
        elif what == "eval_in_memory":  # today's path before this change
            lat = np.load(path)
            drift.rollout_drift(lat, np.full(stays, n), state_ids, np.full_like(state_ids, n + 1), lengths, None,
                                contexts=(6,), horizon=12, stay_chunk=10 ** 12)
            displacement.evaluate_displacement({"latent": lat[state_ids].astype(np.float64)}, lengths, groups, 23, 6,
                                               20, stay_chunk=10 ** 12)
        else:  # latent cache: cache_host_bf16 | cache_memmap_fp16
            _fill_cache(n, dim, what, workdir)
    return {"n": n, "what": what, "peak_anon_mib": peak.peak, "delta_anon_mib": peak.peak - base,
            "seconds": time.perf_counter() - t0}


class _RandomEncoder:
    """Stands in for the text encoder in the cache benchmark: the table's memory is the subject,
    not the encoder's (a real Qwen3-8B encode of 1M texts does not fit a benchmark)."""

    def __init__(self, dim: int):
        import torch

        self.hidden_size, self.online_version, self.device = dim, 0, torch.device("cpu")
        self._gen = torch.Generator().manual_seed(0)

    def encode(self, texts, adapter="online", grad=False):
        import torch

        return torch.randn(len(texts), self.hidden_size, generator=self._gen)


def _fill_cache(n: int, dim: int, what: str, workdir: Path) -> None:
    import torch

    from clin_jepa.training.latent_cache import LatentCache

    storage, dtype = ("host", torch.bfloat16) if what == "cache_host_bf16" else ("memmap", torch.float16)
    cache = LatentCache(_RandomEncoder(dim), [""] * n, block=4096, storage=storage, dtype=dtype,
                        cache_dir=str(workdir))
    for lo in range(0, n, 8 * 4096):  # batches of ids touching 8 blocks each
        cache.get(torch.arange(lo, min(lo + 8 * 4096, n), 97))
    cache.close()


def bench_memory(sizes: list[int], dim: int, in_memory_max: int) -> list[dict]:
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
            _write_latents(Path(tmp) / "latents.npy", n, dim)
            whats = ["eval_stream", "cache_memmap_fp16"] + (["eval_in_memory", "cache_host_bf16"]
                                                           if n <= in_memory_max else [])
            for what in whats:
                res = subprocess.run([sys.executable, __file__, "child", str(n), str(dim), what, tmp],
                                     capture_output=True, text=True, env={**os.environ, "CLIN_JEPA_PROGRESS": "0"})
                if res.returncode != 0:
                    raise RuntimeError(res.stderr[-2000:])
                row = json.loads(res.stdout.strip().splitlines()[-1])
                row["in_memory_bytes_formula_mib"] = (n * dim * 4 + n * dim * 8) / 2**20  # latents + float64 copy
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def bench_threads(n_texts: int, repeats: int) -> dict:
    import torch
    from clin_jepa.evaluation.embeddings import encode_threads

    from clin_jepa.config import EncoderConfig
    from clin_jepa.data.tokenizer import sample_clinical_texts, train_tokenizer
    from clin_jepa.models import build_encoder

    texts = sorted(set(sample_clinical_texts(n_texts, seed=0)))
    with tempfile.TemporaryDirectory() as tmp:
        train_tokenizer(texts, 300, Path(tmp) / "tok")
        enc = build_encoder("debug", EncoderConfig(), tokenizer_dir=Path(tmp) / "tok")
    default = torch.get_num_threads()
    enc.encode(texts[:64])
    times = {default: [], encode_threads("debug"): []}
    for _ in range(repeats):
        for k in times:
            torch.set_num_threads(k)
            enc._token_cache.clear()
            t0 = time.perf_counter()
            with torch.no_grad():
                for lo in range(0, len(texts), 1024):  # eval.encode_chunk
                    enc.encode(texts[lo: lo + 1024])
            times[k].append(time.perf_counter() - t0)
    torch.set_num_threads(default)
    best = {k: min(v) for k, v in times.items()}
    return {"texts": len(texts), "default_threads": default, "seconds": times,
            "texts_per_s": {k: len(texts) / v for k, v in best.items()},
            "speedup_one_thread": best[default] / best[1]}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        n, dim, what, tmp = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5])
        print(json.dumps(mem_child(n, dim, what, tmp)))
        return
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    m.add_argument("--dim", type=int, default=4096)
    m.add_argument("--in-memory-max", type=int, default=50_000, help="largest N for the old in-memory path")
    t = sub.add_parser("threads")
    t.add_argument("--texts", type=int, default=4000)
    t.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.cmd == "memory":
        print(json.dumps(bench_memory(args.sizes, args.dim, args.in_memory_max), indent=1))
    else:
        print(json.dumps(bench_threads(args.texts, args.repeats), indent=1))


if __name__ == "__main__":
    main()
