"""How much of each value a state text reports its latent carries (linear decodability).

The distinct state texts of train-split stays (fit) and of the other stays (held out, by
patient) are parsed for every value the text reads ("HR 88 bpm", "GCS E4 V5 M6", "SOFA 3",
the hour index; labels from clin_jepa.data.features and texts); a ridge regression latent ->
value (standardised latents, alpha by cross-validation on the fit texts) is fitted per
variable and scored (R^2) on the held-out texts. Aggregates only: R^2 and text counts.

The latents: RUN/embeddings when present (what evaluation reads), else the run's final
encoder, else its SFT encoder (``source`` picks one). Written to RUN/eval/latent_content.json.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import polars as pl

from clin_jepa.config import RunConfig
from clin_jepa.data import features
from clin_jepa.data.texts import _DERIVED
from clin_jepa.data.texts import text_mode as text_mode_of
from clin_jepa.run import RunDir
from clin_jepa.utils import get_logger, write_json

log = get_logger(__name__)

SOURCES = ("auto", "embeddings", "final", "sft")
MIN_TEXTS = (50, 20)  # fit / held-out texts a variable needs to be scored
RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
_NUMBER = r"(-?\d+(?:\.\d+)?)"


def variables() -> dict[str, re.Pattern]:
    """Variable label -> pattern of its value in a state text (observations, scores, hour)."""
    out = {"Hour": re.compile(rf"^Hour {_NUMBER}\.")}
    for o in features.OBSERVATIONS:
        sep = "" if o.group == "gcs" else " "
        out[o.text_label] = re.compile(rf"(?<![\w/]){re.escape(o.text_label)}{sep}{_NUMBER}")
    for _, label in _DERIVED:
        out[label] = re.compile(rf"(?<![\w/]){re.escape(label)} {_NUMBER}")
    return out


def parse_values(texts: list[str]) -> dict[str, np.ndarray]:
    """(n,) float arrays, NaN where a text does not report the variable."""
    out = {}
    for label, pat in variables().items():
        out[label] = np.array([float(m.group(1)) if (m := pat.search(t)) else np.nan for t in texts])
    return out


def split_state_texts(data_dir: str | os.PathLike, max_texts: int, seed: int, text_mode: str = "events",
                      window_hours: int | None = None) -> tuple[list[str], list[str]]:
    """Distinct state texts of train-split stays and of held-out (validation + test) stays,
    each sampled down to ``max_texts`` (fixed seed); a text seen in both counts as fit only.
    ``text_mode``: the run's data.text_mode (its text file); ``window_hours``: only hours
    0..window_hours-1, the hours a run encodes (as clin_jepa.data.windows.load_corpus)."""
    data_dir = Path(data_dir)
    need = [data_dir / n for n in (text_mode_of(text_mode).file, "cohort.parquet", "splits.parquet")]
    missing = [str(f) for f in need if not f.exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found; run `clin-jepa extract` first")
    texts = pl.read_parquet(need[0], columns=["stay_id", "hour", "state_text"])
    if window_hours is not None:
        texts = texts.filter((pl.col("hour") >= 0) & (pl.col("hour") < window_hours))
    cohort = pl.read_parquet(need[1], columns=["stay_id", "subject_id"])
    splits = pl.read_parquet(need[2], columns=["subject_id", "split"])
    df = texts.join(cohort.join(splits, on="subject_id"), on="stay_id")
    fit = set(df.filter(pl.col("split") == "train")["state_text"].drop_nulls().to_list())
    held = set(df.filter(pl.col("split") != "train")["state_text"].drop_nulls().to_list()) - fit
    rng = random.Random(seed)

    def sample(s: set[str]) -> list[str]:
        s = sorted(s)
        return s if len(s) <= max_texts else sorted(rng.sample(s, max_texts))

    fit_texts, held_texts = sample(fit), sample(held)
    if not held_texts:
        raise ValueError(f"no held-out state texts in {data_dir}: every stay is in the train split; "
                         "check data.split_fractions")
    return fit_texts, held_texts


def encode_texts(run: RunDir, cfg: RunConfig, texts: list[str], source: str) -> tuple[np.ndarray, str]:
    """(n, D) float32 latents of ``texts`` and the source used (see module docstring)."""
    if source not in SOURCES:
        raise ValueError(f"source={source!r}: use one of {', '.join(SOURCES)}")
    if source == "embeddings" or (source == "auto" and (run.embeddings / "latents.npy").exists()):
        try:
            return np.asarray(run.load_latents(texts), dtype=np.float32), "embeddings"
        except ValueError as e:
            raise ValueError(f"{e}, or use --source final / sft") from None
    import torch
    from clin_jepa.evaluation.embeddings import encode_threads

    final = source == "final" or (source == "auto" and (run.final_encoder / "online").is_dir())
    enc = run.load_final_encoder(cfg) if final else run.load_sft_encoder(cfg)
    threads = torch.get_num_threads()
    if enc.device.type == "cpu":
        torch.set_num_threads(encode_threads(cfg.encoder.flavor))
    try:
        with torch.no_grad():
            chunks = [enc.encode(texts[i: i + 1024]).cpu().numpy() for i in range(0, len(texts), 1024)]
    finally:
        torch.set_num_threads(threads)
    return np.concatenate(chunks).astype(np.float32), "final" if final else "sft"


def ridge_r2(x_fit: np.ndarray, y_fit: np.ndarray, x_held: np.ndarray, y_held: np.ndarray) -> float:
    """Held-out R^2 of a ridge regression on standardised latents (alpha by CV on the fit rows)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(x_fit, y_fit)
    return float(model.score(x_held, y_held))


def latent_content(run_dir: str | os.PathLike, cfg: RunConfig, source: str = "auto", max_texts: int = 6000,
                   seed: int = 0) -> dict:
    """Ridge R^2 per variable on held-out state texts; writes RUN/eval/latent_content.json."""
    run = RunDir(run_dir)
    fit, held = split_state_texts(cfg.data_path, max_texts, seed, cfg.data.text_mode, cfg.data.window_hours)
    z, used = encode_texts(run, cfg, fit + held, source)  # (n_fit + n_held, D)
    z_fit, z_held = z[: len(fit)], z[len(fit):]
    v_fit, v_held = parse_values(fit), parse_values(held)
    result = {}
    for label in v_fit:
        a, b = ~np.isnan(v_fit[label]), ~np.isnan(v_held[label])
        n = (int(a.sum()), int(b.sum()))
        r2 = (ridge_r2(z_fit[a], v_fit[label][a], z_held[b], v_held[label][b])
              if n[0] >= MIN_TEXTS[0] and n[1] >= MIN_TEXTS[1] and np.ptp(v_fit[label][a]) > 0 else None)
        result[label] = {"r2": r2, "texts_fit": n[0], "texts_heldout": n[1]}
    out = {"source": used, "flavor": cfg.encoder.flavor, "pooling": cfg.encoder.pooling, "latent_dim": z.shape[1],
           "texts_fit": len(fit), "texts_heldout": len(held), "seed": seed, "variables": result}
    write_json(run.eval_file("latent_content"), out)
    return out


def format_table(result: dict) -> str:
    """Markdown table of one latent-content result."""
    lines = [f"latent content ({result['flavor']}, pooling {result['pooling']}, latents from {result['source']}; "
             f"{result['texts_fit']} fit / {result['texts_heldout']} held-out state texts)",
             "| variable | ridge R^2 (held out) | texts fit / held out |", "|---|---|---|"]
    for label, r in result["variables"].items():
        r2 = "n/a" if r["r2"] is None else f"{r['r2']:.2f}"
        lines.append(f"| {label} | {r2} | {r['texts_fit']} / {r['texts_heldout']} |")
    return "\n".join(lines)
