"""clin-jepa: an action-conditioned clinical world model (Clin-JEPA, arXiv 2605.10840).

The library: data (synthetic MIMIC-IV, DuckDB extraction, texts), models (Qwen3+LoRA
encoder, block-causal predictor), training (losses, curriculum, trainer). Entry points
live in ``pipelines/``; evaluations in ``evaluation/``.
"""

__version__ = "0.1.0"
