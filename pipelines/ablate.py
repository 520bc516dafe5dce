"""`clin-jepa ablate --out DIR [--seeds K]`: every ablation and comparison paradigm, trained
and evaluated on the same data and seeds, then one comparison report.

    DIR/config.yaml                 the shared base config
    DIR/mimic/, DIR/data/           synthetic MIMIC-IV (unless data.mimic_dir) and its extraction
    DIR/sft_s<K>/                   tokenizer + SFT encoder of seed K, shared by every paradigm
    DIR/runs/<paradigm>_s<K>/       one run per paradigm and seed (pretrain, embed, evaluate)
    DIR/report/                     comparison tables (drift, displacement ratio, AUROC per family)

Paradigms are curricula in configs/curriculum/ (see docs/training.md): the full five-phase
curriculum, each named ablation, the SFT-only encoder with a predictor trained on it frozen,
and the V-JEPA 2-AC style paradigm. Every directory is a run (clin_jepa.run.RunDir) driven by
the stage functions of ``clin_jepa.pipelines._stages``: completed stages are skipped on a rerun, an
interrupted pretraining resumes, and a rerun with other settings is refused naming them.
"""

from __future__ import annotations

import argparse
import shutil
import time

from clin_jepa.pipelines._common import main_for, name_list
from clin_jepa.pipelines._stages import open_or_create, run_stages, source_stages

from clin_jepa.config import RunConfig, from_dict, load_config
from clin_jepa.run import RunDir
from clin_jepa.utils import get_logger, write_json

log = get_logger("clin_jepa.pipelines.ablate")

PARADIGMS: tuple[str, ...] = ("full", "no_warmup", "no_align_sync", "naive_cotrain", "sft_frozen", "vjepa2_ac")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="ablation directory to create (e.g. runs/ablate)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per paradigm (train and SFT seeds 0..K-1)")
    p.add_argument("--paradigms", nargs="+", default=list(PARADIGMS), metavar="NAME",
                   help=f"curricula to compare, comma- or space-separated (default: {','.join(PARADIGMS)})")
    p.add_argument("--config", default="default", help="base YAML config (default: configs/default.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override applied to every run (repeatable)")
    p.add_argument("--force", action="store_true", help="rerun every stage even if its output exists")


def _seeded(base: RunConfig, run: RunDir, seed: int, curriculum: str | None = None) -> RunConfig:
    """The run of one seed (and paradigm): ``base`` with its seeds, on the shared data directory."""
    cfg = from_dict(RunConfig, base.to_dict())
    cfg.data.data_dir = str(base.data_path)
    cfg.sft.seed = seed
    cfg.train.seed = seed
    if curriculum:
        cfg.train.curriculum = curriculum
    return open_or_create(run, cfg, "use a new --out")


def _share_sft(sft: RunDir, run: RunDir) -> None:
    """Copy the seed's tokenizer and SFT encoder into a paradigm run (each run stays self-contained)."""
    for src, dst in ((sft.tokenizer, run.tokenizer), (sft.sft, run.sft)):
        if src.exists() and not dst.exists():
            shutil.copytree(src, dst)


def run(args: argparse.Namespace) -> int:
    from clin_jepa.evaluation.report import build_report

    out = RunDir(args.out)
    paradigms = name_list(args.paradigms)
    if not paradigms or args.seeds < 1:
        raise ValueError("give at least one paradigm (--paradigms) and --seeds >= 1")
    from clin_jepa.training.curriculum import load_curriculum

    for p in paradigms:  # fail before hours of work on a misspelt name
        load_curriculum(p)
    base = open_or_create(out, load_config(args.config, args.overrides), "use a new --out")
    t0 = time.perf_counter()
    timings = {"shared": run_stages(out, base, source_stages(out, base), force=args.force, label="ablate ")}

    runs: list[RunDir] = []
    for seed in range(args.seeds):
        sft = RunDir(out.root / f"sft_s{seed}")
        cfg = _seeded(base, sft, seed)
        timings[sft.root.name] = run_stages(sft, cfg, ["sft"], force=args.force, label=f"seed {seed} ")
        for paradigm in paradigms:
            run = RunDir(out.root / "runs" / f"{paradigm}_s{seed}")
            cfg = _seeded(base, run, seed, curriculum=paradigm)
            _share_sft(sft, run)
            timings[run.root.name] = run_stages(run, cfg, ["pretrain", "embed", "evaluate"], force=args.force,
                                                label=f"{run.root.name} ")
            runs.append(run)

    report = build_report([r.root for r in runs], out.report)
    total = time.perf_counter() - t0
    write_json(out.root / "ablation.json", {"paradigms": paradigms, "seeds": args.seeds,
                                            "runs": [r.root.name for r in runs], "seconds": timings,
                                            "total_seconds": total})
    print(f"\nAblation finished in {total / 60:.1f} min: {len(runs)} runs. "
          f"Comparison table: {report / 'comparison.md'}")
    comparison = report / "comparison.md"
    if comparison.exists():
        print(comparison.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
