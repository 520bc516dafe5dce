"""Worker of tests/test_distributed.py::test_fsdp2_shards_and_the_shared_latent_cache (one 2-process launch).

Run by `accelerate launch` (cpu_ddp.yaml: 2 gloo processes). accelerate 1.15 does not switch a
CPU process group to FSDP, so the trainer's FSDP2 layout is built here by accelerate's own
``fsdp2_prepare_model`` with a plugin made from multi_gpu_fsdp.yaml's fsdp_config (each
Qwen3DecoderLayer, then the root: trainer_setup.Trainables); the optimizer is built on the
shards afterwards (Accelerator.prepare swaps its parameters instead). Every rank also keeps an unsharded
reference copy and replays the same work on it (both ranks' batches, gradients averaged), so
each step's sharded result is compared with the plain one. Writes out/rank<r>.json.

argv: tokenizer_dir texts_json out_dir
"""

from __future__ import annotations

import copy
import faulthandler
import functools
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_model
from torch.distributed.fsdp import FSDPModule

from clin_jepa.config import EncoderConfig, LossConfig, OptimConfig, PredictorConfig
from clin_jepa.models import build_encoder, build_predictor
from clin_jepa.models.sharding import full, local
from clin_jepa.training.checkpoint import (
    TrainState,
    gather_states,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from clin_jepa.training.latent_cache import LatentCache
from clin_jepa.training.losses import jepa_loss
from clin_jepa.training.trainer_setup import Trainables, build_optimizer
from clin_jepa.utils import REPO_ROOT

faulthandler.dump_traceback_later(240, exit=True)  # a collective out of step hangs: show where, then exit
tok, texts_file, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
texts = json.loads(texts_file.read_text())
acc = Accelerator(cpu=True)
rank, world = acc.process_index, acc.num_processes
torch.set_num_threads(1)
TOL = 1e-5  # float32 summation order only (all-gathered weights are exact copies)


def build():
    torch.manual_seed(0)
    # small encode batches: rank 1's many texts need several forward calls, rank 0's one text one
    enc = build_encoder("debug", EncoderConfig(flavor="debug", encode_batch_tokens=64, max_length=64), tokenizer_dir=tok)
    pred = build_predictor("debug", PredictorConfig(dropout_ffn=0.0, dropout_attn=0.0), latent_dim=enc.hidden_size)
    return enc, pred


facts: dict = {}
enc, pred = build()
init = [p.detach().clone() for p in enc.online_parameters() + list(pred.parameters())]
ref_enc, ref_pred = copy.deepcopy(enc), copy.deepcopy(pred)
ref_enc.bind_parameters()
root = Trainables(enc, pred)
# accelerate's own FSDP2 wrapping (what Accelerator.prepare runs for multi_gpu_fsdp.yaml), with the
# plugin built from that file; on CPU the Accelerator's state is never FSDP, so the plugin is handed
# to fsdp2_prepare_model next to the real Accelerator's attributes
fsdp_cfg = yaml.safe_load((REPO_ROOT / "configs" / "accelerate" / "multi_gpu_fsdp.yaml").read_text())["fsdp_config"]
plugin = FullyShardedDataParallelPlugin(
    fsdp_version=fsdp_cfg["fsdp_version"], auto_wrap_policy=fsdp_cfg["fsdp_auto_wrap_policy"].lower(),
    transformer_cls_names_to_wrap=[fsdp_cfg["fsdp_transformer_layer_cls_to_wrap"]],
    reshard_after_forward=fsdp_cfg["fsdp_reshard_after_forward"],
    cpu_ram_efficient_loading=fsdp_cfg["fsdp_cpu_ram_efficient_loading"])
shim = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin), mixed_precision="no", device=acc.device,
                       is_main_process=acc.is_main_process, torch_device_mesh=None)
root = fsdp2_prepare_model(shim, root)
enc.bind_parameters()
facts["fsdp_units"] = sorted({type(m).__name__ for m in root.modules() if isinstance(m, FSDPModule)})
assert all(type(p).__name__ == "DTensor" for p in enc.online_parameters() + enc.target_parameters())
optim = OptimConfig()
opt, ref_opt = build_optimizer(optim, enc, pred), build_optimizer(optim, ref_enc, ref_pred)
for e in (enc, ref_enc):
    e.set_online_trainable(True)


def batch(r: int):
    """Rank r's texts (rank 0 one, rank 1 many of mixed lengths: more encode forward calls)."""
    share = texts[:1] if r == 0 else texts[1:]
    g = torch.Generator().manual_seed(r)
    d, s, a = (torch.randn(2, 64, generator=g), torch.randn(2, 3, 64, generator=g), torch.randn(2, 3, 64, generator=g))
    return share, d, s, a


def loss_of(encode, predictor, r: int):
    share, d, s, a = batch(r)
    z = encode(share, adapter="online", grad=True)  # (n, D) with grad into the online LoRA
    s = s + z.mean(0)  # the predictor's input carries the encoder's gradient
    mask = torch.ones(2, 3, dtype=torch.bool)
    return jepa_loss(predictor, d, s, a, s.detach(), mask, LossConfig(), "native")["loss"]


buckets = [len(enc._buckets([len(t) for t in enc._token_ids(batch(r)[0])])) for r in range(world)]
facts["encode_calls_per_rank"] = buckets
# one training step: sharded (each rank its batch, FSDP averages) vs reference (mean of both batches)
loss = loss_of(functools.partial(root, "encode"), functools.partial(root, "predictor"), rank)
loss.backward()
ref_loss = sum(loss_of(ref_enc.encode, ref_pred, r) for r in range(world)) / world
ref_loss.backward()
for o in (opt, ref_opt):
    o.step()
    o.zero_grad(set_to_none=True)
pairs = list(zip(enc.online_parameters() + list(pred.parameters()), ref_enc.online_parameters() +
                 list(ref_pred.parameters())))
facts["step_max_diff"] = max(float((full(p) - q).abs().max()) for p, q in pairs)
facts["step_moved"] = max(float((q - r).abs().max()) for (_, q), r in zip(pairs, init))

# EMA and the gap on shards vs plain
enc.ema_update(0.9)
ref_enc.ema_update(0.9)
facts["ema_max_diff"] = max(float((full(p) - q).abs().max())
                            for p, q in zip(enc.target_parameters(), ref_enc.target_parameters()))
facts["gap"], facts["ref_gap"] = enc.online_target_gap(), ref_enc.online_target_gap()
facts["sync_gap"] = enc.hard_sync()
facts["sync_target_diff"] = max(float((full(p) - full(q)).abs().max())
                                for p, q in zip(enc.target_parameters(), enc.online_parameters()))
with torch.no_grad():  # a drift on one rank's shard only: the all-reduced gap must see it
    if rank == 1:
        local(enc.target_parameters()[0]).add_(1e-3)
facts["gap_after_drift_on_rank1"] = enc.online_target_gap()
enc.hard_sync()

# the shared latent cache on the plain (DDP-style, replicated) encoder: ranks miss different blocks,
# each encodes its share; both tables equal a one-process cache (accelerator=None) bit for bit
ids = torch.arange(len(texts))
shared = LatentCache(ref_enc, texts, block=4, accelerator=acc)
shared.get(ids[rank::3])
one = LatentCache(ref_enc, texts, block=4)
facts["ddp_cache_equal_one_process"] = torch.equal(shared.get(ids), one.get(ids))
facts["ddp_cache_encoded"], facts["one_process_encoded"] = shared.encoded, one.encoded
facts["ddp_cache_encoded_here"], facts["n_texts"] = shared.encoded_here, len(texts)

# the shared latent cache through the FSDP root: ranks miss different blocks (unequal encode calls)
cache = LatentCache(enc, texts, block=4, accelerator=acc, encode=functools.partial(root, "encode"))
cache.get(ids[rank::3])
got = cache.get(ids)  # (N, D)
with torch.no_grad():
    ref_z = ref_enc.encode(texts, adapter="online")
facts["cache_max_diff"] = float((got - ref_z).abs().max())

# checkpoint: gather (collective), main writes the project's format, all ranks restore their shards
ckpt = out / "ckpt"
gathered = gather_states(enc, pred, opt, root=root)
if acc.is_main_process:
    save_checkpoint(ckpt, TrainState(global_step=1), gathered, pred.config, {}, {}, enc)
    verify_checkpoint(ckpt)
acc.wait_for_everyone()
before = {k: v.clone() for k, v in gathered["predictor"].items()}
before_online = [full(p).clone() for p in enc.online_parameters()]
before_opt = copy.deepcopy(gathered["optimizer"])  # "step" tensors are the live ones on CPU
loss = loss_of(functools.partial(root, "encode"), functools.partial(root, "predictor"), rank)
loss.backward()
opt.step()  # move away from the checkpoint
opt.zero_grad(set_to_none=True)
load_checkpoint(ckpt, enc, pred, opt, restore_rng=False, root=root)
after = gather_states(enc, pred, opt, root=root)
facts["restored_predictor_equal"] = all(torch.equal(before[k], after["predictor"][k]) for k in before)
facts["restored_online_equal"] = all(torch.equal(a, full(p)) for a, p in zip(before_online, enc.online_parameters()))
if acc.is_main_process:  # the full optimizer state is gathered onto the main process only
    state_a, state_b = before_opt["state"], after["optimizer"]["state"]
    facts["restored_optimizer_equal"] = len(state_a) > 0 and state_a.keys() == state_b.keys() and all(
        torch.equal(state_a[k][n], state_b[k][n]) for k in state_a for n in state_a[k])
# the sharded run's checkpoint is an ordinary one: it loads into a plain encoder and predictor
plain_enc, plain_pred = build()
load_checkpoint(ckpt, plain_enc, plain_pred, restore_rng=False)
facts["plain_load_equal"] = all(torch.equal(full(p), q) for p, q in
                                zip(enc.online_parameters() + enc.target_parameters(),
                                    plain_enc.online_parameters() + plain_enc.target_parameters()))
(out / f"rank{rank}.json").write_text(json.dumps(facts, indent=2))
acc.wait_for_everyone()
