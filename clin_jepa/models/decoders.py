"""Decoders from a latent to clinical variables (the reference's rollout-decoding protocol).

One small regressor per variable maps a D-dim latent to that variable's hourly value in its
original unit (bpm, mmHg, mmol/L, SOFA points, ...). They are fitted on the ENCODER latents of
train-split state texts and then read the predictor's rolled-out latents
(:mod:`clin_jepa.evaluation.rollout_decoding`) or a what-if rollout (:mod:`clin_jepa.whatif`).

Training rows (:func:`training_rows`): the state latent of hour h paired with the values of the
SAME hour h, **observed values only** (NaN elsewhere; each variable is fitted on the rows where
it was observed). Not forward filled: with the default event texts an hour's text only holds
what was charted in it, so a carried-forward value is not in its latent, and a decoder trained
to output it would learn the population mean instead of reading the latent. SOFA is computed
every hour and is therefore observed on every row.

Kinds: ``linear`` = ridge (scikit-learn Ridge; penalty chosen by RidgeCV's efficient
leave-one-out on at most ALPHA_ROWS rows, then refitted on all: measured 0.6 s -> 0.1 s a
variable at 30k rows, D = 64),
``mlp`` = one hidden layer of 64 ReLU units (scikit-learn MLPRegressor, early stopping);
inputs standardised with the fit rows' mean/sd, targets standardised per variable.
scikit-learn fits; the fitted weights are then kept as plain arrays and a prediction is their
matmul (plus ReLU), so :meth:`LatentDecoders.save` writes one ``.npz`` of float arrays and a
JSON header, loadable with ``allow_pickle=False``: no pickle, no joblib/skops, nothing
executable in the file, and no dependence on scikit-learn's private attributes across versions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clin_jepa.data.features import OBSERVATIONS
from clin_jepa.utils import atomic_path, get_logger

log = get_logger(__name__)

# --------------------------------------------------------------------------- #
# what is decoded (the one owner of the list): columns of hourly.parquet
# --------------------------------------------------------------------------- #

DECODE_GROUPS: dict[str, tuple[str, ...]] = {
    "vitals": tuple(o.name for o in OBSERVATIONS if o.group == "vitals"),  # HR, SBP, DBP, MAP, RR, SpO2, temp (7)
    "labs": tuple(o.name for o in OBSERVATIONS if o.source == "labevents"),  # blood gas, chemistry, haematology (16)
    "sofa": ("sofa",),  # derived hourly score (sql/concepts), 0-24 points
}
DECODE_VARIABLES: tuple[str, ...] = tuple(v for vs in DECODE_GROUPS.values() for v in vs)  # 24
KINDS = ("linear", "mlp")
RIDGE_ALPHAS = tuple(10.0 ** np.arange(-2, 5))  # penalties tried (standardised inputs and targets)
MLP_HIDDEN = 64
ALPHA_ROWS = 5_000  # linear: the penalty is chosen on a seeded sample of at most this many rows, then refitted on all
MIN_ROWS = 20  # a variable observed on fewer fit rows gets no decoder (predicts NaN)
FORMAT = 1  # version of the saved file
_PREDICT_CHUNK = 65_536  # rows per matmul in predict (bounds the float64 temporaries)


def variable_group(name: str) -> str:
    """'vitals' | 'labs' | 'sofa' of a decoded variable."""
    for g, vs in DECODE_GROUPS.items():
        if name in vs:
            return g
    raise KeyError(f"{name!r} is not a decoded variable; see clin_jepa.models.decoders.DECODE_VARIABLES")


class LatentDecoders:
    """Per-variable regressors latent (D,) -> value (original unit); see the module docstring."""

    def __init__(self, variables: tuple[str, ...] = DECODE_VARIABLES):
        self.variables = tuple(variables)
        self.kind: str | None = None
        self.x_mean: np.ndarray | None = None  # (D,)
        self.x_scale: np.ndarray | None = None  # (D,)
        self.y_mean = np.full(len(self.variables), np.nan)  # (V,) per-variable target standardisation
        self.y_scale = np.ones(len(self.variables))
        self.layers: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}  # var -> [(W (in, out), b (out,))]
        self.n_rows: dict[str, int] = {}  # fit rows per variable
        self.alpha: dict[str, float] = {}  # linear: the chosen ridge penalty

    # ------------------------------------------------------------------ fit
    def fit(self, latents: np.ndarray, values: np.ndarray, kind: str = "linear", seed: int = 0,
            threads: int | None = 1) -> LatentDecoders:
        """latents (n, D) float; values (n, V) in original units, NaN = not observed -> self.

        ``threads``: BLAS threads while fitting (1: measured 3.6x faster than the default pool on a
        shared 2-core CPU for D = 64; None = the library default, for large D on a free machine)."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            return self._fit(latents, values, kind, seed)

    def _fit(self, latents, values, kind, seed) -> LatentDecoders:
        from sklearn.linear_model import Ridge, RidgeCV
        from sklearn.neural_network import MLPRegressor

        if kind not in KINDS:
            raise ValueError(f"decoder kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
        x = np.asarray(latents, dtype=np.float64)
        y = np.asarray(values, dtype=np.float64)
        if x.ndim != 2 or y.shape != (len(x), len(self.variables)):
            raise ValueError(f"latents {x.shape} and values {y.shape} must be (n, D) and (n, V={len(self.variables)})")
        if not np.isfinite(x).all():
            raise ValueError("latents hold NaN/inf; re-embed the run (`clin-jepa embed --force`)")
        self.kind = kind
        self.x_mean = x.mean(axis=0)
        sd = x.std(axis=0)
        self.x_scale = np.where(sd > 1e-8, sd, 1.0)
        xs = (x - self.x_mean) / self.x_scale  # (n, D)
        self.layers, self.n_rows, self.alpha = {}, {}, {}
        for j, v in enumerate(self.variables):
            obs = np.isfinite(y[:, j])
            self.n_rows[v] = int(obs.sum())
            if self.n_rows[v] < MIN_ROWS:
                log.warning("decoder for %s: only %d observed rows (< %d), left out", v, self.n_rows[v], MIN_ROWS)
                continue
            yj = y[obs, j]
            self.y_mean[j], s = yj.mean(), yj.std()
            self.y_scale[j] = s if s > 1e-8 else 1.0
            t = (yj - self.y_mean[j]) / self.y_scale[j]
            if kind == "linear":
                rows = np.flatnonzero(obs)
                sub = rows if len(rows) <= ALPHA_ROWS else np.random.default_rng(seed).choice(rows, ALPHA_ROWS,
                                                                                             replace=False)
                self.alpha[v] = float(RidgeCV(alphas=RIDGE_ALPHAS).fit(xs[sub], t[np.searchsorted(rows, sub)]).alpha_)
                m = Ridge(alpha=self.alpha[v]).fit(xs[obs], t)
                self.layers[v] = [(m.coef_.reshape(-1, 1), np.atleast_1d(m.intercept_))]
            else:
                m = MLPRegressor(hidden_layer_sizes=(MLP_HIDDEN,), alpha=1e-3, early_stopping=True, max_iter=200,
                                 random_state=seed).fit(xs[obs], t)
                self.layers[v] = [(w.copy(), b.copy()) for w, b in zip(m.coefs_, m.intercepts_)]
        return self

    # -------------------------------------------------------------- predict
    def predict(self, latents: np.ndarray) -> np.ndarray:
        """latents (n, D) -> (n, V) float32 in original units (NaN for a variable without a decoder)."""
        if self.kind is None:
            raise RuntimeError("LatentDecoders.predict before fit/load")
        x = np.asarray(latents)
        if x.ndim != 2 or x.shape[1] != len(self.x_mean):
            raise ValueError(f"latents {x.shape}: the decoders were fitted on D = {len(self.x_mean)}")
        out = np.full((len(x), len(self.variables)), np.nan, dtype=np.float32)
        for lo in range(0, len(x), _PREDICT_CHUNK):
            xs = (x[lo: lo + _PREDICT_CHUNK].astype(np.float64) - self.x_mean) / self.x_scale  # (c, D)
            for j, v in enumerate(self.variables):
                if v not in self.layers:
                    continue
                h = xs
                for i, (w, b) in enumerate(self.layers[v]):
                    h = h @ w + b
                    if i < len(self.layers[v]) - 1:
                        h = np.maximum(h, 0.0)  # ReLU (MLPRegressor's default hidden activation)
                out[lo: lo + len(xs), j] = h[:, 0] * self.y_scale[j] + self.y_mean[j]
        return out

    # ----------------------------------------------------------- save/load
    def save(self, path) -> Path:
        """One .npz (float arrays + a JSON header), written atomically."""
        if self.kind is None:
            raise RuntimeError("LatentDecoders.save before fit")
        header = {"format": FORMAT, "kind": self.kind, "variables": list(self.variables), "n_rows": self.n_rows,
                  "alpha": self.alpha, "n_layers": {v: len(ls) for v, ls in self.layers.items()}}
        arrays = {"header": np.array(json.dumps(header)), "x_mean": self.x_mean, "x_scale": self.x_scale,
                  "y_mean": self.y_mean, "y_scale": self.y_scale}
        for v, ls in self.layers.items():
            for i, (w, b) in enumerate(ls):
                arrays[f"{v}/W{i}"], arrays[f"{v}/b{i}"] = w, b
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path) -> LatentDecoders:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: fit decoders first (LatentDecoders.fit(...).save(path))")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                if header.get("format") != FORMAT:
                    raise ValueError(f"format {header.get('format')} (this code reads {FORMAT})")
                self = cls(tuple(header["variables"]))
                self.kind, self.n_rows, self.alpha = header["kind"], header["n_rows"], header["alpha"]
                self.x_mean, self.x_scale = z["x_mean"], z["x_scale"]
                self.y_mean, self.y_scale = z["y_mean"], z["y_scale"]
                self.layers = {v: [(z[f"{v}/W{i}"], z[f"{v}/b{i}"]) for i in range(n)]
                               for v, n in header["n_layers"].items()}
        except (ValueError, KeyError, OSError) as e:
            raise ValueError(f"{path} is not a decoder file this code can read ({e}); refit and save it") from None
        return self


# --------------------------------------------------------------------------- #
# training rows of a run
# --------------------------------------------------------------------------- #


def read_values(data_dir, stay_ids: np.ndarray, window_hours: int,
                variables: tuple[str, ...] = DECODE_VARIABLES) -> np.ndarray:
    """hourly.parquet -> (N, T, V) float32 values in original units, NaN where not observed.

    (N, T, V) with V ~ 24 raw values, not latents: small next to the (U, D) latents."""
    import polars as pl

    path = Path(data_dir) / "hourly.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `clin-jepa extract` to build the data directory")
    h = pl.read_parquet(path)
    missing = [c for c in ("stay_id", "hour", *variables) if c not in h.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; rerun `clin-jepa extract` with the current schema")
    h = h.select(pl.col("stay_id").cast(pl.Int64), pl.col("hour").cast(pl.Int64),
                 *[pl.col(v).cast(pl.Float32) for v in variables])
    h = h.filter((pl.col("hour") >= 0) & (pl.col("hour") < window_hours)
                 & pl.col("stay_id").is_in(np.asarray(stay_ids, dtype=np.int64).tolist()))
    order = np.argsort(stay_ids)
    row = order[np.searchsorted(np.asarray(stay_ids)[order], h["stay_id"].to_numpy())]
    out = np.full((len(stay_ids), window_hours, len(variables)), np.nan, dtype=np.float32)
    out[row, h["hour"].to_numpy()] = h.select(variables).to_numpy()  # nulls -> NaN
    return out


def training_rows(latents: np.ndarray, state_ids: np.ndarray, lengths: np.ndarray, values: np.ndarray,
                  stays: np.ndarray, max_rows: int = 30_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Decoder fit rows: (state latent of hour h, observed values of hour h) of the given stays.

    latents (U, D) (memory-mapped is fine: only the chosen rows are read); state_ids (N, T) with
    -1 padding; lengths (N,); values (N, T, V) from :func:`read_values`; ``stays`` the row
    indices to use (the train split). Stay-hours with data and at least one observed variable;
    at most ``max_rows`` of them, a seeded uniform sample, so memory is (max_rows, D) whatever
    the cohort size. Returns X (n, D) float32 and Y (n, V) float32 (NaN = not observed)."""
    stays = np.asarray(stays)
    T = state_ids.shape[1]
    valid = (np.arange(T)[None, :] < lengths[stays, None]) & (state_ids[stays] >= 0)  # (S, T)
    valid &= np.isfinite(values[stays]).any(axis=-1)
    si, hi = np.nonzero(valid)
    if len(si) == 0:
        raise ValueError("no stay-hour of the given stays has an observed decoded variable; "
                         "check the split and hourly.parquet")
    if len(si) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(si), max_rows, replace=False))
        si, hi = si[keep], hi[keep]
    rows = stays[si]
    ids = state_ids[rows, hi]
    order = np.argsort(ids, kind="stable")  # ascending reads of a memory-mapped file
    x = np.empty((len(ids), latents.shape[1]), dtype=np.float32)
    x[order] = np.asarray(latents[ids[order]], dtype=np.float32)
    return x, values[rows, hi].astype(np.float32)


def fit_train_decoders(corpus, latents: np.ndarray, data_dir, kind: str = "linear", seed: int = 0,
                       max_rows: int = 30_000, values: np.ndarray | None = None) -> LatentDecoders:
    """Decoders of a run: fitted on the train-split stays of ``corpus`` (clin_jepa.data.windows.Corpus)
    with the run's encoder latents (U, D); ``values`` (N, T, V) when already read."""
    if values is None:
        values = read_values(data_dir, corpus.stay_ids, corpus.window_hours)
    train = np.flatnonzero(corpus.split == "train")
    if len(train) == 0:
        raise ValueError("the train split is empty: decoders are fitted on train stays; check data.split_fractions")
    x, y = training_rows(latents, corpus.state_ids, corpus.lengths, values, train, max_rows, seed)
    return LatentDecoders().fit(x, y, kind, seed)


__all__ = ["DECODE_GROUPS", "DECODE_VARIABLES", "KINDS", "LatentDecoders", "fit_train_decoders", "read_values",
           "training_rows", "variable_group"]
