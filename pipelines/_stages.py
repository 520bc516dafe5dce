"""The pipeline's stages as functions of (RunDir, RunConfig), shared by ``demo`` and ``ablate``.

A stage whose completion marker exists (``RunDir.done``: each stage writes it last and
atomically, and a later --reconfigure can make it stale) is skipped, so an interrupted demo
or ablation continues where it stopped; an interrupted pretraining resumes from its latest
checkpoint, exactly (the checkpoint refuses other settings or data).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from clin_jepa.config import RunConfig
from clin_jepa.run import STAGES, RunDir, absolute_paths
from clin_jepa.utils import get_logger, seed_everything

log = get_logger("clin_jepa.pipelines.stages")


@dataclass(frozen=True)
class Stage:
    name: str  # one of clin_jepa.run.STAGES (its marker is RunDir.marker(name))
    title: str  # what the user reads
    run: Callable[[RunDir, RunConfig], None]


def _synth(run: RunDir, cfg: RunConfig) -> None:
    from clin_jepa.data.synth import generate

    generate(run.mimic, cfg.synth)


def _extract(run: RunDir, cfg: RunConfig) -> None:
    from clin_jepa.data.extract import run_extraction

    run_extraction(run.mimic_source(cfg), cfg.data_path, cfg.data)


def _sft(run: RunDir, cfg: RunConfig) -> None:
    from clin_jepa.training.sft import run_sft

    seed_everything(cfg.sft.seed)
    run_sft(run.root, cfg)


def _pretrain(run: RunDir, cfg: RunConfig) -> None:
    from clin_jepa.training.checkpoint import latest_checkpoint
    from clin_jepa.training.trainer import pretrain

    seed_everything(cfg.train.seed)
    last = latest_checkpoint(run.checkpoints)
    if last is not None:
        log.info("continuing the interrupted pretraining from %s", last)
    summary = pretrain(cfg, run.root, resume=last is not None)
    if not summary["finished"]:
        raise RuntimeError(f"pretraining stopped ({summary['stopped']}) at step {summary['global_step']}; "
                           f"run the same command again to continue")


def _embed(run: RunDir, cfg: RunConfig) -> None:
    from clin_jepa.evaluation.embeddings import compute

    compute(run.root, cfg)


def _evaluate(run: RunDir, cfg: RunConfig) -> None:
    from clin_jepa.evaluation.suite import evaluate_run

    evaluate_run(run.root, cfg)


def _report(run: RunDir, cfg: RunConfig) -> None:
    from clin_jepa.evaluation.report import build_report

    build_report([run.root], None)


PIPELINE: dict[str, Stage] = {s.name: s for s in (
    Stage("synth", "synthetic MIMIC-IV", _synth),
    Stage("extract", "DuckDB extraction", _extract),
    Stage("sft", "tokenizer + SFT", _sft),
    Stage("pretrain", "five-phase curriculum", _pretrain),
    Stage("embed", "embeddings", _embed),
    Stage("evaluate", "evaluation", _evaluate),
    Stage("report", "report", _report),
)}
assert tuple(PIPELINE) == STAGES


def source_stages(run: RunDir, cfg: RunConfig) -> list[str]:
    """synth (only when there is no MIMIC-IV source and no extraction yet) + extract."""
    synthetic = not cfg.data.mimic_dir and not run.done("extract", cfg)
    return ["synth", "extract"] if synthetic else ["extract"]


def open_or_create(run: RunDir, cfg: RunConfig, how: str) -> RunConfig:
    """``run`` created with ``cfg``, or (existing) its own config when ``cfg`` changes nothing;
    other settings are refused naming the keys, never mixed into a finished run."""
    from clin_jepa.pipelines._common import changed_settings_error

    cfg.run_dir = str(run.root)
    absolute_paths(cfg)
    if not run.exists():
        return run.create(cfg)
    diff = run.differences(cfg)
    if diff:
        raise changed_settings_error(run, diff, how)
    return run.load_config()


def run_stages(run: RunDir, cfg: RunConfig, names: list[str], force: bool = False, label: str = "",
               ) -> dict[str, float]:
    """Run the named stages in order (skipping completed ones); returns the seconds each stage
    took in THIS call per stage title (0 when skipped). Every attempt's wall and CPU seconds are
    also added to RUN/logs/stage_times.json (``RunDir.stage_times``), so a run finished over
    several launches still knows what each stage cost."""
    timings: dict[str, float] = {}
    for i, name in enumerate(names, 1):
        stage = PIPELINE[name]
        head = f"{label}[{i}/{len(names)}] {stage.title}"
        if run.done(name, cfg) and not force:
            log.info("%s: already done (%s), skipping", head, run.marker(name, cfg))
            timings[stage.title] = 0.0
            continue
        log.info("%s ...", head)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            stage.run(run, cfg)
        except BaseException:  # failed or interrupted (SIGTERM, Ctrl-C): its time counts towards the rerun
            _record(run, name, t0, c0, completed=False)
            raise
        if not run.marker(name, cfg).exists():
            raise RuntimeError(f"{stage.title} finished but did not write {run.marker(name, cfg)}")
        run.mark_done(name)
        timings[stage.title] = time.perf_counter() - t0
        _record(run, name, t0, c0, completed=True)
        log.info("%s done in %.1f s", head, timings[stage.title])
    return timings


def _record(run: RunDir, name: str, t0: float, c0: float, completed: bool) -> None:
    """One attempt into RUN/logs/stage_times.json; a bookkeeping failure never hides the stage's
    own outcome (its exception, or its completed outputs)."""
    try:
        run.record_stage_time(name, time.perf_counter() - t0, time.process_time() - c0, completed)
    except (OSError, ValueError) as e:
        log.warning("could not record the time of stage %s in %s: %s", name, run.stage_times_file, e)
