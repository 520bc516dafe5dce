"""The accelerate trainer on real parts (debug encoder + predictor, real accelerate):
per-phase behaviour, ablations/paradigms, exact resume, 2-process CPU run, latent cache,
checkpoint errors, watchdogs."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_windows import write_tiny_data

from clin_jepa.config import load_config
from clin_jepa.data.tokenizer import train_tokenizer
from clin_jepa.data.windows import load_corpus
from clin_jepa.models import build_encoder
from clin_jepa.training.checkpoint import load_checkpoint, verify_checkpoint
from clin_jepa.training.curriculum import behaviour, load_curriculum
from clin_jepa.training.latent_cache import LatentCache
from clin_jepa.training.trainer import CollapseError, Trainer, pretrain

WINDOW = 6
# warmup 2, joint 2, align 2 (gap bound never reached), sync, finalize 2 = 8 optimizer steps
SMALL = {"phases": [
    {"name": "warmup", "encoder": "frozen", "targets": "online", "ema": "off", "rollout": "native", "ends": {"steps": 2}},
    {"name": "joint", "encoder": "trainable", "targets": "ema", "ema": "update", "rollout": "teacher_forced",
     "ends": {"steps": 2}},
    {"name": "align", "encoder": "frozen", "targets": "ema", "ema": "update", "rollout": "teacher_forced",
     "ends": {"steps": 2, "gap_below": 1e-12}},
    {"name": "sync", "ends": {"instant": "hard_sync"}},
    {"name": "finalize", "encoder": "frozen", "targets": "online", "ema": "off", "rollout": "native",
     "ends": {"steps": 2}, "watchdog": {"val_loss_must_fall": True}},
]}



@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Tiny data dir + a debug tokenizer trained on its texts (shared, read-only)."""
    root = tmp_path_factory.mktemp("trainer")
    data = write_tiny_data(root / "data", stays=12, hours=8)
    train_tokenizer(load_corpus(data, WINDOW).texts * 3, 300, root / "tokenizer")
    (root / "small.yaml").write_text(yaml.safe_dump(SMALL))
    return root


def make_cfg(base: Path, run: Path, *overrides: str, curriculum: str | None = None):
    return load_config(None, [f"data.data_dir={base / 'data'}", f"data.window_hours={WINDOW}",
                              f"train.curriculum={curriculum or base / 'small.yaml'}", "optim.batch_size=4",
                              "optim.warmup_steps=2", "train.val_stays=3", "train.log_every=1",
                              "optim.lr_encoder=5e-3", "optim.lr_predictor=5e-3", *overrides], run_dir=str(run))


def encoder(base: Path, cfg):
    return build_encoder("debug", cfg.encoder, tokenizer_dir=base / "tokenizer")


def trainer(base: Path, run: Path, *overrides: str, curriculum: str | None = None) -> Trainer:
    cfg = make_cfg(base, run, *overrides, curriculum=curriculum)
    t = cfg.train
    cur = load_curriculum(t.curriculum, t.drop_phases, t.steps_scale, t.phase_steps)
    return Trainer(cfg, run, cur, load_corpus(cfg.data_path, WINDOW), encoder(base, cfg))


def snap(tr: Trainer) -> dict[str, torch.Tensor]:
    flat = lambda ps: torch.cat([p.detach().reshape(-1).float().clone() for p in ps])  # noqa: E731
    out = {"online": flat(tr.encoder.online_parameters()), "target": flat(tr.encoder.target_parameters()),
           "predictor": flat(tr.predictor.parameters())}
    if tr.masked is not None:
        out["masked"] = flat(tr.masked.parameters())
    return out


def changed(a: dict, b: dict) -> set[str]:
    return {k for k in a if not torch.equal(a[k], b[k])}


def final_tensors(run: Path) -> dict[str, torch.Tensor]:
    out = {f"pred.{k}": v for k, v in load_file(run / "final" / "predictor.safetensors").items()}
    for side in ("online", "target"):
        out |= {f"{side}.{k}": v for k, v in
                load_file(run / "final" / "encoder" / side / "adapter_model.safetensors").items()}
    return out


def test_each_phase_trains_exactly_what_it_should(base, tmp_path):
    tr = trainer(base, tmp_path / "run")
    s0 = snap(tr)
    tr.run(only=["warmup"])
    s1 = snap(tr)
    assert changed(s0, s1) == {"predictor"}  # online frozen, EMA target untouched
    encoded = tr.cache.encoded
    assert 0 < encoded <= len(tr.texts) and tr.cache.hits > 0  # frozen encoder: latents reused from the cache

    tr.run(only=["joint"])
    s2 = snap(tr)
    assert changed(s1, s2) == {"online", "target", "predictor"}
    gap_joint = tr.encoder.online_target_gap()
    assert gap_joint > 0

    tr.run(only=["align"])
    s3 = snap(tr)
    assert changed(s2, s3) == {"target", "predictor"}  # online frozen, target chases it
    assert tr.encoder.online_target_gap() < gap_joint

    tr.run(only=["sync"])
    s4 = snap(tr)
    assert changed(s3, s4) == {"target"} and tr.encoder.online_target_gap() == 0.0
    assert torch.equal(s4["online"], s4["target"])

    encoded = tr.cache.encoded
    summary = tr.run(only=["finalize"])
    s5 = snap(tr)
    assert changed(s4, s5) == {"predictor"}  # EMA target untouched in phase 5
    assert tr.cache.encoded == encoded  # online weights unchanged since phase 3: cache still valid
    assert summary["finished"] and summary["global_step"] == 8
    w = summary["watchdogs"]["finalize"]
    assert w["fell"] == (w["end"] < w["start"])
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["01_warmup", "02_joint", "03_align", "04_sync", "05_finalize"]
    assert (tmp_path / "run" / "final" / "predictor.json").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in (tmp_path / "run" / "logs" / "pretrain").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train/loss", "train/tf", "train/rollout", "train/z_std", "train/texts_per_s", "train/online_target_gap",
            "lr/encoder", "lr/predictor", "grad_norm/predictor", "grad_norm/encoder", "val/loss", "val/z_std",
            "val/effective_rank", "sync/gap"} <= tags


def test_gap_bound_ends_alignment_early(base, tmp_path):
    cur = {"phases": [SMALL["phases"][1] | {"ends": {"steps": 1}},
                      SMALL["phases"][2] | {"ends": {"steps": 5, "gap_below": 1e3}}]}
    (tmp_path / "gap.yaml").write_text(yaml.safe_dump(cur))
    summary = trainer(base, tmp_path / "run", curriculum=str(tmp_path / "gap.yaml")).run()
    assert summary["finished"] and summary["global_step"] == 2  # align stopped after its first step


@pytest.mark.parametrize("name", ["no_warmup", "no_joint", "no_align", "no_sync", "no_finalize", "no_align_sync",
                                  "naive_cotrain", "sft_frozen", "vjepa2_ac"])
def test_ablations_and_paradigms_run(base, tmp_path, name):
    tr = trainer(base, tmp_path / "run", "train.steps_scale=0.02", curriculum=name)
    s0 = snap(tr)
    summary = tr.run()
    s1 = snap(tr)
    assert summary["finished"] and (tmp_path / "run" / "final" / "predictor.safetensors").exists()
    assert "predictor" in changed(s0, s1)
    trains_encoder = any(p.encoder == "trainable" for p in tr.cur.phases)
    assert ("online" in changed(s0, s1)) == trains_encoder
    if trains_encoder and name != "vjepa2_ac":  # EMA after joint: only a hard sync makes target == online
        synced = any(p.instant == "hard_sync" for p in tr.cur.phases)
        assert torch.equal(s1["online"], s1["target"]) == synced, name
    if name == "vjepa2_ac":
        masked = tmp_path / "run" / "checkpoints" / "01_masked"
        assert (masked / "masked.safetensors").exists() and "masked" in changed(s0, s1)
        pred_after_masked = load_file(masked / "predictor.safetensors")
        fresh = trainer(base, tmp_path / "fresh", curriculum=name).predictor.state_dict()
        assert all(torch.equal(pred_after_masked[k], fresh[k]) for k in fresh)  # AC predictor idle in phase 1
        online_after_masked = load_file(masked / "encoder" / "online" / "adapter_model.safetensors")
        online_final = load_file(tmp_path / "run" / "final" / "encoder" / "online" / "adapter_model.safetensors")
        assert all(torch.equal(online_after_masked[k], online_final[k]) for k in online_final)  # then frozen


def test_resume_and_phase_by_phase_are_bit_exact(base, tmp_path):
    acc = ("optim.batch_size=2", "optim.grad_accum=2")
    trainer(base, tmp_path / "a", *acc).run()
    ref = final_tensors(tmp_path / "a")

    # interrupted after 3 optimizer steps (mid joint refinement), then resumed in a new process-like trainer
    first = trainer(base, tmp_path / "b", *acc, "train.stop_after_steps=3").run()
    assert first["stopped"] == "stop_after_steps" and first["global_step"] == 3 and not first["finished"]
    assert not (tmp_path / "b" / "final").exists()
    tr = trainer(base, tmp_path / "b", *acc)
    assert tr.resume() and tr.state.global_step == 3
    assert tr.run()["finished"]
    got = final_tensors(tmp_path / "b")
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)

    # one launch per group of phases, each starting from the saved state
    for group in (["warmup"], ["joint", "align"], ["sync", "finalize"]):
        tr = trainer(base, tmp_path / "c", *acc)
        tr.resume()
        tr.run(only=group)
    got = final_tensors(tmp_path / "c")
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_sigterm_saves_state_at_step_boundary(base, tmp_path):
    tr = trainer(base, tmp_path / "run", curriculum="sft_frozen")
    step = tr._train_step

    def step_then_signal(beh):
        out = step(beh)
        signal.raise_signal(signal.SIGTERM)  # a real signal, delivered mid-run
        return out

    tr._train_step = step_then_signal
    summary = tr.run()
    assert summary["stopped"] == "sigterm" and summary["global_step"] == 1
    last = tmp_path / "run" / "checkpoints" / "last"
    verify_checkpoint(last)
    assert yaml.safe_load((last / "train_state.json").read_text())["global_step"] == 1
    assert signal.getsignal(signal.SIGTERM) is not tr._on_sigterm  # handler restored


def test_truncated_or_incomplete_checkpoint_is_named(base, tmp_path):
    run = tmp_path / "run"
    trainer(base, run, "train.stop_after_steps=1").run()
    last = run / "checkpoints" / "last"
    broken = run / "checkpoints" / "broken"
    shutil.copytree(last, broken)
    f = broken / "predictor.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    tr = trainer(base, run)
    with pytest.raises(ValueError, match=r"predictor\.safetensors is truncated.*earlier checkpoint"):
        load_checkpoint(broken, tr.encoder, tr.predictor, tr.optimizer)
    (broken / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="incomplete checkpoint"):
        tr.resume(broken)
    tr.resume(last)  # the intact one loads
    assert tr.state.global_step == 1


def test_collapse_watchdog_stops_with_saved_state(base, tmp_path):
    tr = trainer(base, tmp_path / "run", "train.z_std_floor=1e9", curriculum="sft_frozen")
    with pytest.raises(CollapseError, match="z_std=.*train.z_std_floor.*state saved"):
        tr.run()
    verify_checkpoint(tmp_path / "run" / "checkpoints" / "last")
    assert yaml.safe_load((tmp_path / "run" / "pretrain_summary.json").read_text())["stopped"] == "collapse"


def test_pretrain_without_sft_says_run_sft_first(base, tmp_path):
    cfg = make_cfg(base, tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="clin-jepa sft --run"):
        pretrain(cfg, tmp_path / "run")


def test_latent_cache_hits_and_invalidation(base):
    cfg = make_cfg(base, base / "unused")
    enc = encoder(base, cfg)
    corpus = load_corpus(base / "data", WINDOW)
    cache = LatentCache(enc, corpus.texts, block=8)
    ids = torch.tensor([0, 3, 9, 17])
    first = cache.get(ids)
    rows = enc.forward_rows
    assert torch.allclose(first, enc.encode([corpus.texts[i] for i in ids.tolist()]), atol=1e-5)
    again = cache.get(ids)
    assert torch.equal(first, again) and cache.hits == 3 and cache.misses == 3
    assert enc.forward_rows == rows + 4  # only the direct encode above ran the network
    before = enc.weights_version
    enc.ema_update(0.5)  # only the target adapter changes: the online cache stays valid
    enc.hard_sync()
    assert enc.weights_version == before and enc.target_version > 0
    assert torch.equal(cache.get(ids), first)
    assert cache.misses == 3 and len(cache) == 3 * 8  # three blocks of 8 texts held
    with torch.no_grad():
        enc.online_parameters()[1].add_(0.1)  # a LoRA B matrix: the online output changes
    enc.mark_updated()
    changed_lat = cache.get(ids)
    assert cache.misses == 6 and not torch.allclose(changed_lat, first)


def test_batch_latents_are_deduplicated_encodes_of_the_right_texts(base, tmp_path):
    tr = trainer(base, tmp_path / "run")
    with torch.no_grad():  # make online, target and the base output differ
        for p in tr.encoder.online_parameters():
            p.add_(0.05 * torch.randn_like(p))
        tr.encoder.ema_update(0.5)
        for p in tr.encoder.online_parameters():
            p.add_(0.05 * torch.randn_like(p))
    tr.encoder.mark_updated()
    batch = tr.train_set.batch([0, 1, 2])
    texts = tr.texts
    joint = next(p for p in tr.cur.phases if p.name == "joint")
    for spec in (tr.cur.phases[0], joint):  # cached online + online targets; encoded online + EMA targets
        d, s, a, target = tr._latents(batch, behaviour(spec))
        m = batch.mask
        enc = lambda ids, side="online": tr.encoder.encode([texts[i] for i in ids.tolist()], adapter=side)  # noqa: E731
        torch.testing.assert_close(d, enc(batch.demo_ids), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(s[m], enc(batch.state_ids[m]), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a[m], enc(batch.action_ids[m]), rtol=1e-5, atol=1e-5)
        side = "target" if spec.targets == "ema" else "online"
        torch.testing.assert_close(target[m], enc(batch.state_ids[m], side), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(enc(batch.state_ids[m], "target"), enc(batch.state_ids[m]), atol=1e-4)


def test_full_curriculum_on_the_extracted_synthetic_data(extracted_data_dir, tmp_path):
    """The real extraction output (texts/demographics/cohort/splits) trains end to end."""
    corpus = load_corpus(extracted_data_dir, 12)
    train_tokenizer(corpus.texts[:2000], 300, tmp_path / "tokenizer")
    cfg = load_config(None, [f"data.data_dir={extracted_data_dir}", "data.window_hours=12", "optim.batch_size=4",
                             "train.steps_scale=0.05", "train.val_stays=4"], run_dir=str(tmp_path / "run"))
    enc = build_encoder("debug", cfg.encoder, tokenizer_dir=tmp_path / "tokenizer")
    summary = pretrain(cfg, tmp_path / "run", encoder=enc)
    assert summary["finished"] and summary["sync_gaps"]["sync"] == 0.0
    assert (tmp_path / "run" / "final" / "encoder" / "online" / "adapter_model.safetensors").exists()


def test_cpu_threads_one_for_debug_models_and_restored(base, tmp_path):
    seen = []
    for sub, overrides, expect in (("auto", (), 1), ("two", ("train.cpu_threads=2",), 2)):
        tr = trainer(base, tmp_path / sub, *overrides)
        step = tr._train_step
        tr._train_step = lambda beh, step=step: seen.append(torch.get_num_threads()) or step(beh)
        torch.set_num_threads(3)
        try:
            tr.run(only=["warmup"])
            assert torch.get_num_threads() == 3  # the caller's setting comes back
        finally:
            torch.set_num_threads(1)
        assert seen and set(seen) == {expect}
        seen.clear()
    with pytest.raises(ValueError, match="train.cpu_threads"):
        make_cfg(base, tmp_path / "bad", "train.cpu_threads=-1")
