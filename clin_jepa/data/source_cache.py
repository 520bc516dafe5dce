"""Typed source copies kept between runs (a rerun on full MIMIC-IV skips the csv parse).

Each CSV source table is parsed once into a parquet file holding only the columns the SQL
reads, already typed, and (for chartevents, 313 M rows in MIMIC-IV v2.2) only the rows of
registry itemids (clin_jepa.data.features). The file is named

    <cache dir>/<table>.<hash of the source path>.<key>.parquet

where ``key`` hashes the source file's fingerprint (size, mtime, sha256 of its first MiB),
the typed query (columns, types, itemid filter) and CACHE_VERSION: a touched or replaced
source, a registry change or a code change gives a new key. Writing a new copy removes the
older copies of the same source path. The copies hold identifiers and dates, like the
source: the directory is data.source_cache_dir, by default ``$XDG_CACHE_HOME/clin-jepa/sources``
(``~/.cache/clin-jepa/sources``), never inside the MIMIC-IV directory. Delete it to clear.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from clin_jepa.data import features

CACHE_VERSION = 1  # bump when the copy's layout changes
FINGERPRINT_HEAD = 1 << 20  # bytes hashed from the start of each source file
FILTERED_TABLES = {"chartevents"}  # tables copied with registry itemids only


def default_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "clin-jepa" / "sources"


def cache_dir(configured: str, mimic_dir: Path) -> Path:
    """The cache directory; refuses one inside the MIMIC-IV input."""
    d = Path(configured).expanduser() if configured else default_dir()
    m = Path(mimic_dir).resolve()
    if d.resolve() == m or m in d.resolve().parents:
        raise ValueError(f"data.source_cache_dir {d} is inside the MIMIC-IV input {mimic_dir}; "
                         f"point it elsewhere (default {default_dir()})")
    return d


def fingerprint(path: Path) -> str:
    """size + mtime + sha256 of the first MiB: cheap, and changes when the file does."""
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}:".encode())
    with open(path, "rb") as f:
        h.update(f.read(FINGERPRINT_HEAD))
    return h.hexdigest()


def registry_itemids() -> list[int]:
    """Every itemid the registry names (observations, weights, interventions)."""
    ids = {int(r["itemid"]) for r in features.item_table()}
    ids |= {int(v.itemid) for v in features.VASOPRESSORS}
    for value in vars(features).values():  # every itemid dict of the registry (WEIGHT_ITEMIDS, ...)
        if isinstance(value, dict) and value and all(isinstance(k, int) and k > 1000 for k in value):
            ids |= set(value)
    return sorted(ids)


def entry(directory: Path, table: str, source: Path, query: str) -> Path:
    where = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    key = hashlib.sha256(f"{CACHE_VERSION}\n{fingerprint(source)}\n{query}".encode()).hexdigest()[:20]
    return directory / f"{table}.{where}.{key}.parquet"


def prune(keep: Path) -> None:
    """Remove older copies of the same table and source path, and stale partial writes."""
    table, where = keep.name.split(".")[:2]
    for p in keep.parent.glob(f"{table}.{where}.*"):
        if p != keep and not _in_progress(p):
            p.unlink(missing_ok=True)


def clean_partials(directory: Path) -> None:
    """Remove copies a killed run left half written (``*.part.<pid>`` of dead processes)."""
    if directory.is_dir():
        for p in directory.glob("*.part.*"):
            if not _in_progress(p):
                p.unlink(missing_ok=True)


def partial(final: Path) -> Path:
    return final.with_name(f"{final.name}.part.{os.getpid()}")


def _in_progress(p: Path) -> bool:
    """A ``.part.<pid>`` file of a process that is still running."""
    if ".part." not in p.name:
        return False
    pid = p.name.rsplit(".", 1)[-1]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
