"""The extraction's output directory: checks before the run, an atomic replace after it.

``check_output`` runs BEFORE any work: it refuses an output that is a file, unwritable,
equal to / inside / holding the MIMIC-IV input, or a non-empty directory that is not a
previous extraction (one holding ``manifest.json`` with a ``format_version``).

``publish`` swaps a finished build into place. The new tree is complete (manifest
written last) before the swap starts, and the old one is never deleted before the new
one is in place:

1. Linux ``renameat2(RENAME_EXCHANGE)`` swaps ``<out>`` and the build in one system call;
   the old tree is then at the build's path and removed.
2. Elsewhere: ``<out>`` -> ``.<name>.old.<pid>``, build -> ``<out>``, remove the old.
   A kill between the two renames leaves both complete trees as hidden siblings;
   ``recover`` (run at the start of the next extraction) puts the newest complete one
   back at ``<out>``.

Leftovers of killed runs (``.<name>.new.<pid>``, ``.<name>.old.<pid>``, scratch dirs
``.<name>.scratch.<pid>`` holding DuckDB spill files, which hold identifiers and
dates) are removed by the next run, unless their process is still alive.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from pathlib import Path

MANIFEST_NAME = "manifest.json"
KINDS = ("new", "old", "scratch")  # hidden siblings a run creates next to <out>


def _checkpoint(step: str) -> None:
    """No-op marker between the steps of ``publish`` (tests kill a child process here)."""


def is_extraction(path: Path) -> bool:
    """A directory holding a complete clin-jepa extraction (its manifest, written last)."""
    try:
        return "format_version" in json.loads((Path(path) / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return False


def _inside(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def check_output(out: Path, mimic_dir: Path) -> None:
    """Refuse an output that would destroy data or fail only after the whole run."""
    out_r, mimic_r = Path(out).resolve(), Path(mimic_dir).resolve()
    if _inside(out_r, mimic_r):
        raise ValueError(f"output {out} is inside (or equal to) the MIMIC-IV input {mimic_dir}; "
                         f"pass an --out directory outside the input")
    if _inside(mimic_r, out_r):
        raise ValueError(f"the MIMIC-IV input {mimic_dir} is inside the output {out}; replacing the output "
                         f"would delete it. Pass an --out directory that does not contain the input")
    if out_r.exists() and not out_r.is_dir():
        raise ValueError(f"output {out} is a file; pass a directory path (it is created)")
    if out_r.is_dir() and any(out_r.iterdir()) and not is_extraction(out_r):
        raise ValueError(f"output {out} is not empty and is not a previous extraction (no {MANIFEST_NAME}); "
                         f"it would be replaced. Pass a new or empty directory, or an earlier --out")
    parent = out_r.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{out_r.name}.probe."):
            pass
    except OSError as e:
        raise ValueError(f"cannot write next to output {out} ({e.strerror or e}); pass an --out in a "
                         f"writable directory, or fix its permissions") from None


def sibling(out: Path, kind: str) -> Path:
    """``<parent>/.<name>.<kind>.<pid>``: a hidden sibling owned by this process."""
    out = Path(out)
    return out.parent / f".{out.name}.{kind}.{os.getpid()}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(out: Path, kind: str, where: Path | None = None) -> list[Path]:
    """Hidden siblings of ``kind`` left by processes that are no longer running."""
    where = where or out.parent
    found = []
    for p in where.glob(f".{out.name}.{kind}.*"):
        pid = p.name.rsplit(".", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            found.append(p)
    return found


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def recover(out: Path, scratch_root: Path | None = None) -> list[str]:
    """Undo a killed run: restore a complete tree to ``out`` when it is missing, then
    remove every leftover. Returns what was done (for the log)."""
    out = Path(out)
    done = []
    if not out.exists():
        complete = [p for k in ("new", "old") for p in _leftovers(out, k) if is_extraction(p)]
        if complete:  # a finished new build wins over the old tree
            best = complete[0]
            os.rename(best, out)
            done.append(f"restored {best.name} to {out.name}")
    for kind in KINDS:
        for p in _leftovers(out, kind) + (_leftovers(out, kind, scratch_root) if scratch_root else []):
            _remove(p)
            done.append(f"removed {p.name}")
    return done


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False when unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def publish(build: Path, out: Path, exchange: bool = True) -> None:
    """Put the complete tree ``build`` at ``out``; the previous ``out`` (if any) is
    removed only after the new one is in place."""
    build, out = Path(build), Path(out)
    _checkpoint("built")
    if not out.exists():
        os.rename(build, out)
        _checkpoint("published")
        return
    if exchange and _exchange(build, out):
        _checkpoint("swapped")  # the old tree is now at `build`
        old = build
    else:
        old = sibling(out, "old")
        os.rename(out, old)
        _checkpoint("old_moved")  # out missing; recover() restores it
        os.rename(build, out)
        _checkpoint("swapped")
    shutil.rmtree(old, ignore_errors=True)
    _checkpoint("published")
