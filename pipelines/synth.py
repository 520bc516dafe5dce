"""`clin-jepa synth`: write a synthetic MIMIC-IV v2.2 directory (PhysioNet layout, csv.gz).

    clin-jepa synth --stays 600 --seed 0 --out runs/demo/mimic

``--stays``/``--seed`` override ``synth.stays``/``synth.seed`` of the config
(``--config``/``--set``); without ``--out`` the directory is ``<run>/mimic``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clin_jepa.pipelines._common import add_config_arguments, main_for, resolve_config

from clin_jepa.run import RunDir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stays", type=int, default=None, help="number of ICU stays (default: synth.stays)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: synth.seed)")
    p.add_argument("--out", default=None, help="output directory (default: <run>/mimic)")
    add_config_arguments(p)


def run(args: argparse.Namespace) -> int:
    from clin_jepa.data.synth import generate

    cfg = resolve_config(args, sections=("synth",))  # no model registries: no torch
    if args.stays is not None:
        cfg.synth.stays = args.stays
    if args.seed is not None:
        cfg.synth.seed = args.seed
    if args.out is None and args.run is None:
        raise ValueError("clin-jepa synth needs --out DIR (or --run DIR to write DIR/mimic)")
    out = Path(args.out) if args.out else RunDir(args.run).mimic
    s = generate(out, cfg.synth)
    print(f"wrote {out}: synthetic MIMIC-IV, {s['stays']:,} ICU stays of {s['patients']:,} patients "
          f"({s['admissions']:,} admissions, {s['icu_deaths']:,} ICU deaths, "
          f"{s['rows'].get('chartevents', 0):,} chartevents rows) in {s['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
