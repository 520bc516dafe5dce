"""`clin-jepa report --run RUN [--compare RUN ...] [--out DIR]`: tables (csv/md/tex), figures (pdf/png)
and manifest.json from RUN/eval/*.json (``clin-jepa evaluate``); with --compare, a grid of
runs (mean +- sd over runs that differ only in seeds). Default output: RUN/report; prints
the headline figures.
"""

from __future__ import annotations

import argparse

from clin_jepa.pipelines._common import main_for, name_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory (its eval/ is reported)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="RUN",
                        help="more runs for the comparison grid (comma- or space-separated)")
    parser.add_argument("--out", default=None, help="output directory (default RUN/report)")


def run(args: argparse.Namespace) -> int:
    from clin_jepa.evaluation.report import build_report, format_headline, headline

    from clin_jepa.run import RunDir

    runs = [RunDir(r) for r in (args.run, *name_list(args.compare))]
    for r in runs:
        r.load_config()  # a run directory with a readable config, else an error naming the file
    out = build_report([r.root for r in runs], args.out)
    print(f"Report of {runs[0].root}: {out / 'report.md'}")
    print(format_headline(headline(runs[0].root)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
