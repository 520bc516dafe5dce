"""Packing texts into rows without padding (the encoder's ``encoder.packing`` path).

``pack`` cuts texts into rows first-fit-decreasing by token length and rows into batches;
``packed_inputs`` lays a batch out as input ids plus position ids that restart at 0 for
every text. Passed to a transformers model with ``attention_mask=None``, such position ids
make it build a block-diagonal causal mask (sdpa / eager / flex) or run variable-length
flash attention (flash_attention_2): a text attends only to itself.
"""

from __future__ import annotations

import torch


def pack(lengths: list[int], row_tokens: int, batch_tokens: int) -> list[list[list[int]]]:
    """Batches (rows x row_tokens <= batch_tokens) of rows (indices of texts whose lengths sum
    to <= row_tokens), first-fit-decreasing; ties keep input order."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        j = next((j for j, r in enumerate(room) if lengths[i] <= r), None)
        if j is None:
            rows.append([i])
            room.append(row_tokens - lengths[i])
        else:
            rows[j].append(i)
            room[j] -= lengths[i]
    per_batch = max(1, batch_tokens // row_tokens)
    return [rows[k: k + per_batch] for k in range(0, len(rows), per_batch)]


def packed_inputs(packs: list[list[list[int]]], pad_id: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """packs[b] = token lists of row b -> input ids (B, L), position ids (B, L), the text of
    each token (B, L; texts numbered row-major, -1 = tail padding) and the flat index
    (b * L + position) of each text's last token (n,), as clin_jepa.models.pooling takes them.
    The tail padding of a row is a segment of its own (positions restart at 0), so no text
    attends to it."""
    L = max(sum(len(r) for r in row) for row in packs)
    ids = torch.full((len(packs), L), pad_id, dtype=torch.long)  # (B, L)
    pos = torch.zeros((len(packs), L), dtype=torch.long)  # (B, L)
    seg = torch.full((len(packs), L), -1, dtype=torch.long)  # (B, L)
    last = []
    for b, row in enumerate(packs):
        at = 0
        for r in row:
            ids[b, at: at + len(r)] = torch.tensor(r)
            pos[b, at: at + len(r)] = torch.arange(len(r))
            seg[b, at: at + len(r)] = len(last)
            at += len(r)
            last.append(b * L + at - 1)
        pos[b, at:] = torch.arange(L - at)
    return ids, pos, seg, torch.tensor(last, dtype=torch.long)
