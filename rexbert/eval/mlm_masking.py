"""Span-aware masking for masked-token recovery (RexBERT §6.1), deterministic from a seed.

Words are runs of Unicode word characters (regex ``\\w+``) in the text, so they do not depend
on the tokenizer. A *unit* is the group of non-special tokens that overlap one word (tokens that
straddle two words merge them into one unit); a non-special token that overlaps no word
(punctuation, whitespace) is a unit of its own in token mode.

- ``token`` mode (default): units are masked whole (whole-word spans, not Poisson spans) in a
  seeded random order; a unit that would take the masked count past the budget
  ``max(1, round(ratio × non-special tokens))`` is skipped, the rule of Hugging Face's
  whole-word-mask collator (tokens with an empty character span are neither masked nor counted);
  every masked token is scored on its own.
- ``word`` mode: only units with a word whose tokens all fit in the block are candidates; they
  are taken in the order of a seeded permutation of the *text's* words (a unit ranks by its
  first word), ``max(1, round(ratio × candidates))`` of them, so two models with different
  tokenizers mask the same words of a text that fits both blocks. A word is recovered at k when
  every one of its tokens is among the model's top-k at its own position (all of them masked at
  once).

Special tokens ([CLS], [SEP], padding) are never masked. The random stream of a document is
``numpy.random.default_rng([seed, crc32(text)])``: its mask depends only on the seed, its text
and the block size, not on batching or on which other documents are evaluated.
"""

from __future__ import annotations

import bisect
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from rexbert.eval.common import EvalError

WORD = re.compile(r"\w+")
MODES = ("token", "word")


@dataclass
class Unit:
    tokens: list[int]  # token positions in the encoded block
    words: list[int] = field(default_factory=list)  # indices into the text's words


@dataclass
class MaskedExample:
    """One truncated, masked document: masked ids, the original ids at the masked positions,
    and the scored units (lists of masked positions; one position each in token mode)."""

    input_ids: list[int]
    targets: dict[int, int]
    units: list[list[int]]


def word_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in WORD.finditer(text)]


def group_units(offsets: list[tuple[int, int]], special: list[int], words: list[tuple[int, int]]) -> list[Unit]:
    """Units over the non-special tokens, in token order."""
    starts = [s for s, _ in words]
    units: list[Unit] = []
    for position, ((start, end), is_special) in enumerate(zip(offsets, special)):
        if is_special or end <= start:
            continue
        # words overlapping [start, end): those starting before `end` and ending after `start`
        hit = [w for w in range(max(bisect.bisect_right(starts, start) - 1, 0), bisect.bisect_left(starts, end))
               if words[w][1] > start]
        if hit and units and units[-1].words and units[-1].words[-1] >= hit[0]:
            units[-1].tokens.append(position)  # shares a word with the previous unit
            units[-1].words.extend(w for w in hit if w > units[-1].words[-1])
        else:
            units.append(Unit([position], hit))
    return units


def choose_token_units(units: list[Unit], budget: int, rng: np.random.Generator) -> list[Unit]:
    chosen, count = [], 0
    for index in rng.permutation(len(units)):
        if count >= budget:
            break
        size = len(units[index].tokens)
        if count + size > budget:
            continue
        chosen.append(units[index])
        count += size
    return chosen


def choose_word_units(units: list[Unit], words: list[tuple[int, int]], block_end: int, ratio: float,
                      rng: np.random.Generator) -> list[Unit]:
    candidates = [u for u in units if u.words and words[u.words[-1]][1] <= block_end]
    if not candidates:
        return []
    rank = np.argsort(rng.permutation(len(words)))  # rank[w]: the word's place in the seeded order
    candidates.sort(key=lambda u: rank[u.words[0]])
    return candidates[:max(1, round(ratio * len(candidates)))]


def mask_document(tokenizer, text: str, block_size: int, mode: str, ratio: float, seed: int) -> MaskedExample:
    """Tokenise ``text`` truncated to ``block_size`` tokens (special tokens included) and mask it."""
    if mode not in MODES:
        raise EvalError(f"mode={mode!r}: choose one of {MODES}")
    if not getattr(tokenizer, "is_fast", False):
        raise EvalError("masked-token recovery needs a fast tokenizer (character offsets for words)")
    encoded = tokenizer(text, truncation=True, max_length=block_size, return_offsets_mapping=True,
                        return_special_tokens_mask=True)
    ids, offsets, special = encoded["input_ids"], encoded["offset_mapping"], encoded["special_tokens_mask"]
    words = word_spans(text)
    units = group_units(offsets, special, words)
    rng = np.random.default_rng([seed, zlib.crc32(text.encode("utf-8"))])
    if mode == "token":
        budget = max(1, round(ratio * sum(len(u.tokens) for u in units)))
        chosen = choose_token_units(units, budget, rng)
        scored = [[p] for u in chosen for p in u.tokens]
    else:
        block_end = max((e for (s, e), sp in zip(offsets, special) if not sp), default=0)
        chosen = choose_word_units(units, words, block_end, ratio, rng)
        scored = [list(u.tokens) for u in chosen]
    masked = list(ids)
    targets = {}
    for unit in chosen:
        for p in unit.tokens:
            targets[p] = ids[p]
            masked[p] = tokenizer.mask_token_id
    return MaskedExample(masked, targets, sorted(scored))
