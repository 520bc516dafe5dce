"""The ``clin-jepa`` console command: one subcommand per stage (see ``pipelines/``)."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help). Modules are imported lazily: `clin-jepa --help`
# stays fast and a stage's heavy imports load only when it runs.
STAGES: dict[str, tuple[str, str]] = {
    "synth": ("pipelines.synth", "write a synthetic MIMIC-IV (csv.gz, PhysioNet layout)"),
    "extract": ("pipelines.extract", "DuckDB SQL: MIMIC-IV -> hourly parquet, labels, splits, texts"),
    "sft": ("pipelines.sft", "tokenizer (debug) + next-token SFT of the online adapter"),
    "pretrain": ("pipelines.pretrain", "five-phase curriculum (or one phase) with accelerate"),
    "embed": ("pipelines.embed", "encode every distinct text of a run once (for evaluation)"),
    "evaluate": ("pipelines.evaluate", "rollout drift, cohort displacement, multi-task probes + baselines"),
    "export-meds": ("pipelines.export_meds", "extraction -> MEDS dataset (events, splits, task labels)"),
    "report": ("pipelines.report", "tables (md/csv/tex), plots and manifest for one or more runs"),
    "ablate": ("pipelines.ablate", "train + evaluate every ablation and paradigm on the same data"),
    "demo": ("pipelines.demo", "the whole pipeline end to end on the embedded synthetic default"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="clin-jepa",
        description="Clin-JEPA clinical world model: extraction, pretraining, evaluation.",
    )
    sub = parser.add_subparsers(dest="stage", metavar="STAGE")
    for name, (_, help_) in STAGES.items():
        sub.add_parser(name, help=help_, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STAGES:
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(STAGES[argv[0]][0])
    from pipelines._common import main_for

    return main_for(module.add_arguments, module.run, argv[1:], prog=f"clin-jepa {argv[0]}")


if __name__ == "__main__":
    raise SystemExit(main())
