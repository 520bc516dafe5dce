"""Counterfactual treatment rollouts: ask a run's world model "what if" (docs/whatif.md).

    from clin_jepa.whatif import WhatIf
    wi = WhatIf("runs/demo")
    wi.query(stay_id, from_hour=12, scenarios="configs/scenarios/vasopressor.yaml")  # one context

From each stay's real context (demographics, state and action latents of hours 0..K-1) the
predictor rolls out ``horizon`` hours under each scenario's actions; the action texts are
written in the project's own format (clin_jepa.data.texts) from the stay's real hourly
actions with the scenario's changes, and encoded by the run's final encoder (a text already in
RUN/embeddings reuses its stored latent, so the factual scenario IS the ordinary rollout, bit
for bit). Decoders (clin_jepa.models.decoders, fitted on the run's train-split encoder
latents) read vitals, labs and SOFA off every rolled-out latent.

Library code: no clin_jepa.evaluation import; ``clin-jepa whatif`` (pipelines/whatif.py)
aggregates over stays, and clin_jepa.whatif_fidelity scores effects against the simulator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from clin_jepa.data import texts as T
from clin_jepa.data.features import ACTION_COLUMNS, OBSERVATION_COLUMNS
from clin_jepa.whatif_scenarios import ScenarioSet, Setting, apply_to_actions, load_scenarios

HORIZON = 24  # hours rolled out by default (the 1-24 h)
SPLITS = ("train", "val", "test", "all")


class WhatIf:
    """A trained run's encoder, predictor and decoders, ready for what-if rollouts.

    Memory: the run's latents stay memory-mapped; only the chosen stays' (n, K+H, D) inputs
    and the new scenario texts' latents are built."""

    def __init__(self, run_dir, device: str = "cpu", decoder_kind: str = "linear"):
        from clin_jepa.config import load_run_config
        from clin_jepa.data.windows import run_corpus
        from clin_jepa.run import RunDir

        self.run = RunDir(run_dir)
        if not self.run.exists():
            raise FileNotFoundError(f"{self.run.root} is not a run directory (no config.yaml); "
                                    "pass the --run of a trained and embedded run")
        self.cfg = load_run_config(self.run.root)
        self.device = device
        self.decoder_kind = decoder_kind
        self.corpus = run_corpus(self.cfg)
        self.latents = self.run.load_latents(self.corpus.texts)  # (U, D), memory-mapped when stored in order
        self._index = {t: i for i, t in enumerate(self.corpus.texts)}
        self.predictor = self.run.load_final_predictor().to(device)
        if self.predictor.latent_dim != self.latents.shape[1]:
            raise ValueError(f"predictor latent_dim {self.predictor.latent_dim} != embedding dim "
                             f"{self.latents.shape[1]}; rerun `clin-jepa embed --run {self.run.root} --force`")
        self._encoder = None
        self._new: dict[str, np.ndarray] = {}  # latents of scenario texts not in RUN/embeddings
        self._actions: pl.DataFrame | None = None
        self._decoders = None
        self._values: np.ndarray | None = None

    # ------------------------------------------------------------------ stays
    def eligible(self, from_hour: int, horizon: int = HORIZON, split: str = "test") -> np.ndarray:
        """Corpus rows of ``split`` stays with K hours of context and real actions for every
        rolled-out hour (length >= K + H - 1)."""
        K, H = int(from_hour), int(horizon)
        if split not in SPLITS:
            raise ValueError(f"cohort {split!r}: use one of {', '.join(SPLITS)}")
        if K < 1 or H < 1:
            raise ValueError(f"--from-hour {K} and horizon {H} must be >= 1")
        limit = min(self.corpus.window_hours, self.predictor.config.max_steps)
        if K + H - 1 > limit:
            raise ValueError(f"from hour {K} + horizon {H} - 1 exceeds the run's {limit} h window "
                             f"(data.window_hours / predictor.max_steps); lower --from-hour or the horizon")
        ok = self.corpus.lengths >= K + H - 1
        if split != "all":
            ok &= self.corpus.split == split
        return np.flatnonzero(ok)

    def rows_of(self, stay_ids) -> np.ndarray:
        """Corpus rows of the given stay ids (an error naming how many are unknown)."""
        ids = np.asarray(stay_ids, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.corpus.stay_ids, ids), len(self.corpus) - 1)
        bad = self.corpus.stay_ids[pos] != ids
        if bad.any():
            raise ValueError(f"{int(bad.sum())} stay id(s) are not in the run's corpus; pick stays of its data directory")
        return pos

    # ---------------------------------------------------------------- actions
    def hourly_actions(self) -> pl.DataFrame:
        """(stay_id, hour, ACTION_COLUMNS) of the corpus stays within the window (read once)."""
        if self._actions is None:
            path = Path(self.cfg.data_path) / "hourly.parquet"
            if not path.exists():
                raise FileNotFoundError(f"{path} not found: run `clin-jepa extract` for this run first")
            self._actions = (pl.scan_parquet(path)
                             .select(pl.col("stay_id").cast(pl.Int64), pl.col("hour").cast(pl.Int64),
                                     *[pl.col(c).cast(pl.Float64) for c in ACTION_COLUMNS])
                             .filter(pl.col("hour") < self.corpus.window_hours).collect())
        return self._actions

    def scenario_actions(self, rows: np.ndarray, from_hour: int, horizon: int,
                         settings: tuple[Setting, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Action columns of hours K-1 .. K+H-2 (the inputs shaping hours K .. K+H-1) of corpus
        ``rows``, n*H rows in row-major order: the real ones and those under ``settings``.
        An hour without an hourly row has no action."""
        K, H = int(from_hour), int(horizon)
        hours = np.arange(K - 1, K + H - 1)
        grid = pl.DataFrame({"stay_id": np.repeat(self.corpus.stay_ids[rows], H), "hour": np.tile(hours, len(rows))})
        base = grid.join(self.hourly_actions().with_columns(pl.lit(True).alias("__row")), on=["stay_id", "hour"],
                         how="left", maintain_order="left")
        base = base.with_columns([pl.when(pl.col("__row").is_null()).then(0.0).otherwise(pl.col(c)).alias(c)
                                  for c in ACTION_COLUMNS]).drop("__row")
        return base, apply_to_actions(base, settings, K)

    def action_texts(self, rows: np.ndarray, from_hour: int, horizon: int,
                     settings: tuple[Setting, ...]) -> tuple[list[str], np.ndarray]:
        """Scenario action texts of hours K-1 .. K+H-2 of corpus ``rows``: the texts (n*H, row
        major) and where the scenario changed the hour's actions ((n, H) bool; elsewhere the
        corpus text stands)."""
        base, acts = self.scenario_actions(rows, from_hour, horizon, settings)
        changed = np.zeros(len(acts), bool)
        for c in ACTION_COLUMNS:
            changed |= ~(acts[c].eq_missing(base[c])).to_numpy()
        frame = acts.with_columns([pl.lit(None, pl.Float64).alias(c) for c in OBSERVATION_COLUMNS])
        return T.hourly_texts(frame)["action_text"].to_list(), changed.reshape(len(rows), int(horizon))

    def _latent_of(self, texts: list[str]) -> np.ndarray:
        """(len(texts), D) latents: stored ones from RUN/embeddings, new ones encoded once."""
        new = sorted({t for t in texts if t not in self._index and t not in self._new})
        if new:
            enc = self.encoder()
            with torch.no_grad():
                z = enc.encode(new, adapter="online").float().cpu().numpy()
            self._new.update(zip(new, z))
        return np.stack([np.asarray(self.latents[self._index[t]], np.float32) if t in self._index else self._new[t]
                         for t in texts]) if texts else np.zeros((0, self.latents.shape[1]), np.float32)

    def encoder(self):
        if self._encoder is None:
            self._encoder = self.run.load_final_encoder(self.cfg, device=self.device)
        return self._encoder

    # ---------------------------------------------------------------- rollout
    def inputs(self, rows: np.ndarray, from_hour: int, horizon: int, settings: tuple[Setting, ...] = ()):
        """d (n, D), s_ctx (n, K, D), a (n, K+H-1, D) of corpus ``rows`` under ``settings``."""
        K, H = int(from_hour), int(horizon)
        c = self.corpus
        d = np.asarray(self.latents[c.demo_ids[rows]], np.float32)
        s_ctx = np.asarray(self.latents[c.state_ids[rows, :K]], np.float32)
        a = np.asarray(self.latents[c.action_ids[rows, : K + H - 1]], np.float32)
        if settings:
            texts, changed = self.action_texts(rows, K, H, settings)
            i, h = np.nonzero(changed)
            if len(i):
                a[i, K - 1 + h] = self._latent_of([texts[j * H + k] for j, k in zip(i, h)])
        return d, s_ctx, a

    @torch.no_grad()
    def rollout(self, rows: np.ndarray, from_hour: int, horizon: int = HORIZON,
                settings: tuple[Setting, ...] = (), batch_size: int = 64) -> np.ndarray:
        """(n, H, D) predicted state latents of hours K .. K+H-1 under ``settings``."""
        out = []
        self.predictor.eval()
        for i in range(0, len(rows), batch_size):
            d, s, a = self.inputs(rows[i:i + batch_size], from_hour, horizon, settings)
            z = self.predictor.rollout(*(torch.from_numpy(x).to(self.device) for x in (d, s, a)), horizon=horizon)
            out.append(z.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, horizon, self.latents.shape[1]), np.float32)

    # ---------------------------------------------------------------- decode
    def decoders(self):
        """The run's latent -> clinical-variable decoders (fitted once on its train split)."""
        if self._decoders is None:
            from clin_jepa.models.decoders import fit_train_decoders

            self._decoders = fit_train_decoders(self.corpus, self.latents, self.cfg.data_path,
                                                kind=self.decoder_kind, seed=self.cfg.eval.seeds[0],
                                                values=self.values())
        return self._decoders

    def values(self) -> np.ndarray:
        """(N, T, V) observed hourly values of the corpus stays (``variables``; NaN = not observed)."""
        if self._values is None:
            from clin_jepa.models.decoders import read_values

            self._values = read_values(self.cfg.data_path, self.corpus.stay_ids, self.corpus.window_hours)
        return self._values

    @property
    def variables(self) -> tuple[str, ...]:
        from clin_jepa.models.decoders import DECODE_VARIABLES

        return DECODE_VARIABLES

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(n, H, D) latents -> (n, H, V) decoded values (``variables``, original units)."""
        n, H, D = z.shape
        return self.decoders().predict(z.reshape(n * H, D)).reshape(n, H, -1)

    def scenario_rollouts(self, rows: np.ndarray, from_hour: int, scenarios: ScenarioSet,
                          horizon: int = HORIZON) -> dict[str, np.ndarray]:
        """scenario -> (n, H, V) decoded values along its rollout."""
        return {name: self.decode(self.rollout(rows, from_hour, horizon, settings))
                for name, settings in scenarios.scenarios.items()}

    def query(self, stay_id: int, from_hour: int, scenarios, horizon: int = HORIZON) -> pl.DataFrame:
        """One context, for a notebook: (scenario, hour, variable, value) of its decoded rollouts.
        ``scenarios``: a ScenarioSet or a scenario YAML path. Patient-level: keep it in the notebook."""
        sc = scenarios if isinstance(scenarios, ScenarioSet) else load_scenarios(scenarios)
        rows = self.rows_of([stay_id])
        if self.corpus.lengths[rows[0]] < from_hour + horizon - 1:
            raise ValueError(f"the stay has {int(self.corpus.lengths[rows[0]])} h of data; it needs "
                             f"{from_hour + horizon - 1} (from hour {from_hour} + horizon {horizon} - 1)")
        out = self.scenario_rollouts(rows, from_hour, sc, horizon)
        H, V = horizon, len(self.variables)
        return pl.concat([pl.DataFrame({"scenario": [name] * (H * V),
                                        "hour": np.repeat(from_hour + np.arange(H), V),
                                        "variable": list(self.variables) * H,
                                        "value": vals[0].reshape(-1).astype(np.float64)})
                          for name, vals in out.items()])


__all__ = ["HORIZON", "WhatIf"]
