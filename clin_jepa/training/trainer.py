"""The accelerate trainer: a state machine over the curriculum's phase specs.

``Trainer.run()`` walks ``curriculum.phases`` from the checkpointed :class:`TrainState`.
Each phase spec is turned into a :class:`Behaviour` (what trains, where targets come
from, whether the EMA runs, the rollout mode, whether latents come from the cache);
the step code reads only those flags. One AdamW with parameter groups encoder / predictor
(/ masked), learning rate = pure function of the global step, separate clip norms.
What trains goes through ``accelerator.prepare`` (DDP on several processes: the gradient
all-reduce overlaps the backward): the predictor (+ masked), the online encoder through
:class:`OnlineEncode` (its ``forward`` is ``encode``) when a phase trains it, and the
optimizer; steps use ``accelerate.accumulate`` / ``backward`` / ``clip_grad_norm_`` per group.
Every rank thus applies the same update; the EMA target (fp32, never a DDP parameter) follows
identically on each. Checkpoints save the unwrapped modules.
Randomness of micro-batch m is seeded from (seed, m, rank): resume needs no replay.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import replace
from pathlib import Path

import torch

from clin_jepa.config import RunConfig
from clin_jepa.data.windows import Corpus, WindowBatch
from clin_jepa.models.sharding import any_sharded, full, global_any, locals_
from clin_jepa.run import RunDir
from clin_jepa.training.checkpoint import (
    TrainState,
    boundary_name,
    check_resumable,
    complete_replacement,
    data_fingerprint,
    gather_states,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from clin_jepa.training.curriculum import Behaviour, Curriculum, behaviour
from clin_jepa.training.latent_cache import LatentCache
from clin_jepa.training.losses import effective_rank, jepa_loss, z_std
from clin_jepa.training.masked_jepa import build_masked_predictor, masked_jepa_loss
from clin_jepa.training.schedule import DataOrder, lr_factor, step_seed
from clin_jepa.training.trainer_setup import (
    build_optimizer,
    flat_hparams,
    make_accelerator,
    prepare_trainables,
    rank_divergence,
    write_final,
)
from clin_jepa.utils import get_logger, progress, write_json

log = get_logger(__name__)


class CollapseError(RuntimeError):
    """z_std fell below train.z_std_floor: the representation collapsed."""


class NonFiniteError(RuntimeError):
    """A loss, gradient or weight became NaN/inf: training stopped before saving it."""


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir, curriculum: Curriculum, corpus: Corpus, encoder,
                 accelerator=None):
        self.cfg, self.run_dir, self.cur = cfg, Path(run_dir), curriculum
        self.rundir = RunDir(run_dir)
        self.acc = accelerator or make_accelerator(cfg, self.rundir.logs)
        self.device = self.acc.device
        quiet_other_ranks(self.acc)
        self.texts = corpus.texts
        self.train_set = corpus.subset("train")
        val = corpus.subset("val")
        if len(val) == 0:
            log.warning("no validation stays: validating on the first training stays")
            val = self.train_set
        self.val_set = val.select(range(min(cfg.train.val_stays, len(val))))
        self.order = DataOrder(len(self.train_set), cfg.optim.batch_size, self.acc.num_processes, cfg.train.seed)
        self.encoder = encoder.to(self.device)
        from clin_jepa.models import build_predictor

        torch.manual_seed(cfg.train.seed)
        self.predictor = build_predictor(cfg.predictor.flavor, cfg.predictor,
                                         latent_dim=encoder.hidden_size).to(self.device)
        self.masked = None
        if curriculum.has_objective("masked_jepa"):
            t = cfg.train
            self.masked = build_masked_predictor(encoder.hidden_size, t.masked_width, t.masked_layers,
                                                 t.mask_ratio, corpus.window_hours).to(self.device)
        optimizer = build_optimizer(cfg.optim, encoder, self.predictor, self.masked)
        trains_encoder = any(behaviour(p).train_encoder for p in curriculum.phases if not p.is_instant)
        # self.predictor / self.masked / self.encoder stay the raw modules (checkpoints, EMA; under
        # FSDP2 their parameters become shards in place); every forward runs through the prepared ones
        self.prep = prepare_trainables(self.acc, encoder, self.predictor, self.masked, optimizer, trains_encoder)
        self.optimizer = self.prep.optimizer
        self._group_hparams = {g["name"]: (g["base_lr"], g["clip"]) for g in self.optimizer.param_groups}
        t = cfg.train
        self.cache = LatentCache(encoder, self.texts, t.cache_block, storage=t.cache_storage, dtype=t.cache_dtype,
                                 cache_dir=t.cache_dir, accelerator=self.acc, encode=self.prep.encode)
        self.state = TrainState(curriculum=curriculum.name, phases=[p.name for p in curriculum.phases])
        self.ckpt_dir = self.rundir.checkpoints
        self._stop, self._phase = "", ""
        self._data_fp = data_fingerprint(cfg.data_path)
        self._texts_seen, self._t0 = 0, time.perf_counter()
        self._grad_norms: dict[str, float] = {}

    # ------------------------------------------------------------------ state
    def resume(self, path: Path | None = None) -> bool:
        """Restore the latest (or given) checkpoint; False when there is none."""
        if path is not None:
            verify_checkpoint(path)
        else:  # the newest checkpoint that verifies
            path = latest_checkpoint(self.ckpt_dir)
            if path is None:
                return False
        check_resumable(path, self.cfg.to_dict(), self._data_fp)
        state = load_checkpoint(path, self.encoder, self.predictor, self.optimizer, self.masked, verify=False,
                                root=self.prep.root)
        self.acc.wait_for_everyone()  # every rank has read it: a leftover may now take its own name
        if self.acc.is_main_process:
            complete_replacement(path)
        if state.phases != self.state.phases:
            raise ValueError(f"checkpoint {path} was written for phases {state.phases}, this curriculum has "
                             f"{self.state.phases}; resume with the same train.curriculum/drop_phases or start a new run")
        for g in self.optimizer.param_groups:  # learning rates and clip norms follow the current config
            g["base_lr"], g["clip"] = self._group_hparams[g["name"]]
        self.state = state
        self.state.stopped = ""
        self.cache.clear()
        log.info("resumed from %s at global step %d (phase %d, step %d)", path.name, state.global_step,
                 state.phase_index, state.phase_step)
        return True

    def save(self, name: str) -> None:
        self._check_finite_weights()  # never write a NaN state that looks complete
        gathered = gather_states(self.encoder, self.predictor, self.optimizer, self.masked, self.prep.root)
        if self.acc.is_main_process:
            save_checkpoint(self.ckpt_dir / name, self.state, gathered, self.predictor.config, self.cfg.to_dict(),
                            self.cur.to_dict(), self.encoder, origin={"data_fingerprint": self._data_fp})
        self.acc.wait_for_everyone()

    def _non_finite(self, what: str, value: float) -> NonFiniteError:
        o = self.cfg.optim
        last = latest_checkpoint(self.ckpt_dir)
        self.state.stopped = "non_finite"
        return NonFiniteError(
            f"non-finite {what} ({value}) in phase {self._phase or '?'} at step {self.state.global_step + 1}: "
            f"training stopped before saving (last good checkpoint: {last or 'none'}). Likely cause: a learning "
            f"rate too high (optim.lr_encoder={o.lr_encoder}, optim.lr_predictor={o.lr_predictor}) or "
            f"non-finite values in the data ({self.cfg.data_path}); lower the learning rates or fix the data, "
            f"then start again or --resume")

    def _check_finite_weights(self) -> None:
        for name, params in (("encoder", self.encoder.online_parameters()),
                             ("predictor", list(self.predictor.parameters()))):
            bad = next((p.detach() for p in locals_(params) if not torch.isfinite(p).all()), None)
            # under FSDP each rank checks its shards: every rank must take the same branch
            if global_any(bad is not None, any_sharded(params), self.device):
                value = float(bad[~torch.isfinite(bad)].flatten()[0]) if bad is not None else float("nan")
                raise self._non_finite(f"{name} weight", value)

    # ------------------------------------------------------------------ latents
    def _latents(self, batch: WindowBatch, beh: Behaviour):
        """Online d, s, a and the loss targets of a batch, each distinct text encoded once."""
        uniq, inv = batch.unique_ids()  # (U,), rows of every position
        if beh.cache_online and self.cfg.train.latent_cache:
            online = self.cache.get(uniq)  # (U, D) no grad
        else:
            texts = [self.texts[i] for i in uniq.tolist()]
            if beh.train_encoder:  # through the prepared (DDP / FSDP) module: its gradients are synced
                online = self.prep.online(texts)  # (U, D)
            else:
                online = self.prep.encode(texts, adapter="online", grad=False)  # (U, D)
        d, s, a = WindowBatch.gather(online, inv)  # (B, D), (B, T, D), (B, T, D)
        if beh.targets_from_ema:
            rows = inv.state[batch.mask].unique()  # only state texts are targets
            tgt = online.new_zeros(online.shape)  # (U, D)
            tgt[rows] = self.prep.encode([self.texts[i] for i in uniq[rows].tolist()], adapter="target")
            target = tgt.detach()[inv.state]  # (B, T, D)
        else:
            target = s.detach()
        self._texts_seen += int(uniq.numel())
        return d, s, a, target

    def _loss(self, batch: WindowBatch, beh: Behaviour, gen: torch.Generator, keep: list | None = None) -> dict:
        with self.acc.autocast():
            d, s, a, target = self._latents(batch, beh)
            mask = batch.mask.to(self.device)
            if beh.train_masked:
                out = masked_jepa_loss(self.prep.masked, d, s, target, mask, gen)
            else:
                out = jepa_loss(self.prep.pred, d, s, a, target, mask, self.cfg.loss, beh.rollout_mode, gen)
        valid = s.detach()[mask].float()  # (n, D) state latents of real hours
        out["z_std"] = torch.tensor(_safe_z_std(valid))
        if keep is not None:
            keep.append(valid.cpu())
        return out

    # ------------------------------------------------------------------ one optimizer step
    def _train_step(self, beh: Behaviour) -> dict:
        if not self.predictor.training:  # train() walks every module: only when needed
            self.predictor.train()
        totals: dict[str, float] = {}
        for _ in range(self.cfg.optim.grad_accum):
            m = self.state.micro_step
            self._seed_dropout(step_seed(self.cfg.train.seed, m, self.acc.process_index))
            gen = torch.Generator().manual_seed(step_seed(self.cfg.train.seed, m, self.acc.process_index, 1))
            batch = self.train_set.batch(self.order.indices(m, self.acc.process_index))
            with self.acc.accumulate(*self.prep.modules):
                out = self._loss(batch, beh, gen)
                self.acc.backward(out["loss"])
                if self.acc.sync_gradients:
                    self._apply_update(beh)
            self.state.micro_step += 1
            for k, v in out.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / self.cfg.optim.grad_accum
        return totals

    def _seed_dropout(self, seed: int) -> None:
        """Seed the generator dropout draws from on this device (torch.manual_seed also queues a
        lazy seed for every accelerator backend, with a stack capture each: ~0.3 ms per step)."""
        torch.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(seed)

    def _apply_update(self, beh: Behaviour) -> None:
        step, o = self.state.global_step, self.cfg.optim
        factor = lr_factor(step, max(1, self.cur.total_steps), o.warmup_steps, o.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                norm = float(full(self.acc.clip_grad_norm_(params, group["clip"])))  # a DTensor under FSDP
                if not math.isfinite(norm):  # a NaN loss gives NaN gradients: stop before the update
                    raise self._non_finite(f"loss gradient of the {group['name']}", norm)
                self._grad_norms[group["name"]] = norm
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if beh.train_encoder:
            self.encoder.mark_updated()  # online changed: cached online latents are stale
        if beh.ema_update:
            self.encoder.ema_update(self.cfg.encoder.ema_tau)  # target only: the cache stays valid
        self.state.global_step += 1
        self.state.phase_step += 1

    def _rank_divergence(self) -> float:
        """max |w - w_rank0| over every trained weight and all processes (0.0 when in sync)."""
        return rank_divergence([*self.encoder.online_parameters(), *self.encoder.target_parameters(),
                                *self.predictor.parameters(),
                                *(self.masked.parameters() if self.masked is not None else [])],
                               self.acc.num_processes)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, beh: Behaviour) -> dict[str, float]:
        """Phase loss on the fixed validation stays + z_std / effective rank of their state latents."""
        self.predictor.eval()
        beh = replace(beh, train_encoder=False)  # encode without a graph
        gen = torch.Generator().manual_seed(step_seed(self.cfg.train.seed, 0, 0, 2))
        total, states = 0.0, []
        bs = self.cfg.optim.batch_size
        for i in range(0, len(self.val_set), bs):
            batch = self.val_set.batch(range(i, min(i + bs, len(self.val_set))))
            total += float(self._loss(batch, beh, gen, states)["loss"]) * len(batch)
        self.predictor.train()
        z = torch.cat(states)  # (N, D) valid state latents
        return {"val/loss": total / len(self.val_set), "val/z_std": _safe_z_std(z),
                "val/effective_rank": effective_rank(z)}

    # ------------------------------------------------------------------ the state machine
    def run(self, only: list[str] | None = None) -> dict:
        """Run the curriculum (or only the phases named in ``only``) from the current state."""
        phases = self.cur.phases
        if only:
            bad = [n for n in only if n not in self.state.phases]
            if bad:
                raise ValueError(f"--phases: unknown phase {bad[0]!r}; this curriculum has {self.state.phases}")
        if self.acc.is_main_process:
            self.acc.init_trackers("pretrain", config=flat_hparams(self.cfg))
        old = signal.signal(signal.SIGTERM, self._on_sigterm)
        quiet = {} if self.acc.is_local_main_process else {"disable": True}
        bar = progress(total=self.cur.total_steps, initial=self.state.global_step, desc="pretrain", **quiet)
        threads = torch.get_num_threads()
        if self.device.type == "cpu":
            torch.set_num_threads(self._cpu_threads(threads))
        try:
            while self.state.phase_index < len(phases) and not self.state.stopped:
                spec = phases[self.state.phase_index]
                if only and spec.name not in only:
                    if any(n in only for n in self.state.phases[self.state.phase_index:]):
                        log.info("phase %s not selected: skipped", spec.name)
                        self._next_phase(spec, save=False)
                        continue
                    break
                self._run_phase(spec, bar)
        except (CollapseError, NonFiniteError):
            self._summary()  # the stop reason is on record before the error propagates
            raise
        finally:
            torch.set_num_threads(threads)
            signal.signal(signal.SIGTERM, old)
            bar.close()
        if self.state.phase_index >= len(phases) and not self.state.stopped:
            self.state.finished = True
            write_final(self.rundir, self.encoder, self.predictor, main=self.acc.is_main_process)
        return self._summary()

    def _cpu_threads(self, default: int) -> int:
        """train.cpu_threads, or 1 for a tiny encoder flavor (flavor spec) with a predictor of under
        1M weights (the debug models): their matmuls gain nothing from a second thread and
        stall on a busy CPU (BENCHMARKS.md, Training)."""
        from clin_jepa.models.encoder_flavors import spec

        tiny = spec(self.encoder.flavor).tiny and sum(p.numel() for p in self.predictor.parameters()) < 1_000_000
        return self.cfg.train.cpu_threads or (1 if tiny else default)

    def _summary(self) -> dict:
        """TrainState + run facts, written to RUN/pretrain_summary.json; ends the trackers."""
        summary = {"curriculum": self.cur.name, **self.state.to_dict(), "cache_encoded_texts": self.cache.encoded,
                   "cache_encoded_by_main": self.cache.encoded_here,
                   "processes": self.acc.num_processes, "rank_max_weight_diff": self._rank_divergence()}
        if self.acc.is_main_process:
            write_json(self.rundir.pretrain_summary, summary)
        self.acc.wait_for_everyone()  # no rank leaves (and destroys the group) while another still talks
        self.acc.end_training()
        return summary

    def _run_phase(self, spec, bar) -> None:
        beh = behaviour(spec)
        self._phase = spec.name
        self.encoder.set_online_trainable(beh.train_encoder)
        if beh.instant == "hard_sync":
            gap = self.encoder.hard_sync()  # target only: the online cache stays valid
            self.state.sync_gaps[spec.name] = gap
            log.info("phase %s: hard sync, max online-target gap %.2e", spec.name, gap)
            self.acc.log({"sync/gap": gap}, step=self.state.global_step)
            self._next_phase(spec)
            return
        if self.state.phase_step == 0:
            log.info("phase %s: %d steps (encoder %s, targets %s, ema %s, rollout %s, %s)", spec.name, spec.steps,
                     spec.encoder, spec.targets, spec.ema, spec.rollout, spec.objective)
            if spec.val_loss_must_fall:
                self.state.phase_start_val = self.validate(beh)["val/loss"]
        while self.state.phase_step < spec.steps:
            metrics = self._train_step(beh)
            bar.update(1)
            if self._after_step(spec, beh, metrics):
                return
        self._end_phase(spec, beh)

    def _after_step(self, spec, beh: Behaviour, metrics: dict) -> bool:
        """Logging, watchdogs, periodic saves, early phase ends; True when the run must stop."""
        t, step = self.cfg.train, self.state.global_step
        flags = torch.tensor([float(bool(self._stop)), metrics["z_std"]], device=self.device)
        if self.acc.num_processes > 1:
            flags = self.acc.reduce(flags, reduction="mean")
        log_now = step % t.log_every == 0 or step == 1
        gap = self.encoder.online_target_gap() if (beh.ema_update and log_now) or spec.gap_below else None
        if log_now:
            rate = self._texts_seen / max(1e-9, time.perf_counter() - self._t0)
            logs = {f"train/{k}": v for k, v in metrics.items()} | {"train/texts_per_s": rate}
            logs |= {f"lr/{g['name']}": g["lr"] for g in self.optimizer.param_groups}
            logs |= {f"grad_norm/{k}": v for k, v in self._grad_norms.items()}
            if gap is not None:
                logs["train/online_target_gap"] = gap
            self.acc.log(logs, step=step)
        if step % t.val_every == 0:
            self.acc.log(self.validate(beh), step=step)
        if not math.isfinite(float(flags[1])):
            raise self._non_finite("latent spread z_std", float(flags[1]))
        if t.z_std_floor > 0 and float(flags[1]) < t.z_std_floor:
            self.state.stopped = "collapse"
            self.save("last")
            raise CollapseError(f"collapse watchdog: z_std={float(flags[1]):.3g} < train.z_std_floor="
                                f"{t.z_std_floor} at step {step} (phase {spec.name}); state saved to "
                                f"{self.ckpt_dir / 'last'}. Lower the learning rates or enable loss.regularizer")
        if spec.gap_below and gap is not None and gap < spec.gap_below and self.state.phase_step < spec.steps:
            log.info("phase %s: online-target gap %.2e < %.2e after %d steps: phase ends", spec.name, gap,
                     spec.gap_below, self.state.phase_step)
            self._end_phase(spec, beh)
            return True
        if float(flags[0]) > 0 or (t.stop_after_steps and step == t.stop_after_steps):
            self.state.stopped = "sigterm" if float(flags[0]) > 0 else "stop_after_steps"
            self.save("last")
            log.info("stopped (%s) at step %d; continue with --resume", self.state.stopped, step)
            return True
        if step % t.checkpoint_every == 0:
            self.save("last")
        return False

    def _end_phase(self, spec, beh: Behaviour) -> None:
        val = self.validate(beh)
        self.acc.log(val, step=self.state.global_step)
        if spec.val_loss_must_fall:
            start, end = self.state.phase_start_val, val["val/loss"]
            fell = start is not None and end < start
            self.state.watchdogs[spec.name] = {"start": start, "end": end, "fell": fell}
            (log.info if fell else log.warning)(
                "phase %s watchdog: validation loss %.4f -> %.4f (%s)", spec.name, start, end,
                "fell" if fell else "did NOT fall after the sync")
        self._next_phase(spec)

    def _next_phase(self, spec, save: bool = True) -> None:
        index = self.state.phase_index
        self.state.phase_index += 1
        self.state.phase_step = 0
        self.state.phase_start_val = None
        if save:
            self.save(boundary_name(index, spec.name))

    def _on_sigterm(self, signum, frame) -> None:
        log.warning("SIGTERM: saving state at the next step boundary")
        self._stop = "sigterm"


def quiet_other_ranks(acc) -> None:
    """One copy of the INFO log per job, from the main process."""
    if not acc.is_main_process:
        logging.getLogger("clin_jepa").setLevel("WARNING")


def _safe_z_std(z: torch.Tensor) -> float:
    return z_std(z) if z.shape[0] >= 2 else float("inf")  # one latent: no spread to measure


def pretrain(cfg: RunConfig, run_dir, phases: list[str] | None = None, resume: bool = False, encoder=None,
             accelerator=None) -> dict:
    """Train the curriculum of ``cfg`` in ``run_dir``; returns the summary (also pretrain_summary.json).

    ``phases``: only these phases, starting from the latest checkpoint. ``resume``: continue
    from the latest checkpoint. ``encoder``: defaults to the run's SFT encoder.
    """
    from clin_jepa.data.windows import run_corpus
    from clin_jepa.training.curriculum import load_curriculum

    run = RunDir(run_dir)
    accelerator = accelerator or make_accelerator(cfg, run.logs)  # before any model: ranks own their devices
    quiet_other_ranks(accelerator)
    t = cfg.train
    cur = load_curriculum(t.curriculum, t.drop_phases, t.steps_scale, t.phase_steps)
    names = [p.name for p in cur.phases]
    bad = [n for n in phases or () if n not in names]
    if bad:
        raise ValueError(f"--phases: unknown phase {bad[0]!r}; this curriculum has {names}")
    if not (resume or phases) and latest_checkpoint(run.checkpoints) is not None:
        raise ValueError(f"{run.checkpoints} already holds checkpoints: pass --resume to continue that run, "
                         f"or delete {run.checkpoints} (or use a new --run) to start over")
    corpus = run_corpus(cfg)
    if encoder is None:
        if not run.sft.exists():
            raise FileNotFoundError(f"{run.sft} not found: pretraining starts from the SFT encoder; "
                                    f"run `clin-jepa sft --run {run_dir}` first")
        encoder = run.load_sft_encoder(cfg, device=accelerator.device)
    trainer = Trainer(cfg, run_dir, cur, corpus, encoder, accelerator)
    if resume or phases:
        if not trainer.resume():
            log.info("no checkpoint in %s: starting from the beginning", trainer.ckpt_dir)
    return trainer.run(only=phases)
