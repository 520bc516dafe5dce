"""How a text's final-layer hidden states become its latent (``encoder.pooling``).

Both encoder paths (length buckets with right padding, and packed rows) describe their batch
the same way: ``h`` (B, L, D) hidden states, ``seg`` (B, L) the index of the text each token
belongs to (-1 for padding) and ``last`` (n,) the flat index (row * L + position) of each
text's last real token. A pooling maps that to (n, D):

- ``last``: the hidden state of the last real token (the paper's choice; a causal model has
  read the whole text there).
- ``mean``: the mean over the text's real tokens only (padding and other texts of a packed
  row never count). A small model's last token keeps mostly the END of the text; the mean
  keeps every item (docs/models.md, measured latent content).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def pool_last(h: Tensor, seg: Tensor, last: Tensor) -> Tensor:
    """(B, L, D), (B, L), (n,) -> (n, D): the last real token of each text."""
    return h.reshape(-1, h.shape[-1])[last]


def pool_mean(h: Tensor, seg: Tensor, last: Tensor) -> Tensor:
    """(B, L, D), (B, L), (n,) -> (n, D): the mean over each text's real tokens."""
    flat, ids = h.reshape(-1, h.shape[-1]), seg.reshape(-1)  # (B*L, D), (B*L,)
    real = ids >= 0
    n = last.shape[0]
    sums = torch.zeros(n, h.shape[-1], dtype=h.dtype, device=h.device).index_add(0, ids[real], flat[real])  # (n, D)
    counts = torch.bincount(ids[real], minlength=n).to(h.dtype)  # (n,)
    return sums / counts[:, None]


POOLINGS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {"last": pool_last, "mean": pool_mean}


def padded_segments(lengths: Tensor, L: int) -> tuple[Tensor, Tensor]:
    """Right-padded rows, one text per row: ``seg`` (B, L) and ``last`` (B,) flat indices."""
    B = lengths.shape[0]
    pos = torch.arange(L, device=lengths.device)[None, :]  # (1, L)
    rows = torch.arange(B, device=lengths.device)
    seg = torch.where(pos < lengths[:, None], rows[:, None], -1)  # (B, L)
    return seg, rows * L + lengths - 1
