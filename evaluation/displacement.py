"""Cohort latent displacement (METHOD 7).

Window: hours 0..W (W = eval.displacement_window) of each stay; its end is the last hour
of data <= W. Eligible stays have >= eval.displacement_min_hours hours of data. Hours
0..B (B = eval.displacement_baseline_hours) are the admission period: the 24 h-rolling
SOFA only sees data already charted, and admission labs arrive over the first hours, so
SOFA(0) is not a baseline (missing components score 0).

Cohorts (from events.parquet and hourly.parquet; docs/labels.md, docs/evaluation.md):
- deteriorating: ICU death (death onset <= ICU length of stay) within the window, or a
  NEW vasopressor / ventilation start after the admission period (first onset in hours
  B+1..W), or a SOFA rise: max(SOFA over hours B+1..W) - max(SOFA over hours 0..B) >= 2
  (admission SOFA vs the worst later SOFA: Delta-SOFA, Ferreira et al., JAMA 2001);
- stable: no death in hospital or ICU at all, no vasopressor / ventilation at any hour
  0..W, and no SOFA rise >= 2;
- other stays (e.g. on vasopressors from admission but otherwise calm) are in neither.

Per stay, with x_t the state latent of hour t (online encoder, state text of that hour)
or the standardised raw feature vector:
    displacement = ||x_end - x_0||_2,   path length = sum_t ||x_{t+1} - x_t||_2
The headline is median(deteriorating) / median(stable) with a bootstrap CI.

Two references on the same stays bound what an encoder can show on the data: ``raw`` (the
standardised features forward filled) and ``perfect_encoder`` (:class:`PerHourState`: what a perfect
per-hour encoder of the state text would give, the exact standardised values charted in that
hour plus a charted flag per item, as in issue 11's measurement: 1.32x on the synthetic data,
against the paper's 4.83x).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from clin_jepa.evaluation.metrics import bootstrap_ratio_of_medians
from clin_jepa.evaluation.streaming import STAY_CHUNK, chunks

DETERIORATING, STABLE, OTHER = "deteriorating", "stable", "other"


class PerHourState:
    """Lazy (N, T, 2F) 'perfect per-hour encoder' vectors: ``x[rows]`` -> [values, charted flags]
    of each hour, values standardised and 0 where the item was not charted that hour (no
    forward fill: a state text holds the hour's observations only).

    xs (N, T, F) standardised hourly features with NaN = not charted (held by the caller)."""

    def __init__(self, xs: np.ndarray):
        self.xs = xs
        self.shape = (*xs.shape[:2], 2 * xs.shape[2])

    def __len__(self) -> int:
        return self.xs.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        v = np.asarray(self.xs[rows], dtype=np.float32)  # (n, T, F)
        charted = np.isfinite(v)
        return np.concatenate([np.where(charted, v, 0.0), charted], axis=-1).astype(np.float32)  # (n, T, 2F)


def window_end(lengths: np.ndarray, window: int) -> np.ndarray:
    """(N,) last hour index of data inside hours 0..window."""
    return np.minimum(lengths - 1, window)


def displacement(x: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (N, T, D) per-hour vectors, end (N,) -> (endpoint distance (N,), path length (N,))."""
    n = np.arange(len(x))
    endpoint = np.linalg.norm(x[n, end] - x[:, 0], axis=-1)  # (N,)
    steps = np.linalg.norm(np.diff(x, axis=1), axis=-1)  # (N, T-1)
    inside = np.arange(x.shape[1] - 1)[None, :] < end[:, None]  # step t->t+1 counts if t+1 <= end
    return endpoint, (steps * inside).sum(axis=1)


def sofa_rise(hourly: pl.DataFrame, window: int, baseline_hours: int) -> pl.DataFrame:
    """(stay_id, baseline, later, rise): baseline = max SOFA over hours 0..B, later = max over
    hours B+1..W, rise = later - baseline (null without SOFA in both periods)."""
    sofa = (hourly.select(pl.col("stay_id").cast(pl.Int64), pl.col("hour").cast(pl.Int64),
                          pl.col("sofa").cast(pl.Float64))
            .filter((pl.col("hour") >= 0) & (pl.col("hour") <= window)).drop_nulls("sofa"))
    out = sofa.group_by("stay_id").agg(
        pl.col("sofa").filter(pl.col("hour") <= baseline_hours).max().alias("baseline"),
        pl.col("sofa").filter(pl.col("hour") > baseline_hours).max().alias("later"))
    return out.with_columns((pl.col("later") - pl.col("baseline")).alias("rise")).sort("stay_id")


def cohorts(stay_ids: np.ndarray, events: pl.DataFrame, hourly: pl.DataFrame, cohort: pl.DataFrame,
            window: int, baseline_hours: int = 6) -> np.ndarray:
    """(N,) DETERIORATING / STABLE / OTHER for ``stay_ids`` (definitions in the module doc)."""
    if not 0 <= baseline_hours < window:
        raise ValueError(f"displacement baseline hours {baseline_hours} must lie in [0, window={window}); "
                         "set eval.displacement_baseline_hours below eval.displacement_window, e.g. 6")
    ev = events.select(pl.col("stay_id").cast(pl.Int64), "event", pl.col("onset_hour").cast(pl.Float64))
    los = cohort.select(pl.col("stay_id").cast(pl.Int64), pl.col("los_hours").cast(pl.Float64))
    ev = ev.join(los, on="stay_id", how="left")

    def stays(expr) -> set:
        return set(ev.filter(expr)["stay_id"].to_list())

    death_any = stays(pl.col("event") == "death")
    icu_death_win = stays((pl.col("event") == "death") & (pl.col("onset_hour") <= pl.col("los_hours"))
                          & (pl.col("onset_hour") <= window))
    support = pl.col("event").is_in(["vasopressor", "ventilation"])  # onset = FIRST onset (events.parquet)
    new_support = stays(support & (pl.col("onset_hour") > baseline_hours) & (pl.col("onset_hour") <= window))
    any_support = stays(support & (pl.col("onset_hour") <= window))
    rise = sofa_rise(hourly, window, baseline_hours)
    sofa_up = set(rise.filter(pl.col("rise") >= 2)["stay_id"].to_list())

    out = np.full(len(stay_ids), OTHER, dtype=object)
    for i, s in enumerate(stay_ids.tolist()):
        if s in icu_death_win or s in new_support or s in sofa_up:
            out[i] = DETERIORATING
        elif s not in death_any and s not in any_support:
            out[i] = STABLE
    return out.astype(str)


def cohort_ratio(values: np.ndarray, groups: np.ndarray, n_boot: int, seed: int = 0) -> dict:
    """Medians per cohort and median(deteriorating)/median(stable) with a bootstrap CI."""
    det, sta = values[groups == DETERIORATING], values[groups == STABLE]
    out = {
        "median_deteriorating": float(np.median(det)) if len(det) else None,
        "median_stable": float(np.median(sta)) if len(sta) else None,
        "n_deteriorating": int(len(det)),
        "n_stable": int(len(sta)),
    }
    if len(det) == 0 or len(sta) == 0:
        out["ratio"] = None
        out["status"] = f"a cohort is empty (deteriorating n={len(det)}, stable n={len(sta)})"
        return out
    r = bootstrap_ratio_of_medians(det, sta, n_boot=n_boot, seed=seed)
    out["ratio"] = {k: (None if not np.isfinite(v) else v) for k, v in r.items()}
    out["quantiles"] = {name: np.quantile(v, [0.1, 0.25, 0.5, 0.75, 0.9]).tolist()
                        for name, v in ((DETERIORATING, det), (STABLE, sta))}
    return out


def evaluate_displacement(spaces: dict, lengths: np.ndarray, groups: np.ndarray, window: int,
                          min_hours: int, n_boot: int, seed: int = 0, stay_chunk: int = STAY_CHUNK) -> dict:
    """spaces: name -> (N, T, D) per-hour vectors (e.g. ``latent``, ``raw``) for the same stays:
    an array, or any object whose ``x[rows]`` gives (len(rows), T, D) (streaming.HourLatents),
    read ``stay_chunk`` stays at a time."""
    eligible = lengths >= min_hours
    end = window_end(lengths, window)
    rows = np.flatnonzero(eligible)
    g = groups[eligible]
    result: dict = {
        "window_hours": int(window), "min_hours": int(min_hours), "n_eligible": int(eligible.sum()),
        "n_by_cohort": {c: int(((groups == c) & eligible).sum()) for c in (DETERIORATING, STABLE, OTHER)},
        "spaces": {},
    }
    for name, x in spaces.items():
        endpoint, path = np.zeros(len(rows)), np.zeros(len(rows))  # (n_eligible,)
        for part in chunks(len(rows), stay_chunk):
            xc = np.asarray(x[rows[part]])[:, : window + 1]  # (n, W+1, D)
            endpoint[part], path[part] = displacement(xc, end[rows[part]])
        result["spaces"][name] = {
            "endpoint": cohort_ratio(endpoint, g, n_boot, seed),
            "path": cohort_ratio(path, g, n_boot, seed),
            "values": {  # per-cohort distributions for plots (no ids)
                c: {"endpoint": np.sort(endpoint[g == c]).tolist(), "path": np.sort(path[g == c]).tolist()}
                for c in (DETERIORATING, STABLE)
            },
        }
    return result
