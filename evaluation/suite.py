"""`clin-jepa evaluate`: every evaluation of one run -> RUN/eval/{drift,displacement,decoding,whatif,tasks}.json
(whatif.json only on the embedded synthetic default: counterfactual fidelity, docs/whatif.md), plus
task_scores.npz (per-row test scores for paired comparisons between runs, no stay ids).

Inputs: the run's data directory (hourly/static/labels/events/cohort/splits parquet), its
corpus (clin_jepa.data.windows), RUN/embeddings (``clin-jepa embed``) and the final
predictor. Each JSON is written atomically and holds aggregates only (no stay ids).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from clin_jepa.evaluation import baselines, displacement, drift, embeddings, probes, tasks
from clin_jepa.evaluation.compare import SCORES_FILE, write_test_scores
from clin_jepa.evaluation.streaming import HourLatents

from clin_jepa.data.features import DERIVED_COLUMNS, OBSERVATION_COLUMNS
from clin_jepa.utils import get_logger, seed_everything, write_json

log = get_logger(__name__)

EVALUATIONS = ("drift", "displacement", "decoding", "whatif", "tasks")  # tasks last: tasks.json marks `evaluate` done
WHATIF_SCENARIO = "vasopressor"  # configs/scenarios/ file scored against the simulator (docs/whatif.md)
WHATIF_FROM_HOUR = 12  # hours of context (capped at a third of data.window_hours)
# positions in tasks.HOURLY_FEATURES of what an hour's state text reads (observations, SOFA, KDIGO; not actions)
STATE_FEATURES = [tasks.HOURLY_FEATURES.index(c) for c in OBSERVATION_COLUMNS + DERIVED_COLUMNS]


def _standardised_hourly(data_dir: Path, corpus) -> np.ndarray:
    """(N, T, F) hourly features of the corpus stays, standardised with train statistics (NaN kept)."""
    hourly = tasks.read_table(data_dir, "hourly.parquet", ("stay_id", "hour", *tasks.HOURLY_FEATURES))
    x = tasks.hourly_array(hourly, corpus.stay_ids, corpus.window_hours)
    mean, sd = tasks.fit_standardizer(x, corpus.split == "train")
    return (x - mean) / sd


def run_drift(corpus, latents, predictor, cfg) -> dict:
    test = corpus.subset("test")
    if len(test) == 0:
        raise ValueError("the test split is empty; check data.split_fractions and rerun `clin-jepa extract`")
    train = corpus.subset("train")  # the hour-mean reference predictor is fitted on the train stays
    hour_mean = drift.hour_means(latents, train.state_ids, train.lengths)  # (T, D)
    out = drift.rollout_drift(latents, test.demo_ids, test.state_ids, test.action_ids, test.lengths, predictor,
                              cfg.eval.contexts, cfg.eval.horizon, hour_mean=hour_mean,
                              n_boot=cfg.eval.bootstrap, seed=cfg.eval.seeds[0])
    out["split"] = "test"
    return out


def run_displacement(corpus, latents, xs: np.ndarray, data_dir: Path, cfg) -> dict:
    e = cfg.eval
    idx = np.flatnonzero(corpus.split == "test")
    events = tasks.read_table(data_dir, "events.parquet", ("stay_id", "event", "onset_hour"))
    hourly = tasks.read_table(data_dir, "hourly.parquet", ("stay_id", "hour", "sofa"))
    cohort = tasks.read_table(data_dir, "cohort.parquet", ("stay_id", "los_hours"))
    groups = displacement.cohorts(corpus.stay_ids[idx], events, hourly.select("stay_id", "hour", "sofa"), cohort,
                                  e.displacement_window, e.displacement_baseline_hours)
    spaces = {  # padding never reaches the window end
        "latent": HourLatents(latents, corpus.state_ids[idx]),  # lazy (N, T, D) state latent of each hour
        "raw": np.nan_to_num(tasks.forward_fill(xs[idx]), nan=0.0),  # (N, T, F) standardised, forward filled
        "perfect_encoder": displacement.PerHourState(xs[idx][..., STATE_FEATURES]),  # lazy (N, T, 2F_state)
    }
    out = displacement.evaluate_displacement(spaces, corpus.lengths[idx], groups, e.displacement_window,
                                             e.displacement_min_hours, e.bootstrap, seed=e.seeds[0])
    out["split"] = "test"
    out["cohort_rule"] = {"baseline_hours": e.displacement_baseline_hours,
                          "sofa_rise": "max SOFA hours B+1..W - max SOFA hours 0..B >= 2",
                          "new_support": "first vasopressor/ventilation onset in hours B+1..W"}
    return out


def run_decoding(corpus, latents, predictor, xs: np.ndarray, data_dir: Path, cfg) -> dict:
    """Rollout decoding (evaluation.rollout_decoding): decoded rollouts vs raw-feature forecasters."""
    from clin_jepa.evaluation.rollout_decoding import evaluate_decoding

    from clin_jepa.models.decoders import read_values

    values = read_values(data_dir, corpus.stay_ids, corpus.window_hours)  # (N, T, 24) original units
    return evaluate_decoding(corpus, latents, predictor, xs, values, cfg)


def run_tasks(corpus, latents, predictor, xs: np.ndarray, data_dir: Path, cfg,
              extra_labels=None, test_scores: dict | None = None) -> dict:
    """``extra_labels``: label rows of added tasks (evaluation.aces_tasks), evaluated like the built-in ones;
    ``test_scores``: filled with the per-row test scores (tasks.evaluate_tasks)."""
    e = cfg.eval
    labels = tasks.read_table(data_dir, "labels.parquet", ("stay_id", "task", "hour", "label"))
    extra: tuple[str, ...] = ()
    if extra_labels is not None and extra_labels.height:
        extra = tuple(sorted(extra_labels["task"].unique().to_list()))
        base = labels.select("stay_id", "task", "hour", "label")
        labels = pl.concat([base, extra_labels.select([pl.col(c).cast(t) for c, t in base.schema.items()])])
    static = tasks.read_table(data_dir, "static.parquet", ("stay_id", "age", "sex", "weight_kg"))
    families = tasks.task_families(cfg.data)
    rows, dropped = tasks.task_rows(labels, corpus.stay_ids, corpus.lengths, corpus.split, e.max_eep_hours, extra,
                                    families)
    if rows.height == 0:
        raise ValueError("labels.parquet has no row for the corpus stays; rerun `clin-jepa extract`")
    stay_row, last_hour = rows["row"].to_numpy(), rows["last_hour"].to_numpy()
    is_eep = rows["task"].str.starts_with("eep_").to_numpy()
    st = tasks.static_features(static, corpus.stay_ids, corpus.split == "train")
    summaries = tasks.summary_features(xs, stay_row, last_hour, st)  # (R, 5F+3)
    seq = tasks.sequence_inputs(xs)  # (N, T, 2F)
    feats = probes.state_features(latents, corpus.demo_ids, corpus.state_ids, corpus.action_ids, corpus.lengths,
                                  predictor)
    t0 = time.perf_counter()
    xs_probe = probes.multi_probe_inputs(feats, stay_row, last_hour,  # {name: (R, P)}, one pass over the stays
                                         {n: probes.REPRESENTATIONS[n] for n in e.probes})
    probe_features_s = time.perf_counter() - t0
    x_roll = None
    if predictor is not None:
        use = np.flatnonzero(~is_eep | e.probe_rollout_eep)
        pairs, inv = np.unique(np.stack([stay_row[use], last_hour[use]], axis=1), axis=0, return_inverse=True)
        x_roll = np.zeros((len(stay_row), 4 * feats.D), dtype=np.float32)  # rows of tasks without one stay zero
        x_roll[use] = probes.rollout_inputs(feats, predictor, pairs[:, 0], pairs[:, 1],
                                            e.probe_rollout_hours)[inv.reshape(-1)]  # one rollout per (stay, hour)

    def flat(kind):
        return lambda r, y, tr, va, te, seed: baselines.fit_predict_flat(kind, summaries[r], y, tr, va, te, e, seed)

    def sequence(kind):
        return lambda r, y, tr, va, te, seed: baselines.fit_predict_sequence(
            kind, seq, stay_row[r], last_hour[r], y, tr, va, te, e, seed)

    def probe(x, eep_ok=True, cfg=e):
        def fn(r, y, tr, va, te, seed):
            if not eep_ok and is_eep[r[0]]:
                return None
            return probes.fit_predict_probe(x[r], y, tr, va, te, cfg, seed)
        return fn

    world = dataclasses.replace(e, probe_kinds=e.world_probe_kinds)  # their candidates (docs/evaluation.md)
    methods = {name: probe(x, cfg=world if name in probes.WORLD_MODEL_PROBES else e) for name, x in xs_probe.items()}
    if x_roll is not None:
        methods["probe_rollout"] = probe(x_roll, eep_ok=e.probe_rollout_eep)
    for b in e.baselines:
        methods[b] = flat(b) if b in baselines.FLAT else sequence(b)
    out = tasks.evaluate_tasks(rows, methods, e, dropped, extra, families, test_scores)
    out["representation"] = {name: probes.describe(probes.available(probes.REPRESENTATIONS[name], predictor is not None))
                             for name in xs_probe}
    out["representation"] |= {"probe_rollout": "[d, s_k, mean(r_1..r_R), r_R]", "R": e.probe_rollout_hours}
    out["probe_features_seconds"] = round(probe_features_s, 2)
    return out


def run_whatif(run_dir: Path, cfg) -> dict | None:
    """Counterfactual fidelity of the run's predicted treatment effects on its test stays
    (clin_jepa.whatif_fidelity), or None when the run's data is not the synthetic default."""
    from clin_jepa import whatif_fidelity as wf
    from clin_jepa.whatif import HORIZON, WhatIf
    from clin_jepa.whatif_scenarios import load_scenarios

    synth = wf.synthetic_config(cfg=cfg)  # from cohort.parquet: real data loads nothing more
    if synth is None:
        return None
    wi = WhatIf(run_dir)
    T = min(wi.corpus.window_hours, wi.predictor.config.max_steps)
    K = max(1, min(WHATIF_FROM_HOUR, T // 3))
    H = min(HORIZON, T - K)  # predicted hours K..K+H-1 inside the window
    out = wf.score(wi, load_scenarios(WHATIF_SCENARIO), K, H, wi.eligible(K, H, "test"), synth)
    out["split"] = "test"
    return out


def evaluate_run(run_dir, cfg, only: tuple[str, ...] = EVALUATIONS, aces_configs: tuple = (),
                 meds_dir=None) -> dict[str, Path]:
    """Compute the evaluations in ``only``; returns name -> written JSON path.

    ``aces_configs``: ACES task configs added to the task evaluation, run on the MEDS export
    ``meds_dir`` (default RUN/meds, written by ``clin-jepa export-meds``)."""
    from clin_jepa.data.windows import run_corpus

    bad = sorted(set(only) - set(EVALUATIONS))
    if bad:
        raise ValueError(f"unknown evaluations {bad}; choose from {', '.join(EVALUATIONS)}")
    run_dir, data_dir = Path(run_dir), cfg.data_path
    extra_labels = None
    if aces_configs and "tasks" in only:  # first: a bad config fails before any model is loaded
        from clin_jepa.evaluation.aces_tasks import aces_task_labels

        extra_labels = aces_task_labels(list(aces_configs), Path(meds_dir) if meds_dir else run_dir / "meds",
                                        builtin=sum(tasks.task_families(cfg.data).values(), ()))
    torch.set_num_threads(max(1, cfg.eval.threads))
    seed_everything(cfg.eval.seeds[0])
    corpus = run_corpus(cfg)
    latents = embeddings.load(run_dir, corpus.texts)
    predictor = embeddings.load_final_predictor(run_dir)
    if predictor.latent_dim != latents.shape[1]:
        raise ValueError(f"predictor latent_dim {predictor.latent_dim} != embedding dim {latents.shape[1]}; "
                         f"rerun `clin-jepa embed --run {run_dir} --force`")
    xs = _standardised_hourly(data_dir, corpus) if {"displacement", "tasks", "decoding"} & set(only) else None
    written = {}
    for name in [n for n in EVALUATIONS if n in only]:  # tasks.json (the stage marker) written last
        t0 = time.perf_counter()
        if name == "drift":
            res = run_drift(corpus, latents, predictor, cfg)
        elif name == "displacement":
            res = run_displacement(corpus, latents, xs, data_dir, cfg)
        elif name == "decoding":
            res = run_decoding(corpus, latents, predictor, xs, data_dir, cfg)
        elif name == "whatif":
            res = run_whatif(run_dir, cfg)
            if res is None:
                log.info("whatif: the run's data is not the embedded synthetic default; no counterfactual fidelity")
                continue
        else:
            scores: dict = {}
            res = run_tasks(corpus, latents, predictor, xs, data_dir, cfg, extra_labels, scores)
            write_test_scores(run_dir / "eval" / SCORES_FILE, scores)  # before tasks.json, the stage's marker
        res["seconds"] = round(time.perf_counter() - t0, 2)
        written[name] = run_dir / "eval" / f"{name}.json"
        write_json(written[name], res)
        log.info("%s evaluation done in %.1f s -> %s", name, res["seconds"], written[name])
    return written


def read_eval(run_dir, name: str) -> dict:
    """RUN/eval/<name>.json, or a FileNotFoundError naming the command that writes it."""
    import json

    p = Path(run_dir) / "eval" / f"{name}.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: run `clin-jepa evaluate --run {run_dir}` first")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p} is not valid JSON ({e}); rerun `clin-jepa evaluate --run {run_dir}`") from None


__all__ = ["EVALUATIONS", "evaluate_run", "read_eval"]
