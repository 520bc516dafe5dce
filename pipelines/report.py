"""`clin-jepa report --run RUN [--compare RUN ...] [--out DIR]`: tables (csv/md/tex), figures (pdf/png)
and manifest.json from RUN/eval/*.json (``clin-jepa evaluate``); with --compare, a grid of
runs (mean +- sd over runs that differ only in seeds). Default output: RUN/report; prints
the headline figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines._common import main_for, name_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory (its eval/ is reported)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="RUN",
                        help="more runs for the comparison grid (comma- or space-separated)")
    parser.add_argument("--out", default=None, help="output directory (default RUN/report)")


def run(args: argparse.Namespace) -> int:
    from evaluation.report import build_report, format_headline, headline

    runs = [Path(args.run), *[Path(r) for r in name_list(args.compare)]]
    for r in runs:
        if not (r / "config.yaml").exists():
            raise FileNotFoundError(f"{r}/config.yaml not found: {r} is not a run directory")
    out = build_report(runs, args.out)
    print(f"Report of {runs[0]}: {out / 'report.md'}")
    print(format_headline(headline(runs[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
