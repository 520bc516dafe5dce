"""Peak RSS of `clin-jepa extract` per SQL step: where in the extraction does memory peak?

Runs the command given after `--`, samples the child's VmRSS every 20 ms and gives each
sample to the step whose log line comes next (the extraction logs each step when it ENDS).
`/usr/bin/time -v` only gives the whole-process maximum; this says which step holds it.

    python benchmarks/extract_rss_by_step.py -- clin-jepa extract --mimic M --out D \\
        --set data.duckdb_memory_limit=1GB --set data.source_cache_dir=C
"""

from __future__ import annotations

import argparse
import re
import subprocess
import threading
import time

INTERVAL_S = 0.02


def _rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    except (OSError, StopIteration):
        return None


def sample(cmd: list[str]) -> tuple[list[tuple[float, int]], list[tuple[float, str]]]:
    """[(time, RSS kB)] every INTERVAL_S and [(time, log line)] of the child's stderr."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, bufsize=1)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.time(), s.rstrip()) for s in proc.stderr))
    reader.start()
    samples = []
    while proc.poll() is None:
        kb = _rss_kb(proc.pid)
        if kb is not None:
            samples.append((time.time(), kb))
        time.sleep(INTERVAL_S)
    reader.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n" + "\n".join(s for _, s in lines[-20:]))
    return samples, lines


def main() -> None:
    p = argparse.ArgumentParser(usage="%(prog)s -- COMMAND ...")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    cmd = [c for c in p.parse_args().cmd if c != "--"]
    samples, lines = sample(cmd)
    ends = [(t, re.sub(r"^\S+ INFO \S+ ", "", s)[:48]) for t, s in lines if " INFO " in s]
    ends.append((samples[-1][0] + 1, "(end)"))
    start = samples[0][0]
    print("| step (its log line) | seconds | peak RSS GiB |\n|---|---|---|")
    for t, name in ends:
        seg = [kb for ts, kb in samples if start <= ts < t]
        if seg:
            print(f"| {name} | {t - start:.1f} | {max(seg) / 1024**2:.3f} |")
        start = t
    print(f"\nsampled maximum {max(kb for _, kb in samples) / 1024**2:.3f} GiB every {INTERVAL_S * 1000:.0f} ms "
          "(a spike shorter than that can be missed: `/usr/bin/time -v` gives the true maximum)")


if __name__ == "__main__":
    main()
