"""Probe quality and fit time, side by side in one run (results go to BENCHMARKS.md by hand).

On a finished run (RUN/embeddings + RUN/final), for every evaluable task: the probe inputs
[d, s_k, mean(s_0..s_k), f_k] of evaluation.probes, then
- ``legacy``: the probe before the fix (LayerNorm - Linear(4D, 128) - GELU - Dropout(0.2) -
  Linear(1), raw inputs, AdamW lr 1e-3 weight decay 1e-4, batch 256, 30 epochs, early
  stopping on validation loss), and
- ``selected``: evaluation.probes.fit_predict_probe with the run's eval config (standardised
  inputs; prior / linear L2 grid / small MLP chosen on validation loss),
fitted on train, selected on val, scored on test (test AUROC); plus sklearn
LogisticRegression (C = eval.logreg_c) on the same standardised inputs as a reference.
Prints one row per task, the family means and the fit-time ratio.

    python benchmarks/bench_probes.py --run RUN
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from clin_jepa.evaluation import embeddings, probes, tasks
from clin_jepa.evaluation.metrics import auroc
from torch import nn

from clin_jepa.config import load_run_config
from clin_jepa.data.windows import run_corpus


class LegacyProbe(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 128), nn.GELU(), nn.Dropout(0.2), nn.Linear(128, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)  # (B,)


def legacy(x, y, tr, va, te, seed=0) -> np.ndarray:
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
    model = LegacyProbe(x.shape[1])

    def forward(m, idx):
        return m(xt[idx]), yt[idx]

    probes.fit_binary(model, forward, tr, va, 30, 1e-3, 5, 256, seed, weight_decay=1e-4)
    return torch.sigmoid(probes.predict_logits(model, forward, te, 256)[0]).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression

    cfg = load_run_config(args.run)
    e = cfg.eval
    torch.set_num_threads(max(1, e.threads))
    corpus = run_corpus(cfg)
    latents = embeddings.load(args.run, corpus.texts)
    predictor = embeddings.load_final_predictor(args.run)
    labels = tasks.read_table(cfg.data_path, "labels.parquet", ("stay_id", "task", "hour", "label"))
    rows, _ = tasks.task_rows(labels, corpus.stay_ids, corpus.lengths, corpus.split, e.max_eep_hours)
    feats = probes.state_features(latents, corpus.demo_ids, corpus.state_ids, corpus.action_ids, corpus.lengths,
                                  predictor)
    x_all = probes.probe_inputs(feats, rows["row"].to_numpy(), rows["last_hour"].to_numpy())  # (R, 4D)
    task_col, split_col, y_all = rows["task"].to_numpy(), rows["split"].to_numpy(), rows["label"].to_numpy()
    print(f"{'task':18s} {'legacy':>7s} {'selected':>8s} {'sk-logreg':>9s}  chosen            t_legacy t_selected")
    res, t_leg, t_sel = {}, 0.0, 0.0
    for task in tasks.BINARY_TASKS + tasks.EEP_TASKS:
        m = task_col == task
        if tasks.check_task(rows.filter(rows["task"] == task), e.min_positives) != "ok":
            continue
        x, y, split = x_all[m], y_all[m].astype(np.int64), split_col[m]
        tr, va, te = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
        t0 = time.perf_counter()
        a_leg = auroc(y[te], legacy(x, y, tr, va, te))
        t1 = time.perf_counter()
        p, info = probes.fit_predict_probe(x, y, tr, va, te, e, seed=0)
        t2 = time.perf_counter()
        a_sel = auroc(y[te], p)
        xs = probes.standardize(x, tr)
        lr = LogisticRegression(C=e.logreg_c, max_iter=200, tol=1e-3).fit(xs[tr], y[tr])
        a_sk = auroc(y[te], lr.predict_proba(xs[te])[:, 1])
        t_leg, t_sel = t_leg + t1 - t0, t_sel + t2 - t1
        res[task] = (a_leg, a_sel, a_sk)
        print(f"{task:18s} {a_leg:7.3f} {a_sel:8.3f} {a_sk:9.3f}  {info['kind']:17s} {t1 - t0:8.2f} {t2 - t1:10.2f}")
    for fam, names in tasks.FAMILIES.items():
        v = np.array([res[t] for t in names if t in res])
        if len(v):
            print(f"mean {fam:13s} {v[:, 0].mean():7.3f} {v[:, 1].mean():8.3f} {v[:, 2].mean():9.3f}  ({len(v)} tasks)")
    print(f"fit time: legacy {t_leg:.1f} s, selected {t_sel:.1f} s, ratio {t_sel / max(t_leg, 1e-9):.2f}x")


if __name__ == "__main__":
    main()
