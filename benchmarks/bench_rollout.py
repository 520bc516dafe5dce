"""48-hour latent rollout: KV-cached vs full recomputation, side by side in one run.

    python benchmarks/bench_rollout.py --flavors debug paper --batch 8 --context 24 --horizon 48

Prints a Markdown table (wall time per rollout, speed-up ratio, max |cached - full|) to paste
into BENCHMARKS.md. Weights are random (speed does not depend on training); eval mode, fp32.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from clin_jepa.models.predictor import build_predictor


def _time(fn, repeats: int, device: torch.device) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench(flavor: str, batch: int, context: int, horizon: int, repeats: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    p = build_predictor(flavor).to(device).eval()
    D = p.config.latent_dim
    g = torch.Generator(device="cpu").manual_seed(1)
    d = torch.randn(batch, D, generator=g).to(device)
    s_ctx = torch.randn(batch, context, D, generator=g).to(device)
    a = torch.randn(batch, context + horizon, D, generator=g).to(device)
    with torch.inference_mode():
        p.rollout(d, s_ctx, a, horizon=2)  # warm-up (allocator, kernels)
        t_cache, z_cache = _time(lambda: p.rollout(d, s_ctx, a, horizon=horizon, use_cache=True), repeats, device)
        t_full, z_full = _time(lambda: p.rollout(d, s_ctx, a, horizon=horizon, use_cache=False), repeats, device)
    return dict(flavor=flavor, params=p.num_parameters(), cached_s=t_cache, full_s=t_full,
                ratio=t_full / t_cache, max_abs_diff=(z_cache - z_full).abs().max().item(),
                scale=z_full.abs().mean().item())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flavors", nargs="+", default=["debug", "paper"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--context", type=int, default=24, help="hours of context")
    ap.add_argument("--horizon", type=int, default=48, help="hours rolled out")
    ap.add_argument("--repeats", type=int, default=1, help="best of N timings")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}; batch {args.batch}, context {args.context} h, "
          f"horizon {args.horizon} h, best of {args.repeats}\n")
    print("| flavor | params | cached (s) | full recompute (s) | speed-up | max abs diff (mean abs) |")
    print("|---|---|---|---|---|---|")
    for flavor in args.flavors:
        r = bench(flavor, args.batch, args.context, args.horizon, args.repeats, device)
        print(f"| {r['flavor']} | {r['params'] / 1e6:.2f}M | {r['cached_s']:.3f} | {r['full_s']:.3f} | "
              f"{r['ratio']:.1f}x | {r['max_abs_diff']:.1e} ({r['scale']:.2f}) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
