"""Running stages in sequence, each through its own ``clin-jepa`` entry point.

Used by ``demo`` and ``ablate``: a stage whose completion marker exists is skipped (each
stage writes its marker last and atomically), so an interrupted demo or ablation picks up
where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from clin_jepa.utils import get_logger

log = get_logger("pipelines.stages")


@dataclass
class Step:
    title: str  # what the user reads
    marker: Path  # exists once the stage has completed
    argv: list[str]  # `clin-jepa` arguments, e.g. ["extract", "--mimic", ...]


def run_steps(steps: list[Step], force: bool = False, label: str = "") -> dict[str, float]:
    """Run each step in-process via pipelines.cli.main; returns seconds per step title."""
    from pipelines.cli import main as cli_main

    timings: dict[str, float] = {}
    for i, step in enumerate(steps, 1):
        head = f"{label}[{i}/{len(steps)}] {step.title}"
        if step.marker.exists() and not force:
            log.info("%s: already done (%s), skipping", head, step.marker)
            timings[step.title] = 0.0
            continue
        log.info("%s ...", head)
        t0 = time.perf_counter()
        rc = cli_main([str(a) for a in step.argv])
        if rc != 0:
            raise RuntimeError(f"{step.title} failed (exit {rc}): clin-jepa {' '.join(map(str, step.argv))}")
        if not step.marker.exists():
            raise RuntimeError(f"{step.title} finished but did not write {step.marker}")
        timings[step.title] = time.perf_counter() - t0
        log.info("%s done in %.1f s", head, timings[step.title])
    return timings
