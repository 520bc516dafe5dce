"""`clin-jepa ablate --out DIR [--seeds K]`: the ablation grid, every paradigm trained and
evaluated on the same data and seeds, then one comparison report (mean +- sd over seeds,
paired tests against the first paradigm).

    DIR/config.yaml                 the shared base config
    DIR/mimic/, DIR/data/           synthetic MIMIC-IV (unless data.mimic_dir) and its extraction
    DIR/sft_s<K>/                   tokenizer + SFT encoder of seed K, shared by every paradigm
    DIR/source@<tag>/, DIR/sft@<tag>_s<K>/   the same for variants whose overrides change the data / encoder
    DIR/runs/<paradigm>_s<K>/       one run per paradigm and seed (pretrain, embed, evaluate)
    DIR/report/                     comparison tables (evaluation.compare)
    DIR/ablation.json               paradigms, runs, wall and CPU seconds per stage (0 = skipped: done before)

A paradigm is ``CURRICULUM[@VARIANT]...``: a curriculum of configs/curriculum/ (docs/training.md)
plus config overrides. A variant is a name of :data:`VARIANTS` (``full@snapshot``) or one
``KEY=VALUE`` override (``full@optim.lr_predictor=1e-3``; no commas or spaces in the value).
Overrides that change the synthetic data or the extraction (synth.*, data.* but data.text_mode)
get their own extraction, and those that change the encoder or its SFT (tokenizer.*, encoder.*,
sft.*, data.text_mode) their own SFT encoder; the others share the base's (the stage of a key
is the one `--reconfigure` makes stale: clin_jepa.run.KEY_STAGE / SECTION_STAGE). Every directory is a run (clin_jepa.run.RunDir)
driven by the stage functions of ``clin_jepa.pipelines._stages``: completed stages are skipped
on a rerun, an interrupted pretraining resumes, and a rerun with other settings is refused.

The baselines depend only on the data, splits and eval seeds, so they are fitted in the first
run of each extraction (``--baselines-every-run`` refits them in every run). Every run's config
is written first; then the SFT runs and the paradigm runs execute, ``--jobs`` at a time in
separate processes: the SFTs first, each paradigm run as soon as its own SFT encoder is trained,
the run whose SFT took longest first (each run is seeded on its own: the results do not depend
on --jobs or on the order). If this process dies, its workers save their state and stop.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass

from clin_jepa.pipelines._common import main_for, name_list
from clin_jepa.pipelines._stages import open_or_create, run_stages, source_stages

from clin_jepa.config import RunConfig, from_dict, load_config
from clin_jepa.run import KEY_STAGE, SECTION_STAGE, STAGES, RunDir
from clin_jepa.utils import get_logger, write_json

log = get_logger("clin_jepa.pipelines.ablate")

VARIANTS: dict[str, tuple[str, ...]] = {  # variant name -> config overrides (CURRICULUM@NAME)
    # each item's latest value with its age, every hour (docs/data.md); its texts run to ~270 tokens
    # (1.9 % over the default 256 would be truncated, losing the SOFA/KDIGO tail), hence the longer limit
    "snapshot": ("data.text_mode=snapshot", "encoder.max_length=320"),
}
# the default grid: the full curriculum, each phase removed one at a time, the METHOD 6 ablations and
# paradigms, and the full curriculum on the other text representation
PARADIGMS: tuple[str, ...] = ("full", "no_warmup", "no_joint", "no_align", "no_sync", "no_finalize",
                              "no_align_sync", "naive_cotrain", "sft_frozen", "vjepa2_ac", "full@snapshot")
_SAFE = re.compile(r"[^A-Za-z0-9._=@+-]")


@dataclass(frozen=True)
class Paradigm:
    spec: str  # as given: full, full@snapshot, full@optim.lr_predictor=1e-3
    curriculum: str
    parts: tuple[tuple[str, tuple[str, ...]], ...]  # (variant label, its overrides)

    @property
    def name(self) -> str:
        """Directory-safe name (run directories, table rows)."""
        return _SAFE.sub("_", self.spec)

    @property
    def overrides(self) -> list[str]:
        return [o for _, ov in self.parts for o in ov]

    def parts_upto(self, last_stage: str) -> list[tuple[str, tuple[str, ...]]]:
        """The variants whose overrides change a stage up to ``last_stage`` (clin_jepa.run.SECTION_STAGE)."""
        upto = STAGES[: STAGES.index(last_stage) + 1]
        return [(lab, ov) for lab, ov in self.parts if any(_stage(o) in upto for o in ov)]

    def tag(self, last_stage: str) -> str:
        """Directory tag of those variants ('' = the base's stage is shared)."""
        return _SAFE.sub("_", "@".join(lab for lab, _ in self.parts_upto(last_stage)))


def _stage(override: str) -> str:
    """The first stage a KEY=VALUE override changes (the rule of `--reconfigure`, clin_jepa.run)."""
    key = override.split("=", 1)[0]
    return KEY_STAGE.get(key, SECTION_STAGE.get(key.split(".")[0], "report"))


def parse_paradigm(spec: str) -> Paradigm:
    """``CURRICULUM[@VARIANT]...`` -> Paradigm; a clear ValueError for a bad name."""
    curriculum, *variants = spec.split("@")
    if not curriculum:
        raise ValueError(f"paradigm {spec!r}: name a curriculum before '@' (e.g. full@snapshot)")
    parts = []
    for v in variants:
        if v in VARIANTS:
            parts.append((v, VARIANTS[v]))
        elif "=" in v and v.split("=", 1)[0].count(".") >= 1:
            if v.split("=", 1)[0] == "train.curriculum":
                raise ValueError(f"paradigm {spec!r}: the curriculum is the name before '@', not an override")
            parts.append((v, (v,)))
        else:
            known = ", ".join(sorted(VARIANTS)) or "none defined"
            raise ValueError(f"paradigm {spec!r}: unknown variant {v!r}; use a named variant ({known}) or one "
                             f"config override KEY=VALUE, e.g. {curriculum}@optim.lr_predictor=1e-3")
    return Paradigm(spec, curriculum, tuple(parts))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="ablation directory to create (e.g. runs/ablate)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per paradigm (train and SFT seeds 0..K-1)")
    p.add_argument("--paradigms", nargs="+", default=list(PARADIGMS), metavar="NAME",
                   help="CURRICULUM[@VARIANT] names, comma- or space-separated; the first is the reference of "
                        f"the paired tests (default: {','.join(PARADIGMS)})")
    p.add_argument("--config", default="default", help="base YAML config (default: configs/default.yaml; "
                                                       "configs/ablate.yaml: a larger test split)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override applied to every run (repeatable)")
    p.add_argument("--baselines-every-run", action="store_true",
                   help="refit the baselines in every run (default: once per extraction, they are identical)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once, each in its own process (2 on a 2-core CPU with the debug flavors, "
                        "which use one thread each; 1 for flavors that use every core)")
    p.add_argument("--force", action="store_true", help="rerun every stage even if its output exists")


def _derive(base: RunConfig, overrides: list[str], **sets) -> RunConfig:
    """``base`` with dotted overrides and attribute sets (section__key=value), validated."""
    tree = base.to_dict()
    cfg = load_config(None, overrides, **tree) if overrides else from_dict(RunConfig, tree)
    for k, v in sets.items():
        section, key = k.split("__")
        setattr(getattr(cfg, section), key, v)
    return cfg.validate()


def _timed(run: RunDir, cfg: RunConfig, stages: list[str], force: bool) -> dict[str, dict]:
    """Run stages one by one: {stage title: {"wall": s, "cpu": s, "attempts": n, "this_launch": bool}},
    the seconds the stage took over every launch that worked on it (RunDir.stage_times), also for a
    stage this launch skipped because an earlier one finished it. CPU seconds are the stage's
    process's (every thread), the figure that projects the grid's time on an idle machine from a
    busy one. A stage finished before its times were recorded reports 0 s."""
    out = {}
    for name in stages:
        (title, wall), = run_stages(run, cfg, [name], force=force, label=f"{run.root.name} ").items()
        rec = (run.stage_times()["completed"].get(name)  # absent only if it could not be recorded
               or {"wall": round(wall, 2), "cpu": 0.0, "attempts": int(wall > 0)})
        out[title] = {**rec, "this_launch": wall > 0}
    return out


def _job(root: str, stages: list[str], force: bool, share_from: str | None = None) -> tuple[str, dict]:
    """Run the stages of one run directory (in a worker process with --jobs > 1), first copying the
    tokenizer and SFT encoder of the run ``share_from`` into it when given."""
    run = RunDir(root)
    if share_from is not None:
        _share_sft(RunDir(share_from), run)
    return run.root.name, _timed(run, run.load_config(), stages, force)


def _die_with_parent(parent: int) -> None:
    """Worker initializer: when the ablation process dies, even by SIGKILL (no chance to clean up),
    its workers get SIGTERM, which the trainer turns into a saved state that the next `ablate`
    resumes, instead of training on as orphans nobody waits for. Linux's PR_SET_PDEATHSIG through
    ctypes: neither multiprocessing nor concurrent.futures offers this; elsewhere nothing changes."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the call above took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _longest_first(ready: list[tuple[float, object]]) -> int:
    """Index of the ready item whose prerequisite took longest (the first of equals)."""
    return max(range(len(ready)), key=lambda i: (ready[i][0], -i))


def _schedule(items: list[tuple[RunDir, list[str], RunDir | None]], jobs: int, force: bool) -> dict[str, dict]:
    """Run (run, stages, after) items, ``jobs`` at a time in spawned processes (1: in this process, in
    order); an item starts only once the item whose run is ``after`` has finished (None: at once).
    A worker that comes free takes a waiting SFT first (every run waits on one), else the ready run
    whose prerequisite took longest: the snapshot texts' SFT takes ~4x the events one and so do
    their pretraining and embedding, so their run goes first instead of after every queued events
    run (longest job first). Replayed on the measured stage times (BENCHMARKS.md "Ablation grid"):
    one seed 50.6 min against 62.6 in grid order; three seeds 2.50 h, against 2.48 h in grid order
    and 2.73 h longest-first without the SFTs first. An SFT that an earlier launch finished counts
    with its recorded time (RUN/logs/stage_times.json), so a resumed grid keeps this order.
    Timings come back in the items' order; each run is seeded on its own, so the order changes
    no result."""
    order = {str(r.root): i for i, (r, _, _) in enumerate(items)}
    results: dict[str, tuple[str, dict]] = {}
    if jobs <= 1 or len(items) <= 1:
        for r, st, after in items:  # listed after their prerequisites
            results[str(r.root)] = _job(str(r.root), st, force, str(after.root) if after else None)
    else:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        blocked = [it for it in items if it[2] is not None]
        # (priority, item): items without a prerequisite (the SFTs) first, as every run waits on one;
        # then the run whose prerequisite took longest
        ready = [(float("inf"), it) for it in items if it[2] is None]
        running: dict = {}
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
            try:
                while ready or running:
                    while ready and len(running) < jobs:
                        _, (r, st, after) = ready.pop(_longest_first(ready))
                        running[pool.submit(_job, str(r.root), st, force, str(after.root) if after else None)] = r
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for f in done:
                        r = running.pop(f)
                        results[str(r.root)] = f.result()
                        took = sum(t["wall"] for t in results[str(r.root)][1].values())
                        for it in [it for it in blocked if it[2].root == r.root]:
                            blocked.remove(it)
                            ready.append((took, it))
            except BaseException as e:
                if running:  # say so now: the runs still training finish (their results are kept) first
                    log.error("a run of the grid failed (%s: %s); no queued run starts; waiting for the %d "
                              "run(s) still training to finish (Ctrl-C stops them at their next step)",
                              type(e).__name__, str(e).splitlines()[0] if str(e) else "", len(running))
                pool.shutdown(wait=True, cancel_futures=True)  # queued runs never start after a failure
                raise
        if blocked:
            raise RuntimeError(f"{len(blocked)} run(s) wait on a run that is not in the grid: {blocked[0][0].root}")
    return dict(results[k] for k in sorted(results, key=order.__getitem__))


def _share_sft(sft: RunDir, run: RunDir) -> None:
    """Copy the seed's tokenizer and SFT encoder into a paradigm run (each run stays self-contained)."""
    for src, dst in ((sft.tokenizer, run.tokenizer), (sft.sft, run.sft)):
        if src.exists() and not dst.exists():
            shutil.copytree(src, dst)


class Grid:
    """The shared stages of an ablation: extractions and SFT encoders, each made once."""

    def __init__(self, out: RunDir, base: RunConfig, force: bool):
        self.out, self.base, self.force = out, base, force
        self.timings: dict[str, dict[str, float]] = {}
        self._data: dict[str, str] = {"": str(base.data_path)}

    def data_dir(self, p: Paradigm) -> str:
        """The extraction of the paradigm's data variant (made on first use)."""
        tag = p.tag("extract")
        if tag not in self._data:
            src = RunDir(self.out.root / f"source@{tag}")
            cfg = _derive(self.base, p.overrides, data__data_dir="")  # its own synthetic source and extraction
            cfg = open_or_create(src, cfg, "use a new --out")
            self.timings[src.root.name] = _timed(src, cfg, source_stages(src, cfg), self.force)
            self._data[tag] = str(cfg.data_path)
        return self._data[tag]

    def sft(self, p: Paradigm, seed: int) -> RunDir:
        """The SFT run of the paradigm's encoder variant and seed (created; trained by run())."""
        tag = p.tag("sft")
        run = RunDir(self.out.root / (f"sft@{tag}_s{seed}" if tag else f"sft_s{seed}"))
        self.config(p, run, seed, sft_only=True)
        return run

    def config(self, p: Paradigm, run: RunDir, seed: int, sft_only: bool = False, baselines: bool = True
               ) -> RunConfig:
        """The config of one run: base + the paradigm's overrides, its seeds and shared data directory."""
        sets = {"data__data_dir": self.data_dir(p), "sft__seed": seed, "train__seed": seed}
        if not sft_only:
            sets["train__curriculum"] = p.curriculum
        if run.exists():  # a rerun keeps where the baselines were fitted, whatever the paradigm order
            baselines = bool(run.load_config().eval.baselines)
        if not baselines:
            sets["eval__baselines"] = ()
        overrides = [o for _, ov in (p.parts_upto("sft") if sft_only else p.parts) for o in ov]
        return open_or_create(run, _derive(self.base, overrides, **sets), "use a new --out")


def run(args: argparse.Namespace) -> int:
    from clin_jepa.evaluation.report import build_report

    from clin_jepa.training.curriculum import load_curriculum

    out = RunDir(args.out)
    paradigms = [parse_paradigm(s) for s in name_list(args.paradigms)]
    if not paradigms or args.seeds < 1 or args.jobs < 1:
        raise ValueError("give at least one paradigm (--paradigms), --seeds >= 1 and --jobs >= 1")
    dup = sorted({p.name for p in paradigms if [q.name for q in paradigms].count(p.name) > 1})
    if dup:
        raise ValueError(f"--paradigms names {dup[0]!r} twice; give each paradigm once")
    base_cfg = load_config(args.config, args.overrides)
    for p in paradigms:  # fail before hours of work on a misspelt curriculum, variant or key
        load_curriculum(p.curriculum)
        load_config(args.config, [*args.overrides, *p.overrides])
    base = open_or_create(out, base_cfg, "use a new --out")
    t0 = time.perf_counter()
    grid = Grid(out, base, args.force)
    grid.timings["shared"] = _timed(out, base, source_stages(out, base), args.force)

    plan: list[tuple[RunDir, RunDir]] = []  # (run, its SFT run); every config is written here, before any job
    fitted: set[str] = set()  # extractions whose baselines a run fits
    for seed in range(args.seeds):
        for p in paradigms:
            sft = grid.sft(p, seed)
            run = RunDir(out.root / "runs" / f"{p.name}_s{seed}")
            data = grid.data_dir(p)
            cfg = grid.config(p, run, seed, baselines=args.baselines_every_run or data not in fitted)
            if cfg.eval.baselines:
                fitted.add(data)
            plan.append((run, sft))
    sfts = list({s.root: s for _, s in plan}.values())
    grid.timings |= _schedule([(s, ["sft"], None) for s in sfts]  # each run starts when its own SFT ends
                              + [(r, ["pretrain", "embed", "evaluate"], s) for r, s in plan], args.jobs, args.force)
    runs = [r for r, _ in plan]

    t1 = time.perf_counter()
    report = build_report([r.root for r in runs], out.report)
    total = time.perf_counter() - t0
    write_json(out.root / "ablation.json", {"paradigms": [p.spec for p in paradigms], "seeds": args.seeds,
                                            "runs": [r.root.name for r in runs], "stage_seconds": grid.timings,
                                            "report_seconds": round(time.perf_counter() - t1, 2),
                                            "total_seconds": total})
    print(f"\nAblation finished in {total / 60:.1f} min: {len(runs)} runs. "
          f"Comparison tables: {report / 'comparison.md'}, {report / 'comparison_tests.md'}")
    for name in ("comparison.md", "comparison_tests.md"):
        if (report / name).exists():
            print((report / name).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
