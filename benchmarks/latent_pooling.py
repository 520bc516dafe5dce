"""Pooling variants on one run's SFT encoder: what each keeps of its text (ridge R^2).

Encodes the held-out latent-content texts once with every layer's hidden states, pools them
several ways (the final layer's mean, the shipped `encoder.pooling: mean`; the last token; a
mean over one layer or over all layers; sums and 2D-wide concatenations of those) and scores
each with the latent-content ridge (clin_jepa's evaluation.latent_content, the one owner of
the measurement). A benchmark, not a pipeline option: it tells whether a pooling could carry
more at the same width before anyone adds one.

    python benchmarks/latent_pooling.py --run RUN --max-texts 4000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from clin_jepa.evaluation.latent_content import parse_values, ridge_r2, split_state_texts

from clin_jepa.config import load_run_config
from clin_jepa.models.pooling import padded_segments, pool_last, pool_mean
from clin_jepa.run import RunDir

VARIABLES = ("HR", "MAP", "SpO2", "Cr", "Lactate", "SOFA", "KDIGO")


def pooled_variants(enc, texts: list[str], batch: int = 256) -> dict[str, np.ndarray]:
    """Pooling name -> (n, D or 2D) latents of ``texts`` from the encoder's online adapter."""
    enc._use("online")
    rows = enc._token_ids(texts)  # the encoder's own tokenization (max_length truncation included)
    backbone = enc.model.get_base_model().model  # Qwen3Model
    out: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            b = rows[i: i + batch]
            lengths = torch.tensor([len(r) for r in b])
            L = int(lengths.max())
            ids = torch.tensor([r + [enc._pad_id] * (L - len(r)) for r in b])  # (B, L)
            seg, last = padded_segments(lengths, L)  # (B, L), (B,)
            res = backbone(input_ids=ids, attention_mask=(seg >= 0).long(), use_cache=False,
                           output_hidden_states=True)
            layers = res.hidden_states  # embeddings, then each layer (the last one normed)
            final, first = pool_mean(res.last_hidden_state, seg, last), pool_mean(layers[1], seg, last)
            tail = pool_last(res.last_hidden_state, seg, last)
            variants = {"final mean (shipped)": final, "last token": tail,
                        "first layer mean": first,
                        "mean over all layers": pool_mean(torch.stack(layers[1:]).mean(0), seg, last),
                        "final mean + last token": final + tail,
                        "concat final mean, last token (2D)": torch.cat([final, tail], -1),
                        "concat final mean, first layer mean (2D)": torch.cat([final, first], -1)}
            for name, z in variants.items():
                out.setdefault(name, []).append(z.float().numpy())
    return {name: np.concatenate(chunks) for name, chunks in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a run with an SFT encoder (RUN/sft)")
    p.add_argument("--max-texts", type=int, default=4000, help="fit and held-out texts, each")
    args = p.parse_args()
    torch.set_num_threads(1)
    run = RunDir(args.run)
    cfg = load_run_config(run.root)
    fit, held = split_state_texts(cfg.data_path, args.max_texts, 0, cfg.data.text_mode, cfg.data.window_hours)
    t0 = time.perf_counter()
    latents = pooled_variants(run.load_sft_encoder(cfg), fit + held)
    print(f"encoded {len(fit)} fit + {len(held)} held-out texts in {time.perf_counter() - t0:.1f} s")
    v_fit, v_held = parse_values(fit), parse_values(held)
    print("| pooling | width | " + " | ".join(VARIABLES) + " |")
    print("|---|---|" + "---|" * len(VARIABLES))
    for name, z in latents.items():
        z_fit, z_held = z[: len(fit)], z[len(fit):]
        r2 = []
        for label in VARIABLES:
            a, b = ~np.isnan(v_fit[label]), ~np.isnan(v_held[label])
            r2.append(f"{ridge_r2(z_fit[a], v_fit[label][a], z_held[b], v_held[label][b]):.2f}")
        print(f"| {name} | {z.shape[1]} | " + " | ".join(r2) + " |")


if __name__ == "__main__":
    main()
