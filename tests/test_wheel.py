"""A built wheel installed (not editable) in a fresh virtual environment runs from any
directory: `clin-jepa --help` and a tiny `clin-jepa demo` (sql/ and configs/ ship inside the
package). The environment sees the system site-packages for the dependencies (torch etc.:
nothing is downloaded); the wheel's own packages shadow any other installation of them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from clin_jepa.utils import REPO_ROOT

SOURCES = ("clin_jepa", "pipelines", "evaluation", "sql", "configs", "pyproject.toml", "README.md")
TINY = ["synth.stays=40", "sft.steps=2", "tokenizer.vocab_size=300", "train.steps_scale=0.02", "optim.batch_size=4",
        "train.val_stays=4", "data.window_hours=24", "eval.contexts=[6]", "eval.horizon=6",
        "eval.displacement_window=12", "eval.bootstrap=10", "eval.probe_epochs=1", "eval.seq_epochs=1",
        "eval.max_eep_hours=4", "eval.min_positives=1", "eval.baselines=[logreg]", "eval.probe_kinds=[linear]"]


def _run(cmd, cwd, env=None, timeout=900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo_from_another_directory(tmp_path):
    # build from a copy of the sources, so the checkout gets no build/ or egg-info
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        (shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copy2)(REPO_ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".", "-w",
          tmp_path / "dist"], cwd=src)
    wheel = next((tmp_path / "dist").glob("clin_jepa-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"clin_jepa/sql/manifest.txt", "clin_jepa/configs/default.yaml",
            "clin_jepa/configs/curriculum/full.yaml", "clin_jepa/run.py"} <= names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", "--no-deps", wheel], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"CLIN_JEPA_PROGRESS": "0", "OMP_NUM_THREADS": "1", "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}"}
    where = _run([py, "-c", "import clin_jepa, clin_jepa.utils as u; print(clin_jepa.__file__); print(u.SQL_DIR)"],
                 cwd=elsewhere, env=env).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where)  # the installed copy, not the checkout
    cli = venv / "bin" / "clin-jepa"
    assert "demo" in _run([cli, "--help"], cwd=elsewhere, env=env).stdout
    out = _run([cli, "demo", "--out", "demo", *[a for s in TINY for a in ("--set", s)]], cwd=elsewhere, env=env)
    assert "Clin-JEPA demo finished" in out.stdout
    assert (elsewhere / "demo" / "report" / "report.md").is_file()
