"""Latent cache: while the online encoder is frozen each distinct text is encoded once.

Latents are stored per fixed block of text ids (``block`` consecutive ids of
``Corpus.texts``): a miss encodes the whole block, so a text's latent never depends on
which batch first asked for it (bit-exact resume). The cache is keyed on
``encoder.weights_version``; any version change empties it. Callers that change only
the target adapter (EMA update, hard sync) may carry the entries over explicitly.
"""

from __future__ import annotations

import torch

from clin_jepa.utils import get_logger

log = get_logger(__name__)


class LatentCache:
    def __init__(self, encoder, texts: list[str], block: int = 64, adapter: str = "online"):
        if block < 1:
            raise ValueError(f"latent cache block={block}: must be >= 1 (train.cache_block)")
        self.encoder, self.texts, self.block, self.adapter = encoder, texts, block, adapter
        self.version: int | None = None
        self._blocks: dict[int, torch.Tensor] = {}  # block index -> (block, D) float32, detached
        self.hits = self.misses = self.encoded = 0

    def __len__(self) -> int:
        return sum(b.shape[0] for b in self._blocks.values())

    def clear(self) -> None:
        self._blocks.clear()
        self.version = None

    def carry_over(self, old_version: int, new_version: int) -> None:
        """The caller vouches only the other adapter changed between the two versions."""
        if self.version == old_version:
            self.version = new_version

    @torch.no_grad()
    def get(self, ids: torch.Tensor) -> torch.Tensor:
        """Latents (U, D) of text ids (U,), encoding missing blocks once."""
        version = self.encoder.weights_version
        if version != self.version:
            if self._blocks:
                log.debug("encoder weights changed (version %s -> %s): latent cache emptied", self.version, version)
            self._blocks.clear()
            self.version = version
        ids = ids.to("cpu", torch.long)
        blocks = torch.div(ids, self.block, rounding_mode="floor")  # (U,)
        needed = blocks.unique().tolist()
        missing = [b for b in needed if b not in self._blocks]
        self.hits += len(needed) - len(missing)
        self.misses += len(missing)
        for b in missing:
            chunk = self.texts[b * self.block:(b + 1) * self.block]
            self._blocks[b] = self.encoder.encode(chunk, adapter=self.adapter, grad=False).detach()  # (n, D)
            self.encoded += len(chunk)
        if not needed:
            return torch.zeros(0, self.encoder.hidden_size, device=self.encoder.device)
        first = self._blocks[needed[0]]
        out = first.new_empty(ids.shape[0], first.shape[1])  # (U, D)
        for b in needed:
            sel = blocks == b
            out[sel.to(out.device)] = self._blocks[b][(ids[sel] - b * self.block).to(out.device)]
        return out
