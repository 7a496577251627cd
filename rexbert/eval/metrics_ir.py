"""Ranking metrics of one query, and their mean over queries.

Conventions (those of ``sklearn.metrics.ndcg_score`` and BEIR's MRR/recall):
- a document is relevant when its grade is > 0; gains are the grades themselves (linear),
  discounted by 1 / log2(rank + 1) with ranks from 1;
- NDCG@k = DCG of the top k of the ranking / DCG of the top k of the ideal ordering of all the
  query's graded documents;
- Recall@k = relevant documents in the top k / all relevant documents of the query;
- MRR@k = 1 / rank of the first relevant document within the top k, else 0.
Queries with no relevant document are left out of the means (``queries`` counts the others).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def dcg(gains: Sequence[float]) -> float:
    gains = np.asarray(gains, dtype=float)
    return float((gains / np.log2(np.arange(2, gains.size + 2))).sum())


def ndcg_at_k(ranked: Sequence[int], grades: Mapping[int, float], k: int) -> float:
    ideal = dcg(sorted(grades.values(), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg([grades.get(doc, 0.0) for doc in ranked[:k]]) / ideal


def recall_at_k(ranked: Sequence[int], grades: Mapping[int, float], k: int) -> float:
    relevant = {doc for doc, grade in grades.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def reciprocal_rank(ranked: Sequence[int], grades: Mapping[int, float], k: int) -> float:
    for rank, doc in enumerate(ranked[:k], 1):
        if grades.get(doc, 0.0) > 0:
            return 1.0 / rank
    return 0.0


def ranking_metrics(rankings: Sequence[Sequence[int]], qrels: Sequence[Mapping[int, float]], ndcg_k: int = 10,
                    mrr_k: int = 10, recall_ks: Sequence[int] = (1, 5, 10, 100)) -> dict[str, float]:
    """Means over queries: {"ndcg@10", "mrr@10", "recall@1", ..., "queries"}. ``rankings[q]`` are
    document ids best first (at least max(k) of them, or the whole corpus); ``qrels[q]`` maps a
    document id to its grade."""
    if len(rankings) != len(qrels):
        raise ValueError(f"{len(rankings)} rankings for {len(qrels)} queries")
    kept = [(list(r), g) for r, g in zip(rankings, qrels) if any(v > 0 for v in g.values())]
    out = {f"ndcg@{ndcg_k}": _mean([ndcg_at_k(r, g, ndcg_k) for r, g in kept]),
           f"mrr@{mrr_k}": _mean([reciprocal_rank(r, g, mrr_k) for r, g in kept])}
    for k in recall_ks:
        out[f"recall@{k}"] = _mean([recall_at_k(r, g, k) for r, g in kept])
    out["queries"] = len(kept)
    return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
