"""Cost model of the paper-scale curriculum (docs/scaling.md): measured per-token costs on this
machine + a FLOP count -> projected GPU-hours on full MIMIC-IV.

Measured here (CPU, qwen3-0.6b architecture, random fp32 weights, LoRA on q/k/v/o): seconds per
token of (a) a no-grad encode, (b) an encode with grad + backward, (c) the same with gradient
checkpointing, each with length buckets and with packing; tokens per text and the padding
share of length buckets on synthetic clinical texts. The ratios (b)/(a), (c)/(a) check the
FLOP multipliers the projection uses (frozen base: 2N forward, +2N input gradients, +2N
recompute); the GPU throughput itself is an ASSUMPTION (--mfu x --peak-tflops), unmeasured.

    python benchmarks/cost_model.py                       # measure + project
    python benchmarks/cost_model.py --skip-measure --tokens-per-text 60 --pad-share 0.15
"""

from __future__ import annotations

import argparse
import json
import time

import torch

# full MIMIC-IV (v3.1: 94,458 ICU stays of 65,366 patients); the cohort keeps adult first stays
STAYS = 65_000
TRAIN_FRACTION = 0.70
MEAN_WINDOW_HOURS = 55.0  # mean hours inside the first 72 h (median ICU stay ~2 days): an assumption
UNIQUE_TEXTS_PER_STAY_HOUR = 1.04  # state + action texts after deduplication (issue 10)
QWEN3_8B_NON_EMBEDDING = 6.95e9  # parameters doing per-token matmuls (8.19B minus 2 x 151936 x 4096)
PREDICTOR_PARAMS = 92.5e6
PAPER_GPU_HOURS = 54.0  # the paper's reported budget on H200s


def measure(n_texts: int, threads: int) -> dict:
    from clin_jepa.config import EncoderConfig
    from clin_jepa.data.tokenizer import sample_clinical_texts
    from clin_jepa.models import build_encoder

    torch.set_num_threads(threads)
    texts = list(dict.fromkeys(sample_clinical_texts(n_texts * 3, seed=1)))[:n_texts]
    out = {}
    cfg = EncoderConfig(flavor="qwen3-0.6b", dtype="float32", gradient_checkpointing="on", encode_batch_tokens=4096,
                        pack_row_tokens=1024)
    enc = build_encoder("qwen3-0.6b", cfg, random_weights=True)  # one build; the flags are switched below
    rows = enc._token_ids(texts)
    tokens = sum(len(r) for r in rows)
    padded = sum(len(b) * max(len(rows[i]) for i in b) for b in enc._buckets([len(r) for r in rows]))
    out["tokens_per_text"] = tokens / len(texts)
    out["pad_share_buckets"] = 1 - tokens / padded
    enc.packing = False
    t0 = time.perf_counter()
    with torch.no_grad():
        enc.encode(texts)
    out["fwd_s_per_token"] = (time.perf_counter() - t0) / tokens
    enc.set_online_trainable(True)
    for packing in ("off", "on"):
        for ckpt in ("off", "on"):
            enc.packing, enc.gradient_checkpointing = packing == "on", ckpt == "on"
            t0 = time.perf_counter()
            enc.encode(texts, grad=True).pow(2).mean().backward()
            out[f"fwd_bwd_s_per_token_packing_{packing}_ckpt_{ckpt}"] = (time.perf_counter() - t0) / tokens
    base = out["fwd_bwd_s_per_token_packing_off_ckpt_off"]
    out["ratio_fwd_bwd_over_fwd"] = base / out["fwd_s_per_token"]
    out["ratio_ckpt_over_no_ckpt"] = out["fwd_bwd_s_per_token_packing_off_ckpt_on"] / base
    out["threads"] = threads
    return out


def project(tokens_per_text: float, pad_share: float, epochs: float, batch_windows: int, mfu: float,
            peak_tflops: float, ckpt: bool) -> dict:
    """GPU-hours of warmup, joint, align, finalize (one pass = `epochs` over the train windows each)."""
    N = QWEN3_8B_NON_EMBEDDING
    windows = STAYS * TRAIN_FRACTION
    steps = epochs * windows / batch_windows  # optimizer steps per phase
    texts_per_step = batch_windows * (MEAN_WINDOW_HOURS * UNIQUE_TEXTS_PER_STAY_HOUR + 1)
    tok_step = texts_per_step * tokens_per_text  # real tokens per step
    tok_corpus = windows * (MEAN_WINDOW_HOURS * UNIQUE_TEXTS_PER_STAY_HOUR + 1) * tokens_per_text  # one encode of all
    pred = 6 * PREDICTOR_PARAMS * batch_windows * (2 * 72 + 1) * steps  # per phase, fwd + bwd
    grad = (6 if ckpt else 4) * N  # online fwd (+ recompute) + input gradients, per token
    naive = {  # no latent cache, no packing: every step encodes its texts, padded
        "warmup": 2 * N * tok_step * steps, "joint": (grad + 2 * N) * tok_step * steps,
        "align": 4 * N * tok_step * steps, "finalize": 2 * N * tok_step * steps}
    ours = {  # latent cache: frozen-online latents encoded once per online version; packing: no padding
        "warmup": 2 * N * min(tok_corpus, tok_step * steps),
        "joint": (grad + 2 * N) * tok_step * steps,
        "align": 2 * N * tok_step * steps + 2 * N * min(tok_corpus, tok_step * steps),  # EMA target every step
        "finalize": 0.0}  # online unchanged since align: its cached latents are reused
    flops_per_gpu_hour = peak_tflops * 1e12 * mfu * 3600
    pad = 1 / (1 - pad_share)

    def hours(d, padded):
        return {k: (v * (pad if padded else 1.0) + pred) / flops_per_gpu_hour for k, v in d.items()}

    h_naive, h_ours = hours(naive, True), hours(ours, False)
    return {"steps_per_phase": steps, "real_tokens_per_step": tok_step, "naive_gpu_hours": h_naive,
            "naive_total": sum(h_naive.values()), "projected_gpu_hours": h_ours, "projected_total": sum(h_ours.values()),
            "paper_gpu_hours": PAPER_GPU_HOURS, "assumptions": {"mfu": mfu, "peak_tflops": peak_tflops,
                                                              "epochs_per_phase": epochs, "grad_ckpt": ckpt}}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--texts", type=int, default=48)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-measure", action="store_true")
    p.add_argument("--tokens-per-text", type=float, default=None)
    p.add_argument("--pad-share", type=float, default=None)
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the train windows per phase")
    p.add_argument("--batch-windows", type=int, default=32, help="windows per optimizer step (8 x grad_accum 4)")
    p.add_argument("--mfu", type=float, default=0.35, help="ASSUMED model FLOPs utilisation on the GPU")
    p.add_argument("--peak-tflops", type=float, default=989.0)
    args = p.parse_args()
    m = {} if args.skip_measure else measure(args.texts, args.threads)
    tpt = args.tokens_per_text or m.get("tokens_per_text", 60.0)
    pad = args.pad_share if args.pad_share is not None else m.get("pad_share_buckets", 0.15)
    out = {"measured": m, "projection": project(tpt, pad, args.epochs, args.batch_windows, args.mfu,
                                                args.peak_tflops, ckpt=True)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
