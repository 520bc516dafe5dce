"""The `clin-jepa` command as a user meets it: help with a description, examples and a --set
example of its own for every subcommand; --version; unknown and missing commands fail with a
message; list options take commas or spaces; `config show` documents every key; progress
output stays on its own lines when stderr is not a terminal."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from clin_jepa.pipelines._common import name_list
from clin_jepa.pipelines.cli import STAGES
from clin_jepa.pipelines.cli import main as cli

from clin_jepa.config import RunConfig


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_subcommand_help_has_a_description_and_examples(stage, capsys):
    with pytest.raises(SystemExit) as e:
        cli([stage, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    flat = " ".join(out.split())  # argparse wraps help lines
    assert f"usage: clin-jepa {stage}" in out
    assert " ".join(STAGES[stage].description.split()[:6]) in flat  # a description, not just the usage
    assert "examples:" in out and f"  clin-jepa {stage} " in out
    if "--set" in out:
        assert f"--set {STAGES[stage].set_example}" in flat
        assert STAGES[stage].set_example.split(".")[0] in {f.name for f in dataclasses.fields(RunConfig)}


def test_set_examples_differ_per_stage():
    examples = [s.set_example for s in STAGES.values() if s.set_example]
    assert len(set(examples)) >= len(examples) - 2  # not one optim.lr_predictor for every stage


def test_version_unknown_and_missing_commands(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("clin-jepa ")
    assert cli([]) == 2
    assert "usage: clin-jepa" in capsys.readouterr().err
    assert cli(["reprot", "--run", "x"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'reprot'" in err and "'report'" in err


def test_list_options_take_commas_or_spaces():
    assert name_list(["drift,tasks"]) == name_list(["drift", "tasks"]) == ["drift", "tasks"]
    assert name_list("warmup, joint") == ["warmup", "joint"]
    assert name_list(None) == []


def test_config_show_lists_every_key_with_type_and_doc(capsys, tmp_path):
    assert cli(["config", "show"]) == 0
    out = capsys.readouterr().out
    cfg = RunConfig()
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        if dataclasses.is_dataclass(sub):
            for f in dataclasses.fields(sub):
                assert f"{section.name}.{f.name} " in out, f"{section.name}.{f.name} missing"
    line = next(ln for ln in out.splitlines() if ln.startswith("eval.bootstrap "))
    assert line.split()[1:3] == ["int", "500"] and "bootstrap replicates" in line

    assert cli(["config", "show", "eval.boot", "--set", "eval.bootstrap=100"]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.split()[:4] == ["eval.bootstrap", "int", "100", "*"] and "[default 500]" in line
    assert cli(["config", "show", "--run", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_sparse_progress_and_log_lines_when_not_a_terminal(monkeypatch, capsys):
    from clin_jepa.utils import get_logger, progress, progress_mode

    monkeypatch.setenv("CLIN_JEPA_PROGRESS", "auto")
    assert progress_mode() == "sparse"  # captured stderr is not a terminal
    log = get_logger("test_cli")
    monkeypatch.setattr(logging.getLogger("clin_jepa"), "level", logging.INFO)
    for i in progress(range(3), desc="steps", mininterval=0):
        log.info("message %d", i)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert sum(ln.startswith("steps:") for ln in lines) == 4  # 0/3 .. 3/3, the final state once
    assert all(ln.startswith("steps:") or "INFO clin_jepa.test_cli: message" in ln for ln in lines)
    monkeypatch.setenv("CLIN_JEPA_PROGRESS", "0")
    assert progress_mode() == "off"
    for _ in progress(range(3), desc="quiet"):
        pass
    assert "quiet" not in capsys.readouterr().err


def test_sparse_lines_ignore_a_redraw_whose_bar_width_changed():
    """Closing a bar redraws its final count; a different rate text beside it changes the bar
    graphic's width, which must not print the same state twice."""
    import io

    from clin_jepa.utils import _Lines

    out = io.StringIO()
    lines = _Lines(out)
    lines.write("\rsteps: 100%|##########| 3/3 [00:00<00:00, 5.21it/s]")
    lines.write("\rsteps: 100%|#######| 3/3 [00:00<00:00, 12345.67it/s]")
    lines.write("\rsteps: 100%|#######| 4/4 [00:00<00:00, 12345.67it/s]")
    assert out.getvalue().splitlines() == ["steps: 100%|##########| 3/3 [00:00<00:00, 5.21it/s]",
                                           "steps: 100%|#######| 4/4 [00:00<00:00, 12345.67it/s]"]
