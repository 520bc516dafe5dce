"""`clin-jepa ablate --out DIR [--seeds K]`: every ablation and comparison paradigm, trained
and evaluated on the same data and seeds, then one comparison report.

    DIR/config.yaml                 the shared base config
    DIR/mimic/, DIR/data/           synthetic MIMIC-IV (unless data.mimic_dir) and its extraction
    DIR/sft_s<K>/                   tokenizer + SFT encoder of seed K, shared by every paradigm
    DIR/runs/<paradigm>_s<K>/       one run per paradigm and seed (pretrain, embed, evaluate)
    DIR/report/                     comparison tables (drift, displacement ratio, AUROC per family)

Paradigms are curricula in configs/curriculum/ (see docs/training.md): the full five-phase
curriculum, each named ablation, the SFT-only encoder with a predictor trained on it frozen,
and the V-JEPA 2-AC style paradigm. Completed stages are skipped on a rerun.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from clin_jepa.config import RunConfig, load_config
from clin_jepa.utils import get_logger, write_json
from pipelines._common import main_for, name_list
from pipelines._stages import Step, run_steps

log = get_logger("pipelines.ablate")

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


def _seeded(base: RunConfig, run_dir: Path, seed: int, curriculum: str | None = None) -> RunConfig:
    """A copy of ``base`` for one run: its own directory and seeds, the shared data directory."""
    from clin_jepa.config import RunConfig, from_dict

    cfg = from_dict(RunConfig, base.to_dict())
    cfg.run_dir = str(run_dir)
    cfg.data.data_dir = str(base.data_path)
    cfg.sft.seed = seed
    cfg.train.seed = seed
    if curriculum:
        cfg.train.curriculum = curriculum
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")
    return cfg


def _share_sft(sft_dir: Path, run_dir: Path) -> None:
    """Copy the seed's tokenizer and SFT encoder into a paradigm run (each run stays self-contained)."""
    for name in ("tokenizer", "sft"):
        src, dst = sft_dir / name, run_dir / name
        if src.exists() and not dst.exists():
            shutil.copytree(src, dst)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    paradigms = name_list(args.paradigms)
    if not paradigms or args.seeds < 1:
        raise ValueError("give at least one paradigm (--paradigms) and --seeds >= 1")
    from clin_jepa.training.curriculum import load_curriculum

    for p in paradigms:  # fail before hours of work on a misspelt name
        load_curriculum(p)
    base = load_config(args.config, args.overrides, run_dir=str(out))
    base.data.data_dir = base.data.data_dir or str(out / "data")
    out.mkdir(parents=True, exist_ok=True)
    base.save(out / "config.yaml")
    mimic = Path(base.data.mimic_dir) if base.data.mimic_dir else out / "mimic"
    t0 = time.perf_counter()

    shared = []
    if not base.data.mimic_dir and not (base.data_path / "manifest.json").exists():
        shared.append(Step("synthetic MIMIC-IV", mimic / "icu" / "icustays.csv.gz",
                           ["synth", "--run", out, "--out", mimic]))
    shared.append(Step("DuckDB extraction", base.data_path / "manifest.json",
                       ["extract", "--run", out, "--mimic", mimic, "--out", base.data_path]))
    timings = {"shared": run_steps(shared, force=args.force, label="ablate ")}

    runs: list[Path] = []
    for seed in range(args.seeds):
        sft_dir = out / f"sft_s{seed}"
        _seeded(base, sft_dir, seed)
        timings[sft_dir.name] = run_steps([Step("tokenizer + SFT", sft_dir / "sft" / "metrics.json",
                                                ["sft", "--run", sft_dir])], force=args.force, label=f"seed {seed} ")
        for paradigm in paradigms:
            run_dir = out / "runs" / f"{paradigm}_s{seed}"
            _seeded(base, run_dir, seed, curriculum=paradigm)
            _share_sft(sft_dir, run_dir)
            steps = [
                Step(f"pretrain ({paradigm})", run_dir / "final" / "predictor.json", ["pretrain", "--run", run_dir]),
                Step("embeddings", run_dir / "embeddings" / "fingerprint.json", ["embed", "--run", run_dir]),
                Step("evaluation", run_dir / "eval" / "tasks.json", ["evaluate", "--run", run_dir]),
            ]
            timings[run_dir.name] = run_steps(steps, force=args.force, label=f"{run_dir.name} ")
            runs.append(run_dir)

    report = out / "report"
    compare = ["--compare", *runs[1:]] if len(runs) > 1 else []
    run_steps([Step("comparison report", report / "manifest.json",
                    ["report", "--run", runs[0], *compare, "--out", report])], force=True, label="ablate ")
    total = time.perf_counter() - t0
    write_json(out / "ablation.json", {"paradigms": paradigms, "seeds": args.seeds,
                                       "runs": [r.name for r in runs], "seconds": timings, "total_seconds": total})
    print(f"\nAblation finished in {total / 60:.1f} min: {len(runs)} runs. "
          f"Comparison table: {report / 'comparison.md'}")
    comparison = report / "comparison.md"
    if comparison.exists():
        print(comparison.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
