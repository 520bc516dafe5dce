"""SFT step: one padded batch (before) vs length buckets over real positions (now), side by side.

Two identical debug (or other own-tokenizer) encoders train on the same batches of a run's
SFT texts, steps alternating between them, on one torch thread (what `clin-jepa sft` uses
for a tiny flavor). "before" is transformers' loss on one right-padded batch of the 64 texts
(the SFT loss until 2026-11-30); "now" is TextEncoder.lm_loss. Reports seconds per step
(forward + backward + AdamW), padded vs real tokens, and the largest loss difference.

    python benchmarks/bench_sft.py --run RUN --steps 30     # RUN: after `clin-jepa sft` (tokenizer + data)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from clin_jepa.models.encoder import build_encoder
from clin_jepa.run import RunDir
from clin_jepa.training.sft import sft_texts, split_heldout


def padded_loss(enc, texts: list[str]) -> torch.Tensor:
    """The former lm_loss: one right-padded batch, transformers' own shifted cross-entropy."""
    rows = [r + [enc._empty_id] for r in enc._token_ids(texts)]
    L = max(map(len, rows))
    ids = torch.tensor([r + [enc._pad_id] * (L - len(r)) for r in rows])  # (B, L)
    labels = torch.tensor([r + [-100] * (L - len(r)) for r in rows])  # (B, L)
    return enc.model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels, use_cache=False).loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = RunDir(args.run)
    cfg = run.load_config()
    train, _ = split_heldout(sft_texts(cfg.data_path), cfg.sft.val_fraction)
    encs, opts = {}, {}
    for name in ("before", "now"):
        enc = build_encoder(cfg.encoder.flavor, cfg.encoder, tokenizer_dir=run.tokenizer)
        enc.set_online_trainable(True)
        params = enc.online_parameters() + enc.base_parameters()
        for q in params:
            q.requires_grad_(True)
        enc.train()
        encs[name], opts[name] = enc, (torch.optim.AdamW(params, lr=cfg.sft.lr), params)
    gen = torch.Generator().manual_seed(0)
    times = {"before": [], "now": []}
    diff, padded, real = 0.0, 0, 0
    for step in range(args.steps):
        batch = [train[i] for i in torch.randint(len(train), (cfg.sft.batch_size,), generator=gen).tolist()]
        lens = [len(r) + 1 for r in encs["now"]._token_ids(batch)]
        padded, real = padded + len(lens) * max(lens), real + sum(lens)
        losses = {}
        for name in (("before", "now") if step % 2 else ("now", "before")):  # alternate who goes first
            enc, (opt, params) = encs[name], opts[name]
            t0 = time.perf_counter()
            loss = padded_loss(enc, batch) if name == "before" else enc.lm_loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            times[name].append(time.perf_counter() - t0)
            losses[name] = float(loss)
        diff = max(diff, abs(losses["before"] - losses["now"]))
    med = {k: statistics.median(v[1:]) for k, v in times.items()}  # first step warms up
    print(f"flavor {cfg.encoder.flavor}, {args.steps} steps of {cfg.sft.batch_size} texts, {args.threads} thread(s)")
    print(f"tokens per step: {padded / args.steps:.0f} padded, {real / args.steps:.0f} real "
          f"({1 - real / padded:.0%} padding)")
    print("| loss | median s/step | steps/s |\n|---|---|---|")
    for k in ("before", "now"):
        print(f"| {k} | {med[k]:.3f} | {1 / med[k]:.2f} |")
    print(f"speed-up {med['before'] / med['now']:.2f}x; max |loss before - loss now| over the run {diff:.2e}")


if __name__ == "__main__":
    main()
