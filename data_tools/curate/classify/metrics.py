"""Binary-classification metrics on P(relevant) with numpy only (sklearn is not a
dependency): accuracy/precision/recall/F1 at a threshold, ROC-AUC, and the threshold
calibration of the distill stage."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

METRIC_KEYS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0  # sklearn's zero_division=0


def binary_metrics(relevant: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Metrics of the decision ``p >= threshold`` against the labels (``relevant``: bool)."""
    predicted = p >= threshold
    tp = float(np.sum(predicted & relevant))
    fp = float(np.sum(predicted & ~relevant))
    fn = float(np.sum(~predicted & relevant))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {"n": int(len(p)), "accuracy": float(np.mean(predicted == relevant)) if len(p) else 0.0,
            "precision": precision, "recall": recall, "f1": _ratio(2 * precision * recall, precision + recall),
            "kept_fraction": float(np.mean(predicted)) if len(p) else 0.0}


def roc_auc(relevant: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the ROC curve = P(p of a random relevant item > p of a random
    not-relevant one), ties counting one half (Mann-Whitney U with average ranks).
    None when either class is absent."""
    n_pos, n_neg = int(relevant.sum()), int((~relevant).sum())
    if not n_pos or not n_neg:
        return None
    order = np.argsort(p, kind="mergesort")
    sorted_p = p[order]
    ranks = np.empty(len(p), dtype=np.float64)
    # average 1-based rank over each run of tied scores
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    ends = np.r_[starts[1:], len(p)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + 1 + e) / 2
    return float((ranks[relevant].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def threshold_curve(relevant: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    """For every distinct score t (descending): the precision, recall and F1 of ``p >= t``."""
    order = np.argsort(-p, kind="mergesort")
    p_desc, y_desc = p[order], relevant[order]
    tp, fp = np.cumsum(y_desc), np.cumsum(~y_desc)
    last_of_tie = np.r_[p_desc[1:] != p_desc[:-1], True]
    t, tp, fp = p_desc[last_of_tie], tp[last_of_tie].astype(float), fp[last_of_tie].astype(float)
    precision = tp / (tp + fp)
    recall = tp / max(int(relevant.sum()), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return t, precision, recall, f1


def calibrate_threshold(relevant: np.ndarray, p: np.ndarray, target_precision: float) -> dict[str, Any]:
    """The threshold on P(relevant) that keeps the most relevant items at a precision of at
    least ``target_precision`` on these items. The smallest threshold reaching the target
    keeps the most (recall only falls as the threshold rises); between it and the lowest
    score of a relevant item it keeps there are only non-relevant items, so the threshold is
    placed halfway between that score and the next lower one: the same decisions on these
    items with the fewest non-relevant ones, and a margin both ways for unseen items.
    If no threshold reaches the target: the max-F1 one, ``target_met`` False."""
    t, precision, recall, f1 = threshold_curve(relevant, p)
    meets = np.flatnonzero(precision >= target_precision)
    extra: dict[str, Any] = {}
    if len(meets):
        smallest = float(t[meets[-1]])
        lowest_kept = float(p[relevant & (p >= smallest)].min())
        below = p[p < lowest_kept]
        value = lowest_kept
        if below.size and below.max() < (lowest_kept + below.max()) / 2 <= lowest_kept:  # not when 1 ulp apart
            value = float((lowest_kept + below.max()) / 2)
        method, met = "highest recall at precision >= target", True
        extra = {"smallest_threshold_at_target": smallest, "lowest_relevant_score_kept": lowest_kept}
    else:
        value = float(t[int(np.argmax(f1))])
        method, met = "max F1 (target precision not reached)", False
    return {"value": value, "method": method, "target_precision": target_precision, "target_met": met, **extra,
            **binary_metrics(relevant, p, value)}


def mean_std(folds: Sequence[dict[str, Any]], keys: Sequence[str] = METRIC_KEYS) -> dict[str, dict[str, float]]:
    out = {}
    for key in keys:
        values = [f[key] for f in folds if f.get(key) is not None]
        if values:
            out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    return out
