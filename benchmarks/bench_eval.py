"""Evaluation speed, side by side in one run (results go to BENCHMARKS.md by hand).

A. Stay-clustered bootstrap of AUROC + AUPRC + recall@precision: evaluation.metrics
   (one sort, replicates as a weight matrix) vs the naive loop (resample stays, gather rows,
   scikit-learn per replicate). Same data, same number of replicates; reports both times
   and the ratio, and checks the two CIs agree in width.
B. With --run RUN: wall time of each `clin-jepa evaluate` part on that run (reads the
   ``seconds`` field of RUN/eval/*.json written by the last evaluate), and
C. the rollout-drift evaluation of RUN timed with 1 and with 2 torch threads, side by side
   (why eval.threads defaults to 1).

    python benchmarks/bench_eval.py [--rows 20000] [--stays 400] [--boot 500] [--run RUN]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from clin_jepa.evaluation.metrics import bootstrap_metrics
from sklearn.metrics import average_precision_score, roc_auc_score


def naive_bootstrap(y, s, g, n_boot, seed=0):
    rng = np.random.default_rng(seed)
    uniq = np.unique(g)
    rows_of = {u: np.flatnonzero(g == u) for u in uniq}
    au, ap = [], []
    for _ in range(n_boot):
        idx = np.concatenate([rows_of[u] for u in rng.choice(uniq, len(uniq))])
        if 0 < y[idx].sum() < len(idx):
            au.append(roc_auc_score(y[idx], s[idx]))
            ap.append(average_precision_score(y[idx], s[idx]))
    return np.quantile(au, [0.025, 0.975]), np.quantile(ap, [0.025, 0.975])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--stays", type=int, default=400)
    p.add_argument("--boot", type=int, default=500)
    p.add_argument("--run", default=None)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    g = np.sort(rng.integers(0, a.stays, a.rows))
    y = (rng.random(a.rows) < 0.1).astype(int)
    s = y * 0.8 + rng.normal(size=a.rows)
    t0 = time.perf_counter()
    ours = bootstrap_metrics(y, s, g, n_boot=a.boot)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive_au, _ = naive_bootstrap(y, s, g, a.boot)
    t_naive = time.perf_counter() - t0
    print(f"A. bootstrap {a.boot} replicates, {a.rows} rows, {a.stays} stays")
    print(f"   evaluation.metrics: {t_ours:.2f} s (AUROC CI {ours['auroc']['lo']:.3f}-{ours['auroc']['hi']:.3f},"
          f" + AUPRC + recall@precision)")
    print(f"   naive sklearn loop: {t_naive:.2f} s (AUROC CI {naive_au[0]:.3f}-{naive_au[1]:.3f}, + AUPRC)")
    print(f"   ratio naive / ours: {t_naive / t_ours:.1f}x")
    if a.run:
        total = 0.0
        print(f"B. clin-jepa evaluate parts on {Path(a.run).name}:")
        for name in ("drift", "displacement", "tasks"):
            f = Path(a.run) / "eval" / f"{name}.json"
            if f.exists():
                sec = json.loads(f.read_text()).get("seconds", float("nan"))
                total += sec
                print(f"   {name:13s} {sec:7.1f} s")
        print(f"   {'total':13s} {total:7.1f} s")
        import torch
        from clin_jepa.evaluation import embeddings, suite

        from clin_jepa.config import load_run_config
        from clin_jepa.data.windows import run_corpus

        cfg = load_run_config(a.run)
        corpus = run_corpus(cfg)
        lat, pred = embeddings.load(a.run, corpus.texts), embeddings.load_final_predictor(a.run)
        times = {}
        for n in (1, 2, 1, 2):
            torch.set_num_threads(n)
            t0 = time.perf_counter()
            suite.run_drift(corpus, lat, pred, cfg)
            times.setdefault(n, []).append(time.perf_counter() - t0)
        best = {n: min(v) for n, v in times.items()}
        print(f"C. drift evaluation, best of 2: 1 thread {best[1]:.2f} s, 2 threads {best[2]:.2f} s, "
              f"ratio {best[2] / best[1]:.1f}x")


if __name__ == "__main__":
    main()
