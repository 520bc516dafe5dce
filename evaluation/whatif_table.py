"""The report's counterfactual-fidelity table (RUN/eval/whatif.json, embedded default only):
one row per configuration (evaluation.compare.group_runs), mean +- sample sd over runs that differ
only in seeds (docs/whatif.md)."""

from __future__ import annotations

import json
from pathlib import Path

from clin_jepa.evaluation.compare import group_runs, seed_cell
from clin_jepa.evaluation.tables import View

METHODS = (("model", "World model"), ("regression", "Action regression"), ("action_blind", "Action-blind"))


def _read(run_dir: Path) -> dict | None:
    p = Path(run_dir) / "eval" / "whatif.json"
    return json.loads(p.read_text()) if p.exists() else None


def whatif_table(run_dirs: list[Path], cfgs: list[dict]) -> tuple[list[dict], list[View]] | None:
    """Records (one per run) and a view, or None when no run has a whatif.json."""
    found = [(i, w) for i, w in ((i, _read(r)) for i, r in enumerate(run_dirs)) if w and "summary" in w]
    if not found:
        return None
    have = dict(found)
    records, rows = [], []
    for name, idx in group_runs([Path(r) for r in run_dirs], cfgs):  # runs differing only in seeds
        members = [(i, have[i]) for i in idx if i in have]
        if not members:
            continue
        for i, w in members:
            records.append({"configuration": name, "run": Path(run_dirs[i]).name, "n_stays": w["n_stays"],
                            "from_hour": w["from_hour"], "horizon": w["horizon"]}
                           | {f"{m}_{k}": w["summary"][m][k] for m, _ in METHODS
                              for k in ("sign_accuracy", "median_correlation", "median_mae_ratio")})
        ws = [w for _, w in members]
        rows.append([name, len(ws), *[seed_cell([w["summary"][m]["sign_accuracy"] for w in ws]) for m, _ in METHODS],
                     seed_cell([w["summary"]["model"]["median_correlation"] for w in ws]),
                     seed_cell([w["summary"]["model"]["median_mae_ratio"] for w in ws]),
                     seed_cell([w["summary"]["regression"]["median_mae_ratio"] for w in ws])])
    w0 = found[0][1]
    header = ["Configuration", "Runs", *[f"Sign acc.: {label}" for _, label in METHODS], "Corr.: model",
              "MAE / blind: model", "MAE / blind: regression"]
    caption = (f"Counterfactual fidelity on the synthetic default ({w0['scenario_file']} scenarios, from hour "
               f"{w0['from_hour']}, horizons 1-{w0['horizon']} h, {w0['n_stays']} test stays): predicted treatment "
               "effects (differences of decoded variables between scenarios) against the simulator's true effects. "
               "Sign accuracy over material effects (action-blind = 0.5); median over variables of the correlation "
               "and of MAE relative to the action-blind MAE (< 1 is better).")
    return records, [View(caption, "tab:whatif", header, rows, wide=True)]
