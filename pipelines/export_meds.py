"""`clin-jepa export-meds`: an extraction as a MEDS dataset (data, metadata, splits, task labels).

    clin-jepa export-meds --run runs/demo --out runs/demo/meds
    clin-jepa export-meds --data runs/full/data --mimic /data/mimic-iv --out runs/full/meds

Reads the extraction's MIMIC-IV source again for the real ICU times (the data directory
keeps hours since intime only). The export holds identifiers: keep it with your data.
See docs/meds.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clin_jepa.pipelines._common import add_config_arguments, main_for, open_run, resolve_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--data", default=None, help="data directory of `clin-jepa extract` (default: the run's)")
    parser.add_argument("--mimic", default=None,
                        help="the MIMIC-IV root the extraction read (default: data.mimic_dir or <run>/mimic)")
    parser.add_argument("--out", required=True, help="new MEDS dataset directory")
    parser.add_argument("--force", action="store_true", help="replace an existing export at --out")


def run(args: argparse.Namespace) -> int:
    from clin_jepa.data.meds_export import export_meds

    if not args.run and not args.data:
        raise ValueError("pass --run RUN (its data directory) or --data DIR")
    if args.run:
        run, cfg = open_run(args, create=False, how_to_create="extract one with `clin-jepa demo` or `clin-jepa extract --run`")
        data_dir = Path(args.data) if args.data else cfg.data_path  # the run's data/ unless data.data_dir
        mimic = args.mimic or (str(run.mimic_source(cfg)) if run.mimic_source(cfg).is_dir() else "")
    else:
        cfg = resolve_config(args)
        data_dir, mimic = Path(args.data), args.mimic or cfg.data.mimic_dir
    if not mimic:
        raise ValueError("the MEDS export needs the MIMIC-IV source of the extraction (for the real ICU times): "
                         "pass --mimic DIR")
    summary = export_meds(data_dir, mimic, args.out, force=args.force, threads=cfg.data.duckdb_threads,
                          memory_limit=cfg.data.duckdb_memory_limit)
    print(f"wrote {args.out}: {summary['subjects']} subjects, {summary['events']} events, "
          f"{len(summary['labels'])} task label files (MEDS, validated)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
