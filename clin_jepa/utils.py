"""Small shared helpers: packaged resources, atomic writes, seeding, logging, progress bars."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import re
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


SPARSE_SECONDS = 30.0  # progress lines at most this often when stderr is not a terminal


class _TqdmHandler(logging.Handler):
    """Log records through ``tqdm.write``: a live progress bar is cleared, the line printed
    and the bar redrawn, so log lines never glue onto a bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def progress_mode() -> str:
    """CLIN_JEPA_PROGRESS: 0 -> "off"; 1 -> "live" bars; unset/auto -> "live" on a terminal,
    else "sparse" (one plain line per update, at most every SPARSE_SECONDS)."""
    value = os.environ.get("CLIN_JEPA_PROGRESS", "auto").strip().lower()
    if value in ("0", "off", "false", "no"):
        return "off"
    if value in ("1", "on", "true", "yes"):
        return "live"
    return "live" if sys.stderr.isatty() else "sparse"


def quiet_libraries() -> None:
    """Make transformers / huggingface_hub follow the project's progress setting: their bars
    ("Loading weights", "Writing model shards") only with live bars, their warnings only
    when progress is not off. Env vars cover a later import; the calls an earlier one."""
    mode = progress_mode()
    if mode != "live":
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if mode == "off":
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        if mode != "live":
            hf_logging.disable_progress_bar()
        if mode == "off":
            hf_logging.set_verbosity_error()


def get_logger(name: str) -> logging.Logger:
    """A module logger that prints to stderr through tqdm (configured once, idempotent)."""
    root = logging.getLogger("clin_jepa")
    if not root.handlers:
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter(_LOG_FORMAT, "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("CLIN_JEPA_LOGLEVEL", "INFO"))
        root.propagate = False
        quiet_libraries()
    return root.getChild(name.removeprefix("clin_jepa."))


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into whole lines (sparse mode)."""

    def __init__(self, stream) -> None:
        self.stream, self.last = stream, ""

    def write(self, s: str) -> int:
        text = s.replace("\r", "").strip()
        # "desc: 100%|####| 3/3": closing a bar redraws its final count. The bar graphic is left out of
        # the comparison: its width depends on the rate text beside it, which changes between redraws
        count = re.sub(r"\|[^|]*\|", "||", text.split(" [")[0])
        if text and count != self.last:
            self.stream.write(text + "\n")
            self.last = count
        return len(s)

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable=None, **kwargs):
    """tqdm progress bar on stderr, following :func:`progress_mode` (CLIN_JEPA_PROGRESS)."""
    from tqdm.auto import tqdm

    mode = progress_mode()
    kwargs.setdefault("disable", mode == "off")
    if mode == "sparse":
        kwargs.setdefault("file", _Lines(sys.stderr))
        kwargs.setdefault("mininterval", SPARSE_SECONDS)
        kwargs.setdefault("ncols", 100)
    else:
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


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
