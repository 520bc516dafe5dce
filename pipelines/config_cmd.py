"""`clin-jepa config show [--run RUN] [--config X] [--set K=V] [KEY ...]`: every config key with
its type, value, default and documentation.

The documentation is the comment after each field in ``clin_jepa/config_sections.py`` (the
single owner of defaults) and ``clin_jepa/config.py`` (RunConfig), read from their source;
values are those of the resolved config: the run's saved ``config.yaml`` with ``--run``, else
``--config`` (default: the built-in defaults), with ``--set`` on top. Keys whose value differs
from the default are marked ``*``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import typing

from clin_jepa.pipelines._common import add_config_arguments, main_for, resolve_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show"], help="show: list the keys")
    p.add_argument("keys", nargs="*", metavar="KEY",
                   help="only keys starting with these prefixes, e.g. eval or optim.lr (default: all)")
    add_config_arguments(p)


def field_docs() -> dict[tuple[str, str], str]:
    """(dataclass name, field) -> the comment on the field's line (or the line above) in the
    config's sections (config_sections.py) and RunConfig (config.py)."""
    from clin_jepa import config, config_sections

    docs = {}
    for module in (config_sections, config):
        src = inspect.getsource(module)
        lines = src.splitlines()
        for node in ast.parse(src).body:
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    line = lines[item.lineno - 1]
                    doc = line.split("  # ", 1)[1].strip() if "  # " in line else ""
                    above = lines[item.lineno - 2].strip()
                    if not doc and above.startswith("#"):
                        doc = above.lstrip("# ").strip()
                    docs[(node.name, item.target.id)] = doc
    return docs


def type_name(t) -> str:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list[{type_name(args[0])}]"
        return f"list of {len(args)} {type_name(args[0])}"
    if origin in (typing.Union,) or type(t).__name__ == "UnionType":
        return " | ".join(type_name(a) for a in args)
    return getattr(t, "__name__", str(t))


def _show(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return '""' if v == "" else str(v)


def rows(cfg) -> list[tuple[str, str, str, str, str]]:
    """(key, type, value, default, doc) for every leaf key of the config, sections in order."""
    from clin_jepa.config import RunConfig

    docs = field_docs()
    default = RunConfig()
    out = []
    for section in dataclasses.fields(RunConfig):
        obj, ref = getattr(cfg, section.name), getattr(default, section.name)
        if not dataclasses.is_dataclass(obj):
            out.append((section.name, "str", _show(obj), _show(ref), docs.get(("RunConfig", section.name), "")))
            continue
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            out.append((f"{section.name}.{f.name}", type_name(hints[f.name]), _show(getattr(obj, f.name)),
                        _show(getattr(ref, f.name)), docs.get((type(obj).__name__, f.name), "")))
    return out


def format_rows(table: list[tuple[str, str, str, str, str]]) -> str:
    """Aligned columns key, type, value, doc; a value differing from its default is marked
    ``*`` and its default added to the doc."""
    shown = [(k, t, v + (" *" if v != d else ""), (f"[default {d}] " if v != d else "") + doc)
             for k, t, v, d, doc in table]
    w = [max(len(r[i]) for r in shown + [("key", "type", "value", "")]) for i in range(3)]
    lines = [f"{'key':<{w[0]}}  {'type':<{w[1]}}  {'value':<{w[2]}}  doc"]
    lines += [f"{k:<{w[0]}}  {t:<{w[1]}}  {v:<{w[2]}}  {doc}".rstrip() for k, t, v, doc in shown]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.run and not (Path(args.run) / "config.yaml").exists():
        raise FileNotFoundError(f"{args.run}/config.yaml not found: {args.run} is not a run directory "
                                "(omit --run to see the defaults)")
    cfg = resolve_config(args)
    table = rows(cfg)
    if args.keys:
        table = [r for r in table if any(r[0].startswith(k) for k in args.keys)]
        if not table:
            raise ValueError(f"no config key starts with {' or '.join(args.keys)}; "
                             "run `clin-jepa config show` for the full list")
    print(format_rows(table))
    print("\n* differs from the default. Change a key with --set KEY=VALUE on any command, or in a YAML "
          "file passed with --config (configs/default.yaml shows the layout).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_for(add_arguments, run))
