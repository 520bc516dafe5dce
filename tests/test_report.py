"""The report: files produced and parseable, reference columns, comparison grid, headline,
and no identifier of the data anywhere in the report."""

from __future__ import annotations

import csv
import json

import numpy as np
import polars as pl
import pytest
from clin_jepa.evaluation import displacement, drift, tasks
from clin_jepa.evaluation.baselines import fit_predict_flat
from clin_jepa.evaluation.report import build_report, headline

from clin_jepa.config import RunConfig
from clin_jepa.utils import write_json, write_parquet

N, T, D = 160, 30, 6
TABLE_STEMS = ("drift", "skill", "displacement", "tasks", "families", "decoding")
FIGURES = ("drift_curves", "displacement", "auroc_ci", "roc_curves", "training_curves", "decoding_vitals",
           "decoding_labs", "decoding_sofa")


def _decoding_result(rng, n_stays=40, H=12):
    """eval/decoding.json from the evaluation's own summary of constructed per-stay errors."""
    from clin_jepa.evaluation import rollout_decoding as rd

    from clin_jepa.models.decoders import DECODE_GROUPS, DECODE_VARIABLES

    V = len(DECODE_VARIABLES)
    count = rng.integers(0, 3, (n_stays, H, V)).astype(float)
    err = {m: count * rng.uniform(0.5, 2.0, (n_stays, H, V)) for m in rd.METHODS}
    undefined = {m: np.zeros((H, V), dtype=bool) for m in rd.METHODS}
    undefined["lightgbm"][[h for h in range(H) if h + 1 not in (1, 6, 12)]] = True
    res = {"split": "test", "horizon": H, "contexts": {"6": {"horizon": H, "n_stays": n_stays}},
           "variables": list(DECODE_VARIABLES), "groups": {g: list(v) for g, v in DECODE_GROUPS.items()},
           "methods": list(rd.METHODS), "reference": rd.REFERENCE, "lightgbm_horizons": [1, 6, 12]}
    return res | rd.summarize(err, count, undefined, rng.uniform(0.5, 2.0, V), 50, 0)



def _make_run(root, name="run_a", seed=0, curriculum="full", seeds=(0,)):
    """A run directory with real eval JSONs computed by the evaluation functions on constructed
    data, a data dir holding identifiers, and a training-metrics log."""
    rng = np.random.default_rng(seed)
    run = root / name
    data = run / "data"
    stay_ids = 30_000_000 + rng.choice(9_000_000, N, replace=False)
    subject_ids = 10_000_000 + rng.choice(9_000_000, N, replace=False)
    hadm_ids = 20_000_000 + rng.choice(9_000_000, N, replace=False)
    write_parquet(pl.DataFrame({"stay_id": stay_ids, "subject_id": subject_ids, "hadm_id": hadm_ids,
                                "los_hours": np.full(N, 40.0), "first_stay": [True] * N}), data / "cohort.parquet")
    cfg = RunConfig(run_dir=str(run))
    cfg.train.seed, cfg.train.curriculum = seed, curriculum
    cfg.eval.bootstrap, cfg.eval.seeds = 50, tuple(seeds)
    cfg.save(run / "config.yaml")

    latents = rng.normal(size=(N * T + 2, D)).astype(np.float32)
    state_ids = np.arange(N * T).reshape(N, T)
    lengths = rng.integers(8, T + 1, N)
    hour_mean = drift.hour_means(latents, state_ids[:100], lengths[:100])  # (T, D) of the "train" stays
    res = drift.rollout_drift(latents, np.full(N, N * T), state_ids, np.full((N, T), N * T + 1), lengths, None,
                              contexts=(6, 12), horizon=12, hour_mean=hour_mean, n_boot=50)
    write_json(run / "eval" / "drift.json", res)
    groups = np.where(rng.random(N) < 0.4, displacement.DETERIORATING, displacement.STABLE)
    res = displacement.evaluate_displacement({"latent": latents[state_ids], "raw": latents[state_ids][..., :3]},
                                             lengths, groups, 24, 6, 50)
    write_json(run / "eval" / "displacement.json", res)

    y = rng.integers(0, 2, N)
    split = np.array(["train"] * 100 + ["val"] * 30 + ["test"] * 30)
    labels = pl.DataFrame({"stay_id": stay_ids, "task": ["mort_hosp"] * N, "hour": [24] * N, "label": y})
    few = pl.DataFrame({"stay_id": stay_ids[:3], "task": ["sepsis"] * 3, "hour": [24] * 3, "label": [1, 0, 0]})
    rows, dropped = tasks.task_rows(pl.concat([labels, few]), stay_ids, np.full(N, T), split, 48)
    x = (y[:, None] + rng.normal(size=(N, 4))).astype(np.float32)[rows["row"].to_numpy()]

    def method(r, yy, tr, va, te, s):
        return fit_predict_flat("logreg", x[r], yy, tr, va, te, cfg.eval, s)

    res = tasks.evaluate_tasks(rows, {"probe": method, "logreg": method}, cfg.eval, dropped)
    write_json(run / "eval" / "tasks.json", res)
    write_json(run / "eval" / "decoding.json", _decoding_result(rng))
    (run / "logs").mkdir(parents=True, exist_ok=True)
    (run / "logs" / "metrics.jsonl").write_text(
        "\n".join(json.dumps({"step": s, "train/loss": 1.0 / s}) for s in range(1, 20)))
    return run, [stay_ids, subject_ids, hadm_ids]


def test_report_files_parse_and_hold_no_ids(tmp_path):
    run, ids = _make_run(tmp_path)
    other, ids_b = _make_run(tmp_path, "run_b", seed=1)
    out = build_report([run, other], tmp_path / "report")
    files = {p.name for p in out.iterdir()}
    for stem in TABLE_STEMS + ("comparison",):
        assert {f"{stem}.md", f"{stem}.csv", f"{stem}.tex"} <= files
    for stem in FIGURES:
        assert {f"{stem}.png", f"{stem}.pdf"} <= files
    assert {"manifest.json", "headline.json", "report.md"} <= files

    tasks_csv = list(csv.DictReader((out / "tasks.csv").open()))
    sepsis = [r for r in tasks_csv if r["task"] == "Sepsis"]
    assert sepsis and sepsis[0]["status"].startswith("insufficient positives (n=")  # reported, not dropped
    mort = [r for r in tasks_csv if r["task"] == "Hospital mortality" and r["method"] == "Clin-JEPA probe"]
    tasks_json = json.loads((run / "eval" / "tasks.json").read_text())
    auroc = tasks_json["tasks"]["mort_hosp"]["methods"]["probe"]["auroc"]
    assert [float(mort[0][k]) for k in ("auroc", "auroc_ci_low", "auroc_ci_high")] == pytest.approx(
        [auroc["value"], auroc["lo"], auroc["hi"]], rel=1e-5)  # tidy: one number per column (6 digits)
    assert int(mort[0]["n_stays"]) == 30 and int(mort[0]["n_rows"]) == 30
    drift_csv = list(csv.DictReader((out / "drift.csv").open()))
    cf = [r for r in drift_csv if r["method"] == "Copy-forward"]
    assert [r["context_h"] for r in cf] == ["6", "12"]  # numeric order
    d6 = json.loads((run / "eval" / "drift.json").read_text())["contexts"]["6"]["methods"]["copy_forward"]
    assert float(cf[0]["drift_pct"]) == pytest.approx(d6["drift_pct"], rel=1e-5)
    assert float(cf[0]["drift_pct_ci_low"]) <= float(cf[0]["drift_pct"]) <= float(cf[0]["drift_pct_ci_high"])
    assert "other world models" in (out / "drift.tex").read_text()  # the paper's figures: in the caption
    md = (out / "families.md").read_text().splitlines()
    header = md[2].split("|")
    assert all(len(line.split("|")) == len(header) for line in md[2:] if line.startswith("|"))
    assert "0.883" in (out / "families.md").read_text()  # paper reference
    comp = list(csv.DictReader((out / "comparison.csv").open()))
    probe = [r for r in comp if r["configuration"] == "full" and r["metric"] == "auroc.binary.probe"]
    assert len(probe) == 1 and probe[0]["n_seeds"] == "2"  # run_a and run_b differ only in their seeds
    seeds = [json.loads((r / "eval" / "tasks.json").read_text())["families"]["binary"]["means"]["probe"]["mean_auroc"]
             for r in (run, other)]
    assert [float(probe[0][k]) for k in ("seed_0", "seed_1", "mean", "sd")] == pytest.approx(
        [*seeds, np.mean(seeds), np.std(seeds, ddof=1)], rel=1e-5)
    assert "+-" in (out / "comparison.md").read_text()  # two seeds: mean +- sd
    man = json.loads((out / "manifest.json").read_text())
    assert man["runs"][0]["seeds"]["train"] == 0 and man["packages"]["torch"]

    blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for arr in ids + ids_b:
        for v in arr:
            assert str(int(v)).encode() not in blob


def test_headline_and_missing_eval(tmp_path):
    run, _ = _make_run(tmp_path)
    h = headline(run)
    assert h["displacement_ratio"] is not None
    assert set(h["mean_auroc"]) == {"binary", "eep"}
    assert h["mean_auroc"]["eep"]["model"] is None and h["mean_auroc"]["eep"]["n_tasks"] == 0
    (run / "eval" / "tasks.json").unlink()
    with pytest.raises(FileNotFoundError, match="clin-jepa evaluate"):
        build_report([run])
    (run / "eval" / "drift.json").write_text("{truncated")
    with pytest.raises(ValueError, match="rerun"):
        build_report([run])


def test_headline_compares_with_the_best_baseline_and_the_baseline_average(tmp_path):
    """The paper's gains are against the baselines' average; the headline gives both differences."""
    from clin_jepa.evaluation.report import format_headline

    def fam(n):
        return {"mean_auroc": n[0], "mean_auprc": 0.3, "n_tasks": n[1]}

    families = {"binary": {"n_tasks": 8, "n_tasks_ok": 3, "best_baseline": "lightgbm",
                           "means": {"probe": fam((0.80, 3)), "probe_rollout": fam((0.95, 3)),
                                     "probe_context": fam((0.76, 3)),
                                     "logreg": fam((0.70, 3)), "lightgbm": fam((0.78, 3)), "lstm": fam((0.74, 3)),
                                     "tcn": fam((None, 0))}}}  # not evaluated: not in the average
    write_json(tmp_path / "eval" / "tasks.json", {"families": families})
    m = headline(tmp_path)["mean_auroc"]["binary"]
    assert m["best_baseline_auroc"] == pytest.approx(0.78) and m["n_baselines"] == 3
    assert m["baseline_average_auroc"] == pytest.approx(0.74)  # (0.70 + 0.78 + 0.74) / 3, no probe
    assert m["model_minus_best_baseline"] == pytest.approx(0.02)
    assert m["model_minus_baseline_average"] == pytest.approx(0.06)
    text = format_headline(headline(tmp_path))
    assert "best baseline: LightGBM" in text and "+0.020" in text
    assert "baseline average (3 baselines)" in text and "+0.060" in text
    # the world-model probes sit beside the headline probe, against both references
    ctx = m["other_probes"]["probe_context"]
    assert ctx["auroc"] == pytest.approx(0.76) and ctx["minus_best_baseline"] == pytest.approx(-0.02)
    assert ctx["minus_baseline_average"] == pytest.approx(0.02) and set(m["other_probes"]) == {"probe_rollout", "probe_context"}
    assert "Clin-JEPA context probe" in text and "vs best -0.020, vs average +0.020" in text


# ---------------------------------------------------------------------- #
# end to end on a tiny trained run: sft -> pretrain -> embed -> evaluate -> report
# ---------------------------------------------------------------------- #

TINY_CURRICULUM = """phases:
  - {name: warmup, encoder: frozen, targets: online, ema: "off", rollout: native, ends: {steps: 2}}
  - {name: joint, encoder: trainable, targets: ema, ema: update, rollout: teacher_forced, ends: {steps: 2}}
  - {name: sync, ends: {instant: hard_sync}}
  - {name: finalize, encoder: frozen, targets: online, ema: "off", rollout: native, ends: {steps: 2}}
"""


@pytest.mark.slow
def test_embed_evaluate_report_on_a_tiny_trained_run(extracted_data_dir, tmp_path):
    from clin_jepa.pipelines.cli import main as cli

    run = tmp_path / "run"
    (tmp_path / "tiny.yaml").write_text(TINY_CURRICULUM)
    sets = [f"data.data_dir={extracted_data_dir}", "data.window_hours=24", "sft.steps=2",
            f"train.curriculum={tmp_path / 'tiny.yaml'}", "optim.batch_size=4", "train.val_stays=4",
            "eval.contexts=[6]", "eval.horizon=12", "eval.displacement_window=12", "eval.bootstrap=20",
            "eval.probe_epochs=2", "eval.seq_epochs=1", "eval.max_eep_hours=4", "eval.min_positives=1",
            "eval.baselines=[logreg,tcn]",
            "data.text_mode=snapshot"]  # the snapshot texts end to end (test_demo runs the default, events)
    args = [a for s in sets for a in ("--set", s)]
    assert cli(["sft", "--run", str(run), *args]) == 0
    assert cli(["pretrain", "--run", str(run)]) == 0
    assert cli(["evaluate", "--run", str(run)]) == 2  # embeddings missing: a clear error, not a crash
    assert cli(["embed", "--run", str(run)]) == 0
    _assert_embed_uses_the_trained_adapters(run)
    stamp = (run / "embeddings" / "latents.npy").stat().st_mtime_ns
    assert cli(["embed", "--run", str(run)]) == 0  # fingerprint current: not recomputed
    assert (run / "embeddings" / "latents.npy").stat().st_mtime_ns == stamp
    assert cli(["evaluate", "--run", str(run)]) == 0
    assert cli(["report", "--run", str(run)]) == 0

    drift_res = json.loads((run / "eval" / "drift.json").read_text())
    c6 = drift_res["contexts"]["6"]
    assert c6["horizon"] == 12 and set(c6.get("methods", {})) <= {"model", "copy_forward", "linear", "hour_mean"}
    if "methods" in c6:  # the model is scored against both reference predictors
        assert set(c6["methods"]["model"]["skill"]) == {"hour_mean", "copy_forward"}
    tasks_res = json.loads((run / "eval" / "tasks.json").read_text())
    assert set(tasks_res["tasks"]) == set(tasks.BINARY_TASKS + tasks.EEP_TASKS)
    for t in tasks_res["tasks"].values():
        if t["status"] == "ok":
            rollout = {"probe_rollout"} if t["family"] == "binary" else set()
            assert set(t["methods"]) == {"probe", "probe_context", "probe_actions", "logreg", "tcn"} | rollout
            assert 0.0 <= t["methods"]["probe"]["auroc"]["value"] <= 1.0
        else:
            assert t["status"].startswith(("insufficient positives (n=", "no negatives", "no label rows"))
    dec = json.loads((run / "eval" / "decoding.json").read_text())  # rollout decoding: real decoders and forecasters
    assert dec["contexts"]["6"]["horizon"] == 12 and dec["decoder"]["split"] == "train"
    for m in ("model", "lvcf"):
        assert all(np.isfinite(dec["per_group"][g][m]["mase"][0]) for g in ("vitals", "sofa")), m
        assert np.isfinite(dec["per_variable"]["heart_rate"][m]["mae"][0]), m
    assert {"decoding.md", "decoding.tex", "decoding.csv", "decoding_vitals.png"} <= {
        p.name for p in (run / "report").iterdir()}
    assert tasks_res["representation"]["probe_context"] == "[c_k]"
    assert tasks_res["representation"]["probe_actions"] == "[c_k, mean(a_0..a_k)]"
    embedded = pl.read_parquet(run / "embeddings" / "texts.parquet")["text"]
    assert embedded.str.contains("h ago)", literal=True).any()  # the run's text mode reached the encoder
    h = headline(run)
    assert set(h) == {"drift_pct", "displacement_ratio", "displacement_reference", "mean_auroc"}
    assert set(h["displacement_reference"]) <= {"perfect_encoder", "raw"}
    cohort = pl.read_parquet(extracted_data_dir / "cohort.parquet")
    blob = b"".join(p.read_bytes() for p in (run / "report").rglob("*") if p.is_file())
    for col in ("stay_id", "subject_id", "hadm_id"):
        for v in cohort[col].to_list():
            assert str(v).encode() not in blob, f"{col} value in the report"


def _assert_embed_uses_the_trained_adapters(run):
    """docs/demo.md: the same adapters in training and evaluation. RUN/final/encoder holds the
    trainer's last online/target adapters (equal to its last phase checkpoint), training changed
    both away from the SFT adapter, and the latents `embed` wrote are what an encoder with
    RUN/final/encoder/online loaded gives, not what the SFT adapter gives."""
    import torch
    from clin_jepa.evaluation import embeddings
    from safetensors.torch import load_file

    from clin_jepa.config import load_run_config
    from clin_jepa.run import RunDir

    def adapter(folder):
        return load_file(str(folder / "adapter_model.safetensors"))

    rd = RunDir(run)
    cfg = load_run_config(run)
    sft = adapter(rd.sft_adapter)
    last_phase = sorted((run / "checkpoints").glob("[0-9][0-9]_*"))[-1] / "encoder"
    for name in ("online", "target"):
        final = adapter(rd.final_encoder / name)
        assert set(final) == set(sft)
        trainer = adapter(last_phase / name)
        assert all(torch.equal(final[k], trainer[k]) for k in final), f"final {name} != trainer's last {name}"
        assert max(float((final[k].float() - sft[k].float()).abs().max()) for k in final) > 0, \
            f"training left the {name} adapter at the SFT adapter"

    texts = pl.read_parquet(run / "embeddings" / "texts.parquet").sort("text_id")["text"].to_list()
    texts = texts[:: max(1, len(texts) // 24)][:24]  # some states, actions and demographics
    written = embeddings.load(run, texts)  # (24, D) what embed wrote, looked up by text
    final_enc = rd.load_final_encoder(cfg, device="cpu")
    np.testing.assert_allclose(final_enc.encode(texts, adapter="online").float().numpy(), written,
                               rtol=1e-4, atol=1e-5)
    enc = rd.load_sft_encoder(cfg, device="cpu")  # online = the SFT adapter
    before = enc.encode(texts, adapter="online").float().numpy()
    assert np.abs(before - written).max() > 1e-4, "embed's latents are the SFT encoder's"
    enc.load_adapter(rd.final_encoder / "online", "online")
    np.testing.assert_allclose(enc.encode(texts, adapter="online").float().numpy(), written, rtol=1e-4, atol=1e-5)


def test_embeddings_and_predictor_errors_name_the_fix(tmp_path):
    import dataclasses

    import torch
    from clin_jepa.evaluation import embeddings
    from safetensors.torch import save_file

    from clin_jepa.models import build_predictor

    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="clin-jepa embed"):
        embeddings.load(run, ["a"])
    (run / "embeddings").mkdir(parents=True)
    pl.DataFrame({"text_id": [0, 1], "text": ["a", "b"]}).write_parquet(run / "embeddings" / "texts.parquet")
    np.save(run / "embeddings" / "latents.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(embeddings.load(run, ["b", "a"])[0], [3, 4, 5])  # looked up by text
    with pytest.raises(ValueError, match="data changed"):
        embeddings.load(run, ["a", "c"])
    (run / "embeddings" / "latents.npy").write_bytes(b"\x93NUMPY trunc")
    with pytest.raises(ValueError, match="--force"):
        embeddings.load(run, ["a", "b"])

    with pytest.raises(FileNotFoundError, match="clin-jepa pretrain"):
        embeddings.load_final_predictor(run)
    pred = build_predictor("debug", latent_dim=8)
    (run / "final").mkdir()
    (run / "final" / "predictor.json").write_text(json.dumps(dataclasses.asdict(pred.config)))
    save_file({k: v.contiguous() for k, v in pred.state_dict().items()}, str(run / "final" / "predictor.safetensors"))
    loaded = embeddings.load_final_predictor(run)
    for k, v in pred.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    blob = (run / "final" / "predictor.safetensors").read_bytes()
    (run / "final" / "predictor.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated"):
        embeddings.load_final_predictor(run)
