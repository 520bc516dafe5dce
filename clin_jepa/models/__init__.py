"""Models: the Qwen3+LoRA text encoder and the action-conditioned predictor.

Both builders are imported lazily, so `import clin_jepa.models.predictor` does not pull in
transformers/peft.
"""

from __future__ import annotations

__all__ = ["TextEncoder", "build_encoder", "build_predictor"]


def build_encoder(*args, **kwargs):
    """clin_jepa.models.encoder.build_encoder (see there)."""
    from clin_jepa.models.encoder import build_encoder as _build

    return _build(*args, **kwargs)


def build_predictor(*args, **kwargs):
    """clin_jepa.models.predictor.build_predictor (see there)."""
    from clin_jepa.models.predictor import build_predictor as _build

    return _build(*args, **kwargs)


def __getattr__(name: str):
    if name == "TextEncoder":
        from clin_jepa.models.encoder import TextEncoder

        return TextEncoder
    raise AttributeError(f"module 'clin_jepa.models' has no attribute {name!r}")
