"""Curriculum YAML loading/validation, phase behaviours, and the step-pure schedule/data order."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from clin_jepa.training.curriculum import CURRICULUM_DIR, behaviour, load_curriculum
from clin_jepa.training.schedule import DataOrder, lr_factor

SHIPPED = ("full", "no_warmup", "no_joint", "no_align", "no_sync", "no_finalize", "no_align_sync", "naive_cotrain",
           "sft_frozen", "vjepa2_ac")


def write(tmp_path, phases, name="cur.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump({"phases": phases}))
    return str(p)


WARMUP = {"name": "warmup", "encoder": "frozen", "targets": "online", "ema": "off", "rollout": "native",
          "ends": {"steps": 5}}


def test_full_is_the_five_phases_of_method_6():
    cur = load_curriculum("full")
    assert [p.name for p in cur.phases] == ["warmup", "joint", "align", "sync", "finalize"]
    b = [behaviour(p) for p in cur.phases]
    # warmup: frozen encoder, online targets, no EMA, native rollout
    assert (b[0].train_encoder, b[0].targets_from_ema, b[0].ema_update, b[0].rollout_mode) == (False, False, False, "native")
    assert b[0].cache_online and b[0].train_predictor
    # joint: LoRA trainable, EMA targets updated every step, teacher-forced rollout, no cache
    assert (b[1].train_encoder, b[1].targets_from_ema, b[1].ema_update, b[1].rollout_mode) == (True, True, True, "teacher_forced")
    assert not b[1].cache_online
    # align: frozen, EMA chases online, ends on a gap bound as well
    assert (b[2].train_encoder, b[2].targets_from_ema, b[2].ema_update) == (False, True, True)
    assert cur.phases[2].gap_below > 0
    assert b[3].instant == "hard_sync" and not b[3].train_predictor and cur.phases[3].steps == 0
    assert (b[4].train_encoder, b[4].ema_update, b[4].rollout_mode) == (False, False, "native")
    assert cur.phases[4].val_loss_must_fall
    assert cur.total_steps == sum(p.steps for p in cur.phases) > 0


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_curricula_load_and_round_trip(name, tmp_path):
    cur = load_curriculum(name)
    again = load_curriculum(write(tmp_path, cur.to_dict()["phases"]))
    assert again.phases == cur.phases


def test_ablations_and_paradigms_have_the_documented_shape():
    assert [p.name for p in load_curriculum("no_warmup").phases] == ["joint", "align", "sync", "finalize"]
    assert [p.name for p in load_curriculum("no_align_sync").phases] == ["warmup", "joint", "finalize"]
    naive = load_curriculum("naive_cotrain").phases
    assert len(naive) == 1 and behaviour(naive[0]).train_encoder and behaviour(naive[0]).targets_from_ema
    sft = load_curriculum("sft_frozen").phases
    assert len(sft) == 1 and not behaviour(sft[0]).train_encoder and sft[0].steps == load_curriculum("full").total_steps
    v = load_curriculum("vjepa2_ac").phases
    assert behaviour(v[0]).train_masked and not behaviour(v[0]).train_predictor and behaviour(v[0]).train_encoder
    assert behaviour(v[1]).train_predictor and not behaviour(v[1]).train_encoder


def test_drop_scale_and_per_phase_budgets():
    cur = load_curriculum("full", drop=("align", "sync"), steps_scale=2.0, phase_steps=("joint=7",))
    assert [p.name for p in cur.phases] == ["warmup", "joint", "finalize"]
    full = {p.name: p.steps for p in load_curriculum("full").phases}
    assert {p.name: p.steps for p in cur.phases} == {"warmup": 2 * full["warmup"], "joint": 7,
                                                     "finalize": 2 * full["finalize"]}


@pytest.mark.parametrize("mutate, match", [
    (lambda p: p.update(kind="predictor_only"), "unknown phase key 'kind'.*valid keys"),
    (lambda p: p.update(objective="masked_jepaa"), "objective='masked_jepaa' is not a known phase kind.*ac_jepa"),
    (lambda p: p.update(encoder="half"), "encoder='half'.*frozen, trainable"),
    (lambda p: p.update(ends={"steps": -1}), "budget must be an integer >= 1.*drop_phases"),
    (lambda p: p.update(ends={"steps": 0}), "budget must be an integer >= 1"),
    (lambda p: p.update(ends={"steps": 2.5}), "budget must be an integer >= 1"),
    (lambda p: p.update(ends={"instant": "soft_sync"}), "unknown instant phase kind 'soft_sync'.*hard_sync"),
    (lambda p: p.update(ends={"steps": 3, "until": 1}), "unknown ends key 'until'"),
    (lambda p: p.update(ends={"steps": 3, "gap_below": 1e-3}), "gap_below needs ema: update"),
    (lambda p: p.update(watchdog={"val_loss_must_rise": True}), "unknown watchdog"),
    (lambda p: p.pop("ends"), "`ends` is required"),
    (lambda p: p.update(objective="masked_jepa"), "masked_jepa refines the encoder.*trainable"),
])
def test_bad_phase_fails_at_load_naming_the_fix(tmp_path, mutate, match):
    phase = dict(WARMUP)
    mutate(phase)
    with pytest.raises(ValueError, match=match):
        load_curriculum(write(tmp_path, [phase]))


def test_bad_curriculum_level_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown phase 'algin'.*phases are"):
        load_curriculum("full", drop=("algin",))
    with pytest.raises(ValueError, match="removes every phase"):
        load_curriculum("naive_cotrain", drop=("joint",))
    with pytest.raises(ValueError, match="NAME=STEPS"):
        load_curriculum("full", phase_steps=("joint=-3",))
    with pytest.raises(ValueError, match="steps_scale"):
        load_curriculum("full", steps_scale=0)
    with pytest.raises(ValueError, match="not found.*one of"):
        load_curriculum("fulll")
    with pytest.raises(ValueError, match="unique"):
        load_curriculum(write(tmp_path, [WARMUP, WARMUP]))
    with pytest.raises(ValueError, match="non-empty list"):
        load_curriculum(write(tmp_path, []))
    (tmp_path / "extra.yaml").write_text(yaml.safe_dump({"phases": [WARMUP], "phasez": 1}))
    with pytest.raises(ValueError, match="top level"):
        load_curriculum(str(tmp_path / "extra.yaml"))


def test_yaml_bare_off_is_read_as_off(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("phases:\n  - {name: w, encoder: frozen, targets: online, ema: off, ends: {steps: 1}}\n")
    assert load_curriculum(str(p)).phases[0].ema == "off"


def test_shipped_files_are_the_documented_set():
    assert {p.stem for p in CURRICULUM_DIR.glob("*.yaml")} >= set(SHIPPED)


def test_lr_schedule_warmup_then_cosine():
    f = [lr_factor(s, 100, 10, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # non-increasing after warmup
    assert f[-1] == pytest.approx(0.1, abs=1e-3) and min(f) >= 0.1 - 1e-12


def test_data_order_is_deterministic_disjoint_across_ranks_and_covers_epochs():
    a, b = DataOrder(10, 2, num_processes=2, seed=3), DataOrder(10, 2, num_processes=2, seed=3)
    # one epoch = 10 stays = 2.5 micro-steps x 2 ranks x 2; the stream is epoch permutations back to back
    stream = np.concatenate([np.concatenate([a.indices(m, 0), a.indices(m, 1)]) for m in range(5)])  # (20,)
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert not np.array_equal(stream[:10], stream[10:])  # a new permutation per epoch
    # the same (seed, step) gives the same batch whatever was asked before (resume = arithmetic)
    assert np.array_equal(b.indices(4, 1), a.indices(4, 1))
    other = DataOrder(10, 2, 2, seed=4)
    assert not np.array_equal(np.concatenate([other.indices(m, r) for m in range(2) for r in range(2)]),
                              np.concatenate([a.indices(m, r) for m in range(2) for r in range(2)]))
