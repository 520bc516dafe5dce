"""Pure functions of the step: learning rates and data order, so resume needs no replay.

The learning rate is linear warmup then cosine over the whole curriculum's optimizer
steps. The data stream is the concatenation of deterministic epoch permutations of the
training stays seeded by (seed, epoch); micro-batch ``m`` of process ``rank`` is a fixed
slice of it, so skipping to a step is arithmetic.
"""

from __future__ import annotations

import math

import numpy as np


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from the run seed and counters (stable across runs and machines)."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(2, np.uint32).astype(np.uint64)
               .view(np.uint64)[0] >> np.uint64(1))


class DataOrder:
    """Micro-batch ``m`` of process ``rank`` -> indices into a corpus of ``n`` stays."""

    def __init__(self, n: int, batch_size: int, num_processes: int = 1, seed: int = 0):
        if n < 1:
            raise ValueError("the training split is empty: check splits.parquet (rerun `clin-jepa extract`)")
        self.n, self.batch_size, self.world, self.seed = n, batch_size, num_processes, seed
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perms[epoch]

    def indices(self, micro_step: int, rank: int = 0) -> np.ndarray:
        start = (micro_step * self.world + rank) * self.batch_size  # position in the endless stream
        pos = np.arange(start, start + self.batch_size)  # (B,)
        epochs = pos // self.n
        return np.array([self._perm(int(e))[int(p % self.n)] for e, p in zip(epochs, pos)], dtype=np.int64)

    def epoch(self, micro_step: int) -> int:
        return (micro_step * self.world * self.batch_size) // self.n
