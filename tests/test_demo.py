"""The README's main job (`clin-jepa demo`), end to end at tiny sizes (the ablation runner: test_ablate.py).

Same code path as the real demo (configs/default.yaml, every stage through its own entry
point); only budgets are shrunk with --set so this runs in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pytest
import torch
from clin_jepa.pipelines.cli import main as cli
from safetensors.torch import load_file

from clin_jepa.training.checkpoint import KILL_ENV
from clin_jepa.utils import REPO_ROOT

# budgets shrunk for CI; everything else is the embedded default
TINY = ["sft.steps=3", "train.steps_scale=0.1", "optim.batch_size=4", "train.val_stays=8", "data.window_hours=36",
        "eval.contexts=[6,12]", "eval.horizon=12", "eval.displacement_window=12", "eval.bootstrap=20",
        "eval.probe_epochs=2", "eval.seq_epochs=1", "eval.max_eep_hours=6", "eval.min_positives=1"]


def _sets(extra=()):
    return [a for s in (*TINY, *extra) for a in ("--set", s)]


REPORT_FILES = ["report.md", "manifest.json", "headline.json", "drift_curves.png", "displacement.png",
                "roc_curves.png", "training_curves.png", "decoding_vitals.png"] + [
    f"{t}.{ext}" for t in ("drift", "displacement", "tasks", "families", "decoding") for ext in ("md", "csv", "tex")]


DEMO_SETS = ["synth.stays=80"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One uninterrupted tiny demo (read-only) and what it printed."""
    import contextlib
    import io

    run = tmp_path_factory.mktemp("demo") / "demo"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli(["demo", "--out", str(run), *_sets(DEMO_SETS)]) == 0
    return run, buf.getvalue()


@pytest.mark.slow
def test_demo_end_to_end_writes_every_report_artefact(demo_run, capsys):
    run, out = demo_run
    assert "Clin-JEPA demo finished" in out and str(run / "report" / "report.md") in out
    assert "Latent rollout drift" in out and "Mean AUROC" in out and "Clin-JEPA probe" in out
    assert "{" not in out  # a formatted headline, no JSON dump
    for name in REPORT_FILES:
        p = run / "report" / name
        assert p.is_file() and p.stat().st_size > 0, f"missing report artefact {name}"
    for name in ("drift", "displacement", "tasks", "decoding"):
        json.loads((run / "eval" / f"{name}.json").read_text())
    summary = json.loads((run / "pretrain_summary.json").read_text())
    assert summary["finished"] and summary["phases"] == ["warmup", "joint", "align", "sync", "finalize"]
    assert summary["sync_gaps"]["sync"] < 1e-5
    # the stages ran on the synthetic MIMIC-IV the demo wrote, in PhysioNet's layout
    assert (run / "mimic" / "icu" / "chartevents.csv.gz").is_file()
    assert pl.read_parquet(run / "data" / "cohort.parquet").height > 0

    # a rerun finds every stage complete and rewrites nothing but the report summary lines
    stamp = (run / "final" / "predictor.safetensors").stat().st_mtime_ns
    config = (run / "config.yaml").read_text()
    first = json.loads((run / "demo_timings.json").read_text())
    assert set(first["stages"]) == set(first["seconds"]) and len(first["stages"]) == 7
    for title, t in first["stages"].items():  # one attempt each, the seconds this launch measured
        assert t["attempts"] == 1 and t["wall"] == pytest.approx(first["seconds"][title], abs=0.01) and t["cpu"] > 0
    assert cli(["demo", "--out", str(run), *_sets(DEMO_SETS)]) == 0
    assert (run / "final" / "predictor.safetensors").stat().st_mtime_ns == stamp
    timings = json.loads((run / "demo_timings.json").read_text())
    assert all(v == 0.0 for v in timings["seconds"].values())
    assert timings["stages"] == first["stages"]  # what each stage cost is still known after a resumed launch
    # a rerun with other settings is refused naming them: the finished run never mixes settings
    capsys.readouterr()
    assert cli(["demo", "--out", str(run), *_sets([*DEMO_SETS, "optim.lr_predictor=1e-3"])]) == 2
    assert "optim.lr_predictor: run 0.0005, given 0.001" in capsys.readouterr().err
    assert (run / "config.yaml").read_text() == config
    assert (run / "final" / "predictor.safetensors").stat().st_mtime_ns == stamp


def _results(obj):
    """An eval JSON without its wall times (``seconds``, ``fit_seconds``): they are not results."""
    if isinstance(obj, dict):
        return {k: _results(v) for k, v in obj.items() if not k.endswith("seconds")}
    if isinstance(obj, list):
        return [_results(v) for v in obj]
    return obj


def _eval_results(run) -> dict:
    return {name: _results(json.loads((run / "eval" / f"{name}.json").read_text()))
            for name in ("drift", "displacement", "tasks", "decoding")}


@pytest.mark.slow
def test_demo_killed_during_pretraining_continues_to_the_same_results(demo_run, tmp_path):
    ref, _ = demo_run
    run = tmp_path / "demo"
    # a real crash: SIGKILL right after the joint-phase checkpoint is complete, before it is renamed
    env = dict(os.environ, CLIN_JEPA_PROGRESS="0", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT),
               **{KILL_ENV: "saved:02_joint"})
    proc = subprocess.run([sys.executable, "-m", "clin_jepa.pipelines.cli", "demo", "--out", str(run), *_sets(DEMO_SETS)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert (run / "checkpoints" / "01_warmup").is_dir() and not (run / "final").exists()
    assert cli(["demo", "--out", str(run), *_sets(DEMO_SETS)]) == 0  # continues: no "already holds checkpoints"
    summary = json.loads((run / "pretrain_summary.json").read_text())
    assert summary["finished"] and summary["global_step"] == json.loads(
        (ref / "pretrain_summary.json").read_text())["global_step"]
    a, b = load_file(ref / "final" / "predictor.safetensors"), load_file(run / "final" / "predictor.safetensors")
    assert _same(a, b)  # bit for bit the uninterrupted demo's predictor
    assert _same(_adapter(ref / "final" / "encoder" / "online"), _adapter(run / "final" / "encoder" / "online"))
    assert _eval_results(run) == _eval_results(ref)


def _adapter(path):
    return load_file(str(path / "adapter_model.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
