"""Shared fixtures: the real MIMIC-IV demo (skipped when absent) and one small synthetic
MIMIC-IV + its extraction, built once per test session and reused read-only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clin_jepa.utils import REPO_ROOT

os.environ.setdefault("CLIN_JEPA_PROGRESS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEMO_DIR = REPO_ROOT.parent / "shared" / "data" / "mimic-iv-demo"
SYNTH_STAYS = 120


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The real MIMIC-IV Clinical Database Demo v2.2 (without chartevents)."""
    if not (DEMO_DIR / "icu" / "icustays.csv.gz").exists():
        pytest.skip(f"real MIMIC-IV demo not found at {DEMO_DIR} (../shared is absent on this machine)")
    return DEMO_DIR


@pytest.fixture(scope="session")
def synth_mimic_dir(tmp_path_factory) -> Path:
    """A synthetic MIMIC-IV directory (PhysioNet layout), SYNTH_STAYS stays, seed 0. Read-only."""
    from clin_jepa.config import SynthConfig
    from clin_jepa.data.synth import generate

    out = tmp_path_factory.mktemp("synth_mimic")
    generate(out, SynthConfig(stays=SYNTH_STAYS, seed=0))
    return out


@pytest.fixture(scope="session")
def extracted_data_dir(synth_mimic_dir, tmp_path_factory) -> Path:
    """`clin-jepa extract` output for `synth_mimic_dir`. Read-only: copy before modifying."""
    from clin_jepa.config import DataConfig
    from clin_jepa.data.extract import run_extraction

    out = tmp_path_factory.mktemp("data") / "data"
    run_extraction(synth_mimic_dir, out, DataConfig(duckdb_memory_limit="2GB", duckdb_threads=2))
    return out


@pytest.fixture(scope="session")
def meds_export_dir(extracted_data_dir, synth_mimic_dir, tmp_path_factory) -> Path:
    """`clin-jepa export-meds` of `extracted_data_dir` (MEDS dataset). Read-only."""
    from clin_jepa.data.meds_export import export_meds

    out = tmp_path_factory.mktemp("meds") / "meds"
    export_meds(extracted_data_dir, synth_mimic_dir, out, threads=1, memory_limit="1GB")
    return out


@pytest.fixture(scope="session", autouse=True)
def private_source_cache(tmp_path_factory):
    """Typed source copies (data.source_cache_dir default: $XDG_CACHE_HOME/clin-jepa/sources)
    go to a session temp directory, never into the user's ~/.cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg_cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Every test model is tiny: one intra-op torch thread is faster on this 2-core machine and
    robust to a busy CPU (the library does the same for debug flavors: train.cpu_threads,
    sft.cpu_threads, eval.threads). The setting is restored after the session."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
