"""Corpus / windows: ids, padding, gap filling, splits, dedup and bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from clin_jepa.data.windows import NO_ACTION, NO_OBSERVATION, Corpus, load_corpus


def write_tiny_data(out: Path, stays: int = 12, hours: int = 10, seed: int = 0, gap_stay: bool = True) -> Path:
    """A tiny data directory in the docs/design.md layout (texts/demographics/cohort/splits)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(stays):
        stay = 1000 + i
        n = int(rng.integers(3, hours + 1))
        for h in range(n):
            if gap_stay and i == 0 and h in (1, 2):
                continue  # hours with no text row -> fixed sentences
            hr = int(rng.integers(60, 120))
            state = f"Hour {h}. Heart rate {hr} bpm." if rng.random() < 0.8 else NO_OBSERVATION
            action = "Norepinephrine 0.1 mcg/kg/min." if rng.random() < 0.3 else NO_ACTION
            rows.append((stay, h, state, action))
    texts = pl.DataFrame(rows, schema=["stay_id", "hour", "state_text", "action_text"], orient="row")
    texts.write_parquet(out / "texts.parquet")
    pl.DataFrame({"stay_id": [1000 + i for i in range(stays)],
                  "demo_text": [f"Age {50 + i % 3} years, {'male' if i % 2 else 'female'}." for i in range(stays)]}
                 ).write_parquet(out / "demographics.parquet")
    pl.DataFrame({"stay_id": [1000 + i for i in range(stays)], "subject_id": [10 + i for i in range(stays)],
                  "hadm_id": [500 + i for i in range(stays)], "los_hours": [float(hours)] * stays,
                  "first_stay": [True] * stays}).write_parquet(out / "cohort.parquet")
    split = ["train" if i % 4 < 2 else ("val" if i % 4 == 2 else "test") for i in range(stays)]
    pl.DataFrame({"subject_id": [10 + i for i in range(stays)], "split": split}).write_parquet(out / "splits.parquet")
    return out


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_tiny_data(tmp_path / "data")


def test_ids_roundtrip_to_texts(tiny):
    T = 6
    c = load_corpus(tiny, window_hours=T)
    texts = pl.read_parquet(tiny / "texts.parquet")
    assert len(c) == 12 and c.state_ids.shape == (12, T) and c.action_ids.shape == (12, T)
    assert len(set(c.texts)) == len(c.texts)  # unique table
    row_of = {int(s): i for i, s in enumerate(c.stay_ids)}
    for stay, hour, st, ac in texts.iter_rows():
        if hour < T:
            assert c.texts[c.state_ids[row_of[stay], hour]] == st
            assert c.texts[c.action_ids[row_of[stay], hour]] == ac
    demo = dict(pl.read_parquet(tiny / "demographics.parquet").iter_rows())
    assert [c.texts[i] for i in c.demo_ids] == [demo[int(s)] for s in c.stay_ids]
    # hours beyond the data are padding, and lengths are capped at T
    max_hour = texts.group_by("stay_id").agg(pl.col("hour").max()).sort("stay_id")["hour"].to_numpy()
    np.testing.assert_array_equal(c.lengths, np.minimum(max_hour + 1, T))
    pad = np.arange(T)[None, :] >= c.lengths[:, None]
    assert (c.state_ids[pad] == -1).all() and (c.action_ids[pad] == -1).all()
    assert (c.state_ids[~pad] >= 0).all()


def test_gaps_get_fixed_sentences(tiny):
    c = load_corpus(tiny, window_hours=8)
    row = int(np.flatnonzero(c.stay_ids == 1000)[0])
    for h in (1, 2):
        assert c.texts[c.state_ids[row, h]] == NO_OBSERVATION
        assert c.texts[c.action_ids[row, h]] == NO_ACTION


def test_subset_and_batch(tiny):
    c = load_corpus(tiny, window_hours=6)
    tr, va, te = c.subset("train"), c.subset("val"), c.subset("test")
    assert len(tr) + len(va) + len(te) == len(c)
    assert set(tr.split) == {"train"} and tr.texts is c.texts
    assert not set(tr.stay_ids) & set(va.stay_ids)
    b = tr.batch([0, 2, 1])
    assert b.state_ids.shape == (3, 6) and b.mask.dtype == torch.bool
    assert b.mask.sum(1).tolist() == tr.lengths[[0, 2, 1]].tolist()
    uniq, inv = b.unique_ids()
    assert uniq.unique().numel() == uniq.numel()
    ids_used = set(b.demo_ids.tolist()) | set(b.state_ids[b.mask].tolist()) | set(b.action_ids[b.mask].tolist())
    assert set(uniq.tolist()) == ids_used  # padding encodes nothing extra
    lat = torch.randn(len(c.texts), 4)
    d, s, a = b.gather(lat[uniq], inv)
    assert torch.equal(d, lat[b.demo_ids])
    assert torch.equal(s[b.mask], lat[b.state_ids[b.mask]]) and torch.equal(a[b.mask], lat[b.action_ids[b.mask]])
    with pytest.raises(ValueError, match="train/val/test|one of"):
        c.subset("validation")


def test_deterministic(tiny):
    a, b = load_corpus(tiny, 6), load_corpus(tiny, 6)
    assert a.texts == b.texts and np.array_equal(a.state_ids, b.state_ids)


def test_missing_and_bad_files(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="clin-jepa extract"):
        load_corpus(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    (broken / "splits.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="splits.parquet.*clin-jepa extract"):
        load_corpus(broken)
    pl.DataFrame({"subject_id": [1], "fold": ["train"]}).write_parquet(broken / "splits.parquet")
    with pytest.raises(ValueError, match=r"lacks columns \['split'\]"):
        load_corpus(broken)
    (broken / "splits.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="not a readable parquet"):
        load_corpus(broken)
    with pytest.raises(ValueError, match="window_hours"):
        load_corpus(tiny, window_hours=1)


def test_narrow_key_dtypes_and_bad_rows(tiny):
    """Int32/Int16 keys join like Int64; duplicate or null text rows are refused."""
    c64 = load_corpus(tiny, 6)
    pl.read_parquet(tiny / "splits.parquet").with_columns(pl.col("subject_id").cast(pl.Int32)).write_parquet(
        tiny / "splits.parquet")
    texts = pl.read_parquet(tiny / "texts.parquet")
    texts.with_columns(pl.col("stay_id").cast(pl.Int32), pl.col("hour").cast(pl.Int16)).write_parquet(
        tiny / "texts.parquet")
    c = load_corpus(tiny, 6)
    assert np.array_equal(c.state_ids, c64.state_ids) and list(c.split) == list(c64.split)
    pl.concat([texts, texts.head(1)]).write_parquet(tiny / "texts.parquet")
    with pytest.raises(ValueError, match="several rows for one"):
        load_corpus(tiny, 6)
    texts.with_columns(pl.when(pl.col("hour") == 0).then(None).otherwise(pl.col("state_text")).alias("state_text")
                       ).write_parquet(tiny / "texts.parquet")
    with pytest.raises(ValueError, match="null state_text"):
        load_corpus(tiny, 6)


def test_extracted_fixture_corpus(extracted_data_dir):
    """The real extraction output loads; every window hour has a text."""
    c: Corpus = load_corpus(extracted_data_dir, window_hours=24)
    assert len(c) > 0 and (c.lengths >= 1).all()
    valid = np.arange(24)[None, :] < c.lengths[:, None]
    assert (c.state_ids[valid] >= 0).all() and (c.action_ids[valid] >= 0).all()


def test_text_mode_chooses_the_texts_file(extracted_data_dir, tiny):
    """The extraction writes every text mode; a run's data.text_mode picks the file, same stays and hours."""
    events = load_corpus(extracted_data_dir, 24)
    snap = load_corpus(extracted_data_dir, 24, "snapshot")
    assert np.array_equal(snap.stay_ids, events.stay_ids) and np.array_equal(snap.lengths, events.lengths)
    assert list(snap.split) == list(events.split)
    action = lambda c: np.array(c.texts, dtype=object)[c.action_ids[c.action_ids >= 0]]  # noqa: E731
    assert (action(snap) == action(events)).all()  # actions are the same in both modes
    state = lambda c: np.array(c.texts, dtype=object)[c.state_ids[c.state_ids >= 0]]  # noqa: E731
    assert any("h ago)" in t for t in state(snap)) and not any("h ago)" in t for t in state(events))
    with pytest.raises(FileNotFoundError, match="texts_snapshot.parquet not found"):
        load_corpus(tiny, 6, "snapshot")  # a directory without that mode's texts
    with pytest.raises(ValueError, match="choose one of events, snapshot"):
        load_corpus(tiny, 6, "daily")
