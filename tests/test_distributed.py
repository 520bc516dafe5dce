"""The trainer under a real `accelerate launch` of 2 gloo processes on CPU (DDP through
accelerator.prepare): the same final predictor and adapters as one process with the same
global batch, an exact resume after a SIGKILL, and why FSDP is not run on CPU.

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
from clin_jepa.training.checkpoint import KILL_ENV, read_state
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


def _launch(run: Path, port: int, *extra: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLIN_JEPA_PROGRESS="0", OMP_NUM_THREADS="1", **(env_extra or {}))
    if not env_extra:
        env.pop(KILL_ENV, None)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO_ROOT / "configs" / "accelerate" / "cpu_ddp.yaml"), "--main_process_port", str(port),
           "-m", "clin_jepa.pipelines.pretrain", "--run", str(run), *extra]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_two_processes_match_one_and_resume_exactly_after_a_kill(sft_run, tmp_path):
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



_CACHE_SCRIPT = """
import sys, torch
from accelerate import Accelerator
from clin_jepa.config import EncoderConfig
from clin_jepa.data.windows import load_corpus
from clin_jepa.models import build_encoder
from clin_jepa.training.latent_cache import LatentCache

data, tok, out = sys.argv[1:4]
acc = Accelerator(cpu=True)
texts = load_corpus(data, 3).texts
enc = build_encoder("debug", EncoderConfig(flavor="debug"), tokenizer_dir=tok)
cache = LatentCache(enc, texts, block=4, accelerator=acc)
ids = torch.arange(len(texts))
cache.get(ids[acc.process_index::3])  # the ranks miss different blocks
got = cache.get(ids)  # (N, D)
torch.save({"latents": got, "here": cache.encoded_here, "encoded": cache.encoded},
           f"{out}/rank{acc.process_index}.pt")
"""


def test_latent_cache_shared_across_ranks_equals_one_process(sft_run, tmp_path):
    """Each rank encodes its share of the missed blocks; both tables equal one process's, bit for bit."""
    script = tmp_path / "cache.py"
    script.write_text(_CACHE_SCRIPT)
    args = [str(sft_run.parent / "data"), str(sft_run / "tokenizer"), str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    ref = torch.load(tmp_path / "rank0.pt")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO_ROOT / "configs" / "accelerate" / "cpu_ddp.yaml"), "--main_process_port", "29577",
           str(script), *args]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for r in ranks:
        assert torch.equal(r["latents"], ref["latents"])
        assert r["encoded"] == ref["encoded"] == ref["latents"].shape[0]  # every text once per job
    assert ranks[0]["here"] + ranks[1]["here"] == ref["encoded"] and min(r["here"] for r in ranks) > 0


def test_fsdp_launch_is_refused_with_the_ddp_fix(monkeypatch, tmp_path):
    """FSDP is not run on CPU: the trainer refuses it (the encoder's EMA/checkpoints are not
    shard-aware), naming the DDP config; an FSDP launch sets ACCELERATE_USE_FSDP=true."""
    from clin_jepa.training.trainer_setup import make_accelerator

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ValueError, match="does not support FSDP yet.*multi_gpu_ddp.yaml"):
        make_accelerator(load_config(None, []), tmp_path)
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "accelerate" / "multi_gpu_fsdp.yaml").read_text())
    assert cfg["distributed_type"] == "FSDP"  # the flag accelerate launch turns into ACCELERATE_USE_FSDP


@pytest.mark.skip(reason="FSDP training is not implemented: the two-adapter encoder's EMA, hard sync and "
                         "checkpoints are not shard-aware (trainer_setup.FSDP_REFUSAL); not probed on gloo")
def test_two_process_fsdp_run_trains_checkpoints_and_resumes():
    """Placeholder named by issue 10; see the skip reason."""
