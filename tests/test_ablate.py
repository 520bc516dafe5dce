"""The ablation grid (`clin-jepa ablate`): each phase removed one at a time, paradigm variants,
and a two-seed grid whose comparison tables and paired tests come from the runs' own outputs.
(The removals' 1-step trainings: tests/test_trainer.py::test_ablations_and_paradigms_run.)"""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from clin_jepa.pipelines import ablate
from clin_jepa.pipelines.ablate import PARADIGMS, parse_paradigm
from clin_jepa.pipelines.cli import main as cli
from safetensors.torch import load_file

from clin_jepa.training.curriculum import CURRICULUM_DIR, load_curriculum

TINY = ["sft.steps=2", "train.steps_scale=0.04", "optim.batch_size=4", "train.val_stays=8", "data.window_hours=36",
        "eval.contexts=[6,12]", "eval.horizon=12", "eval.displacement_window=12", "eval.bootstrap=20",
        "eval.probe_epochs=2", "eval.max_eep_hours=6", "eval.min_positives=1", "eval.baselines=[logreg]"]


def test_grid_is_full_with_each_phase_removed_plus_the_paradigms():
    assert PARADIGMS[0] == "full"  # the reference of the paired tests
    full = load_curriculum("full").phases
    for i, phase in enumerate(full):  # no_<phase>: the other phases, in order, with their own budgets
        name = f"no_{phase.name}"
        assert name in PARADIGMS
        removed = load_curriculum(name).phases
        expect = list(full[:i] + full[i + 1:])
        if phase.name == "sync":  # without the sync, phase 5 reads the (un-synced) EMA target it names
            expect[-1] = replace(expect[-1], targets="ema")
        assert list(removed) == expect, name
    assert {"no_align_sync", "naive_cotrain", "sft_frozen", "vjepa2_ac", "full@snapshot"} <= set(PARADIGMS)
    for name in {parse_paradigm(p).curriculum for p in PARADIGMS}:
        assert yaml.safe_load((CURRICULUM_DIR / f"{name}.yaml").read_text())["description"].strip()
    snap = parse_paradigm("full@snapshot")  # the text mode is read after the extraction: shared data, own SFT
    assert snap.overrides == ["data.text_mode=snapshot", "encoder.max_length=320"] and snap.tag("extract") == "" and snap.tag("sft") == "snapshot"


def test_paradigm_variants_parse_generically_with_clear_errors(monkeypatch):
    p = parse_paradigm("full")
    assert (p.curriculum, p.overrides, p.name, p.tag("sft")) == ("full", [], "full", "")
    p = parse_paradigm("no_sync@optim.lr_predictor=0.002")
    assert p.curriculum == "no_sync" and p.overrides == ["optim.lr_predictor=0.002"]
    assert p.tag("sft") == "" and p.tag("pretrain") == "optim.lr_predictor=0.002"  # shares data and SFT
    p = parse_paradigm("full@data.split_seed=7@sft.steps=5")
    assert p.tag("extract") == "data.split_seed=7" and p.tag("sft") == "data.split_seed=7@sft.steps=5"
    monkeypatch.setitem(ablate.VARIANTS, "slow_lr", ("optim.lr_predictor=1e-4", "optim.lr_encoder=1e-5"))
    p = parse_paradigm("full@slow_lr")
    assert p.overrides == ["optim.lr_predictor=1e-4", "optim.lr_encoder=1e-5"] and p.name == "full@slow_lr"
    for bad, match in (("@slow_lr", "name a curriculum"), ("full@fast", "unknown variant 'fast'.*slow_lr"),
                       ("full@train.curriculum=no_sync", "the curriculum is the name before")):
        with pytest.raises(ValueError, match=match):
            parse_paradigm(bad)


@pytest.mark.parametrize("paradigms, match", [("full,no_such_thing", "no_such_thing"),
                                              ("full@optim.no_such_key=1", "no_such_key"),
                                              ("full,full", "twice")])
def test_bad_grid_fails_before_any_work(tmp_path, capsys, paradigms, match):
    assert cli(["ablate", "--out", str(tmp_path / "a"), "--paradigms", paradigms]) == 2
    assert match in capsys.readouterr().err and not (tmp_path / "a").exists()


def _adapter(path):
    return load_file(str(path / "adapter_model.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _csv(path):
    return list(csv.DictReader(path.open()))


def _family_mean(run, fam="eep"):
    return json.loads((run / "eval" / "tasks.json").read_text())["families"][fam]["means"]["probe"]["mean_auroc"]


@pytest.mark.slow
def test_two_seed_grid_tables_paired_tests_and_rerun(extracted_data_dir, tmp_path, capsys):
    out = tmp_path / "ablate"
    variant = "sft_frozen@optim.lr_predictor=0.002"
    args = ["ablate", "--out", str(out), "--seeds", "2", "--jobs", "2", "--paradigms", f"full,{variant}",
            *[a for s in (*TINY, f"data.data_dir={extracted_data_dir}") for a in ("--set", s)]]
    assert cli(args) == 0
    runs = {(p, s): out / "runs" / f"{p}_s{s}" for p in ("full", variant) for s in (0, 1)}
    assert sorted(d.name for d in out.iterdir() if d.name.startswith("sft")) == ["sft_s0", "sft_s1"]  # shared
    assert not (out / "mimic").exists()  # the data was already extracted: no synthetic source needed
    for (p, s), run in runs.items():
        sft = _adapter(out / f"sft_s{s}" / "sft" / "adapter")
        assert _same(_adapter(run / "sft" / "adapter"), sft)  # every paradigm starts from its seed's SFT encoder
        online, target = _adapter(run / "final" / "encoder" / "online"), _adapter(run / "final" / "encoder" / "target")
        assert _same(online, sft) == (p != "full")  # sft_frozen never trains the encoder
        assert _same(online, target)  # full: hard sync, then frozen; sft_frozen: both the SFT encoder
    assert yaml.safe_load((runs[(variant, 1)] / "config.yaml").read_text())["optim"]["lr_predictor"] == 0.002
    for key, run in runs.items():  # the baselines are fitted once (same data, splits, eval seeds)
        methods = json.loads((run / "eval" / "tasks.json").read_text())["methods"]
        assert ("logreg" in methods) == (key == ("full", 0))

    comp = _csv(out / "report" / "comparison.csv")
    for p in ("full", variant):
        row = next(r for r in comp if r["configuration"] == p and r["metric"] == "auroc.eep.probe")
        seeds = [_family_mean(runs[(p, s)]) for s in (0, 1)]
        assert row["n_seeds"] == "2" and [float(row[k]) for k in ("seed_0", "seed_1", "mean", "sd")] == \
            pytest.approx([*seeds, np.mean(seeds), np.std(seeds, ddof=1)], rel=1e-5)
        assert {r["metric"] for r in comp if r["configuration"] == p} >= {
            "drift.mean_drift_pct", "drift.mean_skill_vs_hour_mean", "displacement.latent_ratio"}
    assert any(r["configuration"] == "reference" and r["metric"] == "auroc.eep.best_baseline" for r in comp)
    md = (out / "report" / "comparison.md").read_text()
    assert "+-" in md and variant in md and (out / "report" / "comparison.tex").exists()
    assert "Decoded vitals MASE" in md and "decoding.mase" not in md  # every column has a display name

    tests = _csv(out / "report" / "comparison_tests.csv")
    eep = [r for r in tests if r["family"].startswith("Early event")]
    assert len(eep) == 1 and eep[0]["status"] == "ok" and eep[0]["configuration"] == variant
    assert int(eep[0]["n_seeds"]) == 2 and float(eep[0]["lo"]) <= float(eep[0]["delta"]) <= float(eep[0]["hi"])
    expect = np.mean([_family_mean(runs[(variant, s)]) - _family_mean(runs[("full", s)]) for s in (0, 1)])
    assert float(eep[0]["delta"]) == pytest.approx(expect, abs=1e-6)  # paired over seeds and the same test rows

    stamp = {k: (r / "eval" / "tasks.json").stat().st_mtime_ns for k, r in runs.items()}
    first = json.loads((out / "ablation.json").read_text())["stage_seconds"]
    ran = [t for name, run in first.items() if name != "shared" for t in run.values()]  # shared: the fixture's
    assert ran and all(t["this_launch"] and t["wall"] > 0 and t["attempts"] == 1 for t in ran)
    assert first["shared"]["DuckDB extraction"] == {"wall": 0.0, "cpu": 0.0, "attempts": 0, "this_launch": False}
    assert cli(args) == 0  # a rerun skips every completed stage
    stages = json.loads((out / "ablation.json").read_text())["stage_seconds"]
    assert not any(t["this_launch"] for run in stages.values() for t in run.values())

    def cost(timings: dict) -> dict:
        return {r: {k: {f: v for f, v in t.items() if f != "this_launch"} for k, t in x.items()}
                for r, x in timings.items()}

    assert cost(stages) == cost(first)  # the skipped stages report what they cost when they ran
    assert stamp == {k: (r / "eval" / "tasks.json").stat().st_mtime_ns for k, r in runs.items()}
    assert "Comparison tables" in capsys.readouterr().out


def test_paired_test_over_seeds_and_stays():
    from clin_jepa.evaluation.compare import paired_auroc_test
    from clin_jepa.evaluation.metrics import auroc

    def scores(signal, seed):  # two tasks on 60 test stays (3 rows each), labels shared by every run
        r = np.random.default_rng(seed)
        out = {}
        for t in ("a", "b"):
            y = np.random.default_rng(len(t) + ord(t)).integers(0, 2, 180)
            out[t] = {"y": y, "stay": np.repeat(np.arange(60), 3), "probe": signal * y + r.normal(size=180)}
        return out

    ref = [scores(0.3, s) for s in (1, 2)]
    same = paired_auroc_test(ref, ref, ["a", "b"], n_boot=200)
    assert same["status"] == "ok" and same["delta"] == 0 and same["p_value"] == 1.0 and same["n_stays"] == 60
    better = paired_auroc_test(ref, [scores(2.0, s) for s in (3, 4)], ["a", "b"], n_boot=200)
    expect = np.mean([auroc(o[t]["y"], o[t]["probe"]) - auroc(r[t]["y"], r[t]["probe"])
                      for r, o in zip(ref, [scores(2.0, s) for s in (3, 4)]) for t in ("a", "b")])
    assert better["delta"] == pytest.approx(expect) and 0 < better["lo"] < better["delta"] < better["hi"]
    assert better["p_value"] < 0.01 and better["n_seeds"] == 2 and better["n_tasks"] == 2
    other = scores(0.3, 5)
    other["a"]["y"] = 1 - other["a"]["y"]
    assert paired_auroc_test(ref[:1], [other], ["a", "b"], 50)["status"].startswith("different test rows")
    assert paired_auroc_test([None], [other], ["a"], 50)["status"].startswith("no per-row")


def test_run_metrics_read_added_evaluations_generically(tmp_path):
    from clin_jepa.evaluation.compare import label, run_metrics

    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "decoding.json").write_text(json.dumps(
        {"per_group": {"vitals": {"model": {"mase": [1.0, None, 2.0]}, "lvcf": {"mase": [1.0]}}}}))
    (tmp_path / "eval" / "whatif.json").write_text(json.dumps(
        {"summary": {"model": {"sign_accuracy": 0.7, "median_correlation": None}, "action_blind": {"x": 1}}}))
    metrics, refs = run_metrics(tmp_path)
    assert metrics == {"decoding.mase_vitals": 1.5, "whatif.sign_accuracy": 0.7} and refs == {}
    assert label("auroc.eep.probe") == "Early events: Clin-JEPA probe" and label("whatif.sign_accuracy")


def test_workers_end_when_the_ablation_process_is_killed(tmp_path):
    """`ablate --jobs N` workers get SIGTERM (a saved, resumable state in the trainer) when their
    parent dies, even by SIGKILL, instead of training on as orphans: the real executor set-up."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing, os, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from clin_jepa.pipelines.ablate import _die_with_parent\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'),\n"
        "                               initializer=_die_with_parent, initargs=(os.getpid(),))\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 300)\n"
        "    time.sleep(300)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(worker, 0)  # alive, busy sleeping for its parent
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail(f"worker {worker} outlived its killed parent by 30 s")


def test_a_free_worker_takes_the_run_whose_prerequisite_took_longest():
    """Longest job first: the snapshot run (its SFT took ~4x) before queued events runs; ties keep
    the grid's order (the full schedule runs in test_two_seed_grid_tables_paired_tests_and_rerun)."""
    ready = [(143.5, "no_warmup"), (143.5, "no_joint"), (526.9, "full@snapshot"), (143.5, "no_sync")]
    assert ablate._longest_first(ready) == 2
    ready.pop(2)
    assert [ablate._longest_first(ready[i:]) for i in range(3)] == [0, 0, 0]
    assert ablate._longest_first([(0.0, "sft_s0"), (0.0, "sft@snapshot_s0")]) == 0


def test_comparison_columns_have_display_names_and_counts_no_decimals():
    from clin_jepa.evaluation.compare import _cell, _nd, label

    assert label("whatif.sign_accuracy") == "What-if sign acc." and label("decoding.mase_sofa") == "Decoded SOFA MASE"
    assert _cell({"mean": 94364.0, "sd": None}, *_nd("whatif.material_effects")) == "94364"
    assert _cell({"mean": 1.634, "sd": 0.02}, *_nd("decoding.mase_vitals")) == "1.63 +- 0.02"


def test_a_failed_run_stops_the_grid_before_its_dependents_start(tmp_path):
    """With --jobs 2: a run that fails in its worker (here an unreadable config) raises in the
    parent with its message; the runs waiting on it never start."""
    from clin_jepa.run import RunDir

    bad, after = RunDir(tmp_path / "sft_s0"), RunDir(tmp_path / "runs" / "full_s0")
    bad.root.mkdir()
    bad.config_file.write_text("train: [unclosed\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        ablate._schedule([(bad, ["sft"], None), (after, ["pretrain"], bad)], jobs=2, force=False)
    assert not after.root.exists()
