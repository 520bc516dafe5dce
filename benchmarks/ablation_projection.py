"""Project the time of an ablation grid from the stage times of a measured (smaller) one.

Reads ``DIR/ablation.json`` of a `clin-jepa ablate` run (wall and CPU seconds per stage and
run) and the measured runs' configs, and projects a grid of other paradigms, seeds and
budgets on the same data:

- shared stages (synth, extraction): as measured;
- tokenizer + SFT, per seed: measured seconds x (target sft.steps / measured sft.steps);
- pretraining, per paradigm: optimizer steps x seconds per step of its phases' kind, fitted
  on the measured runs: frozen encoder with online targets (cached latents), trainable
  encoder, frozen encoder with EMA targets (the target side is encoded every step), masked
  JEPA (as trainable); least squares over the measured runs, so measure at least as many
  paradigms as kinds used (full, sft_frozen, naive_cotrain fit the three AC kinds);
- embeddings: as measured per run; evaluation: the measured run with baselines for the first
  run of the extraction, the mean of the runs without them for the others;
- a paradigm the measured grid ran at the same step scale: its own measured pretraining,
  embedding and evaluation seconds, and the SFT of its own text variant (the snapshot texts'
  SFT, pretraining and embedding cost ~3-4x the events ones);
- ``--jobs``: the schedule of `clin-jepa ablate` (pipelines.ablate._schedule): SFTs taken first,
  each paradigm run ready when its SFT ends, a free worker taking the ready run whose
  prerequisite took longest.

CPU seconds (the default) are what the process used, every thread: on an idle 2-core
machine with the debug flavors (one torch thread) they are close to the wall time, and a
busy machine inflates them far less than the wall time. ``--encoder-cost`` multiplies the
encoder-bound parts (SFT, trainable and EMA-target steps, embeddings) for a bigger flavor.

    python benchmarks/ablation_projection.py /tmp/ablate/runs/dA --config default --seeds 3
    python benchmarks/ablation_projection.py /tmp/ablate/runs/dA --config ablate --data-from /tmp/ablate/runs/dB
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from clin_jepa.pipelines.ablate import PARADIGMS, _longest_first, parse_paradigm

from clin_jepa.config import load_config
from clin_jepa.run import RunDir
from clin_jepa.training.curriculum import load_curriculum

KINDS = ("frozen", "trainable", "frozen_ema")
TITLES = {"sft": "tokenizer + SFT", "pretrain": "five-phase curriculum", "embed": "embeddings",
          "evaluate": "evaluation"}


def phase_steps(curriculum: str, steps_scale: float) -> np.ndarray:
    """Optimizer steps per kind (KINDS order) of a curriculum at a step scale."""
    out = np.zeros(len(KINDS))
    for p in load_curriculum(curriculum, steps_scale=steps_scale).phases:
        if p.is_instant:
            continue
        kind = "trainable" if p.encoder == "trainable" else "frozen_ema" if p.targets == "ema" else "frozen"
        out[KINDS.index(kind)] += p.steps
    return out


def _embed_eval(measured: Path, field: str) -> tuple[list[float], list[float], list[float], float]:
    """Per-run embedding seconds, evaluation seconds with / without baselines, shared seconds."""
    info = json.loads((measured / "ablation.json").read_text())
    stages = info["stage_seconds"]
    embed, eval_base, eval_plain = [], [], []
    for name in info["runs"]:
        t = stages[name]
        embed.append(t[TITLES["embed"]][field])
        base = RunDir(measured / "runs" / name).load_config().eval.baselines
        (eval_base if base else eval_plain).append(t[TITLES["evaluate"]][field])
    return embed, eval_base, eval_plain, sum(t[field] for t in stages["shared"].values())


def project(measured: Path, config: str, paradigms: list[str], seeds: int, field: str, encoder_cost: float,
            overrides: list[str], data_from: Path | None = None, jobs: int = 1) -> dict:
    """``measured``: SFT and pretraining per-step costs; ``data_from`` (default the same): the
    data-dependent stages (shared, embeddings, evaluation) measured on the projected data."""
    info = json.loads((measured / "ablation.json").read_text())
    stages = info["stage_seconds"]
    target = load_config(config, overrides)
    embed, eval_base, eval_plain, shared = _embed_eval(data_from or measured, field)
    sft_runs = [RunDir(measured / name) for name in stages if name.startswith("sft_s")]
    sft = np.mean([stages[r.root.name][TITLES["sft"]][field] * target.sft.steps / r.load_config().sft.steps
                   for r in sft_runs]) * encoder_cost
    sft_of = {}  # SFT seconds per text variant tag ('' = events): the measured one when the grid ran it
    for name in stages:
        if name.startswith("sft") and name.endswith("_s0"):
            r = RunDir(measured / name)
            sft_of[name[3:-3].lstrip("@")] = (stages[name][TITLES["sft"]][field] * target.sft.steps
                                              / r.load_config().sft.steps * encoder_cost)
    rows, times = [], []
    for name in info["runs"]:
        cfg = RunDir(measured / "runs" / name).load_config()
        rows.append(phase_steps(cfg.train.curriculum, cfg.train.steps_scale))
        times.append(stages[name][TITLES["pretrain"]][field])
    used = np.flatnonzero(np.array(rows).sum(0) > 0)
    per_step = np.zeros(len(KINDS))
    per_step[used] = np.linalg.lstsq(np.array(rows)[:, used], np.array(times), rcond=None)[0]
    scale = np.array([1.0, encoder_cost, encoder_cost])
    ev_plain = float(np.mean(eval_plain)) if eval_plain else float(np.mean(eval_base))
    measured_runs = {n.rsplit("_s", 1)[0]: n for n in info["runs"]}
    same_scale = RunDir(measured / "runs" / info["runs"][0]).load_config().train.steps_scale == target.train.steps_scale
    per_paradigm, sfts = {}, {}
    for i, spec in enumerate(paradigms):
        p = parse_paradigm(spec)
        tag = p.tag("sft")
        sfts[tag] = sft_of.get(tag, sft)
        own = measured_runs.get(p.name) if same_scale and encoder_cost == 1.0 else None
        if own is not None:  # measured as it is projected
            t = stages[own]
            per_paradigm[spec] = {k: t[TITLES[k]][field] for k in ("pretrain", "embed", "evaluate")}
            if i == 0 and not RunDir(measured / "runs" / own).load_config().eval.baselines:
                per_paradigm[spec]["evaluate"] = float(np.mean(eval_base))
            elif i > 0 and RunDir(measured / "runs" / own).load_config().eval.baselines:
                per_paradigm[spec]["evaluate"] = ev_plain
            continue
        steps = phase_steps(p.curriculum, target.train.steps_scale)
        pre = float(steps @ (per_step * scale))
        per_paradigm[spec] = {"pretrain": pre, "embed": float(np.mean(embed)) * encoder_cost,
                              "evaluate": float(np.mean(eval_base)) if i == 0 else ev_plain}
    runs = [(sum(v.values()), parse_paradigm(p).tag("sft")) for p, v in per_paradigm.items()]

    def grid(n_seeds: int) -> float:  # fits the baselines once: later seeds evaluate without them
        later = [(d - per_paradigm[paradigms[0]]["evaluate"] + ev_plain if i == 0 else d, tag)
                 for i, (d, tag) in enumerate(runs)]
        items = [(runs if k == 0 else later) for k in range(n_seeds)]
        return shared + _simulate([(sfts[tag], [d for d, t in seed_runs if t == tag])
                                   for seed_runs in items for tag in sfts], jobs)

    return {"field": field, "per_step": dict(zip(KINDS, per_step.tolist())), "shared": shared, "sft": sfts,
            "n_sft": len(sfts), "per_paradigm": per_paradigm, "one_seed_min": grid(1) / 60, "seeds": seeds,
            "jobs": jobs, "total_min": grid(seeds) / 60}


def _simulate(groups: list[tuple[float, list[float]]], jobs: int) -> float:
    """Wall time of `ablate`'s schedule: ``groups`` = (SFT seconds, [its runs' seconds]); SFTs are
    ready at once and taken first, a group's runs when its SFT ends; a free worker takes the ready
    run whose prerequisite took longest (pipelines.ablate._longest_first), in list order among equals."""
    ready = [(float("inf"), (d, runs)) for d, runs in groups]  # SFTs before any run, as in _schedule
    free = [0.0] * max(1, jobs)
    busy: list[tuple[float, float, list[float]]] = []  # (end time, own seconds, dependents)
    now = 0.0
    while ready or busy:
        while ready and any(f <= now for f in free):
            _, (d, deps) = ready.pop(_longest_first(ready))
            i = next(i for i, f in enumerate(free) if f <= now)
            free[i] = now + d
            busy.append((now + d, d, deps))
        busy.sort(key=lambda b: b[0])
        end, d, deps = busy.pop(0)
        now = end
        ready += [(d, (r, [])) for r in deps]
    return max(free)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("measured", type=Path, help="a `clin-jepa ablate --out` directory")
    ap.add_argument("--config", default="default", help="config of the projected grid")
    ap.add_argument("--data-from", type=Path, help="ablation measured on the projected data (embed, evaluate)")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--paradigms", default=",".join(PARADIGMS))
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="as `clin-jepa ablate --jobs` (one core per job assumed)")
    ap.add_argument("--field", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--encoder-cost", type=float, default=1.0,
                    help="cost of the projected encoder flavor relative to the measured one")
    a = ap.parse_args()
    res = project(a.measured, a.config, a.paradigms.split(","), a.seeds, a.field, a.encoder_cost, a.overrides,
                  a.data_from, a.jobs)
    print(f"seconds per optimizer step ({a.field}): " + ", ".join(f"{k} {v:.2f}" for k, v in res["per_step"].items()))
    print(f"shared {res['shared']:.0f} s; tokenizer + SFT per seed: "
          + ", ".join(f"{t or 'events'} {v:.0f} s" for t, v in res["sft"].items()))
    for p, v in res["per_paradigm"].items():
        print(f"  {p:<24} pretrain {v['pretrain']:6.0f}  embed {v['embed']:5.0f}  evaluate {v['evaluate']:5.0f}")
    print(f"--jobs {res['jobs']}: one seed {res['one_seed_min']:.1f} min; {res['seeds']} seed(s) "
          f"{res['total_min']:.1f} min (report stage not included)")


if __name__ == "__main__":
    main()
