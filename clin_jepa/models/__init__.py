"""Models: the Qwen3+LoRA text encoder and the action-conditioned predictor."""

from __future__ import annotations

from clin_jepa.models.encoder import TextEncoder, build_encoder

__all__ = ["TextEncoder", "build_encoder", "build_predictor"]


def build_predictor(*args, **kwargs):
    """Re-export of clin_jepa.models.predictor.build_predictor (imported lazily)."""
    from clin_jepa.models.predictor import build_predictor as _build

    return _build(*args, **kwargs)
