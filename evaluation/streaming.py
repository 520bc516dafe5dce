"""Per-hour latents of many stays, gathered a chunk of stays at a time.

``latents`` (U, D) is usually RUN/embeddings/latents.npy memory-mapped read-only
(evaluation.embeddings.load); ``HourLatents(latents, ids)[rows]`` gathers the (len(rows), T, D)
float32 latents of stays ``rows`` only, so evaluation never holds an (N, T, D) array: its peak
memory is bounded by STAY_CHUNK x T x D, not by the number of stays (BENCHMARKS.md, Evaluation
memory).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

STAY_CHUNK = 64  # stays gathered at once (a multiple of the predictors' batch of 64: same batches)


class HourLatents:
    """Lazy (N, T, D): ``x[rows]`` -> latents[ids[rows]] (len(rows), T, D) float32.

    ids (N, T) text ids; ``fill`` replaces negative ids (padding) with a valid id (the result
    is then masked by the caller); ``zero_padding`` multiplies padded hours by 0."""

    def __init__(self, latents: np.ndarray, ids: np.ndarray, fill: int = 0, zero_padding: bool = False):
        self.latents, self.ids = latents, ids
        self.valid = ids >= 0  # (N, T)
        self.fill, self.zero_padding = fill, zero_padding
        self.shape = (*ids.shape, latents.shape[1])

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        ids, valid = self.ids[rows], self.valid[rows]
        x = np.asarray(self.latents[np.where(valid, ids, self.fill)], dtype=np.float32)  # (n, T, D)
        if self.zero_padding:
            x *= valid[..., None]
        return x


def chunks(n: int, size: int = STAY_CHUNK) -> Iterator[np.ndarray]:
    """Consecutive index arrays of at most ``size`` covering range(n)."""
    for lo in range(0, n, size):
        yield np.arange(lo, min(lo + size, n))
