"""Supervised baselines on the hourly inputs (YAIB-style, sized for CPU).

- ``logreg``: L2 logistic regression (C = eval.logreg_c, lbfgs, 200 iterations, tol 1e-3) on the summaries up to
  the row's hour (evaluation.tasks.summary_features).
- ``lightgbm``: gradient-boosted trees on the same summaries, eval.lgbm_estimators
  rounds at most, early stopping (20 rounds) on validation log-loss.
- ``lstm``: LSTM (eval.seq_hidden units, eval.seq_layers layers) over the hourly
  sequence (forward-filled values + missing indicators), causal; the output at the row's
  hour feeds a linear head.
- ``tcn``: temporal convolutional network, eval.tcn_levels residual blocks of causal
  dilated convolutions (kernel eval.tcn_kernel, dilations 1, 2, 4, ...), same head.
Sequence models train with AdamW (eval.seq_lr), early stopping on validation loss.
All fit on train, stop on val, score test.
"""

from __future__ import annotations

import numpy as np
import torch
from clin_jepa.evaluation.probes import fit_binary, predict_logits
from torch import nn
from torch.nn import functional as F

FLAT = ("logreg", "lightgbm")
SEQUENCE = ("lstm", "tcn")


def fit_predict_flat(kind: str, x: np.ndarray, y: np.ndarray, train_idx, val_idx, test_idx, cfg,
                     seed: int) -> np.ndarray:
    """Fit ``logreg`` or ``lightgbm`` on summary rows x (R, P); return test probabilities."""
    if kind == "logreg":
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=cfg.logreg_c, max_iter=200, tol=1e-3, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x[train_idx], y[train_idx])
        return model.predict_proba(x[test_idx])[:, 1]
    if kind == "lightgbm":
        import lightgbm as lgb

        model = lgb.LGBMClassifier(n_estimators=cfg.lgbm_estimators, learning_rate=cfg.lgbm_lr,
                                   num_leaves=cfg.lgbm_leaves, min_child_samples=10, subsample=0.8,
                                   subsample_freq=1, colsample_bytree=0.8, random_state=seed,
                                   n_jobs=cfg.threads, verbose=-1, deterministic=True, force_row_wise=True)
        import inspect

        stop = [lgb.early_stopping(20, verbose=False)]
        if "eval_X" in inspect.signature(model.fit).parameters:  # lightgbm >= 4.7
            model.fit(x[train_idx], y[train_idx], eval_X=(x[val_idx],), eval_y=(y[val_idx],), callbacks=stop)
        else:
            model.fit(x[train_idx], y[train_idx], eval_set=[(x[val_idx], y[val_idx])], callbacks=stop)
        return model.predict_proba(x[test_idx])[:, 1]
    raise ValueError(f"unknown flat baseline {kind!r}; use one of {FLAT}")


class LSTMModel(nn.Module):
    def __init__(self, n_in: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)  # (B, T, H)
        return self.head(self.drop(h)).squeeze(-1)  # (B, T)


class CausalBlock(nn.Module):
    def __init__(self, ch_in: int, ch: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv1 = nn.Conv1d(ch_in, ch, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(ch, ch, kernel, dilation=dilation)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv1d(ch_in, ch, 1) if ch_in != ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        h = self.drop(F.relu(self.conv1(F.pad(x, (self.pad, 0)))))  # left pad: causal, (B, ch, T)
        h = self.drop(F.relu(self.conv2(F.pad(h, (self.pad, 0)))))
        return F.relu(h + self.skip(x))


class TCNModel(nn.Module):
    def __init__(self, n_in: int, channels: int, levels: int, kernel: int, dropout: float):
        super().__init__()
        self.blocks = nn.Sequential(*[CausalBlock(n_in if i == 0 else channels, channels, kernel, 2 ** i, dropout)
                                      for i in range(levels)])
        self.head = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C)
        return self.head(h).squeeze(-1)  # (B, T)


def build_sequence_model(kind: str, n_in: int, cfg) -> nn.Module:
    if kind == "lstm":
        return LSTMModel(n_in, cfg.seq_hidden, cfg.seq_layers, cfg.seq_dropout)
    if kind == "tcn":
        return TCNModel(n_in, cfg.seq_hidden, cfg.tcn_levels, cfg.tcn_kernel, cfg.seq_dropout)
    raise ValueError(f"unknown sequence baseline {kind!r}; use one of {SEQUENCE}")


def fit_predict_sequence(kind: str, seq: np.ndarray, rows: np.ndarray, last_hour: np.ndarray, y: np.ndarray,
                         train_idx, val_idx, test_idx, cfg, seed: int) -> np.ndarray:
    """seq (N, T, P) per-stay inputs; label row i reads the output at (rows[i], last_hour[i]).
    Batches are sets of stays (each stay run once, all its label rows in the loss); a stay
    belongs to one split. Returns probabilities for ``test_idx`` in its order."""
    torch.manual_seed(seed)
    model = build_sequence_model(kind, seq.shape[-1], cfg)
    seq_t = torch.from_numpy(np.ascontiguousarray(seq, dtype=np.float32))
    stay_batch = max(8, cfg.batch_size // 4)
    by_stay: dict[int, np.ndarray] = {}
    for part in (train_idx, val_idx, test_idx):
        part = np.asarray(part, dtype=np.int64)
        order = part[np.argsort(rows[part], kind="stable")]
        stays, starts = np.unique(rows[order], return_index=True)
        by_stay.update(zip(stays.tolist(), np.split(order, starts[1:])))

    def label_rows(stays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.concatenate([by_stay[int(s)] for s in stays])  # label rows of these stays
        return r, np.repeat(np.arange(len(stays)), [len(by_stay[int(s)]) for s in stays])

    def forward(m, stays):
        r, pos = label_rows(stays)
        T = int(last_hour[r].max()) + 1
        logits = m(seq_t[torch.from_numpy(np.asarray(stays, dtype=np.int64)), :T])  # (S, T)
        out = logits[torch.from_numpy(pos), torch.from_numpy(last_hour[r].astype(np.int64))]  # (R,)
        return out, torch.from_numpy(y[r].astype(np.float32))

    def stays_of(idx) -> np.ndarray:
        return np.unique(rows[np.asarray(idx, dtype=np.int64)])

    fit_binary(model, forward, stays_of(train_idx), stays_of(val_idx), cfg.seq_epochs, cfg.seq_lr,
               cfg.patience, stay_batch, seed)
    test_stays = stays_of(test_idx)
    logits, _ = predict_logits(model, forward, test_stays, stay_batch)
    prob = dict(zip(label_rows(test_stays)[0].tolist(), torch.sigmoid(logits).numpy().tolist()))
    return np.array([prob[int(i)] for i in test_idx])
