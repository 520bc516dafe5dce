"""The checkpointed TrainState and atomic, verifiable checkpoints.

A checkpoint directory (``RUN/checkpoints/<NN>_<phase>/`` at a phase boundary,
``RUN/checkpoints/last/`` for periodic saves) holds::

    train_state.json          TrainState (step counters, watchdog records)
    encoder/{online,target}/  peft adapters (TextEncoder.save_adapters)
    predictor.safetensors     + predictor.json (its PredictorConfig)
    masked.safetensors        throw-away masked-latent predictor (masked_jepa curricula only)
    optimizer.pt              AdamW state (learning rates are a pure function of the step)
    rng.pt                    python / numpy / torch RNG states of the saving process
    config.yaml, curriculum.yaml   resolved config and curriculum
    manifest.json             byte size of every file above, written last

The directory is written under a temporary name and renamed, and loading checks every
file against the manifest, so a truncated file is reported by name.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from clin_jepa.utils import atomic_path

STATE_FILE, MANIFEST = "train_state.json", "manifest.json"


@dataclass
class TrainState:
    global_step: int = 0  # optimizer steps done over the whole curriculum
    micro_step: int = 0  # micro-batches consumed by each process (data position)
    phase_index: int = 0  # index of the current phase in the curriculum
    phase_step: int = 0  # optimizer steps done in the current phase
    curriculum: str = ""
    phases: list[str] = field(default_factory=list)
    phase_start_val: float | None = None  # validation loss when the current phase started
    watchdogs: dict[str, dict] = field(default_factory=dict)  # phase -> {start, end, fell}
    sync_gaps: dict[str, float] = field(default_factory=dict)  # hard-sync phase -> max gap after it
    stopped: str = ""  # "", sigterm, stop_after_steps, collapse
    finished: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainState:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def boundary_name(phase_index: int, phase: str) -> str:
    return f"{phase_index + 1:02d}_{phase}"


def save_checkpoint(path: Path, state: TrainState, encoder, predictor, optimizer, cfg_dict: dict,
                    curriculum_dict: dict, masked=None) -> Path:
    """Write a complete checkpoint atomically (call on the main process only)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        tmp.mkdir()
        encoder.save_adapters(tmp / "encoder")
        save_file({k: v.detach().cpu().contiguous() for k, v in predictor.state_dict().items()},
                  str(tmp / "predictor.safetensors"))
        (tmp / "predictor.json").write_text(json.dumps(dataclasses.asdict(predictor.config), indent=2))
        if masked is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in masked.state_dict().items()},
                      str(tmp / "masked.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}, tmp / "rng.pt")
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
        (tmp / "curriculum.yaml").write_text(yaml.safe_dump(curriculum_dict, sort_keys=False))
        (tmp / STATE_FILE).write_text(json.dumps(state.to_dict(), indent=2, sort_keys=True))
        sizes = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps(sizes, indent=2, sort_keys=True))
    return path


def read_state(path: Path) -> TrainState:
    f = Path(path) / STATE_FILE
    try:
        return TrainState.from_dict(json.loads(f.read_text()))
    except FileNotFoundError:
        raise FileNotFoundError(f"{f} not found: {path} is not a complete checkpoint; delete it and resume "
                                f"from another one in {Path(path).parent}") from None
    except (json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"{f} is corrupt ({e}); delete {path} and resume from an earlier checkpoint") from None


def verify_checkpoint(path: Path) -> None:
    """Every file listed in the manifest exists with its recorded size, else a clear error."""
    path = Path(path)
    man = path / MANIFEST
    if not man.exists():
        raise FileNotFoundError(f"{man} not found: {path} is an incomplete checkpoint (interrupted write?); "
                                f"delete it and resume from an earlier checkpoint")
    for rel, size in json.loads(man.read_text()).items():
        f = path / rel
        if not f.exists():
            raise FileNotFoundError(f"checkpoint file {f} is missing; delete {path} and resume from an earlier one")
        if f.stat().st_size != size:
            raise ValueError(f"checkpoint file {f} is truncated or altered ({f.stat().st_size} bytes, expected "
                             f"{size}); delete {path} and resume from an earlier checkpoint")


def load_checkpoint(path: Path, encoder, predictor, optimizer=None, masked=None, restore_rng: bool = True
                    ) -> TrainState:
    """Restore weights (+ optimizer, RNG) from ``path``; returns its TrainState."""
    from safetensors.torch import load_file

    path = Path(path)
    verify_checkpoint(path)
    state = read_state(path)
    encoder.load_adapters(path / "encoder")

    def _load(module, name: str) -> None:
        f = path / name
        try:
            tensors = load_file(str(f))
        except Exception as e:  # noqa: BLE001 - safetensors raises several kinds
            raise ValueError(f"checkpoint file {f} is truncated or corrupt ({e}); delete {path} and resume "
                             f"from an earlier checkpoint") from None
        device = next(module.parameters()).device
        missing, unexpected = module.load_state_dict({k: v.to(device) for k, v in tensors.items()}, strict=False)
        if missing or unexpected:
            raise ValueError(f"{f} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]}); "
                             f"was it written with another predictor flavor? use the run's config")

    _load(predictor, "predictor.safetensors")
    if masked is not None and (path / "masked.safetensors").exists():
        _load(masked, "masked.safetensors")
    if optimizer is not None:
        try:
            optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
        except (RuntimeError, ValueError, EOFError) as e:
            raise ValueError(f"checkpoint file {path / 'optimizer.pt'} cannot be restored ({e}); delete {path} "
                             f"and resume from an earlier checkpoint") from None
    if restore_rng:
        rng = torch.load(path / "rng.pt", map_location="cpu", weights_only=False)
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
    return state


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The most advanced checkpoint (by global step, then phase) in ``ckpt_dir``, or None."""
    best, best_key = None, None
    for d in sorted(Path(ckpt_dir).glob("*")):
        if not d.is_dir() or d.name.startswith(".") or not (d / STATE_FILE).exists():
            continue
        s = read_state(d)
        key = (s.global_step, s.phase_index, s.phase_step)
        if best_key is None or key > best_key:
            best, best_key = d, key
    return best
