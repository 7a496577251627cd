"""Classification and correlation metrics of the GLUE-style and graded-relevance tasks, in numpy
(checked against scikit-learn and scipy in tests/unit/test_eval_glue.py).

A correlation with a constant input is undefined and returned as NaN, as scipy does.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    p, y = _pair(predictions, labels)
    return float((p == y).mean())


def binary_f1(predictions: Sequence[int], labels: Sequence[int], positive: int = 1) -> float:
    """F1 of the positive class (GLUE's MRPC/QQP F1); 0.0 when there is no true or predicted positive."""
    p, y = _pair(predictions, labels)
    tp = float(np.sum((p == positive) & (y == positive)))
    fp = float(np.sum((p == positive) & (y != positive)))
    fn = float(np.sum((p != positive) & (y == positive)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    a, b = _pair(x, y, dtype=float)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / denom) if denom > 0 else float("nan")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson of the ranks; ties take their average rank (as scipy.stats.spearmanr)."""
    a, b = _pair(x, y, dtype=float)
    return pearson(average_ranks(a), average_ranks(b))


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks (scipy.stats.rankdata 'average')."""
    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    # Start index of each run of equal values, and the run each sorted position belongs to.
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    run = np.cumsum(np.r_[True, sorted_v[1:] != sorted_v[:-1]]) - 1
    ends = np.r_[starts[1:], v.size]
    ranks = np.empty(v.size, dtype=float)
    ranks[order] = ((starts + ends + 1) / 2.0)[run]
    return ranks


def _pair(a: Sequence, b: Sequence, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"metric inputs must be two 1-D arrays of one length, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("metric inputs are empty")
    return x, y
