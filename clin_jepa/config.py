"""Typed configuration: the run config of dataclass sections (clin_jepa.config_sections), YAML
loading, dotted overrides, validation.

One resolved :class:`RunConfig` drives every stage. Defaults live in its sections
(clin_jepa.config_sections) and only there; YAML files in ``configs/`` override them, and
``--set section.key=value`` on the command line overrides the YAML. Unknown keys and bad
values raise ``ValueError`` naming the key and the fix; valid names (flavors, baselines,
probe kinds, curricula) come from the registries that implement them. A run's config is
written once, when the run is created, and changed only explicitly (clin_jepa.run.RunDir).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from clin_jepa.config_sections import (
    DataConfig,
    EncoderConfig,
    EvalConfig,
    LossConfig,
    OptimConfig,
    PredictorConfig,
    SFTConfig,
    SynthConfig,
    TokenizerConfig,
    TrainConfig,
)
from clin_jepa.utils import CONFIG_DIR, atomic_path


@dataclass
class RunConfig:
    run_dir: str = "runs/default"
    synth: SynthConfig = field(default_factory=SynthConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # ------------------------------------------------------------------ #
    def validate(self, sections: tuple[str, ...] | None = None) -> RunConfig:
        """Check every section (``sections``: only those, e.g. ("synth", "data") for the stages that
        read nothing else: their names are checked against registries that import no torch, so the
        synthetic generator and the extraction never load it; unknown keys are refused by from_dict
        whatever the sections)."""
        for f in fields(self):
            section = getattr(self, f.name)
            if hasattr(section, "validate") and (sections is None or f.name in sections):
                section.validate()
        if sections is not None and not {"encoder", "train"} <= set(sections):
            return self
        from clin_jepa.models.encoder_flavors import spec

        if not spec(self.encoder.flavor).tiny and self.train.steps_scale != 1:
            # the curricula's step budgets are sized for the tiny flavors (debug, small); scaling them (the
            # embedded default's x3) silently gives a real encoder a few hundred optimizer steps in all
            raise ValueError(
                f"train.steps_scale={self.train.steps_scale} with encoder.flavor={self.encoder.flavor}: the scale "
                "multiplies the debug-sized budgets of configs/curriculum/; give a real flavor explicit budgets "
                "with train.steps_scale=1 and train.phase_steps=[warmup=...,joint=...,align=...,finalize=...] "
                "(configs/qwen3_8b_paper.yaml does)")
        return self

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    def save(self, path: str | os.PathLike) -> None:
        """Write the resolved config (complete, with the end line; see clin_jepa.run.RunDir)."""
        with atomic_path(path) as tmp:
            tmp.write_text(dump_config(self.to_dict()) + CONFIG_END + "\n")

    @property
    def data_path(self) -> Path:
        return Path(self.data.data_dir) if self.data.data_dir else Path(self.run_dir) / "data"


CONFIG_END = "# end of clin-jepa run config"  # last line of a saved config: a truncated file lacks it


def dump_config(tree: dict) -> str:
    return yaml.safe_dump(tree, sort_keys=False)


# ---------------------------------------------------------------------- #
# building from dicts
# ---------------------------------------------------------------------- #


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = typing.get_args(typ)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, got {list(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"{where}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected an integer, got {value!r}") from None
    if typ is float:
        if isinstance(value, bool):  # YAML true is not 1.0
            raise ValueError(f"{where}: expected a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(out):
            raise ValueError(f"{where}: expected a finite number, got {value!r}")
        return out
    if typ is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type, data: dict | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys raise ValueError naming the fix."""
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ValueError(
            f"unknown config key {prefix}{unknown[0]}; valid keys{(' of ' + where) if where else ''}: "
            f"{', '.join(sorted(known))}. Fix the spelling or remove the key."
        )
    kwargs = {}
    for name, value in data.items():
        typ = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(typ):
            kwargs[name] = from_dict(typ, value, key)
        else:
            kwargs[name] = _coerce(value, typ, key)
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str) -> None:
    if "=" not in dotted:
        raise ValueError(f"override {dotted!r} must look like section.key=value (e.g. optim.lr_predictor=1e-4)")
    key, raw = dotted.split("=", 1)
    value = yaml.safe_load(raw) if raw != "" else ""
    parts = key.strip().split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted!r}: {p} is not a section")
    node[parts[-1]] = value


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve_config_path(path: str | os.PathLike) -> Path:
    """A YAML file: the path itself, else a name under configs/ (``ablate`` -> configs/ablate.yaml).
    Only files count: a directory of the same name (e.g. a run made with ``--out ablate``) is
    not a config and does not hide the shipped one."""
    p = Path(path)
    if p.is_file():
        return p
    for cand in (CONFIG_DIR / p, CONFIG_DIR / f"{p}.yaml"):
        if cand.is_file():
            return cand
    what = "is a directory, not a YAML file" if p.is_dir() else "not found"
    raise ValueError(f"config {str(path)!r} {what} (looked in . and {CONFIG_DIR}); pass a YAML file or the name "
                     f"of one in configs/")


def load_yaml(path: str | os.PathLike) -> dict:
    p = resolve_config_path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"config {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config {p} must be a mapping of sections")
    base = data.pop("base", None)  # `base: other.yaml` inherits
    if base:
        data = _deep_merge(load_yaml(p.parent / base if not Path(base).is_absolute() else base), data)
    return data


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = (),
                sections: tuple[str, ...] | None = None, **top: Any) -> RunConfig:
    """YAML file (optional) + dotted overrides + top-level keyword values -> validated RunConfig
    (``sections``: validate only those, RunConfig.validate)."""
    tree: dict = load_yaml(path) if path else {}
    for k, v in top.items():
        if v is not None:
            tree[k] = v
    for o in overrides:
        _set_dotted(tree, o)
    return from_dict(RunConfig, tree).validate(sections)


def load_run_config(run_dir: str | os.PathLike) -> RunConfig:
    """The config saved in a run directory (clin_jepa.run.RunDir.load_config)."""
    from clin_jepa.run import RunDir

    return RunDir(run_dir).load_config()
