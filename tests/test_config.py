"""The typed config: YAML + dotted overrides, strict keys and values, inheritance, round trip."""

from __future__ import annotations

import pytest

from clin_jepa.config import RunConfig, load_config, load_run_config
from clin_jepa.utils import CONFIG_DIR


def test_defaults_yaml_and_overrides_compose():
    cfg = load_config("default", ["optim.lr_predictor=1e-4", "eval.contexts=[6, 12]", "sft.train_base=false"])
    assert (cfg.encoder.flavor, cfg.encoder.pooling, cfg.synth.stays) == ("small", "mean", 1200)  # configs/default.yaml
    assert cfg.optim.lr_predictor == 1e-4 and cfg.eval.contexts == (6, 12) and cfg.sft.train_base is False
    assert cfg.loss.tf_weight == 1.0  # untouched library default


def test_paper_config_inherits_its_base():
    cfg = load_config(CONFIG_DIR / "qwen3_0.6b.yaml")
    assert cfg.encoder.flavor == "qwen3-0.6b" and cfg.predictor.flavor == "paper"  # own key + inherited key
    assert cfg.synth.seed == 0  # from default.yaml, two levels up


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "unknown config key optim.lrr"),
    ("nosection.x=1", "unknown config key nosection"),
    ("optim.batch_size=abc", "optim.batch_size: expected an integer"),
    ("optim.batch_size=2.5", "expected an integer"),
    ("sft.train_base=maybe", "expected true/false"),
    ("data.split_fractions=[0.5, 0.5, 0.5]", "summing to 1"),
    ("data.prediction_hour=0", "data.prediction_hour must be between 1"),
    ("data.eep_horizon=0", "data.eep_horizon must be >= 1"),
    ("loss.regularizer=l2", "loss.regularizer"),
    ("optim", "must look like section.key=value"),
])
def test_bad_values_name_the_key_and_the_fix(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(bad)


def test_a_directory_named_like_a_config_does_not_hide_it(tmp_path, monkeypatch):
    """`--config ablate` from a directory holding a run made with `--out ablate`: the shipped
    configs/ablate.yaml, not a traceback on the directory; a directory alone is a clear error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ablate").mkdir()
    assert load_config("ablate").synth.stays == 2000
    (tmp_path / "mine").mkdir()
    with pytest.raises(ValueError, match="'mine' is a directory, not a YAML file"):
        load_config("mine")


def test_saved_config_round_trips(tmp_path):
    cfg = load_config("default", ["train.drop_phases=[align]"], run_dir=str(tmp_path))
    cfg.save(tmp_path / "config.yaml")
    again = load_run_config(tmp_path)
    assert again == cfg and isinstance(again, RunConfig)
    with pytest.raises(ValueError, match="not a clin-jepa run directory"):
        load_run_config(tmp_path / "elsewhere")


def test_paper_configs_have_explicit_phase_budgets_and_refuse_the_debug_scale():
    from clin_jepa.training.curriculum import load_curriculum

    for name in ("qwen3_8b_paper.yaml", "qwen3_0.6b.yaml"):
        t = load_config(CONFIG_DIR / name).train
        assert t.steps_scale == 1
        cur = load_curriculum(t.curriculum, t.drop_phases, t.steps_scale, t.phase_steps)
        budgets = {p.name: p.steps for p in cur.phases if not p.is_instant}
        assert budgets == {"warmup": 2000, "joint": 3000, "align": 1000, "finalize": 2000}
    # the embedded default's x3 of the debug-sized budgets is refused for a real encoder
    with pytest.raises(ValueError, match="steps_scale=3.0 with encoder.flavor=qwen3-8b"):
        load_config(CONFIG_DIR / "qwen3_8b_paper.yaml", ["train.steps_scale=3"])
