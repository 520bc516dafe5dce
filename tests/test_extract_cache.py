"""Typed source copies are kept between runs, keyed by the inputs' fingerprint: a rerun
reuses them (manifest "cache": "hit") with identical outputs, a touched input is parsed
again, and the copies (registry itemids only) give what reading the csv.gz in place gives."""

from __future__ import annotations

import os

import polars as pl
import pytest
from test_extract_helpers import standard_mini

from clin_jepa.config import DataConfig
from clin_jepa.data import source_cache
from clin_jepa.data.extract import run_extraction


def _cfg(cache, **kw) -> DataConfig:
    return DataConfig(duckdb_memory_limit="1GB", duckdb_threads=2, source_cache_dir=str(cache), **kw)


def _caches(man) -> dict[str, str]:
    """Cache use of the tables the SQL read."""
    return {t: r["cache"] for t, r in man["sources"].items() if r["cache"] != "not read"}


@pytest.fixture
def mimic(tmp_path):
    m = standard_mini()
    m.chart(101, 3.2, 999_999, 1.0)  # an itemid outside the registry: not kept in the copy
    return m.write(tmp_path / "mimic")


def test_rerun_uses_the_cache_and_gives_identical_outputs(mimic, tmp_path):
    cache = tmp_path / "cache"
    first = run_extraction(mimic, tmp_path / "a", _cfg(cache))
    assert set(_caches(first).values()) == {"miss"}
    assert len(list(cache.glob("*.parquet"))) == len(_caches(first)) >= 8
    second = run_extraction(mimic, tmp_path / "b", _cfg(cache))
    assert set(_caches(second).values()) == {"hit"}
    assert second["fingerprint"]["data"] == first["fingerprint"]["data"]
    copy = next(cache.glob("chartevents.*.parquet"))
    ids = set(pl.read_parquet(copy)["itemid"].unique())
    assert 999_999 not in ids and ids <= set(source_cache.registry_itemids())

    ce = mimic / "icu" / "chartevents.csv.gz"
    st = ce.stat()
    os.utime(ce, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched, same bytes
    third = run_extraction(mimic, tmp_path / "c", _cfg(cache))
    assert _caches(third)["chartevents"] == "miss" and _caches(third)["icustays"] == "hit"
    assert third["fingerprint"]["data"] == first["fingerprint"]["data"]
    assert len(list(cache.glob("chartevents.*"))) == 1  # the stale copy was replaced


def test_cached_copies_equal_reading_in_place(mimic, tmp_path):
    cached = run_extraction(mimic, tmp_path / "a", _cfg(tmp_path / "cache"))
    in_place = run_extraction(mimic, tmp_path / "b", _cfg(tmp_path / "unused", cache_sources=False))
    assert set(_caches(in_place).values()) == {"in place"}
    assert in_place["fingerprint"]["outputs"] == cached["fingerprint"]["outputs"]
    assert not (tmp_path / "unused").exists()


def test_cache_dir_never_inside_the_input_and_scratch_of_a_killed_copy_is_removed(mimic, tmp_path):
    with pytest.raises(ValueError, match="inside the MIMIC-IV input"):
        run_extraction(mimic, tmp_path / "a", _cfg(mimic / "cache"))
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / "chartevents.0123456789ab.0123.parquet.part.999999999"  # a dead process's partial copy
    stale.write_bytes(b"PAR1 half written")
    run_extraction(mimic, tmp_path / "b", _cfg(cache))
    assert not stale.exists()
