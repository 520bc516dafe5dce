"""The ``clin-jepa`` console command: one subcommand per stage (see ``pipelines/``).

Each subcommand's help (``clin-jepa STAGE --help``) gets its description, examples and its
own ``--set`` example from :data:`STAGES`; the stage module only declares its arguments.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    module: str
    summary: str  # one line, in `clin-jepa --help`
    description: str  # what it reads and writes, in `clin-jepa STAGE --help`
    examples: tuple[str, ...]
    set_example: str = ""  # a --set override that makes sense for this stage
    config_help: str = ""  # what --config means for this stage


NEW_RUN_CONFIG = ("YAML config of a new run (a path, or a name under configs/ such as default; without it the "
                  "built-in defaults). An existing run keeps the settings it was created with: --config/--set that "
                  "would change them are refused unless --reconfigure is given")
EXISTING_RUN_CONFIG = ("YAML config compared with the run's saved settings (RUN/config.yaml): a change is "
                       "refused unless --reconfigure is given, which records the stages it makes stale")
BASE_CONFIG = "base YAML config (a path, or a name under configs/; default: configs/default.yaml)"

# subcommand -> Stage. Modules are imported lazily: `clin-jepa --help` stays fast and a
# stage's heavy imports load only when it runs.
STAGES: dict[str, Stage] = {
    "synth": Stage(
        "clin_jepa.pipelines.synth", "write a synthetic MIMIC-IV (csv.gz, PhysioNet layout)",
        "Generate a synthetic MIMIC-IV v2.2 directory (hosp/, icu/ csv.gz in PhysioNet's layout) that the "
        "extraction reads exactly like the real one. Prints a one-line summary.",
        ("clin-jepa synth --stays 600 --seed 0 --out runs/demo/mimic", "clin-jepa synth --run runs/demo"),
        "synth.patients_ratio=0.9", NEW_RUN_CONFIG),
    "extract": Stage(
        "clin_jepa.pipelines.extract", "DuckDB SQL: MIMIC-IV -> hourly parquet, labels, splits, texts",
        "Extract the cohort, hourly grid, labels, patient-level splits and hourly texts from a MIMIC-IV "
        "directory (csv.gz or parquet) with DuckDB into parquet files.",
        ("clin-jepa extract --mimic /data/mimic-iv --out runs/full/data",
         "clin-jepa extract --run runs/demo          # RUN/mimic -> RUN/data"),
        "data.window_hours=48", NEW_RUN_CONFIG),
    "sft": Stage(
        "clin_jepa.pipelines.sft", "tokenizer (debug) + next-token SFT of the online adapter",
        "Train the debug tokenizer and the next-token SFT of the encoder's LoRA adapter on the run's texts; "
        "writes RUN/tokenizer and RUN/sft (metrics.json last).",
        ("clin-jepa sft --run runs/demo",), "sft.steps=100", NEW_RUN_CONFIG),
    "pretrain": Stage(
        "clin_jepa.pipelines.pretrain", "five-phase curriculum (or one phase) with accelerate",
        "Train the JEPA curriculum from the run's SFT encoder under accelerate; checkpoints at every phase "
        "boundary, RUN/final when done. Multi-process: accelerate launch -m clin_jepa.pipelines.pretrain --run RUN.",
        ("clin-jepa pretrain --run runs/demo", "clin-jepa pretrain --run runs/demo --phases warmup,joint",
         "clin-jepa pretrain --run runs/demo --resume"),
        "optim.lr_predictor=1e-4", EXISTING_RUN_CONFIG),
    "embed": Stage(
        "clin_jepa.pipelines.embed", "encode every distinct text of a run once (for evaluation)",
        "Encode every distinct hourly text of the run's corpus once with the final encoder -> RUN/embeddings "
        "(skipped when the stored fingerprint is current).",
        ("clin-jepa embed --run runs/demo", "clin-jepa embed --run runs/demo --force"),
        "encoder.encode_batch_tokens=8192", EXISTING_RUN_CONFIG),
    "evaluate": Stage(
        "clin_jepa.pipelines.evaluate", "rollout drift, cohort displacement, multi-task probes + baselines",
        "Evaluate a trained run: latent rollout drift, cohort displacement, 15 risk-prediction tasks "
        "(probes on the frozen latents vs baselines) and rollout decoding "
        "-> RUN/eval/{drift,displacement,tasks,decoding}.json.",
        ("clin-jepa evaluate --run runs/demo", "clin-jepa evaluate --run runs/demo --only drift,tasks"),
        "eval.bootstrap=1000", EXISTING_RUN_CONFIG),
    "latent-content": Stage(
        "clin_jepa.pipelines.latent_content", "how much of each value a state text reads its latent carries",
        "Ridge R^2 of every value a state text reports (HR, MAP, SpO2, Cr, Lactate, SOFA, ...) from the latent of "
        "that text: fitted on train-split stays' texts, scored on held-out stays' texts -> "
        "RUN/eval/latent_content.json and a table. Works after `clin-jepa sft` (SFT encoder), `pretrain` (final "
        "encoder) or `embed` (RUN/embeddings).",
        ("clin-jepa latent-content --run runs/demo", "clin-jepa latent-content --run runs/demo --source sft"),
        "encoder.pooling=mean", EXISTING_RUN_CONFIG),
    "export-meds": Stage(
        "clin_jepa.pipelines.export_meds", "extraction -> MEDS dataset (events, splits, task labels)",
        "Export a run's extraction as a MEDS dataset (data/{train,tuning,held_out}, metadata, one label file per "
        "task), validated with the meds package. It holds identifiers: keep it with your data (docs/meds.md).",
        ("clin-jepa export-meds --run runs/demo --out runs/demo/meds",
         "clin-jepa export-meds --data runs/full/data --mimic /data/mimic-iv --out runs/full/meds"),
        "data.duckdb_memory_limit=8GB", NEW_RUN_CONFIG),
    "report": Stage(
        "clin_jepa.pipelines.report", "tables (csv/md/tex), plots (pdf/png) and manifest for one or more runs",
        "Write the report of a run from RUN/eval: tidy CSV, Markdown and booktabs LaTeX tables, PDF and PNG "
        "figures, headline and manifest; --compare adds a grid of runs (mean +- sd over seeds).",
        ("clin-jepa report --run runs/demo", "clin-jepa report --run runs/a --compare runs/b,runs/c --out cmp"),
        "", ""),
    "whatif": Stage(
        "clin_jepa.pipelines.whatif", "counterfactual treatment rollouts under scenarios from a YAML file",
        "Roll a trained run's world model out from each stay's real context up to hour K under two or more "
        "treatment scenarios (YAML, configs/scenarios/), decode vitals, labs and SOFA along each rollout and "
        "write per-scenario and difference (predicted effect) tables and plots over the stays to "
        "RUN/whatif/. On the embedded default the effects are also scored against the simulator's true "
        "counterfactuals (docs/whatif.md).",
        ("clin-jepa whatif --run runs/demo --from-hour 12 --scenario configs/scenarios/vasopressor.yaml",
         "clin-jepa whatif --run runs/a runs/b --from-hour 24 --scenario configs/scenarios/ventilation.yaml "
         "--stays 50"),
        "", ""),
    "ablate": Stage(
        "clin_jepa.pipelines.ablate", "train + evaluate every ablation and paradigm on the same data",
        "Train and evaluate every ablation and comparison paradigm on the same data and seeds, then write "
        "one comparison report (DIR/report).",
        ("clin-jepa ablate --out runs/ablate", "clin-jepa ablate --out runs/ablate --paradigms full,sft_frozen "
         "--seeds 3"),
        "train.steps_scale=0.5", BASE_CONFIG),
    "demo": Stage(
        "clin_jepa.pipelines.demo", "the whole pipeline end to end on the embedded synthetic default",
        "Run every stage on the embedded default (synthetic MIMIC-IV, debug models): synth, extract, sft, "
        "pretrain, embed, evaluate, report. A rerun skips completed stages and continues an interrupted one.",
        ("clin-jepa demo --out runs/demo", "clin-jepa demo --out runs/demo --mimic /data/mimic-iv"),
        "synth.stays=300", BASE_CONFIG),
    "config": Stage(
        "clin_jepa.pipelines.config_cmd", "list every config key with its type, value, default and doc",
        "Show the configuration: every key with its type, current value, default and documentation. With "
        "--run, the values saved in that run; with --config/--set, the config they resolve to.",
        ("clin-jepa config show", "clin-jepa config show eval", "clin-jepa config show --run runs/demo optim"),
        "eval.bootstrap=1000", NEW_RUN_CONFIG),
}


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("clin-jepa")
    except metadata.PackageNotFoundError:
        from clin_jepa import __version__

        return __version__


def top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clin-jepa", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Clin-JEPA clinical world model: extraction, pretraining, evaluation.",
        epilog="Start with `clin-jepa demo --out runs/demo` (8-12 minutes on a 2-core CPU).\n"
               "`clin-jepa STAGE --help` describes each stage; `clin-jepa config show` lists every config key.")
    parser.add_argument("--version", action="version", version=f"clin-jepa {version()}")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE")
    for name, stage in STAGES.items():
        sub.add_parser(name, help=stage.summary, add_help=False)
    return parser


def stage_arguments(name: str, module):
    """The stage module's add_arguments plus the description, examples and per-stage help texts."""
    stage = STAGES[name]

    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.description = textwrap.fill(stage.description, 100)
        p.epilog = "examples:\n" + "\n".join(f"  {e}" for e in stage.examples)
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        module.add_arguments(p)
        for action in p._actions:  # argparse has no public way to edit a declared argument's help
            if action.dest == "overrides" and stage.set_example:
                action.help = (f"dotted config override, e.g. --set {stage.set_example} (repeatable; every key: "
                               "clin-jepa config show)")
            elif action.dest == "config" and stage.config_help:
                action.help = stage.config_help
    return add_arguments


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = top_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    if argv[0].startswith("-"):
        parser.parse_args(argv[:1])  # --help / --version exit here; anything else is an argparse error
        return 2
    if argv[0] not in STAGES:
        close = difflib.get_close_matches(argv[0], STAGES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"clin-jepa: error: unknown command {argv[0]!r}.{hint} Commands: {', '.join(STAGES)} "
              "(clin-jepa --help).", file=sys.stderr)
        return 2
    module = importlib.import_module(STAGES[argv[0]].module)
    from clin_jepa.pipelines._common import main_for

    return main_for(stage_arguments(argv[0], module), module.run, argv[1:], prog=f"clin-jepa {argv[0]}")


if __name__ == "__main__":
    raise SystemExit(main())
