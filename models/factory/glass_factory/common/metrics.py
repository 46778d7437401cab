"""Metrics and helpers shared by the model builders (NaN-aware; a metric that is undefined returns None)."""

from __future__ import annotations

import random

import numpy as np


def set_seeds(seed: int, threads: int = 1) -> None:
    """Seeds python, numpy and torch and pins torch to ``threads`` CPU threads (shared 2-core machine)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
        torch.set_num_threads(max(1, int(threads)))
    except ImportError:  # pragma: no cover
        pass


def _valid(y, p):
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    m = np.isfinite(y) & np.isfinite(p)
    return y[m], p[m]


def auroc(y_true, score) -> float | None:
    """ROC AUC of binary labels (values > 0 are positives); None without both classes."""
    from sklearn.metrics import roc_auc_score

    y, s = _valid(y_true, score)
    y = (y > 0).astype(int)
    if y.size == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, s))


def average_precision(y_true, score) -> float | None:
    from sklearn.metrics import average_precision_score

    y, s = _valid(y_true, score)
    y = (y > 0).astype(int)
    if y.size == 0 or y.max() == 0:
        return None
    return float(average_precision_score(y, s))


def brier(y_true, prob) -> float | None:
    """Mean squared error of probabilities against 0/1 outcomes (y_true may be a 0..1 target, used as is)."""
    y, p = _valid(y_true, prob)
    if y.size == 0:
        return None
    return float(np.mean((p - y) ** 2))


def ece(y_true, prob, bins: int = 10) -> float | None:
    """Expected calibration error with equal-width bins: Σ_b n_b/N · |mean(y)_b − mean(p)_b|."""
    y, p = _valid(y_true, prob)
    if y.size == 0:
        return None
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / y.size * abs(y[m].mean() - p[m].mean())
    return float(total)
