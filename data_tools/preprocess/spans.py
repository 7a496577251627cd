"""Character spans → token spans for the `<prefix>_spans` side file.

A span is `[char_start, char_end)` into the document's joined text. A token belongs to a span
when its character range overlaps it (`tok_start < span_end and tok_end > span_start`, offsets
from the tokenizer). The stored entry is a flat int32 array `[s0, e0, s1, e1, ...]` of token
indices (end exclusive), sorted, with overlapping or adjacent token ranges merged.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np


class BadSpans(ValueError):
    """The spans value is not a list of valid `[start, end)` pairs; the message says why."""


def parse_char_spans(value: Any, text_len: int) -> list[tuple[int, int]]:
    """Validate a spans field value; `None` / missing means no spans."""
    if value is None:
        return []
    if isinstance(value, str):  # CSV cells hold the list as JSON text
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            raise BadSpans(f"spans cell is not JSON: {exc.msg}") from None
    if not isinstance(value, list):
        raise BadSpans(f"expected a list of [start, end] pairs, got {type(value).__name__}")
    spans = []
    for i, pair in enumerate(value):
        ok = (
            isinstance(pair, (list, tuple))
            and len(pair) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
        )
        if not ok:
            raise BadSpans(f"span {i} is not a pair of ints: {pair!r:.60}")
        start, end = pair
        if not 0 <= start < end <= text_len:
            raise BadSpans(f"span {i} [{start}, {end}) is empty or outside the text (0..{text_len})")
        spans.append((start, end))
    return spans


def token_spans(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> np.ndarray:
    """Flat `[s0, e0, s1, e1, ...]` token ranges covering `spans` (int32, merged, sorted)."""
    if not spans or not offsets:
        return np.zeros(0, dtype=np.int32)
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    covered = np.zeros(len(off), dtype=bool)
    for start, end in spans:
        covered |= (off[:, 0] < end) & (off[:, 1] > start)
    # Run boundaries of the covered mask give merged, sorted [start, end) token ranges.
    edges = np.flatnonzero(np.diff(np.concatenate(([0], covered.view(np.int8), [0]))))
    return edges.astype(np.int32)
