"""Each baseline learns a planted signal from the real hourly-input pipeline (polars tables
-> standardisation -> summaries / sequences) and does not learn shuffled labels."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from clin_jepa.evaluation import baselines, tasks
from clin_jepa.evaluation.metrics import auroc

from clin_jepa.config import EvalConfig

N, T = 400, 30



def _world(seed=0):
    rng = np.random.default_rng(seed)
    stay_ids = np.arange(1000, 1000 + N)
    y = rng.integers(0, 2, N)
    recs = []
    for i, s in enumerate(stay_ids):
        for h in range(T):
            row = {c: None for c in tasks.HOURLY_FEATURES}
            if rng.random() < 0.7:  # heart rate observed 70 % of hours, higher after hour 8 if y
                row["heart_rate"] = 80 + 12 * y[i] * (h >= 8) + rng.normal(0, 8)
            if rng.random() < 0.1:
                row["lactate"] = 1.5 + rng.normal(0, 0.5)
            row["norepinephrine"] = 0.0
            recs.append({"stay_id": int(s), "hour": h, **row})
    hourly = pl.DataFrame(recs, schema={"stay_id": pl.Int64, "hour": pl.Int64,
                                        **{c: pl.Float64 for c in tasks.HOURLY_FEATURES}})
    labels = pl.DataFrame(
        [{"stay_id": int(s), "task": "mort_hosp", "hour": 24, "label": int(y[i])} for i, s in enumerate(stay_ids)]
        + [{"stay_id": int(s), "task": "eep_aki", "hour": h, "label": int(y[i] and h >= 8)}
           for i, s in enumerate(stay_ids) for h in range(4, 16)])
    split = np.array(["train"] * 220 + ["val"] * 60 + ["test"] * 120)
    static = pl.DataFrame({"stay_id": stay_ids, "age": rng.normal(65, 10, N), "sex": rng.choice(["male", "female"], N),
                           "race": ["x"] * N, "admission_type": ["x"] * N, "weight_kg": [None] * N},
                          schema_overrides={"weight_kg": pl.Float64})
    return stay_ids, hourly, labels, split, static


@pytest.fixture(scope="module")
def prepared():
    stay_ids, hourly, labels, split, static = _world()
    lengths = np.full(N, T)
    rows, dropped = tasks.task_rows(labels, stay_ids, lengths, split, max_eep_hours=48)
    x = tasks.hourly_array(hourly, stay_ids, T)
    mean, sd = tasks.fit_standardizer(x, split == "train")
    xs = (x - mean) / sd
    st = tasks.static_features(static, stay_ids, split == "train")
    return rows, tasks.sequence_inputs(xs), xs, st


CFG = EvalConfig(seq_epochs=12, lgbm_estimators=100, patience=4, bootstrap=50)


@pytest.mark.parametrize("kind", ["logreg", "lightgbm", "lstm", "tcn"])
@pytest.mark.parametrize("task", ["mort_hosp", "eep_aki"])
def test_baseline_learns_planted_signal_not_shuffled_labels(prepared, kind, task):
    rows, seq, xs, st = prepared
    r = rows.filter(pl.col("task") == task)
    split = r["split"].to_numpy()
    tr, va, te = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    y = r["label"].to_numpy().astype(np.int64)
    stay_row, last_hour = r["row"].to_numpy(), r["last_hour"].to_numpy()
    shuffled = np.random.default_rng(1).permutation(y)

    def fit(labels):
        if kind in baselines.FLAT:
            x = tasks.summary_features(xs, stay_row, last_hour, st)
            return baselines.fit_predict_flat(kind, x, labels, tr, va, te, CFG, seed=0)
        return baselines.fit_predict_sequence(kind, seq, stay_row, last_hour, labels, tr, va, te, CFG, seed=0)

    p = fit(y)
    assert p.shape == (len(te),) and np.all((p >= 0) & (p <= 1))
    assert auroc(y[te], p) > 0.75
    assert abs(auroc(shuffled[te], fit(shuffled)) - 0.5) < 0.15


def test_same_seed_same_predictions(prepared):
    rows, seq, xs, st = prepared
    r = rows.filter(pl.col("task") == "mort_hosp")
    split = r["split"].to_numpy()
    tr, va, te = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    y = r["label"].to_numpy().astype(np.int64)
    args = (seq, r["row"].to_numpy(), r["last_hour"].to_numpy(), y, tr, va, te, CFG)
    np.testing.assert_array_equal(baselines.fit_predict_sequence("tcn", *args, seed=3),
                                  baselines.fit_predict_sequence("tcn", *args, seed=3))


def test_summaries_see_only_hours_up_to_the_row_hour():
    x = np.full((1, 5, len(tasks.HOURLY_FEATURES)), np.nan)
    x[0, 1, 0], x[0, 3, 0] = 1.0, 100.0
    f = tasks.summary_features(x, np.array([0, 0]), np.array([2, 4]), np.zeros((1, 0), np.float32))
    F = len(tasks.HOURLY_FEATURES)
    assert f[0, 0] == 1.0 and f[0, 3 * F] == 1.0  # last and max at hour 2 ignore hour 3
    assert f[1, 0] == 100.0 and f[1, F] == pytest.approx(50.5)


def test_insufficient_positives_are_reported_not_dropped(prepared):
    rows, seq, xs, st = prepared
    few = rows.filter(pl.col("task") == "mort_hosp").with_columns(
        pl.when(pl.col("split") == "val").then(0).otherwise(pl.col("label")).cast(pl.Int8).alias("label"))
    out = tasks.evaluate_tasks(few, {}, CFG)
    assert out["tasks"]["mort_hosp"]["status"] == "insufficient positives (n=0 in val)"
    assert out["tasks"]["sepsis"]["status"] == "no label rows"
    assert set(out["tasks"]) == set(tasks.BINARY_TASKS + tasks.EEP_TASKS)


def test_bad_labels_and_hourly_columns_raise():
    stay_ids, hourly, labels, split, _ = _world()
    with pytest.raises(ValueError, match="unknown tasks"):
        tasks.task_rows(labels.with_columns(pl.lit("mortality").alias("task")), stay_ids, np.full(N, T), split, 48)
    with pytest.raises(ValueError, match="not 0/1"):
        tasks.task_rows(labels.with_columns(pl.lit(2).alias("label")), stay_ids, np.full(N, T), split, 48)
    with pytest.raises(ValueError, match="heart_rate"):
        tasks.hourly_array(hourly.drop("heart_rate"), stay_ids, T)


def test_several_seeds_give_mean_and_sd_and_a_paired_test(prepared):
    rows, seq, xs, st = prepared
    r = rows.filter(pl.col("task") == "mort_hosp")
    x = tasks.summary_features(xs, r["row"].to_numpy(), r["last_hour"].to_numpy(), st)
    cfg = EvalConfig(seeds=(0, 1, 2), bootstrap=50, lgbm_estimators=50)

    def method(kind):
        return lambda ri, y, tr, va, te, seed: baselines.fit_predict_flat(kind, x[ri], y, tr, va, te, cfg, seed)

    out = tasks.evaluate_tasks(r, {"probe": method("lightgbm"), "logreg": method("logreg")}, cfg)
    m = out["tasks"]["mort_hosp"]["methods"]["probe"]
    assert m["auroc_seeds"]["n"] == 3 and m["auroc_seeds"]["sd"] > 0  # row/column subsampling varies by seed
    assert out["tasks"]["mort_hosp"]["methods"]["logreg"]["auroc_seeds"]["sd"] == pytest.approx(0, abs=1e-6)
    test = out["tasks"]["mort_hosp"]["vs_best_baseline"]["probe"]
    assert test["baseline"] == "logreg" and 0 <= test["p_value"] <= 1 and test["lo"] <= test["delta"] <= test["hi"]


def test_static_sex_feature_reads_the_extractors_values(extracted_data_dir):
    """The extraction writes sex as 'female'/'male' (sql/demographics/static.sql); the baselines'
    male indicator must be 1 exactly for 'male' rows, 0 for 'female' and 0.5 (unknown) for NULL."""
    static = pl.read_parquet(extracted_data_dir / "static.parquet")
    assert set(static["sex"].drop_nulls().unique()) == {"female", "male"}
    stay_ids = static["stay_id"].to_numpy()
    st = tasks.static_features(static, stay_ids, np.ones(len(stay_ids), dtype=bool))
    sex = static["sex"].to_list()
    expected = np.array([1.0 if s == "male" else 0.0 if s == "female" else 0.5 for s in sex])
    np.testing.assert_array_equal(st[:, 2], expected)
    assert 0 < expected.mean() < 1  # both sexes present: the column is informative
