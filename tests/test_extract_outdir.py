"""`clin-jepa extract --out DIR` never loses data: refusals checked before the run, an
atomic replace, and a kill at any step leaves the old or the new extraction complete
(real extraction in a child process killed with os._exit at each step of the swap)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_extract_helpers import standard_mini

from clin_jepa.config import DataConfig
from clin_jepa.data import outdir
from clin_jepa.data.extract import run_extraction
from clin_jepa.utils import REPO_ROOT

CFG = DataConfig(duckdb_memory_limit="1GB", duckdb_threads=2)
OLD_HOURS, NEW_HOURS = 168, 24  # data.max_stay_hours of the old and of the new extraction

CHILD = """
import os, sys
from clin_jepa.config import DataConfig
from clin_jepa.data import outdir
from clin_jepa.data.extract import run_extraction
mimic, out, step, exchange = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
outdir._checkpoint = lambda s: os._exit(9) if s == step else None
publish = outdir.publish
outdir.publish = lambda build, final: publish(build, final, exchange=exchange)
run_extraction(mimic, out, DataConfig(duckdb_memory_limit="1GB", duckdb_threads=2, max_stay_hours=NEW_HOURS))
""".replace("NEW_HOURS", str(NEW_HOURS))


@pytest.fixture(scope="module")
def mimic(tmp_path_factory):
    return standard_mini().write(tmp_path_factory.mktemp("outdir") / "mimic")


@pytest.fixture(scope="module")
def old_extraction(mimic, tmp_path_factory):
    out = tmp_path_factory.mktemp("old") / "data"
    run_extraction(mimic, out, DataConfig(duckdb_memory_limit="1GB", duckdb_threads=2, max_stay_hours=OLD_HOURS))
    return out


def _hours(out: Path) -> int:
    return json.loads((out / "manifest.json").read_text())["config"]["max_stay_hours"]


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_refuses_input_inside_output_and_output_inside_input(mimic, tmp_path):
    for out in (mimic, mimic / "data", mimic.parent):
        with pytest.raises(ValueError, match="input") as e:
            run_extraction(mimic, out, CFG)
        assert "--out" in str(e.value)
    assert (mimic / "icu" / "chartevents.csv.gz").exists() and not (mimic / "data").exists()


def test_refuses_a_foreign_non_empty_directory_and_keeps_it(mimic, tmp_path):
    out = tmp_path / "work"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not a previous extraction"):
        run_extraction(mimic, out, CFG)
    assert (out / "thesis.tex").read_text() == "precious"
    (out / "manifest.json").write_text("{}")  # a manifest that is not ours is not enough
    with pytest.raises(ValueError, match="not a previous extraction"):
        run_extraction(mimic, out, CFG)


def test_output_that_is_a_file_or_unwritable_fails_before_the_run(mimic, tmp_path):
    f = tmp_path / "data"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        run_extraction(mimic, f, CFG)
    with pytest.raises(ValueError, match="cannot write next to output"):  # a parent is a file
        run_extraction(mimic, f / "data", CFG)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that ignores directory permissions (root)")
        with pytest.raises(ValueError, match="cannot write next to output"):
            run_extraction(mimic, ro / "data", CFG)
        assert not list(tmp_path.glob("**/*.parquet"))  # refused before reading any source
    finally:
        ro.chmod(0o700)


def test_replaces_a_previous_extraction_and_an_empty_directory(mimic, old_extraction, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(old_extraction, out)
    run_extraction(mimic, out, DataConfig(duckdb_memory_limit="1GB", duckdb_threads=2, max_stay_hours=NEW_HOURS))
    assert _hours(out) == NEW_HOURS and _hidden(tmp_path) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    run_extraction(mimic, empty, CFG)
    assert outdir.is_extraction(empty)


@pytest.mark.parametrize("step,exchange", [
    ("building", True), ("built", True), ("swapped", True), ("published", True),
    ("old_moved", False), ("swapped", False)])
def test_a_kill_at_any_step_leaves_a_complete_extraction(mimic, old_extraction, tmp_path, step, exchange):
    out = tmp_path / "data"
    shutil.copytree(old_extraction, out)
    env = dict(os.environ, PYTHONPATH=f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    rc = subprocess.run([sys.executable, "-c", CHILD, str(mimic), str(out), step, "1" if exchange else "0"],
                        env=env, capture_output=True, text=True, timeout=300)
    assert rc.returncode == 9, rc.stderr[-2000:]
    if step != "published":
        assert _hidden(tmp_path), "the killed run left its build/scratch behind (what recover must handle)"
    if step != "old_moved":  # the one window of the two-rename fallback where <out> is missing
        assert outdir.is_extraction(out)
        assert _hours(out) == (OLD_HOURS if step in ("building", "built") else NEW_HOURS)
    outdir.recover(out, tmp_path)  # what the next run does first
    assert outdir.is_extraction(out) and _hidden(tmp_path) == []
    assert _hours(out) == (OLD_HOURS if step in ("building", "built") else NEW_HOURS)
    if step == "building":  # and the next real run completes and cleans up
        run_extraction(mimic, out, CFG)
        assert outdir.is_extraction(out) and _hidden(tmp_path) == []
