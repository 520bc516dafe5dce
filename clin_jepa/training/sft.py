"""SFT: next-token prediction on the hourly texts initialises the online LoRA adapter.

For a flavor with its own tokenizer (``debug``) the stage first trains the BPE tokenizer on
the run's texts (if RUN/tokenizer is absent) and, for a flavor with a trainable base and
``sft.train_base``, trains the small base as well, so the default run starts from an
encoder that has learned the texts' structure (flavor spec fields, encoder_flavors.FLAVORS). Afterwards the
target adapter is a copy of the online one. Outputs (atomic):

    RUN/tokenizer/        debug flavor: HF tokenizer
    RUN/sft/base/         debug flavor: the trained base (save_pretrained)
    RUN/sft/adapter/      online adapter (peft: PeftModel.from_pretrained(base, RUN/sft/adapter))
    RUN/sft/metrics.json  loss curve, held-out next-token loss before/after, counts (written last)

Only texts of train-split stays are used (when splits exist), so validation/test texts are
never seen by the encoder before evaluation.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from pathlib import Path

import polars as pl
import torch

from clin_jepa.config import RunConfig, SFTConfig
from clin_jepa.data.tokenizer import train_tokenizer
from clin_jepa.models.encoder import TextEncoder, build_encoder
from clin_jepa.models.encoder_flavors import spec
from clin_jepa.run import RunDir
from clin_jepa.utils import get_logger, progress, write_json

log = get_logger(__name__)

_NEEDED = {"texts.parquet": ("stay_id", "state_text", "action_text"), "demographics.parquet": ("stay_id", "demo_text")}


def sft_texts(data_dir: str | os.PathLike, split: str | None = "train", text_mode: str = "events") -> list[str]:
    """Unique state/action/demographics texts (sorted) of the stays in ``split`` (None: all), with
    the hourly texts of ``text_mode`` (data.text_mode)."""
    from clin_jepa.data.texts import text_mode as mode

    data_dir = Path(data_dir)
    hourly_file = mode(text_mode).file
    frames = {}
    for name, cols in _NEEDED.items():
        name = hourly_file if name == "texts.parquet" else name
        f = data_dir / name
        if not f.exists():
            raise FileNotFoundError(f"{f} not found; run `clin-jepa extract` first (or set data.data_dir to the "
                                    f"directory holding {hourly_file} and demographics.parquet)")
        df = pl.read_parquet(f)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"{f} lacks columns {missing} (has {df.columns}); re-run `clin-jepa extract`")
        frames[name] = df
    texts, demo = frames[hourly_file], frames["demographics.parquet"]
    if split is not None and (data_dir / "splits.parquet").exists() and (data_dir / "cohort.parquet").exists():
        cohort = pl.read_parquet(data_dir / "cohort.parquet", columns=["stay_id", "subject_id"])
        splits = pl.read_parquet(data_dir / "splits.parquet", columns=["subject_id", "split"])
        keep = cohort.join(splits, on="subject_id").filter(pl.col("split") == split).select("stay_id")
        texts, demo = texts.join(keep, on="stay_id"), demo.join(keep, on="stay_id")
    elif split is not None:
        log.warning("no splits.parquet/cohort.parquet in %s: SFT uses the texts of every stay", data_dir)
    pool = pl.concat([texts["state_text"], texts["action_text"], demo["demo_text"]]).drop_nulls()
    out = sorted(set(pool.to_list()) - {""})
    if not out:
        raise ValueError(f"no texts for split={split!r} in {data_dir}: the cohort is empty; check the extraction "
                         "(attrition.parquet) and data.split_fractions")
    return out


def split_heldout(texts: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic (hash-based, order-free) train / held-out split of unique texts."""
    cut = int(fraction * 10_000)
    held = [t for t in texts if int(hashlib.md5(t.encode()).hexdigest()[:8], 16) % 10_000 < cut]
    held_set = set(held)
    return [t for t in texts if t not in held_set], held


@torch.no_grad()
def next_token_loss(enc: TextEncoder, texts: list[str], batch_size: int = 64) -> float:
    """Mean next-token cross-entropy over ``texts`` (weighted by batch size)."""
    total, n = 0.0, 0
    for i in range(0, len(texts), batch_size):
        chunk = texts[i: i + batch_size]
        total += float(enc.lm_loss(chunk)) * len(chunk)
        n += len(chunk)
    return total / max(n, 1)


def train_sft(enc: TextEncoder, texts: list[str], cfg: SFTConfig, train_base: bool = False) -> list[float]:
    """Next-token training of the online adapter (and the base if asked); then target <- online."""
    if not texts:
        raise ValueError("train_sft got no texts; check texts.parquet (run `clin-jepa extract`)")
    gen = torch.Generator().manual_seed(cfg.seed)
    base = enc.base_parameters() if train_base else []
    params = enc.online_parameters() + base
    enc.set_online_trainable(True)
    for p in base:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    warmup = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, cfg.steps))))))
    losses: list[float] = []
    was_training = enc.training
    enc.train()
    try:
        bar = progress(range(cfg.steps), desc="sft", unit="step")
        for step in bar:
            idx = torch.randint(len(texts), (cfg.batch_size,), generator=gen)
            loss = enc.lm_loss([texts[i] for i in idx.tolist()])
            if not torch.isfinite(loss):
                raise RuntimeError(f"SFT loss is {float(loss)} at step {step}; lower sft.lr (now {cfg.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if step % cfg.log_every == 0 or step == cfg.steps - 1:
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                log.info("sft step %d/%d loss %.4f", step + 1, cfg.steps, losses[-1])
    finally:
        for p in base:
            p.requires_grad_(False)
            p.grad = None
        for p in enc.online_parameters():
            p.grad = None
        enc.set_online_trainable(False)
        enc.train(was_training)
    enc.mark_updated()
    enc.hard_sync()
    return losses


def default_device() -> torch.device:
    """The current CUDA device when there is one, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def _sample(texts: list[str], n: int, seed: int) -> list[str]:
    return texts if len(texts) <= n else sorted(random.Random(seed).sample(texts, n))


def run_sft(run_dir: str | os.PathLike, cfg: RunConfig) -> dict:
    """The whole SFT stage for one run directory (see module docstring); returns the metrics."""
    run = RunDir(run_dir)
    flavor, own = cfg.encoder.flavor, spec(cfg.encoder.flavor)
    texts = sft_texts(cfg.data_path, text_mode=cfg.data.text_mode)
    train, held = split_heldout(texts, cfg.sft.val_fraction)
    log.info("SFT on %d unique texts (%d held out), flavor %s", len(train), len(held), flavor)
    tok_dir = None
    if own.own_tokenizer:
        tok_dir = run.tokenizer
        if not (tok_dir / "tokenizer.json").exists():
            train_tokenizer(_sample(train, cfg.tokenizer.max_texts, cfg.tokenizer.seed), cfg.tokenizer.vocab_size,
                            tok_dir)
    enc = build_encoder(flavor, cfg.encoder, tokenizer_dir=tok_dir, device=default_device())
    threads = torch.get_num_threads()
    if enc.device.type == "cpu":  # a 64-wide model runs fastest (and robustly on a busy CPU) on one thread
        torch.set_num_threads(cfg.sft.cpu_threads or (1 if own.tiny else threads))
    try:
        before = next_token_loss(enc, held) if held else float("nan")
        losses = train_sft(enc, train, cfg.sft, train_base=(own.trainable_base and cfg.sft.train_base))
        after = next_token_loss(enc, held) if held else float("nan")
    finally:
        torch.set_num_threads(threads)
    log.info("held-out next-token loss %.4f -> %.4f", before, after)
    if own.trainable_base:
        enc.save_base(run.sft_base)
    enc.save_adapter(run.sft_adapter, "online")
    metrics = {"flavor": flavor, "steps": cfg.sft.steps, "texts_train": len(train), "texts_heldout": len(held),
               "heldout_loss_before": before, "heldout_loss_after": after, "loss": losses}
    write_json(run.sft_metrics, metrics)
    return metrics


def load_sft_encoder(run_dir: str | os.PathLike, cfg: RunConfig, device: str | torch.device | None = None
                     ) -> TextEncoder:
    """The encoder after SFT (online = target = the SFT adapter): RunDir.load_sft_encoder."""
    return RunDir(run_dir).load_sft_encoder(cfg, device)
