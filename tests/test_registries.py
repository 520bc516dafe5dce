"""Valid config values come from the registries that implement them; the debug flavor's
special behaviour is fields of its spec; trainer_setup does not import the trainer."""

from __future__ import annotations

import ast

import pytest

from clin_jepa.config import load_config
from clin_jepa.models import encoder_flavors, predictor
from clin_jepa.training import losses
from clin_jepa.utils import REPO_ROOT


def test_config_accepts_what_the_registries_hold(monkeypatch):
    with pytest.raises(ValueError, match="encoder.flavor='tiny2': use one of debug, small, qwen3-0.6b, qwen3-8b"):
        load_config(overrides=["encoder.flavor=tiny2"])
    with pytest.raises(ValueError, match="encoder.pooling='max': use one of last, mean"):
        load_config(overrides=["encoder.pooling=max"])
    monkeypatch.setitem(encoder_flavors.FLAVORS, "tiny2", encoder_flavors.FLAVORS["debug"])
    monkeypatch.setitem(predictor.FLAVORS, "tiny2", predictor.FLAVORS["debug"])
    monkeypatch.setattr(losses, "REGULARIZERS", (*losses.REGULARIZERS, "other"))
    cfg = load_config(overrides=["encoder.flavor=tiny2", "predictor.flavor=tiny2", "loss.regularizer=other"])
    assert (cfg.encoder.flavor, cfg.predictor.flavor, cfg.loss.regularizer) == ("tiny2", "tiny2", "other")
    with pytest.raises(ValueError, match="use a subset of logreg, lightgbm, lstm, tcn"):
        load_config(overrides=["eval.baselines=[gru]"])
    with pytest.raises(ValueError, match=r"unknown phase 'algin'.*phases are"):
        load_config(overrides=["train.drop_phases=[algin]"])


def test_debug_flavor_is_described_by_its_spec():
    debug, real = encoder_flavors.spec("debug"), encoder_flavors.spec("qwen3-8b")
    assert debug.own_tokenizer and debug.trainable_base and debug.tiny
    assert not (real.own_tokenizer or real.trainable_base or real.tiny)
    for path in ("clin_jepa/training/sft.py", "clin_jepa/training/trainer.py", "clin_jepa/run.py"):
        assert '== "debug"' not in (REPO_ROOT / path).read_text(), path


def test_trainer_setup_does_not_import_the_trainer():
    tree = ast.parse((REPO_ROOT / "clin_jepa" / "training" / "trainer_setup.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "clin_jepa.training.trainer" not in imported  # at module level or inside a function
    from clin_jepa.training.trainer import pretrain  # pretrain() lives with the trainer

    assert pretrain.__module__ == "clin_jepa.training.trainer"
