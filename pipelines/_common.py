"""Shared argument handling for the stage entry points (no pipeline logic here).

Every stage module in ``pipelines/`` defines::

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int

and ends with ``if __name__ == "__main__": raise SystemExit(main_for(add_arguments, run))``
so it runs as ``python -m pipelines.<stage>`` and ``accelerate launch -m pipelines.<stage>``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from clin_jepa.config import RunConfig, load_config, load_run_config


def add_config_arguments(p: argparse.ArgumentParser, run_required: bool = False) -> None:
    """--config / --set / --run, shared by every stage that reads a RunConfig."""
    p.add_argument("--config", default=None, help="YAML config (path, or a name under configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set optim.lr_predictor=1e-4 (repeatable)")
    p.add_argument("--run", default=None, required=run_required, help="run directory")


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Config for a stage: an existing run's saved config, else --config; --set on top."""
    run = getattr(args, "run", None)
    if run and (Path(run) / "config.yaml").exists() and not getattr(args, "config", None):
        cfg = load_run_config(run)
        if args.overrides:
            from clin_jepa.config import from_dict

            tree = cfg.to_dict()
            from clin_jepa.config import _set_dotted

            for o in args.overrides:
                _set_dotted(tree, o)
            cfg = from_dict(RunConfig, tree).validate()
        return cfg
    return load_config(getattr(args, "config", None), args.overrides, run_dir=run)


def existing_run_config(args: argparse.Namespace, how_to_create: str) -> RunConfig:
    """Config of an existing run directory (--run), resolved with --config/--set and saved back.

    ``how_to_create`` completes the error when --run is not a run directory yet.
    """
    run_dir = Path(args.run)
    if not (run_dir / "config.yaml").exists():
        raise FileNotFoundError(f"{run_dir}/config.yaml not found: {run_dir} is not a run directory "
                                f"({how_to_create})")
    cfg = resolve_config(args)
    cfg.run_dir = str(run_dir)
    cfg.save(run_dir / "config.yaml")
    return cfg


def main_for(add_arguments: Callable, run: Callable, argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(run(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def name_list(values: list[str] | str | None) -> list[str]:
    """A list option's values, given space- or comma-separated (`--only drift,tasks` or
    `--only drift tasks`): every list option of the CLI takes both."""
    if not values:
        return []
    items = [values] if isinstance(values, str) else values
    return [n.strip() for v in items for n in str(v).split(",") if n.strip()]
