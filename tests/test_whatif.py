"""What-if rollouts (clin_jepa.whatif, `clin-jepa whatif`): scenario files are validated with
errors naming the fix; the factual scenario reproduces the ordinary rollout exactly; scenario
actions are written in the project's own text format; outputs hold no identifiers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from clin_jepa.utils import REPO_ROOT
from clin_jepa.whatif_scenarios import Setting, load_scenarios, parse_scenarios

TINY_CURRICULUM = """phases:
  - {name: warmup, encoder: frozen, targets: online, ema: "off", rollout: native, ends: {steps: 2}}
  - {name: joint, encoder: trainable, targets: ema, ema: update, rollout: teacher_forced, ends: {steps: 2}}
  - {name: sync, ends: {instant: hard_sync}}
  - {name: finalize, encoder: frozen, targets: online, ema: "off", rollout: native, ends: {steps: 2}}
"""
K, H = 6, 12


def _tiny_run(root, data_dir, *extra: str):
    """A tiny trained + embedded run on the session's synthetic extraction (synth.stays matches it)."""
    from clin_jepa.pipelines.cli import main as cli

    from tests.conftest import SYNTH_STAYS

    (root / "tiny.yaml").write_text(TINY_CURRICULUM)
    sets = [f"data.data_dir={data_dir}", f"synth.stays={SYNTH_STAYS}", "data.window_hours=24",
            "sft.steps=2", f"train.curriculum={root / 'tiny.yaml'}", "optim.batch_size=4", "train.val_stays=4", *extra]
    run = root / "run"
    args = [a for s in sets for a in ("--set", s)]
    assert cli(["sft", "--run", str(run), *args]) == 0
    assert cli(["pretrain", "--run", str(run)]) == 0
    assert cli(["embed", "--run", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def tiny_run(extracted_data_dir, tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("whatif"), extracted_data_dir)


def test_whatif_reads_the_runs_text_mode(extracted_data_dir, tmp_path):
    """A snapshot-texts run: the what-if rollouts read the texts the run embedded (they once read
    the events texts and every evaluation of such a run failed), and `evaluate` scores them."""
    import json

    from clin_jepa.pipelines.cli import main as cli

    from clin_jepa.whatif import WhatIf

    run = _tiny_run(tmp_path, extracted_data_dir, "data.text_mode=snapshot", "encoder.max_length=320")
    wi = WhatIf(run)
    assert any("h ago)" in t for t in wi.corpus.texts[:2000])  # snapshot texts give each value's age
    assert cli(["evaluate", "--run", str(run), "--only", "whatif"]) == 0
    assert json.loads((run / "eval" / "whatif.json").read_text())["split"] == "test"


# --------------------------------------------------------------------------- scenario files

@pytest.mark.parametrize("data, match", [
    ({}, "no 'scenarios:' mapping"),
    ({"scenarios": {"a": "factual"}}, "declare at least two scenarios"),
    ({"scenarios": {"a": "factual", "b": {"noradrenaline": 0.1}}}, "unknown treatment 'noradrenaline'; use one of"),
    ({"scenarios": {"a": "factual", "b": {"norepinephrine": -1}}}, "give the dose in mcg/kg/min"),
    ({"scenarios": {"a": "factual", "b": {"ventilation": "maybe"}}}, "write on or off"),
    ({"scenarios": {"a": "factual", "b": {"vasopressors": True}}}, "name the drug and dose instead"),
    ({"scenarios": {"a": "factual", "b": {"rrt": {"value": True, "from": 3, "until": 2}}}}, "until must be after from"),
    ({"scenarios": {"a": "factual", "b": {"rrt": {"on": True}}}}, "write {value: ..., from: HOURS"),
    ({"scenarios": {"a": "factual", "b": {"rrt": True}}, "contrasts": [["b", "c"]]}, "unknown scenario 'c'"),
    ({"scenarios": {"a": "factual", "b": {"rrt": True}}, "contrasts": [["b", "b"]]}, "with itself"),
    ({"scenarios": {"a": "factual", "b": {"rrt": True}}, "compare": 1}, "unknown top-level keys"),
])
def test_scenario_validation_names_the_problem_and_the_fix(data, match):
    with pytest.raises(ValueError, match=match):
        parse_scenarios(data)


def test_shipped_scenario_files_parse(tmp_path):
    files = sorted((REPO_ROOT / "configs" / "scenarios").glob("*.yaml"))
    assert files
    for f in files:
        sc = load_scenarios(f)
        assert len(sc.scenarios) >= 2 and sc.contrasts
    sc = load_scenarios(REPO_ROOT / "configs" / "scenarios" / "vasopressor.yaml")
    assert sc.scenarios["factual"] == () and sc.scenarios["norepinephrine"] == (Setting("norepinephrine", 0.1),)
    assert sc.scenarios["no_vasopressor"] == (Setting("vasopressors", 0.0),)
    assert load_scenarios(REPO_ROOT / "configs/scenarios/ventilation.yaml").scenarios["ventilation_k2"] == (
        Setting("ventilation", 1.0, 2),)
    with pytest.raises(FileNotFoundError, match="pass a YAML file or a shipped name"):
        load_scenarios(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("scenarios: [a\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_scenarios(tmp_path / "bad.yaml")


# --------------------------------------------------------------------------- rollouts

def test_factual_whatif_is_the_ordinary_rollout_exactly(tiny_run):
    from clin_jepa.whatif import WhatIf

    wi = WhatIf(tiny_run)
    rows = wi.eligible(K, H, "all")[:10]
    assert len(rows) >= 3
    z = wi.rollout(rows, K, H)  # factual: no setting
    c = wi.corpus
    d, s, a = (torch.from_numpy(np.asarray(wi.latents[ids], np.float32))
               for ids in (c.demo_ids[rows], c.state_ids[rows, :K], c.action_ids[rows, : K + H - 1]))
    with torch.no_grad():
        ref = wi.predictor.rollout(d, s, a, horizon=H).numpy()
    np.testing.assert_array_equal(z, ref)


def test_scenario_actions_are_project_texts_and_change_the_rollout(tiny_run):
    from clin_jepa.whatif import WhatIf

    wi = WhatIf(tiny_run)
    rows = wi.eligible(K, H, "all")[:6]
    ne = (Setting("norepinephrine", 0.1, 1, 4),)  # hours K+1 .. K+3
    texts, changed = wi.action_texts(rows, K, H, ne)
    assert changed.shape == (len(rows), H) and changed[:, 1:4].all() and not changed[:, 4:].any()
    for j in range(len(rows)):
        for h in (1, 2, 3):  # action input of hour K-1+h shapes hour K+h
            t = texts[j * H + h]
            assert t.startswith("Norepinephrine 0.1 mcg/kg/min") and t.endswith(".")
            assert not any(v in t for v in ("Vasopressin", "Phenylephrine", "Dopamine", "Epinephrine"))
    d0, s0, a0 = wi.inputs(rows, K, H)
    d1, s1, a1 = wi.inputs(rows, K, H, ne)
    np.testing.assert_array_equal(s0, s1)
    np.testing.assert_array_equal(a0[:, : K], a1[:, : K])  # the context and hour K's input are real
    np.testing.assert_array_equal(a0[:, K + 3:], a1[:, K + 3:])
    assert np.abs(a0[:, K:K + 3] - a1[:, K:K + 3]).max() > 0
    z0, z1 = wi.rollout(rows, K, H), wi.rollout(rows, K, H, ne)
    np.testing.assert_array_equal(z0[:, :1], z1[:, :1])  # hour K: its inputs are unchanged
    assert np.abs(z0[:, 1:] - z1[:, 1:]).max() > 0  # from hour K+1 the scenario acts
    # the hourly rows the texts are written from are the run's own: unchanged hours match the corpus
    vt = pl.DataFrame({"t": texts}).with_columns(pl.Series("c", changed.reshape(-1)))
    corpus = [wi.corpus.texts[i] for i in wi.corpus.action_ids[rows, K - 1: K + H - 1].reshape(-1)]
    same = ~vt["c"].to_numpy()
    assert [t for t, s in zip(vt["t"], same) if s] == [t for t, s in zip(corpus, same) if s]


def test_fidelity_scores_predicted_effects_against_the_simulator(tiny_run):
    from clin_jepa import whatif_fidelity as wf
    from clin_jepa.whatif import WhatIf

    wi = WhatIf(tiny_run)
    synth = wf.synthetic_config(wi)
    assert synth is not None and synth.stays == wi.cfg.synth.stays
    sc = load_scenarios(REPO_ROOT / "configs" / "scenarios" / "vasopressor.yaml")
    rows = wi.eligible(K, H, "all")
    res = wf.score(wi, sc, K, H, rows, synth)
    c = res["contrasts"]["norepinephrine - no_vasopressor"]
    assert res["n_stays"] == len(rows) and "sofa" not in res["variables"] and "mbp" in res["variables"]
    mbp = c["variables"]["mbp"]
    # the simulator's norepinephrine raises MAP (never lowers it) on the hours it runs
    assert all(v is None or v > 0 for v in mbp["true_effect_mean"]) and max(x or 0 for x in mbp["true_effect_mean"]) > 5
    assert all(v in (None, 0.5) for v in mbp["action_blind"]["sign_accuracy"])
    for m in wf.METHODS:
        assert len(mbp[m]["mae"]) == H and res["summary"][m]["material_effects"] > 0
    blind = res["summary"]["action_blind"]
    assert blind["sign_accuracy"] == 0.5 and blind["median_mae_ratio"] == 1.0
    import json

    blob = json.dumps(res)
    for sid in wi.corpus.stay_ids:
        assert str(int(sid)) not in blob


def test_whatif_command_writes_aggregates_without_identifiers(tiny_run, capsys):
    import json

    from clin_jepa.pipelines.cli import main as cli

    scen = str(REPO_ROOT / "configs" / "scenarios" / "vasopressor.yaml")
    assert cli(["whatif", "--run", str(tiny_run), "--from-hour", str(K), "--horizon", str(H), "--scenario", scen,
                "--cohort", "all"]) == 0
    out = tiny_run / "whatif" / f"vasopressor_K{K}"
    for name in ("summary.json", "scenarios.csv", "effects.csv", "effects.png", "fidelity.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    eff = pl.read_csv(out / "effects.csv")
    assert set(eff["contrast"]) == {"norepinephrine - no_vasopressor", "norepinephrine - factual"}
    assert eff.height == 2 * H * 24 and (eff["lo"] <= eff["effect"]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["uncertainty"].startswith("stays") and summary["n_stays"] >= 5
    blob = b"".join(p.read_bytes() for p in out.iterdir())
    from clin_jepa.whatif import WhatIf

    for sid in WhatIf(tiny_run).corpus.stay_ids:
        assert str(int(sid)).encode() not in blob
    # too few stays for an aggregate, and a bad file: clear errors, exit code 2
    assert cli(["whatif", "--run", str(tiny_run), "--from-hour", str(K), "--horizon", str(H), "--scenario", scen,
                "--stays", "2"]) == 2
    assert "need >= 5" in capsys.readouterr().err
    assert cli(["whatif", "--run", str(tiny_run), "--from-hour", "6", "--scenario", str(tiny_run / "x.yaml")]) == 2


def test_evaluate_writes_whatif_json_and_the_report_tabulates_it(tiny_run):
    import json

    from clin_jepa.evaluation.whatif_table import whatif_table
    from clin_jepa.pipelines.cli import main as cli

    assert cli(["evaluate", "--run", str(tiny_run), "--only", "whatif"]) == 0
    res = json.loads((tiny_run / "eval" / "whatif.json").read_text())
    assert res["split"] == "test" and res["scenario_file"] == "vasopressor"
    assert set(res["summary"]) == {"model", "action_blind", "regression"}
    assert res["timing_s"]["total"] > 0 and res["seconds"] > 0
    records, views = whatif_table([tiny_run, tiny_run], [{"train": {"curriculum": "full"}}] * 2)
    assert len(records) == 2 and len(views[0].rows) == 1 and views[0].rows[0][4] == "0.500 +- 0.000"
