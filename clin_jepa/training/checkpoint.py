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
    origin.json               run id and data fingerprint (resume refuses another run's state)
    manifest.json             byte size and sha256 of every file above, written last

The directory is written under a temporary name (``<name>.tmp-*``), then the old one is
renamed aside (``<name>.old``), the new one into place, and the old one deleted. A kill
between those renames leaves two complete checkpoints; :func:`latest_checkpoint` picks the
most advanced one that verifies, so the new state is never lost. Loading checks every file
against the manifest (size and content hash), so a truncated or altered file is reported
by name, and a damaged checkpoint is skipped in favour of the newest good one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from clin_jepa.utils import file_sha256, get_logger

log = get_logger(__name__)

STATE_FILE, MANIFEST, ORIGIN = "train_state.json", "manifest.json", "origin.json"
# test hook: CLIN_JEPA_KILL_AT=<point>:<checkpoint name> SIGKILLs this process there (an honest
# crash, used to prove that an interrupted run resumes exactly); points: saved, replacing
KILL_ENV = "CLIN_JEPA_KILL_AT"


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
                    curriculum_dict: dict, masked=None, origin: dict | None = None) -> Path:
    """Write a complete checkpoint, then put it in place of ``path`` (main process only)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{path.name}.tmp-", dir=path.parent))
    try:
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
        (tmp / ORIGIN).write_text(json.dumps(origin or {}, indent=2, sort_keys=True))
        (tmp / STATE_FILE).write_text(json.dumps(state.to_dict(), indent=2, sort_keys=True))
        files = {str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
                 for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps(files, indent=2, sort_keys=True))  # last: marks completion
        _kill_point("saved", path.name)
        _replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _replace(new: Path, path: Path) -> None:
    """Rename ``new`` onto ``path``. Two renames (a directory cannot be swapped in one): a kill
    between them leaves ``path.old`` and ``new``, both complete; resuming picks the newer."""
    old = path.with_name(f"{path.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)
        _kill_point("replacing", path.name)
    os.replace(new, path)
    if old.exists():
        shutil.rmtree(old)
    for stale in path.parent.glob(f"{path.name}.tmp-*"):  # left by an earlier kill, now superseded
        shutil.rmtree(stale, ignore_errors=True)


def complete_replacement(path: Path) -> Path:
    """``path`` under its own name again when it is a leftover of an interrupted replacement
    (``last.tmp-*`` complete but not renamed, or only ``last.old`` left); returns the new path."""
    path = Path(path)
    name = path.name.split(".tmp-")[0] if ".tmp-" in path.name else path.name.removesuffix(".old")
    if name == path.name:
        return path
    target = path.with_name(name)
    if path.name.endswith(".old") and not target.exists():
        os.replace(path, target)
    elif ".tmp-" in path.name:
        _replace(path, target)
    else:
        return path
    log.info("completed the interrupted replacement of %s", target)
    return target


def _kill_point(point: str, name: str) -> None:
    if os.environ.get(KILL_ENV) == f"{point}:{name}":
        os.kill(os.getpid(), signal.SIGKILL)


def read_origin(path: Path) -> dict:
    """The run id and data fingerprint a checkpoint was written with ({} for older checkpoints)."""
    f = Path(path) / ORIGIN
    return json.loads(f.read_text()) if f.exists() else {}


# settings a resumed run must share with its checkpoint: model shapes, batch, seed, curriculum,
# objective (learning rates, clip norms, logging and stop settings may change on resume)
RESUME_KEYS: dict[str, tuple[str, ...] | None] = {
    "encoder": ("flavor", "model_dir", "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "max_length",
                "init_seed"),
    "predictor": None,  # every key
    "loss": None,
    "optim": ("batch_size", "grad_accum", "betas", "weight_decay"),
    "train": ("curriculum", "drop_phases", "seed", "steps_scale", "phase_steps", "mask_ratio", "masked_layers",
              "masked_width"),
    "data": ("window_hours", "text_mode"),
}
# keys added after checkpoints were written: an older checkpoint had the behaviour of the default
_ADDED_KEYS = {("data", "text_mode"): "events"}


def resume_mismatch(saved: dict, current: dict) -> dict[str, tuple]:
    """{dotted key: (checkpoint value, current value)} for every RESUME_KEYS setting that differs."""
    out = {}
    for section, keys in RESUME_KEYS.items():
        a, b = saved.get(section) or {}, current.get(section) or {}
        for k in keys or sorted(set(a) | set(b)):
            if a.get(k, _ADDED_KEYS.get((section, k))) != b.get(k):
                out[f"{section}.{k}"] = (a.get(k), b.get(k))
    return out


def check_resumable(path: Path, cfg_dict: dict, data_fp: str | None = None) -> None:
    """Refuse a checkpoint made with other shapes / batch / seed / curriculum / data, naming the keys."""
    diff = resume_mismatch(read_config(path), cfg_dict)
    saved_fp = read_origin(path).get("data_fingerprint")
    if data_fp and saved_fp and saved_fp != data_fp:
        diff["data (fingerprint of data.data_dir)"] = (saved_fp, data_fp)
    if diff:
        keys = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"checkpoint {path} was made with other settings ({keys}); resume with the run's "
                         f"saved settings, or start a new run (another --run) to use these")


def data_fingerprint(data_dir: Path) -> str:
    """Identity of an extraction: its manifest.json (sql hash, row counts) and the name and size of
    every parquet file (contents are not hashed: a real extraction is gigabytes)."""
    h = hashlib.sha256()
    data_dir = Path(data_dir)
    man = data_dir / "manifest.json"
    if man.exists():
        h.update(man.read_bytes())
    for f in sorted(data_dir.glob("*.parquet")):
        h.update(f"{f.name}:{f.stat().st_size};".encode())
    return h.hexdigest()[:16]


def read_config(path: Path) -> dict:
    """The resolved config (as a dict) a checkpoint was written with."""
    return yaml.safe_load((Path(path) / "config.yaml").read_text()) or {}


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
    """Every file listed in the manifest exists with its recorded size and content hash, else a
    clear error naming the file."""
    path = Path(path)
    man = path / MANIFEST
    if not man.exists():
        raise FileNotFoundError(f"{man} not found: {path} is an incomplete checkpoint (interrupted write?); "
                                f"delete it and resume from an earlier checkpoint")
    try:
        entries = json.loads(man.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{man} is corrupt ({e}); delete {path} and resume from an earlier checkpoint") from None
    for rel, want in entries.items():
        f = path / rel
        if not f.exists():
            raise FileNotFoundError(f"checkpoint file {f} is missing; delete {path} and resume from an earlier one")
        size, digest = (want["bytes"], want["sha256"]) if isinstance(want, dict) else (want, None)
        if f.stat().st_size != size:
            raise ValueError(f"checkpoint file {f} is truncated or altered ({f.stat().st_size} bytes, expected "
                             f"{size}); delete {path} and resume from an earlier checkpoint")
        if digest is not None and file_sha256(f) != digest:
            raise ValueError(f"checkpoint file {f} is altered (its sha256 differs from {man}); delete {path} "
                             f"and resume from an earlier checkpoint")


def load_checkpoint(path: Path, encoder, predictor, optimizer=None, masked=None, restore_rng: bool = True,
                    verify: bool = True) -> TrainState:
    """Restore weights (+ optimizer, RNG) from ``path``; returns its TrainState."""
    from safetensors.torch import load_file

    path = Path(path)
    if verify:
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
        own = module.state_dict()
        missing = sorted(set(own) - set(tensors))
        unexpected = sorted(set(tensors) - set(own))
        shapes = [f"{k} {tuple(tensors[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(set(own) & set(tensors))
                  if tensors[k].shape != own[k].shape]
        if missing or unexpected or shapes:
            raise ValueError(f"{f} holds a different architecture (missing {missing[:3]}, unexpected "
                             f"{unexpected[:3]}, shape differs {shapes[:3]}); it was written with other model "
                             f"settings: use the run's config or start a new run")
        module.load_state_dict({k: v.to(device) for k, v in tensors.items()})

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
    """The most advanced checkpoint (by global step, then phase) in ``ckpt_dir`` that verifies,
    or None. A damaged or incomplete one is skipped with a warning naming it, so it never
    blocks a good one; leftovers of an interrupted replacement (``*.old``, ``*.tmp-*``) count
    when complete."""
    found = []
    for d in sorted(Path(ckpt_dir).glob("*")):
        if not d.is_dir() or not (d / MANIFEST).exists():
            if d.is_dir() and ".tmp-" not in d.name:
                log.warning("checkpoint %s is incomplete (no %s): skipped", d, MANIFEST)
            continue
        try:
            s = read_state(d)
        except (FileNotFoundError, ValueError) as e:
            log.warning("checkpoint %s skipped: %s", d, e)
            continue
        found.append(((s.global_step, s.phase_index, s.phase_step, not d.name.endswith(".old")), d))
    for _, d in sorted(found, key=lambda kd: kd[0], reverse=True):
        try:
            verify_checkpoint(d)
            return d
        except (FileNotFoundError, ValueError) as e:
            log.warning("checkpoint %s skipped: %s", d, e)
    return None
