"""Cost of the rollout-decoding evaluation on a trained run, side by side with the drift
evaluation in one process (results go to BENCHMARKS.md by hand, "Rollout decoding").

Both evaluations are timed on the same loaded corpus and latents: wall seconds and process
CPU seconds (on a shared machine the wall time depends on the other jobs; with BLAS and torch
on one thread the CPU seconds are what an idle machine's wall time would be), the load
average, the decoding's own parts (``part_seconds``) and the ratio to drift. Writes nothing
into the run.

    python benchmarks/bench_decoding.py --run RUN [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path, help="a run with RUN/embeddings and RUN/final")
    ap.add_argument("--repeat", type=int, default=2, help="rounds; the best of each is reported")
    args = ap.parse_args()

    import lightgbm  # noqa: F401  imported before timing: `clin-jepa evaluate` has them loaded for the tasks
    import sklearn.linear_model  # noqa: F401
    from clin_jepa.evaluation import embeddings, suite

    from clin_jepa.config import load_run_config
    from clin_jepa.data.windows import run_corpus
    from clin_jepa.utils import seed_everything

    cfg = load_run_config(args.run)
    torch.set_num_threads(max(1, cfg.eval.threads))
    seed_everything(cfg.eval.seeds[0])
    corpus = run_corpus(cfg)
    latents = embeddings.load(args.run, corpus.texts)
    predictor = embeddings.load_final_predictor(args.run)
    xs = suite._standardised_hourly(cfg.data_path, corpus)
    jobs = {"drift": lambda: suite.run_drift(corpus, latents, predictor, cfg),
            "decoding": lambda: suite.run_decoding(corpus, latents, predictor, xs, cfg.data_path, cfg)}
    best: dict[str, tuple[float, float]] = {}
    for r in range(args.repeat):
        for name, fn in jobs.items():
            w, c = time.perf_counter(), time.process_time()
            res = fn()
            wall, cpu = time.perf_counter() - w, time.process_time() - c
            print(f"round {r + 1} {name}: wall {wall:.1f} s, cpu {cpu:.1f} s, load {os.getloadavg()[0]:.1f}"
                  + (f", parts {res['part_seconds']}" if "part_seconds" in res else ""))
            best[name] = min(best.get(name, (wall, cpu)), (wall, cpu), key=lambda x: x[1])
    (dw, dc), (kw, kc) = best["drift"], best["decoding"]
    print(f"best: drift cpu {dc:.1f} s (wall {dw:.1f}), decoding cpu {kc:.1f} s (wall {kw:.1f}); "
          f"decoding / drift cpu {kc / dc:.1f}x; test stays {int((corpus.split == 'test').sum())}")


if __name__ == "__main__":
    main()
