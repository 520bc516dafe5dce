"""The GPU check in one command: throughput, memory and a short end-to-end run on CUDA.

On a CUDA machine (run by hand; ``benchmarks/gpu_check.sh`` wraps it and keeps a log):
  1. for ``qwen3-0.6b`` and ``qwen3-8b`` with random weights in bf16 (built straight on the GPU):
     - encode texts/s (no grad, latent-cache / target encodes), packing on and off;
     - a joint-phase step (online encode with grad of a batch of windows' unique texts, target
       encode, the paper predictor, L1 loss, backward, AdamW) with gradient checkpointing
       and packing each on / off: seconds per step, peak GPU memory, model FLOPs utilisation
       (MFU = 4 x base params x real tokens / (step time x peak); a frozen base costs 2N
       forward + 2N input-gradient FLOPs per token; recompute and attention are not counted);
  2. a 50-step curriculum of the ``qwen3-0.6b`` flavor (paper predictor) end to end on one
     GPU, on a small synthetic MIMIC-IV extracted by the real pipeline;
  3. with more than one GPU: the debug-flavor curriculum under ``accelerate launch`` with the
     shipped multi-GPU DDP and FSDP configs, one process per GPU (pass / fail and wall time).
It prints one table (and writes it as JSON with --out). Budget: under 8 minutes on one H200.

``--cpu-smoke`` runs the same code paths on the CPU with the debug flavor at toy sizes (the
test suite runs it so the check cannot rot); its numbers mean nothing.

    python benchmarks/gpu_check.py                 # CUDA
    python benchmarks/gpu_check.py --cpu-smoke     # any machine, ~30 s
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
PEAK_TFLOPS = 989.0  # dense bf16 of an H100/H200 SXM (--peak-tflops to change)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _windows(n: int, hours: int) -> list[list[str]]:
    from bench_encoder import make_windows

    return make_windows(n, hours, seed=0)


def build(flavor: str, device: torch.device, packing: bool, ckpt: bool, tok_dir: Path | None):
    from clin_jepa.config import EncoderConfig
    from clin_jepa.models import build_encoder

    cfg = EncoderConfig(flavor=flavor, dtype="bfloat16" if device.type == "cuda" else "float32",
                        packing="on" if packing else "off", gradient_checkpointing="on" if ckpt else "off")
    return build_encoder(flavor, cfg, tokenizer_dir=tok_dir, random_weights=flavor != "debug", device=device)


def encode_rate(enc, texts: list[str], device: torch.device) -> dict:
    enc.encode(texts[:32])
    enc._token_cache.clear()
    _sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        enc.encode(texts)
    _sync(device)
    dt = time.perf_counter() - t0
    return {"texts_per_s": len(texts) / dt}


def joint_step(enc, predictor, windows: list[list[str]], device: torch.device, steps: int, peak_tflops: float) -> dict:
    """Seconds per joint-phase step, peak memory, MFU over ``steps`` timed steps (after one warm-up)."""
    flat = [t for w in windows for t in w]
    uniq = list(dict.fromkeys(flat))
    tokens = sum(len(r) for r in enc._token_ids(uniq))
    index = torch.tensor([uniq.index(t) for t in flat], device=device)
    B, T = len(windows), (len(windows[0]) - 1) // 2
    enc.set_online_trainable(True)
    params = enc.online_parameters() + list(predictor.parameters())
    opt = torch.optim.AdamW(params, lr=1e-5)
    n_base = sum(p.numel() for p in enc.base_parameters())
    _reset_peak(device)
    times = []
    for i in range(steps + 1):
        _sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            z = enc.encode(uniq, grad=True)[index].view(B, 2 * T + 1, -1)  # (B, 1+2T, D)
            with torch.no_grad():
                target = enc.encode(uniq, adapter="target")[index].view(B, 2 * T + 1, -1)
            d, s, a = z[:, 0], z[:, 1::2], z[:, 2::2]  # (B, D), (B, T, D), (B, T, D)
            out = predictor(d, s, a)  # (B, T, D)
            loss = (out[:, :-1] - target[:, 3::2]).abs().sum(-1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    step = sum(times) / len(times)
    return {"step_s": step, "peak_gib": _peak_gib(device), "texts": len(uniq), "tokens": tokens,
            "mfu": 4 * n_base * tokens / step / (peak_tflops * 1e12)}


def flavor_rows(flavor: str, device: torch.device, args, tok_dir: Path | None) -> list[dict]:
    from clin_jepa.config import PredictorConfig
    from clin_jepa.models import build_predictor

    rows = []
    texts = list(dict.fromkeys(t for w in _windows(args.encode_windows, args.hours) for t in w))
    windows = _windows(args.step_windows, args.hours)
    for packing in (False, True):
        for ckpt in (False, True):
            row = {"check": f"{flavor} joint step", "packing": packing, "grad_ckpt": ckpt}
            enc = None
            try:
                enc = build(flavor, device, packing, ckpt, tok_dir)
                if not ckpt:
                    row_enc = {"check": f"{flavor} encode", "packing": packing, **encode_rate(enc, texts, device)}
                    rows.append(row_enc)
                pflavor = "debug" if flavor == "debug" else "paper"
                torch.manual_seed(0)
                pred = build_predictor(pflavor, PredictorConfig(flavor=pflavor, max_steps=args.hours),
                                       latent_dim=enc.hidden_size).to(device)
                row.update(joint_step(enc, pred, windows, device, args.steps, args.peak_tflops))
            except torch.cuda.OutOfMemoryError:
                row["status"] = "out of memory"
            finally:
                del enc
                _reset_peak(device)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def curriculum_row(flavor: str, device: torch.device, steps: int, stays: int, work: Path) -> dict:
    """`steps` optimizer steps of the five-phase curriculum, end to end through pretrain()."""
    from clin_jepa.config import DataConfig, SynthConfig, load_config
    from clin_jepa.data.extract import run_extraction
    from clin_jepa.data.synth import generate
    from clin_jepa.data.tokenizer import train_tokenizer
    from clin_jepa.data.windows import load_corpus
    from clin_jepa.models import build_encoder
    from clin_jepa.training.trainer import pretrain

    t0 = time.perf_counter()
    generate(work / "mimic", SynthConfig(stays=stays, seed=0))
    run_extraction(work / "mimic", work / "data", DataConfig(duckdb_memory_limit="4GB"))
    quarter = steps // 4
    budgets = f"[warmup={quarter},joint={quarter},align={quarter},finalize={steps - 3 * quarter}]"
    pflavor = "debug" if flavor == "debug" else "paper"
    cfg = load_config(None, [f"data.data_dir={work / 'data'}", "data.window_hours=24", f"encoder.flavor={flavor}",
                             f"predictor.flavor={pflavor}", f"train.phase_steps={budgets}", "optim.batch_size=4",
                             "train.val_stays=8", "train.checkpoint_every=1000"], run_dir=str(work / "run"))
    tok = None
    if flavor == "debug":
        tok = work / "tokenizer"
        train_tokenizer(load_corpus(work / "data", 24).texts[:4000], 300, tok)
    enc = build_encoder(flavor, cfg.encoder, tokenizer_dir=tok, random_weights=flavor != "debug", device=device)
    setup = time.perf_counter() - t0
    _reset_peak(device)
    t0 = time.perf_counter()
    summary = pretrain(cfg, work / "run", encoder=enc)
    return {"check": f"{flavor} curriculum", "steps": summary["global_step"], "finished": summary["finished"],
            "train_s": time.perf_counter() - t0, "setup_s": setup, "peak_gib": _peak_gib(device)}


def launch_rows(work: Path) -> list[dict]:
    """Debug-flavor curriculum under the shipped multi-GPU accelerate configs (needs >1 GPU)."""
    rows = []
    import torch

    gpus = torch.cuda.device_count()
    for name in ("multi_gpu_ddp", "multi_gpu_fsdp"):  # FSDP: FSDP2 sharding Qwen3DecoderLayer (docs/training.md)
        run = work / name
        env = {**os.environ, "CLIN_JEPA_PROGRESS": "0"}
        cli = [sys.executable, "-m", "clin_jepa.pipelines.cli"]
        sets = ["--set", "synth.stays=60", "--set", "sft.steps=20", "--set", "train.steps_scale=0.1"]
        preps = [[*cli, "synth", "--run", str(run), *sets], [*cli, "extract", "--run", str(run), *sets],
                 [*cli, "sft", "--run", str(run)]]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "configs" / "accelerate" / f"{name}.yaml"), "--num_processes", str(gpus),
               "-m", "clin_jepa.pipelines.pretrain", "--run", str(run)]
        t0 = time.perf_counter()
        ok = all(subprocess.run(p, cwd=REPO, env=env, capture_output=True, text=True).returncode == 0 for p in preps)
        res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True) if ok else None
        rows.append({"check": f"launch {name}", "finished": bool(res and res.returncode == 0),
                     "wall_s": time.perf_counter() - t0,
                     "status": "ok" if res and res.returncode == 0 else (res.stderr[-300:] if res else "setup failed")})
    if all(r["finished"] for r in rows):  # same data, seed and global batch: how far FSDP lands from DDP
        from safetensors.torch import load_file

        a, b = (load_file(work / n / "final" / "predictor.safetensors") for n in ("multi_gpu_ddp", "multi_gpu_fsdp"))
        rows[-1]["status"] = f"ok; final predictor max |FSDP - DDP| {max(float((a[k] - b[k]).abs().max()) for k in a):.2e}"
    return rows


def table(rows: list[dict]) -> str:
    cols = ["check", "packing", "grad_ckpt", "texts_per_s", "step_s", "peak_gib", "mfu", "steps", "train_s",
            "finished", "status"]
    cols = [c for c in cols if any(c in r for r in rows)]

    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu-smoke", action="store_true", help="debug flavor on the CPU, toy sizes")
    p.add_argument("--flavors", nargs="+", default=["qwen3-0.6b", "qwen3-8b"])
    p.add_argument("--encode-windows", type=int, default=32, help="windows whose unique texts are encoded")
    p.add_argument("--step-windows", type=int, default=8, help="windows per joint step (paper batch: 8)")
    p.add_argument("--hours", type=int, default=72, help="hours per window (paper: 72)")
    p.add_argument("--steps", type=int, default=3, help="timed joint steps per setting")
    p.add_argument("--curriculum-steps", type=int, default=50)
    p.add_argument("--stays", type=int, default=200, help="synthetic stays of the curriculum run")
    p.add_argument("--peak-tflops", type=float, default=PEAK_TFLOPS)
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if args.cpu_smoke:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # the debug model's rule (train.cpu_threads, eval.threads)
        args.flavors, args.encode_windows, args.step_windows, args.hours = ["debug"], 2, 2, 6
        args.steps, args.curriculum_steps, args.stays = 1, 4, 40
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --cpu-smoke to exercise the code paths")
    else:
        device = torch.device("cuda", torch.cuda.current_device())
    t_start = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        tok_dir = None
        if "debug" in args.flavors:
            from clin_jepa.data.tokenizer import sample_clinical_texts, train_tokenizer

            tok_dir = work / "tok"
            train_tokenizer(sample_clinical_texts(400, seed=0), 300, tok_dir)
        for flavor in args.flavors:
            rows += flavor_rows(flavor, device, args, tok_dir if flavor == "debug" else None)
        cur_flavor = "debug" if args.cpu_smoke else "qwen3-0.6b"
        (work / "cur").mkdir()
        rows.append(curriculum_row(cur_flavor, device, args.curriculum_steps, args.stays, work / "cur"))
        if device.type == "cuda" and torch.cuda.device_count() > 1:
            rows += launch_rows(work)
    rows.append({"check": "total", "status": f"{time.perf_counter() - t_start:.0f} s on "
                 + (torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke: numbers mean nothing)")})
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
