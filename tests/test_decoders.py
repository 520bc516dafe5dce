"""Latent -> clinical-variable decoders (clin_jepa.models.decoders): real scikit-learn fits."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from clin_jepa.models.decoders import (
    DECODE_GROUPS,
    DECODE_VARIABLES,
    LatentDecoders,
    read_values,
    training_rows,
    variable_group,
)
from clin_jepa.utils import write_parquet


def _planted(n=3000, D=16, V=4, seed=0, missing=0.3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    w = rng.normal(size=(D, V))
    scale, offset = np.array([10.0, 0.5, 100.0, 2.0]), np.array([80.0, 7.4, 140.0, 1.0])
    y = (x @ w) * scale + offset + rng.normal(scale=0.1, size=(n, V)) * scale  # noise: ~1 % of the signal's variance
    y[rng.random((n, V)) < missing] = np.nan  # each variable observed on its own rows
    return x, y.astype(np.float32)


def _r2(y, p):
    ok = np.isfinite(y)
    return 1 - np.sum((y[ok] - p[ok]) ** 2) / np.sum((y[ok] - y[ok].mean()) ** 2)


def test_variables_are_hourly_columns_in_three_groups():
    from clin_jepa.data.features import DERIVED_COLUMNS, OBSERVATION_COLUMNS

    assert len(DECODE_VARIABLES) == 24 and len(set(DECODE_VARIABLES)) == 24
    assert set(DECODE_VARIABLES) <= set(OBSERVATION_COLUMNS + DERIVED_COLUMNS)
    assert {"heart_rate", "mbp", "spo2"} <= set(DECODE_GROUPS["vitals"])
    assert {"lactate", "creatinine", "platelets"} <= set(DECODE_GROUPS["labs"])
    assert variable_group("sofa") == "sofa" and variable_group("lactate") == "labs"
    with pytest.raises(KeyError, match="not a decoded variable"):
        variable_group("urine_output")


@pytest.mark.parametrize("kind,min_r2", [("linear", 0.98), ("mlp", 0.9)])
def test_decoders_recover_a_planted_linear_map(kind, min_r2):
    variables = ("a", "b", "c", "d")
    x, y = _planted()
    xt, _ = _planted(n=1000, seed=1)  # latents unrelated to y
    dec = LatentDecoders(variables).fit(x[:2000], y[:2000], kind=kind, seed=0)
    p = dec.predict(x[2000:])  # held-out rows of the same map, in original units
    assert p.shape == (1000, 4) and p.dtype == np.float32
    for j in range(4):
        assert _r2(y[2000:, j], p[:, j]) > min_r2, (kind, variables[j])
    assert dec.n_rows["a"] == int(np.isfinite(y[:2000, 0]).sum())
    # a latent unrelated to the values decodes nothing: R^2 near 0, so the test above can fail
    noise = LatentDecoders(variables).fit(xt[:800], y[:800], kind="linear")
    assert _r2(y[800:1000, 0], noise.predict(xt[800:])[:, 0]) < 0.05


def test_save_load_round_trip_is_exact_and_without_pickle(tmp_path):
    x, y = _planted(n=600)
    for kind in ("linear", "mlp"):
        dec = LatentDecoders(("a", "b", "c", "d")).fit(x, y, kind=kind, seed=3)
        path = dec.save(tmp_path / f"{kind}.npz")
        assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left
        with np.load(path, allow_pickle=False) as z:  # plain arrays only
            assert "header" in z.files
        back = LatentDecoders.load(path)
        assert back.kind == kind and back.variables == dec.variables and back.n_rows == dec.n_rows
        np.testing.assert_array_equal(back.predict(x[:50]), dec.predict(x[:50]))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="refit"):
        LatentDecoders.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="fit decoders first"):
        LatentDecoders.load(tmp_path / "missing.npz")


def test_too_few_rows_leave_a_variable_undecoded_and_bad_input_is_named():
    x, y = _planted(n=300)
    y[20:, 3] = np.nan  # 'd' observed on at most 20 rows -> < MIN_ROWS after the 30 % missing
    dec = LatentDecoders(("a", "b", "c", "d")).fit(x, y)
    p = dec.predict(x[:5])
    assert np.isnan(p[:, 3]).all() and np.isfinite(p[:, :3]).all()
    with pytest.raises(ValueError, match="unknown"):
        LatentDecoders(("a", "b", "c", "d")).fit(x, y, kind="tree")
    with pytest.raises(ValueError, match=r"\(n, V=4\)"):
        LatentDecoders(("a", "b", "c", "d")).fit(x, y[:, :3])
    with pytest.raises(ValueError, match="fitted on D = 16"):
        dec.predict(x[:, :8])


def test_training_rows_pair_the_hour_latent_with_the_same_hour_values(tmp_path):
    N, T, D = 5, 6, 3
    ids = np.arange(N * T).reshape(N, T)
    lengths = np.array([6, 4, 6, 2, 5])
    ids[1, 4:] = -1  # padding
    ids[3, 2:] = -1
    ids[4, 5:] = -1
    latents = np.repeat(np.arange(N * T, dtype=np.float32)[:, None], D, axis=1)  # latent of id i = (i, i, i)
    stay_ids = np.array([30_000_005, 30_000_001, 30_000_003, 30_000_002, 30_000_004])
    hours = [(s, h) for s, n in zip(stay_ids, lengths) for h in range(n)]
    rng = np.random.default_rng(0)
    hr = rng.uniform(60, 120, len(hours))
    hr[::3] = np.nan  # not charted in those hours
    frame = {"stay_id": [s for s, _ in hours], "hour": [h for _, h in hours], "heart_rate": hr}
    for v in DECODE_VARIABLES[1:]:
        frame[v] = np.full(len(hours), np.nan)
    write_parquet(pl.DataFrame(frame), tmp_path / "hourly.parquet")
    values = read_values(tmp_path, stay_ids, T)  # (N, T, V)
    assert values.shape == (N, T, 24) and np.isnan(values[1, 4:]).all()
    x, y = training_rows(latents, ids, lengths, values, stays=np.array([0, 1, 2]))
    expect = [(r, h) for r in (0, 1, 2) for h in range(lengths[r]) if np.isfinite(values[r, h, 0])]
    assert len(x) == len(expect)
    for (r, h), xi, yi in zip(expect, x, y):  # hour h's latent with hour h's observed value
        assert xi[0] == ids[r, h] and yi[0] == values[r, h, 0]
    xs, ys = training_rows(latents, ids, lengths, values, stays=np.array([0, 1, 2]), max_rows=4, seed=1)
    assert len(xs) == 4 and all(any(xi[0] == ids[r, h] for r, h in expect) for xi in xs)
