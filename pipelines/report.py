"""`clin-jepa report --run RUN [--compare RUN ...] [--out DIR]`: tables (md/csv/tex), plots
and manifest.json from RUN/eval/*.json (``clin-jepa evaluate``); with --compare, a grid of
runs (mean +- sd over runs that differ only in seeds). Default output: RUN/report.
"""

from __future__ import annotations

import argparse
import json

from pipelines._common import main_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory (its eval/ is reported)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="RUN", help="more runs for the comparison grid")
    parser.add_argument("--out", default=None, help="output directory (default RUN/report)")


def run(args: argparse.Namespace) -> int:
    from clin_jepa.run import RunDir
    from evaluation.report import build_report, headline

    runs = [RunDir(r) for r in (args.run, *args.compare)]
    for r in runs:
        r.load_config()  # a run directory with a readable config, else an error naming the file
    out = build_report([r.root for r in runs], args.out)
    print(json.dumps(headline(runs[0].root), indent=2))
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
