"""The trainer under a real `accelerate launch` of 2 gloo processes on CPU (DDP through
accelerator.prepare): the same final predictor and adapters as one process with the same
global batch, identical weights on both ranks, an exact resume after a SIGKILL; the FSDP2 shard
code paths (wrapped by accelerate's own FSDP2 preparation) against an unsharded reference, the
shared latent cache, and why a full FSDP launch needs GPUs.

The data has one full 3-hour window per stay, so every micro-batch has the same number of
valid hours: DDP's average of the two ranks' mean losses is then the one-process mean over the
global batch (with unequal valid counts it would weight hours differently, by design). With
windows of 3 hours and 2 rollout steps the rollout start is always hour 0, and dropout is 0:
no per-rank random draw enters the loss. What remains is float summation order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_trainer import SMALL, final_tensors
from test_windows import write_tiny_data

from clin_jepa.config import load_config
from clin_jepa.data.tokenizer import train_tokenizer
from clin_jepa.data.windows import load_corpus
from clin_jepa.training.checkpoint import KILL_ENV, read_state, verify_checkpoint
from clin_jepa.utils import REPO_ROOT

WINDOW = 3
GLOBAL_BATCH = 4  # one process x 4 stays == two processes x 2 stays
# The runs differ only by the summation order of the gradient average (1e-7 relative), but Adam
# divides each gradient by its running RMS, so after 8 steps a weight can differ by a small
# fraction of one step (lr 5e-3): measured 1.1e-5 here; the bound is 1 % of one step.
ATOL = 5e-5


def _cfg(root: Path, run: Path, batch: int):
    return load_config(None, [f"data.data_dir={root / 'data'}", f"data.window_hours={WINDOW}",
                              f"train.curriculum={root / 'small.yaml'}", f"optim.batch_size={batch}",
                              "optim.warmup_steps=2", "train.val_stays=2", "train.log_every=1",
                              "optim.lr_encoder=5e-3", "optim.lr_predictor=5e-3", "predictor.dropout_ffn=0",
                              "predictor.dropout_attn=0", "train.cache_block=8", "sft.steps=2", "tokenizer.vocab_size=300"],
                       run_dir=str(run))


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory) -> Path:
    """Data with equal-length windows, its tokenizer, and one SFT'd run to copy from."""
    from clin_jepa.training.sft import run_sft

    root = tmp_path_factory.mktemp("dist")
    data = write_tiny_data(root / "data", stays=16, hours=8, gap_stay=False)
    train = load_corpus(data, WINDOW).subset("train")
    assert bool(train.batch(range(len(train))).mask.all())  # every window full: equal valid counts per rank
    (root / "small.yaml").write_text(yaml.safe_dump(SMALL))
    run = root / "sft"
    train_tokenizer(load_corpus(data, WINDOW).texts * 3, 300, run / "tokenizer")
    cfg = _cfg(root, run, GLOBAL_BATCH)
    run_sft(run, cfg)
    return run


def _copy(sft_run: Path, dst: Path, batch: int) -> Path:
    shutil.copytree(sft_run, dst)
    _cfg(sft_run.parent, dst, batch).save(dst / "config.yaml")
    return dst


def _launch(run: Path, port: int, *extra: str, env_extra: dict | None = None,
            config: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLIN_JEPA_PROGRESS="0", OMP_NUM_THREADS="1", **(env_extra or {}))
    if not env_extra:
        env.pop(KILL_ENV, None)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(config or REPO_ROOT / "configs" / "accelerate" / "cpu_ddp.yaml"), "--main_process_port", str(port),
           "-m", "clin_jepa.pipelines.pretrain", "--run", str(run), *extra]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_two_processes_match_one_and_resume_exactly_after_a_kill(sft_run, tmp_path, capsys):
    from clin_jepa.pipelines.cli import main as cli_main

    one = _copy(sft_run, tmp_path / "one", GLOBAL_BATCH)
    assert cli_main(["pretrain", "--run", str(one)]) == 0
    two = _copy(sft_run, tmp_path / "two", GLOBAL_BATCH // 2)
    proc = _launch(two, 29571)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = yaml.safe_load((two / "pretrain_summary.json").read_text())
    assert summary["processes"] == 2 and summary["finished"] and summary["rank_max_weight_diff"] == 0.0
    # the latent cache encoded each block once per job, the main rank about half of them
    single = yaml.safe_load((one / "pretrain_summary.json").read_text())
    assert summary["cache_encoded_texts"] == single["cache_encoded_texts"] > 0
    assert 0 < summary["cache_encoded_by_main"] < summary["cache_encoded_texts"]
    # the hard sync's gap check ran on each rank's fp32 target
    assert summary["sync_gaps"]["sync"] <= 1e-5
    # log lines once per job: the phase banner is printed by the main process only
    assert (proc.stderr + proc.stdout).count("phase warmup: 2 steps") == 1
    ref, got = final_tensors(one), final_tensors(two)
    assert ref.keys() == got.keys()
    worst = max(float((ref[k] - got[k]).abs().max()) for k in ref)
    assert worst <= ATOL, f"2-process final weights differ from 1 process by {worst:.2e}"
    early = load_file(one / "checkpoints" / "01_warmup" / "predictor.safetensors")  # after 2 of 8 steps
    moved = max(float((ref[f"pred.{k}"] - v).abs().max()) for k, v in early.items())
    assert moved > 100 * ATOL  # the later steps moved the weights far more than the tolerance
    # the CLI over the 2-process run's checkpoints (was a separate 2-process launch in test_trainer.py)
    assert cli_main(["pretrain", "--run", str(two)]) == 2  # refuses to silently restart over checkpoints
    assert cli_main(["pretrain", "--run", str(two), "--resume"]) == 0  # nothing left: finishes at once
    assert all(torch.equal(got[k], v) for k, v in final_tensors(two).items())
    capsys.readouterr()
    assert cli_main(["pretrain", "--run", str(two), "--drop-phases", "algin"]) == 2
    assert "unknown phase 'algin'" in capsys.readouterr().err
    assert cli_main(["pretrain", "--run", str(two), "--phases", "finalise"]) == 2
    assert "--phases: unknown phase 'finalise'" in capsys.readouterr().err

    # SIGKILL of the main rank after it wrote the joint phase's boundary checkpoint (before renaming it)
    killed = _copy(sft_run, tmp_path / "killed", GLOBAL_BATCH // 2)
    proc = _launch(killed, 29573, env_extra={KILL_ENV: "saved:02_joint"})
    assert proc.returncode != 0
    assert not (killed / "final").exists()
    tmp_ckpts = [p for p in (killed / "checkpoints").iterdir() if ".tmp-" in p.name]
    assert tmp_ckpts and read_state(tmp_ckpts[0]).global_step == 4
    proc = _launch(killed, 29575, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = final_tensors(killed)
    assert all(torch.equal(got[k], resumed[k]) for k in got)  # bit-exact: the uninterrupted 2-process result



def test_fsdp2_shards_and_the_shared_latent_cache(sft_run, tmp_path):
    """The trainer's FSDP2 layout (each Qwen3DecoderLayer + the Trainables root, wrapped by accelerate's
    own fsdp2_prepare_model with multi_gpu_fsdp.yaml's settings) on 2 gloo processes (accelerate's
    Accelerator builds no FSDP on CPU: see the next test). One training step with unequal encode work per rank,
    the EMA, the online-target gap (all-reduced over shards), the hard sync, the shared latent cache
    through the root, and a checkpoint gathered into the project's format and restored into the
    shards all match an unsharded reference replaying both ranks' work (tests/fsdp_worker.py).
    The same launch checks the DDP-style shared latent cache (replicated encoder): each rank encodes
    its share of the missed blocks and both tables equal one process's, bit for bit."""
    import json

    texts = load_corpus(sft_run.parent / "data", WINDOW).texts[:40]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO_ROOT / "configs" / "accelerate" / "cpu_ddp.yaml"), "--main_process_port", "29579",
           str(Path(__file__).parent / "fsdp_worker.py"), str(sft_run / "tokenizer"), str(tmp_path / "texts.json"),
           str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # shared latent cache: every text encoded once per job, each rank a nonzero share, equal tables
    n = facts[0]["n_texts"]
    assert all(f["ddp_cache_equal_one_process"] and f["ddp_cache_encoded"] == f["one_process_encoded"] == n
               for f in facts)
    assert sum(f["ddp_cache_encoded_here"] for f in facts) == n and min(f["ddp_cache_encoded_here"] for f in facts) > 0
    for r, f in enumerate(facts):
        assert f["fsdp_units"] == ["FSDPQwen3DecoderLayer", "FSDPTrainables"]  # accelerate's wrap of the shipped config
        calls = f["encode_calls_per_rank"]
        assert calls[0] < calls[1]  # rank 0 ran dummy forwards to stay in step with rank 1
        # one step: the sharded update equals the plain one on the mean of both ranks' batches
        assert f["step_max_diff"] <= 1e-5 < f["step_moved"]
        assert f["ema_max_diff"] <= 1e-6
        assert abs(f["gap"] - f["ref_gap"]) <= 1e-6 and f["gap"] > 0
        assert f["sync_gap"] == 0.0 and f["sync_target_diff"] == 0.0
        assert f["gap_after_drift_on_rank1"] >= 1e-3 * 0.99  # rank 0 sees rank 1's shard drift
        assert f["cache_max_diff"] <= 1e-5
        assert f["restored_predictor_equal"] and f["restored_online_equal"]
        assert f.get("restored_optimizer_equal", r == 1)  # gathered and compared on the main process
        assert f["plain_load_equal"]
    verify_checkpoint(tmp_path / "ckpt")


def test_fsdp_launch_on_cpu_is_refused_naming_the_cpu_config(monkeypatch, tmp_path):
    """accelerate 1.15 builds FSDP only for GPU process groups (an FSDP config on CPU would silently
    train as DDP), so the trainer refuses an FSDP launch without CUDA, naming cpu_ddp.yaml; an FSDP
    launch sets ACCELERATE_USE_FSDP=true."""
    from clin_jepa.training.trainer_setup import make_accelerator

    if torch.cuda.is_available():
        pytest.skip("CUDA present: FSDP is accepted there")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ValueError, match="runs FSDP only on GPUs.*cpu_ddp.yaml"):
        make_accelerator(load_config(None, []), tmp_path)
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "accelerate" / "multi_gpu_fsdp.yaml").read_text())
    assert cfg["distributed_type"] == "FSDP" and cfg["fsdp_config"]["fsdp_version"] == 2
    assert cfg["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "Qwen3DecoderLayer"


FSDP_SKIP = ("accelerate 1.15 builds its FSDP plugin only for GPU process groups (AcceleratorState switches "
             "MULTI_GPU, not MULTI_CPU, to FSDP), so a 2-process FSDP curriculum needs 2 CUDA GPUs; the FSDP2 "
             "shard code paths are tested on gloo by test_fsdp2_shards_and_the_shared_latent_cache "
             "and the full launch by benchmarks/gpu_check.py on a multi-GPU machine")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason=FSDP_SKIP)
def test_two_process_fsdp_run_trains_checkpoints_and_resumes(sft_run, tmp_path):
    """On 2+ GPUs: the debug curriculum under multi_gpu_fsdp.yaml (2 processes) finishes, its
    checkpoint resumes bit-exactly, and it agrees with the DDP launch within ATOL."""
    fsdp_cfg = tmp_path / "fsdp.yaml"
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "accelerate" / "multi_gpu_fsdp.yaml").read_text())
    fsdp_cfg.write_text(yaml.safe_dump(cfg | {"num_processes": 2, "mixed_precision": "no"}))
    ddp = _copy(sft_run, tmp_path / "ddp", GLOBAL_BATCH // 2)
    proc = _launch(ddp, 29581)
    assert proc.returncode == 0, proc.stderr[-3000:]
    full_run = _copy(sft_run, tmp_path / "fsdp", GLOBAL_BATCH // 2)
    proc = _launch(full_run, 29583, config=fsdp_cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref, got = final_tensors(ddp), final_tensors(full_run)
    assert max(float((ref[k] - got[k]).abs().max()) for k in ref) <= ATOL
    killed = _copy(sft_run, tmp_path / "killed", GLOBAL_BATCH // 2)
    proc = _launch(killed, 29585, config=fsdp_cfg, env_extra={KILL_ENV: "saved:02_joint"})
    assert proc.returncode != 0
    proc = _launch(killed, 29587, "--resume", config=fsdp_cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = final_tensors(killed)
    assert all(torch.equal(got[k], resumed[k]) for k in got)
