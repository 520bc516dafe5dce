"""The curriculum as data: phase specs loaded from YAML and validated strictly (METHOD 6).

A curriculum YAML lists phases::

    phases:
      - name: warmup
        encoder: frozen          # frozen | trainable      (online LoRA requires_grad)
        targets: online          # online | ema            (where loss targets come from)
        ema: "off"               # off | update            (EMA target updated each optimizer step)
        rollout: native          # native | teacher_forced (2-step rollout term)
        objective: ac_jepa       # ac_jepa | masked_jepa
        ends: {steps: 30}        # {steps: N} | {steps: N, gap_below: x} | {instant: hard_sync}
        watchdog: {val_loss_must_fall: true}   # optional

Every mistake (unknown key, unknown value, budget < 1, bad drop name) raises ValueError
at load time naming the fix. :func:`behaviour` maps a spec to the small set of flags the
trainer acts on, so the training loop has no phase-name logic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from clin_jepa.training.losses import ROLLOUT_MODES
from clin_jepa.utils import CONFIG_DIR

CURRICULUM_DIR = CONFIG_DIR / "curriculum"

CHOICES: dict[str, tuple[str, ...]] = {
    "encoder": ("frozen", "trainable"),
    "targets": ("online", "ema"),
    "ema": ("off", "update"),
    "rollout": ROLLOUT_MODES,
    "objective": ("ac_jepa", "masked_jepa"),
}
INSTANT_KINDS = ("hard_sync",)
PHASE_KEYS = ("name", "ends", "watchdog", *CHOICES)
END_KEYS = ("steps", "gap_below", "instant")
WATCHDOG_KEYS = ("val_loss_must_fall",)


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    encoder: str = "frozen"
    targets: str = "online"
    ema: str = "off"
    rollout: str = "native"
    objective: str = "ac_jepa"
    steps: int = 0  # optimizer steps (0 for instant phases)
    gap_below: float = 0.0  # >0: also end when the online-target gap falls below this
    instant: str = ""  # hard_sync
    val_loss_must_fall: bool = False  # watchdog: validation loss at phase end < at phase start

    @property
    def is_instant(self) -> bool:
        return bool(self.instant)


@dataclass(frozen=True)
class Behaviour:
    """What one phase does, as flags the trainer reads (no phase names)."""

    train_encoder: bool  # online LoRA gets gradients and is stepped
    train_predictor: bool  # AC predictor gets gradients
    train_masked: bool  # throw-away masked-latent predictor gets gradients
    targets_from_ema: bool  # loss targets = EMA target adapter latents (else online, detached)
    ema_update: bool  # target <- tau*target + (1-tau)*online after each optimizer step
    cache_online: bool  # online encoder frozen: latents come from the latent cache
    rollout_mode: str  # native | teacher_forced
    instant: str  # "" or hard_sync


def behaviour(spec: PhaseSpec) -> Behaviour:
    frozen = spec.encoder == "frozen"
    masked = spec.objective == "masked_jepa"
    return Behaviour(
        train_encoder=not frozen,
        train_predictor=not masked and not spec.is_instant,
        train_masked=masked,
        targets_from_ema=spec.targets == "ema",
        ema_update=spec.ema == "update",
        cache_online=frozen,
        rollout_mode=spec.rollout,
        instant=spec.instant,
    )


@dataclass(frozen=True)
class Curriculum:
    name: str
    phases: tuple[PhaseSpec, ...] = field(default_factory=tuple)

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)

    def index(self, name: str) -> int:
        return [p.name for p in self.phases].index(name)

    def has_objective(self, objective: str) -> bool:
        return any(p.objective == objective for p in self.phases)

    def to_dict(self) -> dict:
        return {"name": self.name, "phases": [_phase_dict(p) for p in self.phases]}


def _phase_dict(p: PhaseSpec) -> dict:
    d = {"name": p.name, **{k: getattr(p, k) for k in CHOICES}}
    d["ends"] = {"instant": p.instant} if p.is_instant else (
        {"steps": p.steps, **({"gap_below": p.gap_below} if p.gap_below else {})})
    if p.val_loss_must_fall:
        d["watchdog"] = {"val_loss_must_fall": True}
    return d


# ---------------------------------------------------------------------- #
# parsing
# ---------------------------------------------------------------------- #


def _choice(raw: dict, key: str, default: str, where: str) -> str:
    value = raw.get(key, default)
    if value is False and "off" in CHOICES[key]:  # YAML 1.1 reads a bare `off` as false
        value = "off"
    if value not in CHOICES[key]:
        raise ValueError(f"{where}: {key}={value!r} is not a known phase kind; use one of {', '.join(CHOICES[key])}")
    return value


def parse_phase(raw: dict, where: str) -> PhaseSpec:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: a phase must be a mapping with name, encoder, targets, ema, rollout, ends")
    unknown = sorted(set(raw) - set(PHASE_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown phase key {unknown[0]!r}; valid keys: {', '.join(PHASE_KEYS)}. "
                         f"Fix the spelling or remove it")
    name = raw.get("name")
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise ValueError(f"{where}: every phase needs a name made of letters, digits and _ (e.g. name: warmup)")
    where = f"{where} ({name})"
    kw = {k: _choice(raw, k, getattr(PhaseSpec, k), where) for k in CHOICES}
    ends = raw.get("ends")
    if not isinstance(ends, dict) or not ends:
        raise ValueError(f"{where}: `ends` is required: {{steps: N}}, {{steps: N, gap_below: x}} or {{instant: hard_sync}}")
    bad = sorted(set(ends) - set(END_KEYS))
    if bad:
        raise ValueError(f"{where}: unknown ends key {bad[0]!r}; use steps, gap_below or instant")
    if "instant" in ends:
        if set(ends) != {"instant"}:
            raise ValueError(f"{where}: an instant phase takes no step budget; write ends: {{instant: hard_sync}}")
        if ends["instant"] not in INSTANT_KINDS:
            raise ValueError(f"{where}: unknown instant phase kind {ends['instant']!r}; use one of {', '.join(INSTANT_KINDS)}")
        kw["instant"] = ends["instant"]
    else:
        steps = ends.get("steps")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"{where}: ends.steps={steps!r}; the step budget must be an integer >= 1 "
                             f"(drop the phase with train.drop_phases instead of a zero/negative budget)")
        kw["steps"] = steps
        if "gap_below" in ends:
            gap = ends["gap_below"]
            if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not gap > 0 or math.isinf(gap):
                raise ValueError(f"{where}: ends.gap_below={gap!r} must be a positive number, e.g. 1e-3")
            kw["gap_below"] = float(gap)
    watchdog = raw.get("watchdog") or {}
    if not isinstance(watchdog, dict) or set(watchdog) - set(WATCHDOG_KEYS):
        raise ValueError(f"{where}: unknown watchdog {watchdog!r}; valid: {', '.join(WATCHDOG_KEYS)}: true")
    kw["val_loss_must_fall"] = bool(watchdog.get("val_loss_must_fall", False))
    spec = PhaseSpec(name=name, **kw)
    _check_consistent(spec, where)
    return spec


def _check_consistent(p: PhaseSpec, where: str) -> None:
    if p.instant == "hard_sync" and any(getattr(p, k) != getattr(PhaseSpec, k) for k in ("encoder", "objective")):
        raise ValueError(f"{where}: a hard_sync phase trains nothing; remove encoder/objective from it")
    if p.objective == "masked_jepa" and not (p.encoder == "trainable" and p.targets == "ema"):
        raise ValueError(f"{where}: objective masked_jepa refines the encoder against its EMA target; "
                         f"set encoder: trainable and targets: ema")
    if p.gap_below and p.ema != "update":
        raise ValueError(f"{where}: ends.gap_below needs ema: update (otherwise the gap never moves)")


def load_curriculum(name_or_path: str, drop: tuple[str, ...] | list[str] = (), steps_scale: float = 1.0,
                    phase_steps: tuple[str, ...] | list[str] = ()) -> Curriculum:
    """Load ``configs/curriculum/<name>.yaml`` (or a path), drop phases, rescale budgets."""
    path = Path(name_or_path)
    if not path.exists():
        path = CURRICULUM_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in CURRICULUM_DIR.glob("*.yaml"))
        raise ValueError(f"curriculum {name_or_path!r} not found; set train.curriculum to one of {known} "
                         f"or to a YAML path")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"curriculum {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict) or set(data) - {"phases", "description"}:
        raise ValueError(f"curriculum {path}: top level must be a mapping with `phases:` (and optional `description:`)")
    raw_phases = data.get("phases")
    if not isinstance(raw_phases, list) or not raw_phases:
        raise ValueError(f"curriculum {path}: `phases:` must be a non-empty list of phase mappings")
    phases = [parse_phase(r, f"curriculum {path.name} phase {i}") for i, r in enumerate(raw_phases)]
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise ValueError(f"curriculum {path}: phase names must be unique, got {names}")
    return _adjust(Curriculum(path.stem, tuple(phases)), drop, steps_scale, phase_steps, str(path))


def _adjust(cur: Curriculum, drop, steps_scale: float, phase_steps, where: str) -> Curriculum:
    names = [p.name for p in cur.phases]
    bad = [d for d in drop if d not in names]
    if bad:
        raise ValueError(f"train.drop_phases: unknown phase {bad[0]!r} in {where}; phases are {names}")
    if not steps_scale > 0:
        raise ValueError(f"train.steps_scale={steps_scale}: must be > 0 (e.g. 10 for ten times longer phases)")
    budgets = {}
    for item in phase_steps:
        name, sep, value = str(item).partition("=")
        if not sep or name not in names or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"train.phase_steps entry {item!r}: write NAME=STEPS with NAME in {names} and STEPS >= 1")
        budgets[name] = int(value)
    phases = []
    for p in cur.phases:
        if p.name in drop:
            continue
        if not p.is_instant:
            p = replace(p, steps=budgets.get(p.name, max(1, round(p.steps * steps_scale))))
        phases.append(p)
    if not phases:
        raise ValueError(f"train.drop_phases removes every phase of {where}; keep at least one")
    return Curriculum(cur.name, tuple(phases))
