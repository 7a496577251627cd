"""Masked-token recovery of a Hugging Face MLM folder on held-out text, and the
unigram-frequency baseline on exactly the same masked positions.

``masked_token_recovery`` is the quick check the demo runs (uniform token masking); the full
protocol (block sizes, span-aware masking, word-level mode, top-1/3/5) is
``rexbert.eval.mlm_protocol``, which scores with ``count_unit_hits`` below.

In ``masked_token_recovery``, documents are tokenised with special tokens and no truncation beyond ``max_length``; a
fraction of non-special tokens (uniform, seed-fixed) is replaced by [MASK] and the model's
top-k at those positions is scored. The baseline always predicts the training corpus's most
frequent (non-special) tokens in frequency order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch


def count_unit_hits(topk_ids: torch.Tensor, targets: torch.Tensor, units: Sequence[Sequence[int]],
                    ks: Sequence[int]) -> dict[int, int]:
    """Recovered units per k. ``topk_ids`` [n, K] are a predictor's ranked ids at n masked
    positions, ``targets`` [n] the true ids; a unit (a list of rows: one for a token, all of a
    word's tokens for a word) is recovered at k when every row's target is in that row's top-k."""
    hits = {}
    for k in ks:
        if k > topk_ids.shape[1]:
            raise ValueError(f"top-{k} asked of a predictor that ranked only {topk_ids.shape[1]} ids")
        row_hit = (topk_ids[:, :k] == targets[:, None]).any(dim=1).tolist()
        hits[k] = sum(all(row_hit[r] for r in unit) for unit in units)
    return hits


def unigram_ranking(frequencies: np.ndarray, special_ids: Sequence[int], k: int) -> list[int]:
    """The k most frequent non-special ids, most frequent first (ties: lower id first)."""
    special = set(special_ids)
    return [int(i) for i in np.argsort(-frequencies, kind="stable") if i not in special][:k]


@dataclass
class MaskedTokenResult:
    positions: int
    top1: float
    top5: float
    baseline_top1: float
    baseline_top5: float


def token_frequencies(prefixes: Sequence[str], vocab_size: int) -> np.ndarray:
    """Counts of every token id over indexed datasets (the training corpus)."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    counts = np.zeros(vocab_size, dtype=np.int64)
    for prefix in prefixes:
        data = IndexedDataset(str(prefix), mmap=True)
        for i in range(len(data)):
            counts += np.bincount(np.asarray(data[i], dtype=np.int64), minlength=vocab_size)[:vocab_size]
    return counts


@torch.no_grad()
def masked_token_recovery(model_dir: str | Path, texts: Sequence[str], frequencies: np.ndarray,
                          mask_ratio: float = 0.15, max_length: int = 256, batch_size: int = 16,
                          seed: int = 42) -> MaskedTokenResult:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(model_dir, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    special = set(tok.all_special_ids)
    ranked = [i for i in np.argsort(-frequencies, kind="stable") if i not in special][:5]
    rng = np.random.default_rng(seed)
    hits1 = hits5 = base1 = base5 = total = 0
    for start in range(0, len(texts), batch_size):
        batch = tok(list(texts[start:start + batch_size]), truncation=True, max_length=max_length,
                    padding=True, return_tensors="pt")
        ids = batch["input_ids"]
        maskable = batch["attention_mask"].bool() & ~torch.isin(ids, torch.tensor(sorted(special)))
        chosen = maskable & torch.from_numpy(rng.random(ids.shape) < mask_ratio)
        targets = ids[chosen]
        masked = ids.clone()
        masked[chosen] = tok.mask_token_id
        logits = model(input_ids=masked, attention_mask=batch["attention_mask"]).logits[chosen]
        top5 = logits.topk(5, dim=-1).indices
        hits1 += int((top5[:, 0] == targets).sum())
        hits5 += int((top5 == targets[:, None]).any(dim=1).sum())
        base1 += int((targets == ranked[0]).sum())
        base5 += int(torch.isin(targets, torch.tensor(ranked)).sum())
        total += len(targets)
    n = max(total, 1)
    return MaskedTokenResult(total, hits1 / n, hits5 / n, base1 / n, base5 / n)
