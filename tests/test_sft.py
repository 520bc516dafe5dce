"""SFT stage: real tokenizer training, real debug Qwen3 + peft, real parquet in, real files out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from clin_jepa.pipelines.cli import main as cli
from safetensors.torch import load_file

from clin_jepa.config import load_config
from clin_jepa.data.tokenizer import sample_clinical_texts
from clin_jepa.models import build_encoder
from clin_jepa.training.sft import load_sft_encoder, next_token_loss, sft_texts, split_heldout

STAYS = 40



def _own_data_dir(out: Path) -> Path:
    """Hourly texts in the extraction's layout (used until the data layer's fixture is importable)."""
    out.mkdir(parents=True)
    pool = sample_clinical_texts(STAYS * 24, seed=7)
    rows = [{"stay_id": 1000 + s, "hour": h, "state_text": pool[s * 24 + h],
             "action_text": "No intervention." if h % 3 else f"Norepinephrine 0.0{1 + s % 9} mcg/kg/min."}
            for s in range(STAYS) for h in range(24)]
    pl.DataFrame(rows).write_parquet(out / "texts.parquet")
    pl.DataFrame({"stay_id": [1000 + s for s in range(STAYS)],
                  "demo_text": [f"Age {30 + s}, {'female' if s % 2 else 'male'}, white, emergency admission."
                                for s in range(STAYS)]}).write_parquet(out / "demographics.parquet")
    pl.DataFrame({"stay_id": [1000 + s for s in range(STAYS)], "subject_id": list(range(STAYS))}
                 ).write_parquet(out / "cohort.parquet")
    pl.DataFrame({"subject_id": list(range(STAYS)),
                  "split": ["test" if s % 5 == 0 else "train" for s in range(STAYS)]}
                 ).write_parquet(out / "splits.parquet")
    return out


@pytest.fixture(scope="module")
def data_dir(request, tmp_path_factory) -> Path:
    try:
        import clin_jepa.data.extract  # noqa: F401
        import clin_jepa.data.synth  # noqa: F401
    except ImportError:
        return _own_data_dir(tmp_path_factory.mktemp("sftdata") / "data")
    return request.getfixturevalue("extracted_data_dir")


def _sft(run: Path, data_dir: Path, *extra: str) -> int:
    return cli(["sft", "--run", str(run), "--set", f"data.data_dir={data_dir}", "--set", "sft.steps=40",
                "--set", "sft.batch_size=16", "--set", "sft.lr=5e-3", "--set", "tokenizer.vocab_size=512",
                "--set", "sft.val_fraction=0.1", *extra])


@pytest.fixture(scope="module")
def sft_run(data_dir, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "run"
    assert _sft(run, data_dir) == 0
    return run


def test_sft_writes_loadable_files(sft_run):
    for rel in ("config.yaml", "tokenizer/tokenizer.json", "sft/base/config.json", "sft/adapter/adapter_config.json",
                "sft/adapter/adapter_model.safetensors", "sft/metrics.json"):
        assert (sft_run / rel).exists(), rel
    assert not list(sft_run.rglob(".*.tmp"))  # no temporaries left behind
    cfg = load_config(sft_run / "config.yaml")
    enc = load_sft_encoder(sft_run, cfg)
    assert enc.online_target_gap() < 1e-5
    z = enc.encode(["No intervention.", "Heart rate 91 bpm. SpO2 96 %."], adapter="target")
    assert z.shape == (2, enc.hidden_size) and torch.isfinite(z).all()
    assert not any(p.requires_grad for p in enc.model.parameters())


def test_sft_lowers_heldout_next_token_loss(sft_run, data_dir):
    cfg = load_config(sft_run / "config.yaml")
    _, held = split_heldout(sft_texts(data_dir), cfg.sft.val_fraction)
    assert len(held) >= 10
    untrained = build_encoder("debug", cfg.encoder, tokenizer_dir=sft_run / "tokenizer")
    trained = load_sft_encoder(sft_run, cfg)
    before, after = next_token_loss(untrained, held), next_token_loss(trained, held)
    assert after < 0.7 * before, (before, after)


def test_sft_deterministic(data_dir, tmp_path):
    # two short runs of one config (a rerun of the 40-step fixture cost ~4x more for the same check)
    runs = [tmp_path / "first", tmp_path / "again"]
    assert all(_sft(run, data_dir, "--set", "sft.steps=6") == 0 for run in runs)
    a, b = (load_file(str(run / "sft" / "adapter" / "adapter_model.safetensors")) for run in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (runs[0] / "tokenizer" / "tokenizer.json").read_text() == (runs[1] / "tokenizer" / "tokenizer.json").read_text()


def test_sft_uses_train_split_only(data_dir):
    train, every = sft_texts(data_dir, "train"), sft_texts(data_dir, None)
    assert set(train) < set(every)
    assert train == sorted(set(train))


def test_sft_bad_inputs(tmp_path, data_dir, capsys):
    assert cli(["sft", "--run", str(tmp_path / "r1"), "--set", f"data.data_dir={tmp_path / 'nodata'}"]) == 2
    assert "texts.parquet not found" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    pl.DataFrame({"stay_id": [1], "hour": [0], "state": ["x"]}).write_parquet(bad / "texts.parquet")
    pl.DataFrame({"stay_id": [1], "demo_text": ["Age 50."]}).write_parquet(bad / "demographics.parquet")
    with pytest.raises(ValueError, match=r"lacks columns \['state_text', 'action_text'\]"):
        sft_texts(bad)
    with pytest.raises(ValueError, match="unknown config key sft.stepz"):
        load_config(overrides=["sft.stepz=3"])
    with pytest.raises(FileNotFoundError, match="run `clin-jepa sft"):
        load_sft_encoder(tmp_path / "r3", load_config())


def test_latent_content_command_on_a_tiny_run(sft_run, capsys):
    """`clin-jepa latent-content` on the SFT encoder: a table per variable the state text reads,
    RUN/eval/latent_content.json with held-out counts matching the texts' own values."""
    import json

    from clin_jepa.evaluation.latent_content import parse_values, split_state_texts

    assert cli(["latent-content", "--run", str(sft_run), "--max-texts", "400", "--source", "sft"]) == 0
    out = json.loads((sft_run / "eval" / "latent_content.json").read_text())
    assert out["source"] == "sft" and out["flavor"] == "debug" and out["latent_dim"] == 64
    cfg = load_config(str(sft_run / "config.yaml"), [])
    fit, held = split_state_texts(cfg.data_path, 400, seed=0, text_mode=cfg.data.text_mode,
                                  window_hours=cfg.data.window_hours)
    assert (out["texts_fit"], out["texts_heldout"]) == (len(fit), len(held)) and not set(fit) & set(held)
    early = split_state_texts(cfg.data_path, 400, seed=0, window_hours=3)  # only the hours a run encodes
    hours = np.concatenate([parse_values(t)["Hour"] for t in early])
    assert hours.size and np.nanmax(hours) <= 2
    values = parse_values(held)
    for label in ("HR", "MAP", "SpO2", "Cr", "Lactate", "SOFA", "Hour"):
        assert out["variables"][label]["texts_heldout"] == int((~np.isnan(values[label])).sum())
    scored = [v["r2"] for v in out["variables"].values() if v["r2"] is not None]
    assert scored and all(np.isfinite(scored))
    assert "| HR |" in capsys.readouterr().out


def test_latent_content_parsing_and_ridge():
    """The parser reads every value of a state text (no label read inside another: K vs KDIGO,
    pO2 vs SpO2), and the ridge scores a linearly planted value near 1 and noise near 0."""
    from clin_jepa.evaluation.latent_content import parse_values, ridge_r2

    text = ("Hour 5. HR 88 bpm, SpO2 97%; pO2 80 mmHg, Lactate 2.5 mmol/L; K 4.2 mEq/L, Cr 1.1 mg/dL; "
            "GCS E4 V5 M6; Urine 60 mL; SOFA 3, KDIGO 1.")
    v = {k: float(a[0]) for k, a in parse_values([text, "No new observations."]).items()}
    assert (v["Hour"], v["HR"], v["SpO2"], v["pO2"], v["Lactate"], v["K"], v["Cr"]) == (5, 88, 97, 80, 2.5, 4.2, 1.1)
    assert (v["E"], v["V"], v["M"], v["Urine"], v["SOFA"], v["KDIGO"]) == (4, 5, 6, 60, 3, 1)
    assert np.isnan(v["MAP"]) and np.isnan(v["pCO2"])
    assert all(np.isnan(a[1]) for a in parse_values([text, "No new observations."]).values())
    rng = np.random.default_rng(0)
    z = rng.normal(size=(600, 16))
    y = z @ rng.normal(size=16)
    assert ridge_r2(z[:400], y[:400], z[400:], y[400:]) > 0.99
    assert ridge_r2(z[:400], rng.normal(size=400), z[400:], rng.normal(size=200)) < 0.1
