"""`clin-jepa whatif --run RUN --from-hour K --scenario FILE [--stays N | --cohort NAME]`:
counterfactual treatment rollouts aggregated over stays (docs/whatif.md).

    RUN/whatif/<scenario>_K<k>/summary.json   per scenario and per contrast, every variable and hour
    RUN/whatif/<scenario>_K<k>/scenarios.csv  scenario, variable, horizon, mean, lo, hi
    RUN/whatif/<scenario>_K<k>/effects.csv    contrast, variable, horizon, effect, lo, hi
    RUN/whatif/<scenario>_K<k>/effects.png    predicted effect over hours 1..H, key variables
    RUN/whatif/<scenario>_K<k>/fidelity.json  (embedded default only) against the simulator's truth

Aggregates only: means over at least MIN_STAYS stays, never a stay's row. Uncertainty: with
several ``--run`` (the same data, other seeds) the spread of the seeds' mean effects, else
the spread over stays (lo/hi = mean -/+ 1.96 standard errors).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl

from clin_jepa.utils import atomic_path, get_logger, write_json

log = get_logger("clin_jepa.pipelines.whatif")

PLOT_VARIABLES = ("mbp", "heart_rate", "spo2", "lactate", "creatinine", "sofa")
Z95 = 1.96


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", nargs="+", required=True, metavar="RUN",
                   help="trained, embedded run(s); several runs (other seeds, same data) give seed uncertainty")
    p.add_argument("--from-hour", type=int, required=True, help="K: the context is hours 0..K-1 of each stay")
    p.add_argument("--scenario", required=True, help="scenario YAML (e.g. configs/scenarios/vasopressor.yaml)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--stays", type=int, default=None, help="use the first N eligible stays of the cohort")
    g.add_argument("--cohort", default="test", choices=("test", "val", "train", "all"),
                   help="split whose stays are rolled out (default: test)")
    p.add_argument("--horizon", type=int, default=24, help="hours rolled out (default 24)")
    p.add_argument("--decoder", default="linear", choices=("linear", "mlp"), help="latent decoders (default linear)")
    p.add_argument("--out", default=None, help="output directory (default RUN/whatif/<scenario>_K<k>)")


def _interval(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, ...) samples (seeds' means or stays) -> mean, lo, hi (mean -/+ 1.96 standard errors)."""
    m = np.nanmean(x, axis=0)
    n = np.isfinite(x).sum(axis=0)
    se = np.nanstd(x, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1)) if len(x) > 1 else np.full_like(m, np.nan)
    return m, m - Z95 * se, m + Z95 * se


def aggregate(per_run: list[dict[str, np.ndarray]], sc, variables, from_hour: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-run scenario -> (n, H, V) decoded values -> (scenarios, effects) tables of mean, lo, hi."""
    def table(samples: dict[str, list[np.ndarray]], key: str, value: str) -> pl.DataFrame:
        frames = []
        for name, xs in samples.items():
            # one run: spread over stays; several: spread of the runs' means over stays
            stack = xs[0] if len(xs) == 1 else np.stack([np.nanmean(x, axis=0) for x in xs])
            m, lo, hi = _interval(stack)  # (H, V)
            H = m.shape[0]
            frames.append(pl.DataFrame({key: [name] * (H * len(variables)),
                                        "variable": list(variables) * H,
                                        "horizon": np.repeat(np.arange(1, H + 1), len(variables)),
                                        "hour": np.repeat(from_hour + np.arange(H), len(variables)),
                                        value: m.reshape(-1), "lo": lo.reshape(-1), "hi": hi.reshape(-1)}))
        return pl.concat(frames).with_columns(pl.col(value, "lo", "hi").fill_nan(None))

    scen = table({s: [r[s] for r in per_run] for s in sc.scenarios}, "scenario", "mean")
    eff = table({f"{a} - {b}": [r[a] - r[b] for r in per_run] for a, b in sc.contrasts}, "contrast", "effect")
    return scen, eff


def plot_effects(effects: pl.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from clin_jepa.evaluation import names as display

    names = [v for v in PLOT_VARIABLES if v in effects["variable"].unique().to_list()]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), squeeze=False)
    for ax, v in zip(axes[0], names):
        for c in effects["contrast"].unique(maintain_order=True).to_list():
            d = effects.filter((pl.col("variable") == v) & (pl.col("contrast") == c)).sort("horizon")
            h = d["horizon"].to_numpy()
            y, lo, hi = (d[k].cast(pl.Float64).fill_null(np.nan).to_numpy() for k in ("effect", "lo", "hi"))
            ax.plot(h, y, label=c)
            ax.fill_between(h, lo, hi, alpha=0.2)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_title(display.variable(v), fontsize=9)  # the panel's unit is the variable's
        ax.set_xlabel("hours after K")
    axes[0][0].set_ylabel("predicted effect (scenario difference)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, fontsize=8)
    fig.text(0.5, 0.0, "shaded: mean +- 1.96 standard errors over seeds' models, or over stays with one model",
             ha="center", va="bottom", fontsize=7)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=300, format="png")
    plt.close(fig)


def _write_csv(df: pl.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.write_csv(tmp, float_precision=4)


def run(args: argparse.Namespace) -> int:
    from clin_jepa import whatif_fidelity as wf
    from clin_jepa.whatif import WhatIf
    from clin_jepa.whatif_scenarios import load_scenarios

    sc = load_scenarios(args.scenario)
    K, H = args.from_hour, args.horizon
    models = [WhatIf(r, decoder_kind=args.decoder) for r in args.run]
    first = models[0]
    for m in models[1:]:
        if not np.array_equal(m.corpus.stay_ids, first.corpus.stay_ids):
            raise ValueError(f"{m.run.root} has other stays than {first.run.root}; several --run must share their data")
    rows = first.eligible(K, H, "all" if args.stays else args.cohort)
    if args.stays:
        if args.stays < 1:
            raise ValueError(f"--stays {args.stays}: give a positive number of stays")
        rows = rows[: args.stays]
    if len(rows) < wf.MIN_STAYS:
        raise ValueError(f"{len(rows)} stays have {K + H - 1} h of data in the cohort (need >= {wf.MIN_STAYS} for "
                         "an aggregate); lower --from-hour or --horizon, or use --cohort all")
    per_run = [m.scenario_rollouts(rows, K, sc, H) for m in models]
    scen, eff = aggregate(per_run, sc, first.variables, K)
    out = Path(args.out) if args.out else first.run.root / "whatif" / f"{sc.name}_K{K}"
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(scen, out / "scenarios.csv")
    _write_csv(eff, out / "effects.csv")
    plot_effects(eff, out / "effects.png")
    summary = {"scenario_file": sc.name, "description": sc.description, "from_hour": K, "horizon": H,
               "n_stays": int(len(rows)), "cohort": "first N eligible" if args.stays else args.cohort,
               "runs": len(models), "decoder": args.decoder,
               "uncertainty": "seeds (mean -/+ 1.96 SE of the runs' means)" if len(models) > 1
               else "stays (mean -/+ 1.96 SE over stays)",
               "scenarios": {s: [asdict(st) for st in v] for s, v in sc.scenarios.items()},
               "contrasts": [f"{a} - {b}" for a, b in sc.contrasts], "variables": list(first.variables)}
    write_json(out / "summary.json", summary)
    synth = wf.synthetic_config(first)
    if synth is not None:
        try:
            write_json(out / "fidelity.json", wf.score(first, sc, K, H, rows, synth))
        except ValueError as e:  # e.g. a treatment the simulator cannot replay
            log.warning("no fidelity score: %s", e)
    print(f"What-if: {len(sc.scenarios)} scenarios over {len(rows)} stays from hour {K} -> {out}")
    big = eff.filter(pl.col("variable").is_in(PLOT_VARIABLES) & pl.col("horizon").is_in([1, 6, 12, H]))
    with pl.Config(tbl_rows=len(big), tbl_hide_dataframe_shape=True):
        print(big.select("contrast", "variable", "horizon", "effect", "lo", "hi"))
    return 0


if __name__ == "__main__":
    from clin_jepa.pipelines._common import main_for

    raise SystemExit(main_for(add_arguments, run))
