"""What can be wrong with a MIMIC-IV source file, found from evidence, told with a fix.

Every message names the file and the fix and never quotes a value of the file
(identifiers and dates are private). Corruption is only reported when the file itself
shows it (gzip magic bytes, a full decompression with CRC check), never because a word in
the path or an unrelated error looks like it.
"""

from __future__ import annotations

import errno
import gzip
import re
import zlib
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
REDOWNLOAD = "re-download it from PhysioNet and check it against SHA256SUMS.txt"


def clean_error(err: Exception) -> str:
    """An error message without the source values it may quote (CSV lines, cast inputs)."""
    msg = re.sub(r"(?s)Original Line:.*?(\n\s*\n|$)", "Original Line: <withheld>\n", str(err))
    msg = re.sub(r"(?i)(Could not convert string|Conversion Error:[^\n]*?)'[^'\n]*'", r"\1'<withheld>'", msg)
    msg = re.sub(r"(?i)(value|string) '[^'\n]*'", r"\1 '<withheld>'", msg)
    return msg.strip()


def check_file_start(path: Path) -> bool:
    """Raise for a compression/name mismatch or a damaged gzip start; True when the
    file starts with a UTF-8 byte-order mark (the caller strips it from the header)."""
    with open(path, "rb") as f:
        head = f.read(4)
    gz_name = path.name.endswith(".gz")
    if gz_name and not head.startswith(GZIP_MAGIC):
        raise ValueError(f"{path} is named .csv.gz but is not gzip-compressed (it is plain text or another "
                         f"format). Fix: rename it to {path.name[:-3]} (or gzip it), or {REDOWNLOAD}.")
    if not gz_name and head.startswith(GZIP_MAGIC):
        raise ValueError(f"{path} is gzip-compressed but named {path.name}. Fix: rename it to {path.name}.gz.")
    if gz_name:
        try:
            with gzip.open(path, "rb") as f:
                return f.read(3) == BOM
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path} is a damaged gzip file ({e}). Fix: {REDOWNLOAD}.") from None
    return head.startswith(BOM)


def gzip_damage(path: Path) -> str | None:
    """Decompress the whole file (CRC and length checked): the error, or None if intact."""
    if not path.name.endswith(".gz"):
        return None
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    except (OSError, EOFError, zlib.error) as e:
        return str(e) or type(e).__name__
    return None


def disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    text = str(err).lower()
    return "no space left on device" in text or "disk quota exceeded" in text or "file too large" in text


def disk_full_message(where: str) -> str:
    return (f"the disk is full (or a size quota was hit) while writing {where}. Fix: free space there, or "
            f"point --out / data.duckdb_temp_dir / data.source_cache_dir at a disk with room (full MIMIC-IV "
            f"needs about 10 GB of typed source copies plus DuckDB spill; see docs/data.md)")


def encoding_problem(err: Exception) -> bool:
    text = str(err).lower()
    return "invalid unicode" in text or "utf-8" in text or "utf8" in text or "byte sequence" in text


def explain(err: Exception, path: Path, name: str) -> str:
    """A message for a DuckDB error raised while reading ``path`` (table ``name``)."""
    if disk_full(err):
        return disk_full_message(f"the typed copy of {name!r}")
    damage = gzip_damage(path)
    if damage:
        return f"{path} is a damaged gzip file ({damage}). Fix: {REDOWNLOAD}."
    if encoding_problem(err):
        return (f"{path} is not valid UTF-8 (e.g. a Latin-1 / Windows-1252 byte; MIMIC-IV files are UTF-8). "
                f"Fix: {REDOWNLOAD}, or convert it: `iconv -f latin1 -t utf-8`.")
    return (f"cannot read MIMIC-IV table {name!r} from {path}: {clean_error(err)}. Fix: check that it is the "
            f"PhysioNet MIMIC-IV {name} file (comma-separated, quoted with \", header line first).")


def malformed_message(table: str, column: str, kind: str, bad: int, rows: int, limit: float,
                      path: Path, sample_row: int | None) -> str:
    where = f"first at data row {sample_row} (line {sample_row + 1}) of {path}" if sample_row else f"in {path}"
    return (f"MIMIC-IV table {table!r}, column {column!r}: {bad} of {rows} rows ({100.0 * bad / max(rows, 1):.2f} %) "
            f"are not valid {kind} values, {where}; the limit is data.max_malformed_fraction = "
            f"{100.0 * limit:g} %. Fix: repair or re-download the file, or raise data.max_malformed_fraction "
            f"to keep going (malformed values become NULL, rows with a malformed id or time are dropped; "
            f"counted in manifest.json)")
