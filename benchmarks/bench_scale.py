"""Does time grow linearly and memory stay flat with the number of stays?

For each N: `clin-jepa synth --stays N`, then `clin-jepa extract` twice into the same
output with the same source cache directory: first run (csv.gz parsed into typed copies)
and cached rerun (typed copies reused). Every command runs in its own child under
`/usr/bin/time -v` (wall, peak RSS of the child), side by side in one run.

    python benchmarks/bench_scale.py --stays 5000 20000 80000 --memory 1GB --workdir /tmp/bench_scale
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(wall s, peak RSS GiB, phases) of one child command; phases: the extraction's own
    log of the source stage and the texts step."""
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    src = re.search(r"source tables ready in ([\d.]+) s", out.stderr)
    txt = re.search(r"texts written in ([\d.]+) s", out.stderr)
    phases = f"sources {src.group(1)} s, texts {txt.group(1)} s" if src and txt else ""
    return wall, kb / 1024**2, phases


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stays", type=int, nargs="+", default=[5000, 20000, 80000])
    p.add_argument("--memory", default="1GB", help="data.duckdb_memory_limit")
    p.add_argument("--threads", type=int, default=0, help="data.duckdb_threads (0: all cores)")
    p.add_argument("--workdir", default="/tmp/bench_scale")
    p.add_argument("--keep", action="store_true", help="keep the generated data")
    args = p.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CLIN_JEPA_PROGRESS="0", PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    cli = [sys.executable, "-m", "clin_jepa.pipelines.cli"]
    print(f"# {platform.node()} {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, "
          f"duckdb_memory_limit={args.memory}, threads={args.threads or 'all'}")
    print("| stays | chartevents rows | synth wall s / peak GiB | extract first run s / GiB | rows/s "
          "| cached rerun s / GiB | rows/s | stay-hours | phases first / rerun |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.stays:
        mimic, out, cache = work / f"mimic_{n}", work / f"data_{n}", work / f"cache_{n}"
        for d in (mimic, out, cache):
            shutil.rmtree(d, ignore_errors=True)
        s_wall, s_rss, _ = _run([*cli, "synth", "--stays", str(n), "--out", str(mimic)], env)
        sets = ["--set", f"data.duckdb_memory_limit={args.memory}", "--set", f"data.duckdb_threads={args.threads}",
                "--set", f"data.source_cache_dir={cache}"]
        extract = [*cli, "extract", "--mimic", str(mimic), "--out", str(out), *sets]
        e1 = _run(extract, env)
        e2 = _run(extract, env)
        man = json.loads((out / "manifest.json").read_text())
        assert all(r["cache"] in ("hit", "not read") for r in man["sources"].values()), man["sources"]
        total_ce = _chartevents_rows(mimic)
        print(f"| {n:,} | {total_ce:,} | {s_wall:.1f} / {s_rss:.2f} | {e1[0]:.1f} / {e1[1]:.2f} | "
              f"{total_ce / e1[0]:,.0f} | {e2[0]:.1f} / {e2[1]:.2f} | {total_ce / e2[0]:,.0f} | "
              f"{man['rows']['hourly.parquet']:,} | {e1[2]} / {e2[2]} |", flush=True)
        if not args.keep:
            for d in (mimic, out, cache):
                shutil.rmtree(d, ignore_errors=True)


def _chartevents_rows(mimic: Path) -> int:
    import duckdb

    path = mimic / "icu" / "chartevents.csv.gz"
    return duckdb.connect().execute(f"SELECT count(*) FROM read_csv('{path}', all_varchar = true)").fetchall()[0][0]


if __name__ == "__main__":
    main()
