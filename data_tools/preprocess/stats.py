"""Per-shard counters and their JSON form (deterministic: no timings, no worker counts)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _bucket_name(k: int) -> str:
    lo, hi = 1 << k, (1 << (k + 1)) - 1
    return str(lo) if lo == hi else f"{lo}-{hi}"


@dataclass
class ShardStats:
    """Documents and tokens written, the length histogram and rejects by reason."""

    lines: int = 0
    blank_lines: int = 0
    documents: int = 0
    tokens: int = 0
    histogram: Counter = field(default_factory=Counter)  # k -> documents with 2^k <= len < 2^(k+1)
    rejects: Counter = field(default_factory=Counter)

    def add_lengths(self, lengths: np.ndarray) -> None:
        self.documents += len(lengths)
        self.tokens += int(lengths.sum())
        if len(lengths):
            # bit_length - 1 of each length: exact for ints, unlike float log2 near 2^k.
            k = np.frexp(lengths.astype(np.float64))[1] - 1
            for b, n in zip(*np.unique(k, return_counts=True)):
                self.histogram[int(b)] += int(n)

    def merge(self, other: "ShardStats") -> None:
        self.lines += other.lines
        self.blank_lines += other.blank_lines
        self.documents += other.documents
        self.tokens += other.tokens
        self.histogram.update(other.histogram)
        self.rejects.update(other.rejects)

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "blank_lines": self.blank_lines,
            "documents": self.documents,
            "tokens": self.tokens,
            "length_histogram": {_bucket_name(k): self.histogram[k] for k in sorted(self.histogram)},
            "rejects": {r: self.rejects[r] for r in sorted(self.rejects)},
            "rejected_lines": sum(self.rejects.values()),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ShardStats":
        hist = Counter()
        for name, n in data["length_histogram"].items():
            hist[int(name.split("-")[0]).bit_length() - 1] = n
        return cls(data["lines"], data["blank_lines"], data["documents"], data["tokens"],
                   hist, Counter(data["rejects"]))
