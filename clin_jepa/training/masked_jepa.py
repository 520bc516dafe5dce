"""Masked-latent JEPA (V-JEPA 2-AC style encoder refinement) with a throw-away predictor.

In each window a fraction of the valid state latents is replaced by a learned mask
token; a small bidirectional transformer over [d, s_1..s_T] predicts the EMA-target
latents of the masked hours from the rest. Loss: L1 summed over latent dimensions,
averaged over masked positions. The predictor is discarded after the phase; only the
refined encoder is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class MaskedJEPAConfig:
    latent_dim: int
    width: int = 64
    layers: int = 2
    heads: int = 4
    mask_ratio: float = 0.5  # fraction of a window's valid state latents masked
    max_steps: int = 72  # hours

    def validate(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio={self.mask_ratio} must be in (0, 1) (train.mask_ratio), e.g. 0.5")
        if self.width % self.heads:
            raise ValueError(f"masked predictor width={self.width} must be divisible by heads={self.heads}")


class MaskedLatentPredictor(nn.Module):
    def __init__(self, cfg: MaskedJEPAConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.inp = nn.Linear(cfg.latent_dim, cfg.width)
        self.mask_token = nn.Parameter(torch.zeros(cfg.width))
        self.pos = nn.Embedding(cfg.max_steps + 1, cfg.width)  # 0 = demographics, 1.. = hours
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, 4 * cfg.width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out = nn.Linear(cfg.width, cfg.latent_dim)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, d: Tensor, s: Tensor, mask: Tensor, hidden: Tensor) -> Tensor:
        """d (B, D), s (B, T, D), mask (B, T) valid hours, hidden (B, T) masked hours -> (B, T, D)."""
        B, T, _ = s.shape
        x = self.inp(torch.cat([d[:, None], s], dim=1))  # (B, T+1, W)
        hid = torch.cat([hidden.new_zeros(B, 1), hidden], dim=1)  # (B, T+1)
        x = torch.where(hid[..., None], self.mask_token.expand_as(x), x)  # (B, T+1, W)
        x = x + self.pos.weight[: T + 1][None]  # (B, T+1, W)
        pad = torch.cat([mask.new_zeros(B, 1), ~mask], dim=1)  # (B, T+1) True = ignore
        h = self.blocks(x, src_key_padding_mask=pad)  # (B, T+1, W)
        return self.out(h[:, 1:])  # (B, T, D)


def sample_hidden(mask: Tensor, ratio: float, generator: torch.Generator) -> Tensor:
    """(B, T) bool: ~ratio of each window's valid hours, at least one, never all when T_b > 1."""
    scores = torch.rand(mask.shape, generator=generator).to(mask.device)  # (B, T)
    scores = scores.masked_fill(~mask, 2.0)
    n_valid = mask.sum(1)  # (B,)
    n_hide = (n_valid.float() * ratio).round().long().clamp(min=1)
    n_hide = torch.minimum(n_hide, (n_valid - 1).clamp(min=1))
    rank = scores.argsort(1).argsort(1)  # (B, T) rank of each hour's score
    return (rank < n_hide[:, None]) & mask


def masked_jepa_loss(model: MaskedLatentPredictor, d: Tensor, s: Tensor, target: Tensor, mask: Tensor,
                     generator: torch.Generator) -> dict[str, Tensor]:
    """L1 (sum over D, mean over masked hours) between predictions and EMA-target latents."""
    ratio = getattr(model, "module", model).cfg.mask_ratio  # model may be a DDP wrapper
    hidden = sample_hidden(mask, ratio, generator)  # (B, T)
    pred = model(d, s, mask, hidden)  # (B, T, D)
    err = (pred - target.detach()).abs().sum(-1)  # (B, T)
    loss = err[hidden].mean()
    return {"loss": loss, "masked": loss.detach()}


def build_masked_predictor(latent_dim: int, width: int = 64, layers: int = 2, mask_ratio: float = 0.5,
                           max_steps: int = 72) -> MaskedLatentPredictor:
    return MaskedLatentPredictor(MaskedJEPAConfig(latent_dim=latent_dim, width=width, layers=layers,
                                                  heads=4, mask_ratio=mask_ratio, max_steps=max_steps))
