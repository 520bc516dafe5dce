"""Resuming safely: checkpoints verified by content, damaged ones skipped, another run's state
refused with the differing keys named, numerical failures stopped before anything is saved,
and a kill in the middle of replacing ``last`` resumes from the new state. Real debug
models on the tiny data of test_trainer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from test_trainer import base, final_tensors, make_cfg, trainer  # noqa: F401  (base is a fixture)

from clin_jepa.training.checkpoint import KILL_ENV, latest_checkpoint, read_state, verify_checkpoint
from clin_jepa.training.trainer import NonFiniteError
from clin_jepa.utils import REPO_ROOT


def _flip_byte(f, offset=-9):
    data = bytearray(f.read_bytes())
    data[offset] ^= 0x55
    f.write_bytes(bytes(data))


def test_same_size_corruption_is_detected_by_content_hash(base, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    trainer(base, run, "train.stop_after_steps=1").run()
    last = run / "checkpoints" / "last"
    f = last / "predictor.safetensors"
    size = f.stat().st_size
    _flip_byte(f)
    assert f.stat().st_size == size
    with pytest.raises(ValueError, match=r"predictor\.safetensors is altered \(its sha256"):
        verify_checkpoint(last)
    tr = trainer(base, run)
    with pytest.raises(ValueError, match="sha256"):
        tr.resume(last)


def test_corrupt_older_checkpoint_never_blocks_a_newer_good_one(base, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    trainer(base, run, "train.stop_after_steps=3").run()  # 01_warmup (step 2) + last (step 3)
    ckpts = run / "checkpoints"
    assert read_state(ckpts / "01_warmup").global_step == 2 and read_state(ckpts / "last").global_step == 3
    (ckpts / "01_warmup" / "train_state.json").write_text("{not json")
    assert latest_checkpoint(ckpts) == ckpts / "last"
    tr = trainer(base, run)
    assert tr.resume() and tr.state.global_step == 3
    # and a damaged NEWEST one falls back (with a warning) to the newest that verifies
    shutil.rmtree(ckpts / "01_warmup")
    trainer(base, run, "train.stop_after_steps=3").run()
    _flip_byte(ckpts / "last" / "optimizer.pt")
    assert latest_checkpoint(ckpts) == ckpts / "01_warmup"


def test_other_predictor_width_reaches_the_architecture_message(base, tmp_path):  # noqa: F811
    from clin_jepa.training.checkpoint import load_checkpoint

    run = tmp_path / "run"
    trainer(base, run, "train.stop_after_steps=1").run()
    wide = trainer(base, tmp_path / "other", "predictor.width=32", "predictor.heads=4")
    with pytest.raises(ValueError, match=r"different architecture.*shape differs.*start a new run"):
        load_checkpoint(run / "checkpoints" / "last", wide.encoder, wide.predictor, wide.optimizer)


@pytest.mark.parametrize("change, key", [
    ("optim.batch_size=3", "optim.batch_size"),
    ("train.seed=7", "train.seed"),
    ("predictor.width=32", "predictor.width"),
    ("data.text_mode=snapshot", "data.text_mode"),
])
def test_resume_with_changed_settings_is_refused_naming_the_keys(base, tmp_path, change, key):  # noqa: F811
    run = tmp_path / "run"
    trainer(base, run, "train.stop_after_steps=1").run()
    tr = trainer(base, run, change, "predictor.heads=4" if "width" in change else "optim.lr_predictor=1e-3")
    with pytest.raises(ValueError, match=rf"other settings \(.*{key}: checkpoint .*, now .*start a new run"):
        tr.resume()
    # learning rates may change on resume
    tr = trainer(base, run, "optim.lr_predictor=1e-3")
    assert tr.resume() and tr.state.global_step == 1


def test_resume_on_other_data_or_foreign_checkpoints_is_refused(base, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    trainer(base, run, "train.stop_after_steps=1").run()
    # the same settings on a changed extraction
    data = tmp_path / "data"
    shutil.copytree(base / "data", data)
    (data / "manifest.json").write_text(json.dumps({"rows": {"cohort.parquet": 11}}))
    tr = trainer(base, run, f"data.data_dir={data}")
    with pytest.raises(ValueError, match=r"data \(fingerprint of data.data_dir\): checkpoint"):
        tr.resume()
    # someone else's checkpoints copied into this run (another seed and batch)
    other = tmp_path / "other"
    trainer(base, other, "train.stop_after_steps=1", "train.seed=3", "optim.batch_size=2").run()
    mine = tmp_path / "mine"
    shutil.copytree(other / "checkpoints", mine / "checkpoints")
    with pytest.raises(ValueError, match=r"optim\.batch_size: checkpoint 2, now 4; train\.seed: checkpoint 3, now 0"):
        trainer(base, mine).resume()


@pytest.mark.parametrize("lr", ["1e6", "nan"])
def test_non_finite_training_stops_before_saving(base, tmp_path, lr):  # noqa: F811
    run = tmp_path / "run"
    tr = trainer(base, run, "train.checkpoint_every=1", curriculum="sft_frozen")
    tr.cfg.optim.lr_predictor = float(lr)  # nan cannot pass config validation: set on the live trainer
    for g in tr.optimizer.param_groups:
        if g["name"] == "predictor":
            g["base_lr"] = float(lr)
    with pytest.raises(NonFiniteError, match=r"non-finite .* in phase \w+ at step \d+: training stopped before "
                                             r"saving .*learning rate"):
        tr.run()
    for ckpt in (run / "checkpoints").glob("*"):  # whatever was saved before holds finite weights only
        from safetensors.torch import load_file

        assert all(torch.isfinite(v).all() for v in load_file(ckpt / "predictor.safetensors").values())
    assert json.loads((run / "pretrain_summary.json").read_text())["stopped"] == "non_finite"


_RUN_TRAINER = textwrap.dedent("""
    import sys
    sys.path[:0] = [{tests!r}]
    from pathlib import Path
    from test_trainer import trainer
    tr = trainer(Path({base!r}), Path({run!r}), "train.checkpoint_every=1", *{extra!r})
    tr.resume()
    tr.run()
""")


def _train_in_subprocess(base_dir, run, kill_at: str | None, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLIN_JEPA_PROGRESS="0", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    env.pop(KILL_ENV, None)
    if kill_at:
        env[KILL_ENV] = kill_at
    code = _RUN_TRAINER.format(tests=str(REPO_ROOT / "tests"), base=str(base_dir), run=str(run), extra=list(extra))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_kill_while_replacing_last_resumes_from_the_new_checkpoint(base, tmp_path):  # noqa: F811
    trainer(base, tmp_path / "ref").run()
    run = tmp_path / "run"
    # step 1 saves last; step 2 is killed after moving the old last aside, before the new one is renamed in
    proc = _train_in_subprocess(base, run, "replacing:last", "train.stop_after_steps=2")
    assert proc.returncode == -9, proc.stderr[-2000:]
    ckpts = run / "checkpoints"
    assert not (ckpts / "last").exists() and (ckpts / "last.old").exists()
    new = latest_checkpoint(ckpts)
    assert new is not None and ".tmp-" in new.name and read_state(new).global_step == 2
    tr = trainer(base, run)
    assert tr.resume() and tr.state.global_step == 2  # not step 1, not step 0
    assert tr.run()["finished"]
    ref, got = final_tensors(tmp_path / "ref"), final_tensors(run)
    assert all(torch.equal(ref[k], got[k]) for k in ref)  # and exactly the uninterrupted result
    assert sorted(p.name for p in ckpts.iterdir()) == ["01_warmup", "02_joint", "03_align", "04_sync",
                                                        "05_finalize", "last"]  # leftovers cleaned
