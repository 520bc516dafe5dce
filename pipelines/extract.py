"""`clin-jepa extract`: MIMIC-IV (csv.gz or parquet) -> hourly parquet, labels, splits, texts.

    clin-jepa extract --mimic /data/mimic-iv --out runs/full/data [--config ...] [--set data.x=y]
    clin-jepa extract --run runs/demo          # <run>/mimic -> <run>/data (creates the run if new)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clin_jepa.pipelines._common import add_config_arguments, main_for, open_run, resolve_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mimic", default=None, help="MIMIC-IV root holding hosp/ and icu/ (default: data.mimic_dir)")
    parser.add_argument("--out", default=None, help="output data directory (default: data.data_dir or <run>/data)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from clin_jepa.data.extract import run_extraction

    if args.run:  # --mimic/--out are settings of the run (later stages find the data through them)
        args.overrides += [f"data.{k}={v}" for k, v in (("mimic_dir", args.mimic), ("data_dir", args.out)) if v]
        run, cfg = open_run(args)
        mimic = cfg.data.mimic_dir or (str(run.mimic) if run.mimic.is_dir() else "")  # `clin-jepa synth --run`
        out = cfg.data_path
    else:
        cfg = resolve_config(args, sections=("data",))  # no model registries: no torch
        mimic = args.mimic or cfg.data.mimic_dir
        out = Path(args.out) if args.out else cfg.data_path
    if not mimic:
        raise ValueError("no MIMIC-IV directory: pass --mimic DIR or set data.mimic_dir "
                         "(or run `clin-jepa synth` to write a synthetic one)")
    manifest = run_extraction(mimic, out, cfg.data)
    if args.run:
        run.mark_done("extract")
    rows = manifest["rows"]
    print(f"wrote {out}: {rows.get('cohort.parquet', 0)} stays, {rows.get('hourly.parquet', 0)} stay-hours")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
