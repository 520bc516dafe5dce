"""Latent cache: while the online encoder is frozen each distinct text is encoded once.

The cache is one dense table (len(texts), D) indexed by text id plus a per-block validity
mask, so a lookup is one index with no Python loop over ids. Latents are filled per fixed
block of ``block`` consecutive ids of ``Corpus.texts``: a miss encodes the whole block, so a
text's latent never depends on which batch first asked for it (bit-exact resume). The cache
is keyed on its adapter's version (``encoder.online_version`` by default): an online weight
change (an optimizer step, loading adapters) empties it; target-only changes (EMA, hard
sync) do not.

Where the table lives (``train.cache_storage``; docs/scaling.md has the memory model):
- ``device``: on the encoder's device (fastest lookups; len(texts) x D x bytes of GPU memory);
- ``host``: CPU memory (pinned on CUDA), the rows of a batch gathered there and copied to the
  device per lookup;
- ``memmap``: a memory-mapped temporary file (``train.cache_dir``), so the table is bounded by
  disk, not RAM; the OS keeps the hot pages.
``train.cache_dtype``: ``auto`` stores the encoder's compute dtype (bf16 latents of a bf16
encoder are stored exactly, fp32 ones in fp32), or ``float32`` / ``bfloat16`` / ``float16``
(memmap: numpy has no bf16, so bf16 is stored as float16 there). Latents come back float32.

On several processes (``accelerator`` given, num_processes > 1) every ``get`` is a collective
(every rank calls it at the same points of the loop): the ranks' missing blocks are united
(one all-reduce of the block mask), rank r encodes those whose index b has b % world == r, and
the encodings are gathered, so each table holds the same blocks and a block is encoded once
per job, not once per rank. A block is still one encode call of exactly its texts, so the
latents are identical with any number of processes.
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch

from clin_jepa.models.sharding import any_sharded
from clin_jepa.utils import get_logger

log = get_logger(__name__)

STORAGES = ("device", "host", "memmap")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: np.float16}


def resolve_cache_dtype(name: str, encoder) -> torch.dtype:
    """train.cache_dtype -> torch dtype; ``auto`` = the encoder's parameter dtype (lossless)."""
    if name == "auto":
        return next(encoder.model.get_base_model().parameters()).dtype
    if name not in DTYPES:
        raise ValueError(f"train.cache_dtype={name!r}: use auto, {', '.join(DTYPES)}")
    return DTYPES[name]


class LatentCache:
    def __init__(self, encoder, texts: list[str], block: int = 64, adapter: str = "online",
                 storage: str = "device", dtype: str | torch.dtype = torch.float32, cache_dir: str = "",
                 accelerator=None, encode=None):
        if block < 1:
            raise ValueError(f"latent cache block={block}: must be >= 1 (train.cache_block)")
        if adapter not in ("online", "target"):
            raise ValueError(f"latent cache adapter={adapter!r}: use 'online' or 'target'")
        if storage not in STORAGES:
            raise ValueError(f"train.cache_storage={storage!r}: use one of {', '.join(STORAGES)}")
        self.encoder, self.texts, self.block, self.adapter = encoder, texts, block, adapter
        # encode(texts, adapter=, grad=): the encoder's, or the FSDP root's route to it (trainer_setup.Prepared)
        self._encode = encode or encoder.encode
        self.acc = accelerator if accelerator is not None and accelerator.num_processes > 1 else None
        self.storage, self.cache_dir = storage, cache_dir or None
        self.dtype = resolve_cache_dtype(dtype, encoder) if isinstance(dtype, str) else dtype
        if storage == "memmap" and self.dtype == torch.bfloat16:
            self.dtype = torch.float16  # numpy has no bf16 (same 2 bytes, 3 more mantissa bits, less range)
        self.version: int | None = None
        n_blocks = -(-len(texts) // block)
        self._table: torch.Tensor | None = None  # (len(texts), D) self.dtype, allocated on the first miss
        self._file = None  # the memmap's temporary file (deleted when closed)
        self._valid = torch.zeros(n_blocks, dtype=torch.bool)  # (n_blocks,) block filled for this version
        self._sizes = torch.full((n_blocks,), block, dtype=torch.long)  # (n_blocks,) texts per block
        if n_blocks:
            self._sizes[-1] = len(texts) - block * (n_blocks - 1)
        self.hits = self.misses = 0
        self.encoded = 0  # texts put into the table (by any rank)
        self.encoded_here = 0  # texts this process encoded

    def __len__(self) -> int:
        """Texts whose latent is held (whole blocks)."""
        return int(self._sizes[self._valid].sum())

    @property
    def nbytes(self) -> int:
        """Bytes of the latent table (0 before the first miss)."""
        return 0 if self._table is None else self._table.numel() * self._table.element_size()

    def clear(self) -> None:
        self._valid.zero_()
        self.version = None

    @torch.no_grad()
    def get(self, ids: torch.Tensor) -> torch.Tensor:
        """Latents (U, D) float32 on the encoder's device of text ids (U,), encoding missing blocks once."""
        version = getattr(self.encoder, f"{self.adapter}_version")
        if version != self.version:
            if bool(self._valid.any()):
                log.debug("%s weights changed (version %s -> %s): latent cache emptied", self.adapter,
                          self.version, version)
            self._valid.zero_()
            self.version = version
        ids = ids.to("cpu", torch.long)
        device = self.encoder.device
        if ids.numel() == 0 and self.acc is None:
            return torch.zeros(0, self.encoder.hidden_size, device=device)
        blocks = torch.div(ids, self.block, rounding_mode="floor")  # (U,)
        needed = torch.zeros_like(self._valid)  # (n_blocks,) blocks this call touches
        needed[blocks] = True
        missing = needed & ~self._valid  # (n_blocks,)
        n_needed, n_missing = int(needed.sum()), int(missing.sum())
        self.hits += n_needed - n_missing
        self.misses += n_missing
        if self.acc is not None:
            self._fill_shared(missing)
        elif n_missing:
            self._fill(missing.nonzero().flatten().tolist())
        if ids.numel() == 0:
            return torch.zeros(0, self.encoder.hidden_size, device=device)
        rows = self._table[ids.to(self._table.device)]  # (U, D) gathered where the table lives
        return rows.to(device).float()  # (U, D) float32, converted on the device

    def _allocate(self) -> torch.Tensor:
        shape = (len(self.texts), self.encoder.hidden_size)
        if self.storage == "device":
            return torch.empty(shape, dtype=self.dtype, device=self.encoder.device)
        if self.storage == "host":
            pin = self.encoder.device.type == "cuda"
            return torch.empty(shape, dtype=self.dtype, pin_memory=pin)
        self._file = tempfile.NamedTemporaryFile(prefix="latent_cache_", suffix=".bin", dir=self.cache_dir)
        mm = np.memmap(self._file.name, dtype=_NUMPY[self.dtype], mode="w+", shape=shape)
        log.info("latent cache: memory-mapped %.1f MB at %s", mm.nbytes / 1e6, self._file.name)
        return torch.from_numpy(mm)  # shares the mapping: writes land in the file

    def _fill(self, blocks: list[int]) -> None:
        """Encode ``blocks`` into the table, one encode call per block: a block's latents never
        depend on which other blocks were missing at the same time (batch composition changes
        the float summation order)."""
        if self._table is None:
            self._table = self._allocate()
        for b in blocks:
            lo, hi = b * self.block, min((b + 1) * self.block, len(self.texts))
            z = self._encode(self.texts[lo:hi], adapter=self.adapter, grad=False)  # (n, D) float32
            self._table[lo:hi] = z.to(self._table.device, self._table.dtype)
            self.encoded += hi - lo
            self.encoded_here += hi - lo
        self._valid[blocks] = True

    def _fill_shared(self, missing: torch.Tensor) -> None:
        """Collective fill: the union of every rank's ``missing`` (n_blocks,) mask, block b to rank
        b % world; each rank encodes its blocks, the rows are gathered into every table."""
        flags = missing.to(self.acc.device, torch.int32)
        union = self.acc.reduce(flags, reduction="sum").cpu() > 0  # (n_blocks,)
        blocks = union.nonzero().flatten().tolist()
        if not blocks:
            return
        if self._table is None:
            self._table = self._allocate()
        world, rank = self.acc.num_processes, self.acc.process_index
        mine = [b for b in blocks if b % world == rank]  # block b is rank b % world's: balanced, fixed
        D = self.encoder.hidden_size
        parts = [self._encode(self.texts[b * self.block:(b + 1) * self.block], adapter=self.adapter,
                              grad=False) for b in mine]  # each (n_b, D) float32
        if any_sharded(self.encoder.online_parameters()):  # FSDP: every rank makes as many encode calls
            busiest = max(sum(1 for b in blocks if b % world == r) for r in range(world))
            parts += [self._encode([], adapter=self.adapter, grad=False) for _ in range(busiest - len(mine))]
        local = torch.cat(parts) if parts else torch.zeros(0, D, device=self.encoder.device)  # (n_mine, D)
        self.encoded_here += local.shape[0]
        # ranks hold different row counts: pad to the longest, gather (world x rows, D)
        padded = self.acc.pad_across_processes(local.to(self.acc.device), dim=0)  # (max rows, D)
        every = self.acc.gather(padded).reshape(world, -1, D)  # (world, max rows, D)
        for r in range(world):
            lo = 0
            for b in (b for b in blocks if b % world == r):
                n = int(self._sizes[b])
                self._table[b * self.block:b * self.block + n] = every[r, lo:lo + n].to(self._table.device,
                                                                                       self._table.dtype)
                lo += n
        self.encoded += int(self._sizes[blocks].sum())
        self._valid[blocks] = True

    def close(self) -> None:
        """Drop the table (and delete the memmap file)."""
        self._table = None
        self._valid.zero_()
        if self._file is not None:
            self._file.close()
            self._file = None
