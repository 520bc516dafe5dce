"""Phase-1 (frozen encoder) optimizer step with the latent cache vs re-encoding every step.

Both trainers start from the same weights and see the same batches; the script checks
that their losses agree, then reports the median step time of each and the ratio.
The cache is filled once by encoding every training text (reported separately: it is
paid once per frozen phase, then every later step and epoch reuses it). Also reported: the
predictor floor (the part of a cached step no cache can remove) and, with --joint, one
phase-2 step (trainable encoder).

    python benchmarks/bench_latent_cache.py                       # debug flavor
    python benchmarks/bench_latent_cache.py --flavor qwen3-0.6b --stays 4 --hours 6 --batch 2 --steps 2
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl
import torch

from clin_jepa.config import load_config
from clin_jepa.data.tokenizer import train_tokenizer
from clin_jepa.data.windows import load_corpus
from clin_jepa.models import build_encoder
from clin_jepa.training.curriculum import behaviour, load_curriculum
from clin_jepa.training.trainer import Trainer


def write_data(out: Path, stays: int, hours: int, seed: int = 0) -> Path:
    """Hourly texts with per-hour vitals (mostly distinct, like real data)."""
    rng = random.Random(seed)
    rows = []
    for s in range(stays):
        for h in range(hours):
            state = (f"Hour {h}. Heart rate {rng.randint(50, 140)} bpm. Mean arterial pressure "
                     f"{rng.randint(50, 110)} mmHg. SpO2 {rng.randint(85, 100)} %."
                     if rng.random() < 0.9 else "No new observations.")
            action = rng.choice(["No intervention.", "Norepinephrine 0.1 mcg/kg/min.", "Fluid bolus 500 mL."])
            rows.append((s, h, state, action))
    out.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows, schema=["stay_id", "hour", "state_text", "action_text"], orient="row").write_parquet(
        out / "texts.parquet")
    pl.DataFrame({"stay_id": list(range(stays)), "demo_text": [f"Age {40 + s % 50}, female." for s in range(stays)]}
                 ).write_parquet(out / "demographics.parquet")
    pl.DataFrame({"stay_id": list(range(stays)), "subject_id": list(range(stays))}).write_parquet(out / "cohort.parquet")
    split = ["val" if s % 10 == 9 else "train" for s in range(stays)]
    pl.DataFrame({"subject_id": list(range(stays)), "split": split}).write_parquet(out / "splits.parquet")
    return out


def measure(root: Path, args, cache: bool) -> dict:
    cfg = load_config(None, [f"data.data_dir={root / 'data'}", f"data.window_hours={args.hours}",
                             "train.curriculum=sft_frozen", f"optim.batch_size={args.batch}",
                             f"train.latent_cache={cache}", f"encoder.flavor={args.flavor}"],
                      run_dir=str(root / f"run_{cache}"))
    tok = root / "tokenizer" if args.flavor == "debug" else None
    enc = build_encoder(args.flavor, cfg.encoder, tokenizer_dir=tok, random_weights=args.flavor != "debug")
    cur = load_curriculum("sft_frozen")
    tr = Trainer(cfg, cfg.run_dir, cur, load_corpus(root / "data", args.hours), enc)
    beh = behaviour(cur.phases[0])
    fill = 0.0
    if cache:
        t0 = time.perf_counter()
        ids = torch.from_numpy(tr.train_set.state_ids[tr.train_set.state_ids >= 0])
        ids = torch.cat([ids, torch.from_numpy(tr.train_set.action_ids[tr.train_set.action_ids >= 0]),
                         torch.from_numpy(tr.train_set.demo_ids)]).unique()
        tr.cache.get(ids)
        fill = time.perf_counter() - t0
    times, losses = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        out = tr._train_step(beh)
        times.append(time.perf_counter() - t0)
        losses.append(out["loss"])
    result = {"median_s": statistics.median(times), "fill_s": fill, "losses": losses, "encoded": enc.forward_rows}
    if cache:
        result["floor_s"] = predictor_floor(tr, beh, args.steps)
    return result


def predictor_floor(tr: Trainer, beh, steps: int) -> float:
    """Median time of what a cached step cannot avoid: the predictor's loss forward + backward,
    gradient clipping and the optimizer step on latents gathered beforehand (no trainer code)."""
    from clin_jepa.training.losses import jepa_loss

    batch = tr.train_set.batch(tr.order.indices(0, 0))
    d, s, a, target = tr._latents(batch, beh)  # (B, D), (B, T, D) x 3
    gen = torch.Generator().manual_seed(0)
    params = list(tr.predictor.parameters())
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = jepa_loss(tr.predictor, d, s, a, target, batch.mask, tr.cfg.loss, beh.rollout_mode, gen)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        tr.optimizer.step()
        tr.optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def joint_step(root: Path, args) -> float:
    """Median time of one phase-2 step (trainable encoder, EMA targets and update) of `full`."""
    cfg = load_config(None, [f"data.data_dir={root / 'data'}", f"data.window_hours={args.hours}",
                             "train.curriculum=full", f"optim.batch_size={args.batch}",
                             f"encoder.flavor={args.flavor}"], run_dir=str(root / "run_joint"))
    tok = root / "tokenizer" if args.flavor == "debug" else None
    enc = build_encoder(args.flavor, cfg.encoder, tokenizer_dir=tok, random_weights=args.flavor != "debug")
    cur = load_curriculum("full")
    tr = Trainer(cfg, cfg.run_dir, cur, load_corpus(root / "data", args.hours), enc)
    spec = next(p for p in cur.phases if p.encoder == "trainable")
    beh = behaviour(spec)
    enc.set_online_trainable(True)
    tr._train_step(beh)  # warm-up
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        tr._train_step(beh)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flavor", default="debug")
    p.add_argument("--stays", type=int, default=100)
    p.add_argument("--hours", type=int, default=24)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    p.add_argument("--joint", action="store_true", help="also time a phase-2 step (trainable encoder)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_data(root / "data", args.stays, args.hours)
        if args.flavor == "debug":
            train_tokenizer(load_corpus(root / "data", args.hours).texts, 2048, root / "tokenizer")
        on, off = measure(root, args, True), measure(root, args, False)
        joint = joint_step(root, args) if args.joint else None
    diff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(on["losses"], off["losses"]))
    print(f"flavor={args.flavor} stays={args.stays} hours={args.hours} batch={args.batch} steps={args.steps} "
          f"threads={torch.get_num_threads()}")
    print(f"losses with cache   : {[round(x, 4) for x in on['losses']]}")
    print(f"losses re-encoding  : {[round(x, 4) for x in off['losses']]}")
    print(f"max relative loss difference: {diff:.2e}")
    print(f"cache fill (once)   : {on['fill_s']:.3f} s")
    print(f"step with cache     : {on['median_s'] * 1e3:.1f} ms (median)")
    print(f"step re-encoding    : {off['median_s'] * 1e3:.1f} ms (median)")
    print(f"speed-up            : {off['median_s'] / on['median_s']:.1f}x")
    floor = on["floor_s"]
    print(f"predictor floor     : {floor * 1e3:.1f} ms (loss fwd + bwd + clip + AdamW on ready latents; "
          f"cached step = floor + {(on['median_s'] - floor) * 1e3:.1f} ms trainer/cache work)")
    print(f"best possible ratio : {off['median_s'] / floor:.1f}x (re-encode step / predictor floor)")
    if joint is not None:
        print(f"phase-2 (joint) step: {joint * 1e3:.1f} ms (median; trainable encoder, EMA targets)")
    if diff > 1e-4:
        raise SystemExit(f"losses differ by {diff:.2e}: the cache changed the numbers")


if __name__ == "__main__":
    main()
