"""Shard-aware tensor helpers: the same code runs on plain parameters and on FSDP2 shards.

Under FSDP2 (``torch.distributed.fsdp.fully_shard``, which accelerate's FSDP plugin applies
with ``fsdp_version: 2``) every parameter of a wrapped module is a ``DTensor`` whose local
tensor is this rank's dim-0 shard. The encoder's two adapters are wrapped by the same decoder
layers, so an online LoRA weight and its target twin are sharded identically: elementwise work
(the EMA, the hard sync, the online-target gap) runs on the local shards with no communication,
and only reductions (the max gap) need an all-reduce. Checkpoints gather full tensors
(collective: every rank calls in the same order) and load by slicing a full tensor into the
local shard. On plain tensors every helper is the identity / a local operation.

DTensor does not implement every op (``_foreach_copy_`` has no sharding strategy in torch
2.13), hence the explicit local-shard views rather than relying on DTensor dispatch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

try:  # torch >= 2.5
    from torch.distributed.tensor import DTensor, distribute_tensor
except ImportError:  # pragma: no cover - torch without distributed
    DTensor, distribute_tensor = (), None


def is_sharded(t) -> bool:
    return isinstance(t, DTensor)


def any_sharded(tensors) -> bool:
    return any(isinstance(t, DTensor) for t in tensors)


def local(t: Tensor) -> Tensor:
    """This rank's shard of ``t`` (``t`` itself when plain). Under no_grad DTensor.to_local returns
    the shard's own tensor, so in-place writes land in the parameter."""
    return t.to_local() if isinstance(t, DTensor) else t


def locals_(tensors) -> list[Tensor]:
    with torch.no_grad():
        return [local(t) for t in tensors]


def full(t: Tensor) -> Tensor:
    """The whole tensor (all-gathered when sharded: a collective)."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def global_max(value: float, sharded: bool, device: torch.device) -> float:
    """``value`` maximised over the processes when the tensors it came from are sharded."""
    if not sharded:
        return value
    x = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(x, op=torch.distributed.ReduceOp.MAX)
    return float(x)


def global_any(flag: bool, sharded: bool, device: torch.device) -> bool:
    """``flag`` OR-ed over the processes when sharded (every rank then takes the same branch)."""
    return global_max(float(flag), sharded, device) > 0


def full_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """{name: full CPU tensor} of ``module.state_dict()``; collective when sharded (every rank
    must call it), the same dict on every rank."""
    return {k: full(v).detach().cpu().contiguous() for k, v in module.state_dict().items()}


def shard_like(value: Tensor, like: Tensor) -> Tensor:
    """The part of the full tensor ``value`` that ``like`` holds on this rank (all of it when plain)."""
    value = value.to(like.device, like.dtype)
    if not isinstance(like, DTensor):
        return value
    # src_data_rank=None: every rank holds ``value`` and slices its own shard (no communication)
    return distribute_tensor(value, like.device_mesh, like.placements, src_data_rank=None).to_local()


@torch.no_grad()
def copy_full_(dst: Tensor, value: Tensor) -> None:
    """dst <- value for a full tensor ``value``, whether ``dst`` is plain or a shard."""
    local(dst).copy_(shard_like(value, dst))


@torch.no_grad()
def load_full_state_dict(module: nn.Module, tensors: dict[str, Tensor]) -> None:
    """Load full tensors (every key of ``module.state_dict()``) into a plain or sharded module."""
    own = module.state_dict()
    for k, v in tensors.items():
        copy_full_(own[k], v)
