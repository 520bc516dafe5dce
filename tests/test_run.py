"""The run directory's lifecycle (clin_jepa.run.RunDir): created once with validated settings,
used and moved from any directory, never rewritten silently, changed only explicitly, and
a damaged config.yaml is an error naming the file. Real stages on tiny data."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from clin_jepa.pipelines.cli import main as cli
from test_trainer import SMALL
from test_windows import write_tiny_data

from clin_jepa.config import load_config, load_run_config
from clin_jepa.run import CONFIG_END, RunDir

TINY = ["sft.steps=2", "tokenizer.vocab_size=300", "optim.batch_size=4", "train.val_stays=3",
        "data.window_hours=6", "optim.warmup_steps=2"]


def _sets(*extra: str) -> list[str]:
    return [a for s in (*TINY, *extra) for a in ("--set", s)]


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """A working directory with tiny data and a small curriculum, relative paths only."""
    work = tmp_path / "work"
    work.mkdir()
    write_tiny_data(work / "tiny", stays=12, hours=8)
    (work / "small.yaml").write_text(yaml.safe_dump(SMALL))
    monkeypatch.chdir(work)
    return work


def test_run_created_in_one_directory_continues_from_another_and_moves(cwd, tmp_path, monkeypatch, capsys):
    shutil.copytree(cwd / "tiny", cwd / "runs" / "a" / "data")  # the run's own data directory
    assert cli(["sft", "--run", "runs/a", *_sets(f"train.curriculum={cwd / 'small.yaml'}")]) == 0
    run = RunDir(cwd / "runs" / "a")
    saved = run.config_file.read_text()
    tree = yaml.safe_load(saved)
    assert "run_dir" not in tree and tree["data"]["data_dir"] == ""  # nothing relative to the working directory
    assert saved.rstrip().endswith(CONFIG_END)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli(["pretrain", "--run", str(run.root), "--set", "train.stop_after_steps=3"]) == 2
    assert "train.stop_after_steps: run 0, given 3" in capsys.readouterr().err  # refused, not saved
    assert cli(["pretrain", "--run", str(run.root)]) == 0
    assert run.config_file.read_text() == saved  # no stage rewrote the settings
    assert json.loads(run.pretrain_summary.read_text())["finished"]

    moved = RunDir(tmp_path / "moved")
    shutil.move(run.root, moved.root)
    cfg = moved.load_config()
    assert cfg.run_dir == str(moved.root) and cfg.data_path == moved.root / "data"
    assert cli(["pretrain", "--run", str(moved.root), "--resume"]) == 0  # finds its data and checkpoints


def test_paths_given_relative_are_resolved_once_at_creation(cwd, tmp_path, monkeypatch):
    assert cli(["sft", "--run", "r", *_sets("data.data_dir=tiny", "train.curriculum=small.yaml")]) == 0
    tree = yaml.safe_load((cwd / "r" / "config.yaml").read_text())
    assert tree["data"]["data_dir"] == str(cwd / "tiny")  # outside the run: absolute
    assert tree["train"]["curriculum"] == str(cwd / "small.yaml")
    monkeypatch.chdir(tmp_path)
    cfg = load_run_config(cwd / "r")
    assert cfg.data_path == cwd / "tiny" and cfg.train.curriculum == str(cwd / "small.yaml")
    assert cli(["sft", "--run", "named", *_sets(f"data.data_dir={cwd / 'tiny'}", "train.curriculum=no_warmup")]) == 0
    assert load_run_config(tmp_path / "named").train.curriculum == "no_warmup"  # a name stays a name


def test_changing_settings_is_explicit_validated_and_recorded(cwd, capsys):
    assert cli(["sft", "--run", "r", *_sets("data.data_dir=tiny")]) == 0
    run = RunDir(cwd / "r")
    before = run.config_file.read_text()
    # an invalid value: refused before anything is written, even with --reconfigure
    assert cli(["pretrain", "--run", "r", "--set", "optim.lr_predictor=true", "--reconfigure"]) == 2
    assert "optim.lr_predictor: expected a number, got True" in capsys.readouterr().err
    assert run.config_file.read_text() == before
    # a valid change without the flag: refused naming the key
    assert cli(["pretrain", "--run", "r", "--set", "predictor.flavor=paper"]) == 2
    err = capsys.readouterr().err
    assert "predictor.flavor: run 'debug', given 'paper'" in err and "--reconfigure" in err
    assert run.config_file.read_text() == before
    # explicit: written, and the stages it makes stale are recorded (sft stays valid)
    assert cli(["sft", "--run", "r", "--set", "optim.lr_predictor=1e-3", "--reconfigure"]) == 0
    assert load_run_config(run.root).optim.lr_predictor == 1e-3
    changes = json.loads(run.changes_file.read_text())
    assert changes["changes"][-1]["changed"] == {"optim.lr_predictor": [5e-4, 1e-3]}
    assert changes["stale"] == []  # no pretraining output existed yet
    assert cli(["sft", "--run", "r", "--set", "sft.lr=2e-3", "--reconfigure"]) == 0  # changed, then redone
    assert json.loads(run.changes_file.read_text())["changes"][-1]["stale"] == ["sft"]
    assert json.loads(run.changes_file.read_text())["stale"] == []
    run.change_config(run.candidate(None, ["sft.lr=3e-3"]))  # what --reconfigure does before a stage
    assert json.loads(run.changes_file.read_text())["stale"] == ["sft"]
    assert not run.done("sft", run.load_config())  # redone by the next demo/sft, then valid again
    assert cli(["sft", "--run", "r"]) == 0
    assert run.done("sft", run.load_config())


def test_invalid_settings_create_no_run(cwd, capsys):
    assert cli(["sft", "--run", "new", "--set", "optim.lr_predictor=.nan"]) == 2
    assert "optim.lr_predictor: expected a finite number" in capsys.readouterr().err
    assert cli(["sft", "--run", "new2", "--set", "encoder.flavor=qwen9"]) == 2
    assert "encoder.flavor='qwen9': use one of debug, small, qwen3-0.6b, qwen3-8b" in capsys.readouterr().err
    # pretraining starts from an SFT run: a missing run is an error naming the fix, not a new directory
    assert cli(["pretrain", "--run", "new3"]) == 2
    assert "clin-jepa sft --run new3" in capsys.readouterr().err
    assert not (cwd / "new").exists() and not (cwd / "new2").exists() and not (cwd / "new3").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda t: "optim: [unclosed\n", "is not valid YAML"),
    (lambda t: "", "is empty"),
    (lambda t: t[: len(t) // 2], "truncated"),
    (lambda t: t.replace(CONFIG_END, ""), "is truncated"),
])
def test_damaged_config_is_an_error_naming_the_file(tmp_path, capsys, damage, message):
    run = RunDir(tmp_path / "r")
    run.create(load_config("default"))
    run.config_file.write_text(damage(run.config_file.read_text()))
    with pytest.raises(ValueError, match=message):
        run.load_config()
    assert cli(["embed", "--run", str(run.root)]) == 2
    err = capsys.readouterr().err
    assert str(run.config_file) in err and message in err


def test_not_a_run_directory(tmp_path, capsys):
    assert cli(["evaluate", "--run", str(tmp_path / "nope")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_resume_with_a_changed_setting_is_refused_before_it_is_saved(cwd, capsys):
    small = f"train.curriculum={cwd / 'small.yaml'}"
    assert cli(["sft", "--run", "r", *_sets("data.data_dir=tiny", small, "train.stop_after_steps=1")]) == 0
    assert cli(["pretrain", "--run", "r"]) == 0
    run = RunDir(cwd / "r")
    before = run.config_file.read_text()
    rc = cli(["pretrain", "--run", "r", "--resume", "--reconfigure", "--set", "predictor.flavor=paper"])
    assert rc == 2 and "predictor.flavor: checkpoint 'debug', now 'paper'" in capsys.readouterr().err
    assert run.config_file.read_text() == before  # the failed resume did not poison the run
    # a setting a resume may change (the stop step) is accepted, recorded, and the run finishes
    assert cli(["pretrain", "--run", "r", "--resume", "--reconfigure", "--set", "train.stop_after_steps=0"]) == 0
    assert json.loads(run.pretrain_summary.read_text())["finished"]
    assert json.loads(run.changes_file.read_text())["changes"][-1]["changed"] == {"train.stop_after_steps": [1, 0]}


def test_text_mode_change_keeps_the_extraction(tmp_path):
    """data.text_mode picks among texts the extraction already wrote: changing it makes SFT and
    every later stage stale, never the extraction."""
    run = RunDir(tmp_path / "r")
    cfg = run.create(load_config(None, [], run_dir=str(run.root)))
    for stage in ("extract", "sft"):
        run.marker(stage, cfg).parent.mkdir(parents=True, exist_ok=True)
        run.marker(stage, cfg).write_text("{}")
    assert run.change_config(run.candidate(None, ["data.text_mode=snapshot"])) == {
        "data.text_mode": ("events", "snapshot")}
    assert run.stale() == ["sft"] and run.done("extract", run.load_config())


def test_stage_times_add_up_over_the_attempts_that_finish_a_stage(tmp_path):
    """RUN/logs/stage_times.json: a failed attempt counts towards the one that completes the
    stage, and a later launch that skips the stage leaves its record as it was."""
    from clin_jepa.pipelines._stages import PIPELINE, open_or_create, run_stages

    from clin_jepa.data.synth import generate

    mimic = tmp_path / "mimic"
    mimic.mkdir()  # empty: the extraction fails, naming what is missing
    run = RunDir(tmp_path / "run")
    cfg = open_or_create(run, load_config("default", [f"data.mimic_dir={mimic}", "synth.stays=40"]), "")
    with pytest.raises(FileNotFoundError):
        run_stages(run, cfg, ["extract"])
    times = run.stage_times()
    assert times["completed"] == {} and times["unfinished"]["extract"]["attempts"] == 1
    failed = times["unfinished"]["extract"]["wall"]
    assert failed > 0

    generate(mimic, cfg.synth)
    title = PIPELINE["extract"].title
    took = run_stages(run, cfg, ["extract"])[title]
    times = run.stage_times()
    assert times["unfinished"] == {} and times["completed"]["extract"]["attempts"] == 2
    assert times["completed"]["extract"]["wall"] == pytest.approx(failed + took, abs=0.02)
    assert run_stages(run, cfg, ["extract"]) == {title: 0.0}  # skipped: nothing re-measured
    assert run.stage_times() == times
