"""Latent cache: while the online encoder is frozen each distinct text is encoded once.

The cache is one dense tensor (len(texts), D) indexed by text id plus a per-block validity
mask, so a lookup is one tensor index with no Python loop over ids. Latents are filled per
fixed block of ``block`` consecutive ids of ``Corpus.texts``: a miss encodes the whole
block, so a text's latent never depends on which batch first asked for it (bit-exact
resume). The cache is keyed on its adapter's version (``encoder.online_version`` by
default): an online weight change (an optimizer step, loading adapters) empties it;
target-only changes (EMA, hard sync) do not.
"""

from __future__ import annotations

import torch

from clin_jepa.utils import get_logger

log = get_logger(__name__)


class LatentCache:
    def __init__(self, encoder, texts: list[str], block: int = 64, adapter: str = "online"):
        if block < 1:
            raise ValueError(f"latent cache block={block}: must be >= 1 (train.cache_block)")
        if adapter not in ("online", "target"):
            raise ValueError(f"latent cache adapter={adapter!r}: use 'online' or 'target'")
        self.encoder, self.texts, self.block, self.adapter = encoder, texts, block, adapter
        self.version: int | None = None
        n_blocks = -(-len(texts) // block)
        self._latents: torch.Tensor | None = None  # (len(texts), D) float32, allocated on the first miss
        self._valid = torch.zeros(n_blocks, dtype=torch.bool)  # (n_blocks,) block filled for this version
        self._sizes = torch.full((n_blocks,), block, dtype=torch.long)  # (n_blocks,) texts per block
        if n_blocks:
            self._sizes[-1] = len(texts) - block * (n_blocks - 1)
        self.hits = self.misses = self.encoded = 0

    def __len__(self) -> int:
        """Texts whose latent is held (whole blocks)."""
        return int(self._sizes[self._valid].sum())

    def clear(self) -> None:
        self._valid.zero_()
        self.version = None

    @torch.no_grad()
    def get(self, ids: torch.Tensor) -> torch.Tensor:
        """Latents (U, D) of text ids (U,), encoding missing blocks once."""
        version = getattr(self.encoder, f"{self.adapter}_version")
        if version != self.version:
            if bool(self._valid.any()):
                log.debug("%s weights changed (version %s -> %s): latent cache emptied", self.adapter,
                          self.version, version)
            self._valid.zero_()
            self.version = version
        ids = ids.to("cpu", torch.long)
        if ids.numel() == 0:
            return torch.zeros(0, self.encoder.hidden_size, device=self.encoder.device)
        blocks = torch.div(ids, self.block, rounding_mode="floor")  # (U,)
        needed = torch.zeros_like(self._valid)  # (n_blocks,) blocks this call touches
        needed[blocks] = True
        missing = needed & ~self._valid  # (n_blocks,)
        n_needed, n_missing = int(needed.sum()), int(missing.sum())
        self.hits += n_needed - n_missing
        self.misses += n_missing
        if n_missing:
            self._fill(missing.nonzero().flatten().tolist())
        return self._latents[ids.to(self._latents.device)]  # (U, D)

    def _fill(self, blocks: list[int]) -> None:
        """Encode ``blocks`` into the dense table, one encode call per block: a block's latents
        never depend on which other blocks were missing at the same time (batch composition
        changes the float summation order)."""
        if self._latents is None:
            self._latents = torch.empty(len(self.texts), self.encoder.hidden_size, device=self.encoder.device)
        for b in blocks:
            lo, hi = b * self.block, min((b + 1) * self.block, len(self.texts))
            self._latents[lo:hi] = self.encoder.encode(self.texts[lo:hi], adapter=self.adapter, grad=False)  # (n, D)
            self.encoded += hi - lo
        self._valid[blocks] = True
