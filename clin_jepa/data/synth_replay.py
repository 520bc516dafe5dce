"""Counterfactual replay of synthetic stays: the same patients, the same random numbers, another
treatment policy from a given hour (docs/whatif.md).

``synth.generate`` simulates stays CHUNK at a time, each chunk from its own stream
``[seed, 2, chunk]`` (``synth.simulate_chunk``). A replay re-runs a chosen stay's chunk from
that stream with every stay's length fixed to its original length (``fixed_hours``: no death
or discharge decision, so the simulator's loop, and with it every random draw, is laid out
exactly as in the original run) and with a ``policy`` hook that overrides the clinicians'
treatments of the chosen stays from hour K on. The hook draws no random number, so:

- with no override (the factual policy) a stay's trajectory is the original one exactly
  (tests/test_whatif_replay.py);
- with an override the chosen stays share their noise, their hidden regime switches and
  every other stay's trajectory with the original: the difference between two replays is
  the simulator's TRUE treatment effect on those stays.

A counterfactual stay has no death or discharge of its own: it is compared with the factual
one on the hours the factual stay was still in the ICU (later hours are NaN).

Treatments are given in the simulator's terms (``synth_world.POLICY_ACTIONS``): ``ne1``
first-line vasopressor in norepinephrine equivalents (mcg/kg/min), ``vaso`` vasopressin
(units/hour), ``epi`` epinephrine (mcg/kg/min), ``vent``, ``rrt``, ``abx`` (on/off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clin_jepa.config import SynthConfig
from clin_jepa.data.synth import CHUNK, population, simulate_chunk
from clin_jepa.data.synth_world import LABS, POLICY_ACTIONS, VITALS, World

# variables a replay reports per hour: charted vitals (NaN = not charted) and true lab values
REPLAY_VARIABLES = (*VITALS, *LABS)


@dataclass(frozen=True)
class Override:
    """One treatment held at ``value`` on hours [K + start, K + end) (end None = to the end)."""

    action: str  # one of POLICY_ACTIONS
    value: float  # dose, or 1/0 for on/off treatments
    start: int = 0  # hours after K
    end: int | None = None  # hours after K, exclusive

    def __post_init__(self):
        if self.action not in POLICY_ACTIONS:
            raise ValueError(f"replay override of {self.action!r}: the simulator's treatments are "
                             f"{', '.join(POLICY_ACTIONS)}")


def _policy(stays: np.ndarray, from_hour: np.ndarray, overrides: tuple[Override, ...], base=None):
    """``simulate`` policy: chunk rows ``stays`` (sorted, chunk-local) follow ``overrides`` from
    their own ``from_hour``; every other stay keeps the clinicians' decisions (after ``base``,
    the world's own policy hook when the data was generated with one)."""

    def policy(t: int, rows: np.ndarray, actions: dict) -> dict:
        if base is not None:
            actions = base(t, rows, actions)
        pos = np.searchsorted(stays, rows)
        chosen = (pos < len(stays)) & (stays[np.minimum(pos, len(stays) - 1)] == rows)  # (n,)
        if not chosen.any() or not overrides:
            return actions
        rel = (t + 1) - from_hour[np.minimum(pos, len(stays) - 1)]  # hours after K of hour t+1 (n,)
        out = dict(actions)
        for o in overrides:
            on = chosen & (rel >= o.start) & ((rel < o.end) if o.end is not None else True)
            out[o.action] = np.where(on, o.value, out[o.action])
        return out

    return policy


def locate(cfg: SynthConfig, stay_ids: np.ndarray, pop: dict | None = None) -> np.ndarray:
    """Index (in generation order) of each stay id of a synthetic MIMIC-IV made with ``cfg``;
    a clear error when some are not stays of it."""
    pop = population(cfg) if pop is None else pop
    order = np.argsort(pop["stay_ids"])
    ids = np.asarray(stay_ids, dtype=np.int64)
    pos = np.searchsorted(pop["stay_ids"], ids, sorter=order)
    pos = np.minimum(pos, len(order) - 1)
    found = pop["stay_ids"][order[pos]] == ids
    if not found.all():
        raise ValueError(f"{int((~found).sum())} of {len(ids)} stays are not stays of the synthetic MIMIC-IV "
                         f"with synth.stays={cfg.stays}, synth.seed={cfg.seed}, synth.patients_ratio="
                         f"{cfg.patients_ratio}; replay needs the synth settings the data was generated with")
    return order[pos]


def original_chunk(cfg: SynthConfig, c: int, pop: dict | None = None, base=None) -> World:
    """Chunk ``c`` exactly as ``synth.generate`` simulated it (``base``: its policy, if any)."""
    return simulate_chunk(cfg.seed, population(cfg) if pop is None else pop, c, policy=base)


def replay_chunk(cfg: SynthConfig, c: int, los_h: np.ndarray, stays: np.ndarray, from_hour: np.ndarray,
                 overrides: tuple[Override, ...] = (), pop: dict | None = None, base=None) -> World:
    """Chunk ``c`` re-simulated with every stay lasting its original ``los_h`` (chunk-sized, hours)
    and chunk rows ``stays`` (sorted) treated by ``overrides`` from their ``from_hour``."""
    pop = population(cfg) if pop is None else pop
    return simulate_chunk(cfg.seed, pop, c, fixed_hours=los_h,
                          policy=_policy(np.asarray(stays), np.asarray(from_hour), tuple(overrides), base))


def counterfactuals(cfg: SynthConfig, stay_ids, from_hour: int, horizon: int,
                    scenarios: dict[str, tuple[Override, ...]], base=None) -> dict[str, dict[str, np.ndarray]]:
    """True trajectories of stays ``stay_ids`` under each scenario from hour ``from_hour``:
    scenario -> variable (REPLAY_VARIABLES) -> (n, horizon) values at hours K .. K+horizon-1,
    NaN where not charted (vitals) or after the factual stay left the ICU. Rows follow
    ``stay_ids``; ``base``: the policy hook the data was generated with, if any. Cost: one
    original + one replay per scenario of each chunk holding a chosen stay."""
    pop = population(cfg)
    index = locate(cfg, stay_ids, pop)
    n = len(index)
    out = {s: {v: np.full((n, horizon), np.nan, np.float32) for v in REPLAY_VARIABLES} for s in scenarios}
    hours = from_hour + np.arange(horizon)  # (H,)
    for c in np.unique(index // CHUNK):
        sel = np.flatnonzero(index // CHUNK == c)  # rows of the output in this chunk
        local = index[sel] - c * CHUNK
        order = np.argsort(local)
        sel, local = sel[order], local[order]
        los_h = original_chunk(cfg, int(c), pop, base).stay["los_h"]
        inside = hours[None, :] < np.ceil(los_h[local])[:, None]  # (m, H) factual stay still in the ICU
        for name, ov in scenarios.items():
            w = replay_chunk(cfg, int(c), los_h, local, np.full(len(local), from_hour), ov, pop, base)
            cols = hours[hours < w.hours]  # the replay's loop ends with the longest stay
            for v in REPLAY_VARIABLES:
                src = w.vitals[v] if v in w.vitals else w.labs[v]  # (chunk, H_w)
                vals = np.full((len(local), horizon), np.nan, np.float32)
                vals[:, : len(cols)] = src[local][:, cols]
                out[name][v][sel] = np.where(inside, vals, np.nan)
    return out
