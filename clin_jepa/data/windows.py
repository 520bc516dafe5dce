"""Training/evaluation windows: the corpus as integer ids into one table of unique texts.

``load_corpus(data_dir)`` reads the hourly texts of the run's ``data.text_mode``
(``texts.parquet`` for ``events``, ``texts_snapshot.parquet`` for ``snapshot``: texts.TEXT_MODES),
``demographics.parquet``, ``cohort.parquet`` and ``splits.parquet`` (docs/design.md) and keeps
the first ``window_hours`` hours of every stay. Every text (demographics, state, action) is
replaced by its id in ``Corpus.texts``, so a batch is encoded once per distinct text
and a frozen encoder's latents can be cached by id. Hours inside a stay that have no
row in the texts file get the fixed NO_OBSERVATION / NO_ACTION sentences.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import torch

from clin_jepa.data.texts import NO_ACTION, NO_OBSERVATION
from clin_jepa.data.texts import text_mode as _mode
from clin_jepa.utils import get_logger

log = get_logger(__name__)


SPLITS = ("train", "val", "test")

_HOURLY_TEXTS = ("stay_id", "hour", "state_text", "action_text")  # columns of every mode's texts file
_REQUIRED = {
    "demographics.parquet": ("stay_id", "demo_text"),
    "cohort.parquet": ("stay_id", "subject_id"),
    "splits.parquet": ("subject_id", "split"),
}


class BatchInverse(NamedTuple):
    """Row of each batch position in the unique-latent table (padding -> the stay's demo row)."""

    demo: torch.Tensor  # (B,)
    state: torch.Tensor  # (B, T)
    action: torch.Tensor  # (B, T)


@dataclass
class WindowBatch:
    """A batch of stay windows as text ids (torch, CPU)."""

    stay_ids: torch.Tensor  # (B,) int64
    demo_ids: torch.Tensor  # (B,) int64
    state_ids: torch.Tensor  # (B, T) int64, -1 = padding
    action_ids: torch.Tensor  # (B, T) int64, -1 = padding
    mask: torch.Tensor  # (B, T) bool, True = real hour

    def unique_ids(self) -> tuple[torch.Tensor, BatchInverse]:
        """Distinct text ids of the batch (U,) and, per position, its row among them."""
        B, T = self.state_ids.shape
        pad = self.demo_ids[:, None].expand(B, T)  # padding reuses a valid id: nothing extra to encode
        state = torch.where(self.mask, self.state_ids, pad)
        action = torch.where(self.mask, self.action_ids, pad)
        flat = torch.cat([self.demo_ids, state.reshape(-1), action.reshape(-1)])  # (B + 2BT,)
        uniq, inv = torch.unique(flat, sorted=True, return_inverse=True)
        inverse = BatchInverse(inv[:B], inv[B:B + B * T].view(B, T), inv[B + B * T:].view(B, T))
        return uniq, inverse

    @staticmethod
    def gather(latents: torch.Tensor, inverse: BatchInverse) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unique latents (U, D) -> d (B, D), s (B, T, D), a (B, T, D)."""
        return latents[inverse.demo], latents[inverse.state], latents[inverse.action]

    def __len__(self) -> int:
        return int(self.stay_ids.shape[0])


@dataclass
class Corpus:
    """All windows of a data directory; ``texts[i]`` is the text of id ``i``."""

    texts: list[str]
    stay_ids: np.ndarray  # (N,) int64
    demo_ids: np.ndarray  # (N,) int64
    state_ids: np.ndarray  # (N, T) int64, -1 = padding
    action_ids: np.ndarray  # (N, T) int64, -1 = padding
    lengths: np.ndarray  # (N,) int64, hours of data (<= T)
    split: np.ndarray  # (N,) str: train / val / test

    @property
    def window_hours(self) -> int:
        return int(self.state_ids.shape[1])

    def __len__(self) -> int:
        return int(self.stay_ids.shape[0])

    def select(self, indices: np.ndarray) -> Corpus:
        """Rows ``indices`` (same text table, so ids stay valid)."""
        idx = np.asarray(indices, dtype=np.int64)
        return replace(self, stay_ids=self.stay_ids[idx], demo_ids=self.demo_ids[idx],
                       state_ids=self.state_ids[idx], action_ids=self.action_ids[idx],
                       lengths=self.lengths[idx], split=self.split[idx])

    def subset(self, split: str) -> Corpus:
        """Stays of one split (train / val / test)."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: use one of {', '.join(SPLITS)}")
        return self.select(np.flatnonzero(self.split == split))

    def batch(self, indices) -> WindowBatch:
        """Windows ``indices`` as torch id tensors with a validity mask."""
        idx = np.asarray(indices, dtype=np.int64)
        T = self.window_hours
        lengths = torch.from_numpy(self.lengths[idx])
        return WindowBatch(
            stay_ids=torch.from_numpy(self.stay_ids[idx]),
            demo_ids=torch.from_numpy(self.demo_ids[idx]),
            state_ids=torch.from_numpy(self.state_ids[idx]),
            action_ids=torch.from_numpy(self.action_ids[idx]),
            mask=torch.arange(T)[None, :] < lengths[:, None],  # (B, T)
        )


# ---------------------------------------------------------------------- #
# loading
# ---------------------------------------------------------------------- #


def _read(data_dir: Path, name: str) -> pl.DataFrame:
    path = data_dir / name
    if not path.exists():
        extra = (" (this directory was extracted before that text mode existed: rerun `clin-jepa extract`)"
                 if (data_dir / "manifest.json").exists() else "")
        raise FileNotFoundError(f"{path} not found: run `clin-jepa extract` to build the data directory first{extra}")
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - polars raises several kinds for a corrupt file
        raise ValueError(f"{path} is not a readable parquet file ({e}); delete it and rerun `clin-jepa extract`") from None
    required = _REQUIRED.get(name, _HOURLY_TEXTS)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing} (has {df.columns}); rerun `clin-jepa extract` "
                         f"to rebuild it with the current schema")
    return df.select(required)


def run_corpus(cfg) -> Corpus:
    """The corpus a run reads: its data directory, window and text mode (``cfg``: a RunConfig).
    The one way the stages open a run's corpus, so none can fall back to the default text mode
    (the what-if rollouts once read the events texts of a snapshot run)."""
    return load_corpus(cfg.data_path, cfg.data.window_hours, cfg.data.text_mode)


def load_corpus(data_dir, window_hours: int = 72, text_mode: str = "events") -> Corpus:
    """The first ``window_hours`` hours of every cohort stay, as text ids (docs/design.md), with
    the hourly texts of ``text_mode`` (data.text_mode: events | snapshot)."""
    texts_file = _mode(text_mode).file
    if window_hours < 2:
        raise ValueError(f"window_hours={window_hours}: must be >= 2 (the predictor needs a next hour)")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory {data_dir} not found: run `clin-jepa extract` first")
    texts = _read(data_dir, texts_file)
    demo = _read(data_dir, "demographics.parquet")
    cohort = _read(data_dir, "cohort.parquet")
    splits = _read(data_dir, "splits.parquet")
    T = window_hours

    # stays: cohort x split, keeping those with texts and demographics
    key = pl.col("subject_id").cast(pl.Int64)
    stays = cohort.with_columns(key).join(splits.with_columns(key).unique("subject_id", keep="first"),
                                          on="subject_id", how="left")
    if stays["split"].null_count():
        raise ValueError(f"{stays['split'].null_count()} cohort patients have no row in splits.parquet; "
                         f"rerun `clin-jepa extract` so cohort and splits agree")
    bad = sorted(set(stays["split"].unique().to_list()) - set(SPLITS))
    if bad:
        raise ValueError(f"splits.parquet has unknown split names {bad}; use train/val/test")
    texts = texts.with_columns(pl.col("stay_id").cast(pl.Int64), pl.col("hour").cast(pl.Int64))
    texts = texts.filter((pl.col("hour") >= 0) & (pl.col("hour") < T))
    have = texts.select("stay_id").unique().join(demo.select(pl.col("stay_id").cast(pl.Int64)), on="stay_id")
    stays = (stays.with_columns(pl.col("stay_id").cast(pl.Int64))
             .join(have, on="stay_id", how="semi").sort("stay_id"))
    dropped = cohort.height - stays.height
    if dropped:
        log.warning("%d cohort stays have no hourly texts or demographics and are left out", dropped)
    if stays.height == 0:
        raise ValueError(f"no usable stays in {data_dir}: {texts_file}/demographics.parquet share no stay_id "
                         f"with cohort.parquet; rerun `clin-jepa extract`")
    if texts.select("stay_id", "hour").is_duplicated().any():
        raise ValueError(f"{texts_file} has several rows for one (stay_id, hour); rerun `clin-jepa extract`")
    for col in ("state_text", "action_text"):
        if texts[col].null_count():
            raise ValueError(f"{texts_file} has null {col}; rerun `clin-jepa extract` (every hour needs a text)")

    stay_ids = stays["stay_id"].to_numpy().astype(np.int64)  # (N,) sorted
    texts = texts.join(stays.select("stay_id"), on="stay_id", how="semi").sort("stay_id", "hour")
    demo = (demo.with_columns(pl.col("stay_id").cast(pl.Int64)).unique("stay_id", keep="first")
            .join(stays.select("stay_id"), on="stay_id", how="semi").sort("stay_id"))

    # one table of unique texts, deterministic order of first appearance
    all_texts = pl.concat([
        pl.Series("text", [NO_OBSERVATION, NO_ACTION], dtype=pl.String),
        demo["demo_text"].cast(pl.String).rename("text"),
        texts["state_text"].cast(pl.String).rename("text"),
        texts["action_text"].cast(pl.String).rename("text"),
    ]).unique(maintain_order=True)
    table = pl.DataFrame({"text": all_texts}).with_row_index("text_id")

    def ids(col: pl.Series) -> np.ndarray:
        frame = pl.DataFrame({"text": col.cast(pl.String)})
        return frame.join(table, on="text", how="left", maintain_order="left")["text_id"].to_numpy().astype(np.int64)

    N = stay_ids.shape[0]
    row = np.searchsorted(stay_ids, texts["stay_id"].to_numpy())  # (R,) stay row of each text row
    hour = texts["hour"].to_numpy().astype(np.int64)  # (R,)
    lengths = np.zeros(N, dtype=np.int64)
    np.maximum.at(lengths, row, hour + 1)
    valid = np.arange(T)[None, :] < lengths[:, None]  # (N, T)
    state_ids = np.where(valid, 0, -1).astype(np.int64)  # 0 = NO_OBSERVATION for gaps
    action_ids = np.where(valid, 1, -1).astype(np.int64)  # 1 = NO_ACTION
    state_ids[row, hour] = ids(texts["state_text"])
    action_ids[row, hour] = ids(texts["action_text"])
    demo_ids = ids(demo["demo_text"])  # (N,), demo sorted by stay_id like stay_ids
    gaps = int(valid.sum() - len(hour))
    if gaps:
        log.info("%d stay-hours inside windows had no text row and use the fixed sentences", gaps)
    return Corpus(
        texts=table["text"].to_list(),
        stay_ids=stay_ids,
        demo_ids=demo_ids,
        state_ids=state_ids,
        action_ids=action_ids,
        lengths=lengths,
        split=stays["split"].to_numpy().astype(str),
    )
