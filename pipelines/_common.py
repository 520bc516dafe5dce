"""Shared argument handling for the stage entry points (no pipeline logic here).

Every stage module in ``pipelines/`` defines::

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int

and ends with ``if __name__ == "__main__": raise SystemExit(main_for(add_arguments, run))``
so it runs as ``python -m clin_jepa.pipelines.<stage>`` and ``accelerate launch -m clin_jepa.pipelines.<stage>``.

A run's settings are written once, when the run is created (clin_jepa.run.RunDir);
``--set``/``--config`` on an existing run that would change them is refused unless
``--reconfigure`` says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from clin_jepa.config import RunConfig, load_config
from clin_jepa.run import RunDir


def add_config_arguments(p: argparse.ArgumentParser, run_required: bool = False) -> None:
    """--config / --set / --run / --reconfigure, shared by every stage that reads a RunConfig."""
    p.add_argument("--config", default=None, help="YAML config (path, or a name under configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set optim.lr_predictor=1e-4 (repeatable)")
    p.add_argument("--run", default=None, required=run_required, help="run directory")
    p.add_argument("--reconfigure", action="store_true",
                   help="change the settings of an existing run (validated first; recorded with the stages it "
                        "makes stale in RUN/config_changes.json)")


def changed_settings_error(run: RunDir, diff: dict[str, tuple], how: str) -> ValueError:
    keys = "; ".join(f"{k}: run {a!r}, given {b!r}" for k, (a, b) in diff.items())
    return ValueError(f"{run.root} already holds a run with other settings ({keys}); a run keeps the settings "
                      f"it was made with. Use a new run directory, or {how}")


def open_run(args: argparse.Namespace, create: bool = True, how_to_create: str = "",
             check: Callable[[RunDir, RunConfig], None] | None = None) -> tuple[RunDir, RunConfig]:
    """The run named by --run and its config: created from --config/--set when new (validated
    before anything is written); an existing run's settings change only with --reconfigure,
    after ``check(run, new_cfg)`` (a stage's own refusal, e.g. a resume) has passed."""
    run = RunDir(args.run)
    config, overrides = getattr(args, "config", None), list(getattr(args, "overrides", None) or [])
    if not run.exists():
        if not create:
            raise FileNotFoundError(f"{run.config_file} not found: {run.root} is not a run directory "
                                    f"({how_to_create})")
        return run, run.create(run.candidate(config, overrides))
    if not (config or overrides):
        return run, run.load_config()
    cfg = run.candidate(config, overrides)
    diff = run.differences(cfg)
    if diff and not getattr(args, "reconfigure", False):
        raise changed_settings_error(run, diff, "pass --reconfigure to change this run's settings")
    if diff:
        if check is not None:
            check(run, cfg)
        run.change_config(cfg)
    return run, run.load_config()


def resolve_config(args: argparse.Namespace, sections: tuple[str, ...] | None = None) -> RunConfig:
    """Config for a stage that does not own a run (synth, extract without --run): an existing
    run's settings (changed only with --reconfigure), else --config/--set, validated in the
    ``sections`` the stage reads (all when None; clin_jepa.config.RunConfig.validate)."""
    if getattr(args, "run", None) and RunDir(args.run).exists():
        return open_run(args)[1]
    return load_config(getattr(args, "config", None), args.overrides, sections=sections)


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
