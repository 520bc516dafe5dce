"""Encoder benchmarks (run by hand; results go to BENCHMARKS.md, section "Encoder").

1. memory: the qwen3-0.6b architecture (random weights, CPU, fp32) holding online + target
   LoRA adapters on one base vs the same base with one adapter, each in a fresh subprocess:
   parameter+buffer bytes, RSS after build, peak RSS after one encoding forward. Target <= 1.05x.
2. throughput: batched + deduplicated ``encode`` of whole windows vs a per-window loop that
   encodes one text at a time, same windows, same outputs (allclose), texts/s and ratio,
   for the debug flavor and qwen3-0.6b with random weights.

    python benchmarks/bench_encoder.py                     # both, default sizes
    python benchmarks/bench_encoder.py --skip-0.6b         # debug throughput only (fast)
    python benchmarks/bench_encoder.py --windows 4 --hours 12 --windows-06b 2 --hours-06b 8
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from clin_jepa.config import EncoderConfig
from clin_jepa.data.tokenizer import sample_clinical_texts, train_tokenizer
from clin_jepa.models import build_encoder

NO_OBS, NO_ACT = "No new observations.", "No intervention."


def make_windows(n: int, hours: int, seed: int = 0) -> list[list[str]]:
    """Realistic window texts [demo, s_1, a_1, ..., s_T, a_T]: sparse hours, repeated actions."""
    rng = random.Random(seed)
    pool = [t for t in sample_clinical_texts(4000, seed=seed) if t.startswith("Hour")]
    windows = []
    for _ in range(n):
        texts = [f"Age {rng.randint(18, 90)}, {rng.choice(['female', 'male'])}, white, emergency admission."]
        dose = rng.choice([0.02, 0.05, 0.1])
        for h in range(hours):
            state = NO_OBS if rng.random() < 0.25 else f"Hour {h}. " + pool[rng.randrange(len(pool))].split(". ", 1)[1]
            if rng.random() < 0.1:
                dose = rng.choice([0.02, 0.05, 0.1, 0.2])
            action = NO_ACT if rng.random() < 0.5 else f"Norepinephrine {dose} mcg/kg/min."
            texts += [state, action]
        windows.append(texts)
    return windows


def _rss_now_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hwm_mib() -> float:
    """Peak RSS (VmHWM) since the last _reset_hwm()."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_hwm() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak-RSS counter


def mem_child(adapters: int) -> dict:
    """Build qwen3-0.6b (random weights) with 1 or 2 adapters, run the same forward; return the numbers."""
    from peft import LoraConfig, get_peft_model

    from clin_jepa.models.encoder_flavors import FLAVORS

    cfg = EncoderConfig(flavor="qwen3-0.6b", dtype="float32")
    if adapters == 2:  # the real thing: TextEncoder with online + fp32 target on one base
        enc = build_encoder("qwen3-0.6b", cfg, random_weights=True)
        model, tok = enc.model, enc.tokenizer
    else:  # the same base with a single LoRA adapter
        torch.manual_seed(0)
        base, tok = FLAVORS["qwen3-0.6b"](cfg, None, None, True, torch.float32)
        model = get_peft_model(base, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                target_modules=list(cfg.lora_targets)), adapter_name="online").eval()
    texts = sorted({t for w in make_windows(2, 4) for t in w})
    ids = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")  # identical in both children
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers())
    lora_bytes = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if ".lora_" in n)
    rss_build = _rss_now_mib()
    build_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    _reset_hwm()
    with torch.no_grad():
        model.get_base_model().model(**ids)  # (U, L, D) last hidden state
    return {"adapters": adapters, "param_buffer_mib": (param_bytes + buffer_bytes) / 2**20,
            "lora_mib": lora_bytes / 2**20, "rss_after_build_mib": rss_build, "build_peak_rss_mib": build_peak,
            "forward_peak_rss_mib": _hwm_mib(), "forward_tokens": int(ids["input_ids"].numel())}


def bench_memory() -> dict:
    out = {}
    for n in (1, 2):
        res = subprocess.run([sys.executable, __file__, "--mem-child", str(n)], capture_output=True, text=True,
                             env={**os.environ, "CLIN_JEPA_PROGRESS": "0"})
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-2000:])
        out[n] = json.loads(res.stdout.strip().splitlines()[-1])
    for k in ("param_buffer_mib", "rss_after_build_mib", "build_peak_rss_mib", "forward_peak_rss_mib"):
        out[f"ratio_{k}"] = out[2][k] / out[1][k]
    return out


def bench_throughput(enc, windows: list[list[str]]) -> dict:
    flat = [t for w in windows for t in w]
    enc.encode(flat[:4])  # warm-up (allocator, tokenizer cache of those texts)
    enc._token_cache.clear()
    t0 = time.perf_counter()
    loop = [torch.cat([enc.encode([t]) for t in w]) for w in windows]  # per window, one text at a time
    t_loop = time.perf_counter() - t0
    enc._token_cache.clear()
    t0 = time.perf_counter()
    batched = enc.encode(flat)
    t_batch = time.perf_counter() - t0
    torch.testing.assert_close(batched, torch.cat(loop), rtol=1e-4, atol=1e-4)
    return {"windows": len(windows), "texts": len(flat), "unique_texts": len(set(flat)),
            "loop_s": t_loop, "batched_s": t_batch, "loop_texts_per_s": len(flat) / t_loop,
            "batched_texts_per_s": len(flat) / t_batch, "speedup": t_loop / t_batch,
            "max_abs_diff": float((batched - torch.cat(loop)).abs().max())}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--windows", type=int, default=16)
    p.add_argument("--hours", type=int, default=72)
    p.add_argument("--windows-06b", type=int, default=2)
    p.add_argument("--hours-06b", type=int, default=12)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: robust on a shared CPU)")
    p.add_argument("--skip-0.6b", dest="skip_06b", action="store_true")
    p.add_argument("--only-memory", action="store_true")
    p.add_argument("--mem-child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.mem_child:
        print(json.dumps(mem_child(args.mem_child)))
        return
    results: dict = {"threads": args.threads}
    if args.only_memory:
        print(json.dumps({"memory_qwen3_0.6b": bench_memory()}, indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        windows = make_windows(args.windows, args.hours)
        train_tokenizer([t for w in windows for t in w] + sample_clinical_texts(2000), 2048, Path(tmp) / "tok")
        enc = build_encoder("debug", tokenizer_dir=Path(tmp) / "tok")
        results["throughput_debug"] = bench_throughput(enc, windows)
        print(json.dumps({"throughput_debug": results["throughput_debug"]}, indent=2), flush=True)
        if not args.skip_06b:
            enc = build_encoder("qwen3-0.6b", EncoderConfig(flavor="qwen3-0.6b", dtype="float32"),
                                random_weights=True, tokenizer_dir=Path(tmp) / "tok")
            results["throughput_qwen3_0.6b"] = bench_throughput(enc, make_windows(args.windows_06b, args.hours_06b))
            print(json.dumps({"throughput_qwen3_0.6b": results["throughput_qwen3_0.6b"]}, indent=2), flush=True)
            del enc
            results["memory_qwen3_0.6b"] = bench_memory()
            print(json.dumps({"memory_qwen3_0.6b": results["memory_qwen3_0.6b"]}, indent=2), flush=True)


if __name__ == "__main__":
    main()
