"""Small shared helpers: packaged resources, atomic writes, seeding, logging, progress bars."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout (or site-packages when installed)


def resource_dir(name: str) -> Path:
    """``sql`` or ``configs``: shipped inside the package by a wheel (pyproject maps the
    top-level folders to clin_jepa/sql, clin_jepa/configs), else the repository's own
    folder (a checkout or an editable install)."""
    package = Path(__file__).resolve().parent
    for cand in (package / name, package.parent / name):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"{name}/ not found in {package} or {package.parent}: the clin-jepa installation is "
                            f"incomplete; reinstall it (pip install clin-jepa, or pip install -e . in a checkout)")


SQL_DIR = resource_dir("sql")
CONFIG_DIR = resource_dir("configs")

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    """A module logger that prints to stderr once (idempotent)."""
    root = logging.getLogger("clin_jepa")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_LOG_FORMAT, "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("CLIN_JEPA_LOGLEVEL", "INFO"))
        root.propagate = False
    return root.getChild(name.removeprefix("clin_jepa."))


def progress(iterable=None, **kwargs):
    """tqdm progress bar on stderr; silenced with CLIN_JEPA_PROGRESS=0."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", os.environ.get("CLIN_JEPA_PROGRESS", "1") == "0")
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, **kwargs)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto ``final``.

    Works for files and directories. On any exception the temporary is removed
    and ``final`` is left untouched, so a failure never leaves a half-written
    output that looks complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    os.unlink(tmp_name)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (sorted keys, 2-space indent)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_parquet(df, path: str | os.PathLike) -> None:
    """Write a polars or pandas DataFrame to parquet atomically."""
    with atomic_path(path) as tmp:
        if hasattr(df, "write_parquet"):
            df.write_parquet(tmp)
        else:
            df.to_parquet(tmp, index=False)
