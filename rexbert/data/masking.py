"""Masking and targets for one framed document piece ([CLS] tokens… [SEP]).

Every draw comes from a generator keyed by (seed, epoch, dataset, document, chunk), so a
document gets the same mask whichever packed sequence, micro-batch or data-parallel rank it
lands in. Special tokens are never masked.

Strategies (``MaskingConfig.strategy``):
- ``uniform``: exactly n positions chosen uniformly (BERT-style).
- ``span``: spans of length 1 + Poisson(λ) at uniform starts until n positions are masked
  (overlaps merge; the last span is truncated), as in SpanBERT/ModernBERT-style span masking.
- ``guided``: the document's mined spans (entities/attributes) first, in random order, then
  span masking for the rest. ``guided_fraction`` mixes guided pieces into another strategy.
n = floor(ratio · N + u), u ~ U(0, 1), over the N maskable positions, so the masked fraction
is exact in expectation. Masked positions then become [MASK] / a random token / unchanged
with probabilities (mask_prob, random_prob, 1 − both): 80/10/10 by default.
CLM targets are the next token within the piece: they never cross a document boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

IGNORE_INDEX = -100
STRATEGIES = ("uniform", "span", "guided")


@dataclass
class MaskingConfig:
    objective: str = "mlm"  # "mlm" | "clm"
    strategy: str = "span"  # "uniform" | "span" | "guided"
    mask_ratio: float = 0.3
    mask_prob: float = 0.8  # of masked positions → [MASK]
    random_prob: float = 0.1  # → a random regular token; the rest keep their token
    span_lambda: float = 3.0  # span length = 1 + Poisson(λ)
    guided_fraction: float = 0.0  # share of pieces masked "guided" regardless of strategy

    def __post_init__(self) -> None:
        if self.objective not in ("mlm", "clm"):
            raise ValueError(f"data.masking.objective={self.objective!r}: choose mlm or clm")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"data.masking.strategy={self.strategy!r}: choose one of {STRATEGIES}")
        if not 0.0 <= self.mask_ratio <= 1.0:
            raise ValueError(f"data.masking.mask_ratio={self.mask_ratio} must be in [0, 1]")
        if self.mask_prob < 0 or self.random_prob < 0 or self.mask_prob + self.random_prob > 1:
            raise ValueError("data.masking.mask_prob + random_prob must lie in [0, 1]")
        if self.span_lambda < 0:
            raise ValueError("data.masking.span_lambda must be >= 0")
        if not 0.0 <= self.guided_fraction <= 1.0:
            raise ValueError("data.masking.guided_fraction must be in [0, 1]")


@dataclass(frozen=True)
class SpecialTokens:
    cls_id: int
    sep_id: int
    pad_id: int
    mask_id: int
    num_regular: int  # ids [0, num_regular) are ordinary tokens; random replacements come from there
    special_ids: frozenset = frozenset()

    @classmethod
    def modernbert(cls) -> "SpecialTokens":
        from rexbert.tokenizer import BPE_SIZE, CLS_ID, MASK_ID, PAD_ID, SEP_ID

        # Every id from BPE_SIZE up is special; inside the BPE, <|padding|> (1) and
        # <|endoftext|> (50279) are too.
        return cls(CLS_ID, SEP_ID, PAD_ID, MASK_ID, BPE_SIZE, frozenset({1, BPE_SIZE - 1}))

    def is_special(self, ids: np.ndarray) -> np.ndarray:
        special = ids >= self.num_regular
        for sid in self.special_ids | {self.cls_id, self.sep_id, self.pad_id, self.mask_id}:
            special |= ids == sid
        return special


def piece_rng(seed: int, epoch: int, dataset: int, document: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, dataset, document, chunk])


def num_to_mask(num_maskable: int, ratio: float, rng: np.random.Generator) -> int:
    return min(num_maskable, int(np.floor(ratio * num_maskable + rng.random())))


def uniform_positions(num_maskable: int, target: int, rng: np.random.Generator) -> np.ndarray:
    chosen = np.zeros(num_maskable, dtype=bool)
    chosen[rng.choice(num_maskable, size=target, replace=False)] = True
    return chosen


def span_positions(
    num_maskable: int, target: int, lam: float, rng: np.random.Generator,
    chosen: Optional[np.ndarray] = None, drawn: Optional[list] = None,
) -> np.ndarray:
    """Mask spans of 1 + Poisson(λ) maskable positions at uniform starts until ``target``
    are masked. ``drawn`` collects every drawn length (before merging/truncation)."""
    chosen = np.zeros(num_maskable, dtype=bool) if chosen is None else chosen
    count = int(chosen.sum())
    while count < target:
        length = 1 + int(rng.poisson(lam))
        if drawn is not None:
            drawn.append(length)
        start = int(rng.integers(num_maskable))
        window = np.flatnonzero(~chosen[start : start + length]) + start
        window = window[: target - count]
        chosen[window] = True
        count += len(window)
    return chosen


def guided_positions(
    num_maskable: int, target: int, spans: np.ndarray, lam: float, rng: np.random.Generator,
) -> np.ndarray:
    """Mined spans (in maskable-position coordinates, [k, 2]) first, in random order, each
    whole while the budget lasts (the last one truncated); then span masking."""
    chosen = np.zeros(num_maskable, dtype=bool)
    count = 0
    for s, e in spans[rng.permutation(len(spans))]:
        if count >= target:
            break
        window = np.flatnonzero(~chosen[s:e]) + s
        window = window[: target - count]
        chosen[window] = True
        count += len(window)
    return span_positions(num_maskable, target, lam, rng, chosen)


def mask_piece(
    tokens: np.ndarray, spans: np.ndarray, config: MaskingConfig, special: SpecialTokens,
    rng: np.random.Generator, drawn: Optional[list] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, labels) for one framed piece. ``spans`` are token-index [start, end) pairs
    into ``tokens`` ([k, 2]); labels are IGNORE_INDEX where nothing is predicted."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if config.objective == "clm":
        labels = np.full_like(tokens, IGNORE_INDEX)
        labels[:-1] = tokens[1:]
        return tokens.copy(), labels

    maskable = np.flatnonzero(~special.is_special(tokens))
    n = len(maskable)
    target = num_to_mask(n, config.mask_ratio, rng)
    strategy = "guided" if config.guided_fraction and rng.random() < config.guided_fraction else config.strategy
    if strategy == "uniform":
        chosen = uniform_positions(n, target, rng)
    elif strategy == "span":
        chosen = span_positions(n, target, config.span_lambda, rng, drawn=drawn)
    else:
        chosen = guided_positions(n, target, _spans_to_maskable(spans, maskable), config.span_lambda, rng)

    positions = maskable[chosen]
    labels = np.full_like(tokens, IGNORE_INDEX)
    labels[positions] = tokens[positions]
    inputs = tokens.copy()
    u = rng.random(len(positions))
    inputs[positions[u < config.mask_prob]] = special.mask_id
    random_at = positions[(u >= config.mask_prob) & (u < config.mask_prob + config.random_prob)]
    inputs[random_at] = _random_regular(rng, len(random_at), special)
    return inputs, labels


def _random_regular(rng: np.random.Generator, count: int, special: SpecialTokens) -> np.ndarray:
    ids = rng.integers(0, special.num_regular, size=count)
    bad = special.is_special(ids)
    while bad.any():  # a few BPE ids are special (e.g. padding/eos): redraw those
        ids[bad] = rng.integers(0, special.num_regular, size=int(bad.sum()))
        bad = special.is_special(ids)
    return ids


def _spans_to_maskable(spans: np.ndarray, maskable: np.ndarray) -> np.ndarray:
    """Token-index spans → [start, end) in maskable-position coordinates."""
    if len(spans) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    starts = np.searchsorted(maskable, spans[:, 0], side="left")
    ends = np.searchsorted(maskable, spans[:, 1], side="left")
    keep = ends > starts
    return np.stack([starts[keep], ends[keep]], axis=1)
