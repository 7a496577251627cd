"""Documents on disk: a Megatron indexed dataset (one document per entry, ids without
special tokens) and, optionally, its span side-file for Guided MLM.

Span side-file schema (written by ``data_tools.preprocess --spans-field``): the indexed
dataset ``<prefix>_spans`` (int32), aligned 1:1 with the documents; entry i is the flat
array [s0, e0, s1, e1, …] of token indices into document i ([start, end), sorted, merged).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

SPANS_SUFFIX = "_spans"


def _exists(prefix: str) -> bool:
    return Path(prefix + ".bin").is_file() and Path(prefix + ".idx").is_file()


class DocumentSource:
    """Random access to the documents (and mined spans) of one ``.bin/.idx`` prefix."""

    def __init__(self, prefix: str | Path) -> None:
        from megatron.core.datasets.indexed_dataset import IndexedDataset

        self.prefix = str(prefix)
        if not _exists(self.prefix):
            raise FileNotFoundError(f"no indexed dataset at {self.prefix}(.bin/.idx)")
        self._docs = IndexedDataset(self.prefix, mmap=True)
        spans_prefix = self.prefix + SPANS_SUFFIX
        self._spans = None
        if _exists(spans_prefix):
            # A side-file whose documents have no spans at all has an empty .bin, which
            # cannot be memory-mapped.
            has_bytes = Path(spans_prefix + ".bin").stat().st_size > 0
            self._spans = IndexedDataset(spans_prefix, mmap=has_bytes)
            if len(self._spans) != len(self._docs):
                raise ValueError(f"{spans_prefix}: {len(self._spans)} entries for {len(self._docs)} documents")

    def __len__(self) -> int:
        return len(self._docs)

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.asarray(self._docs.sequence_lengths, dtype=np.int64)

    @property
    def has_spans(self) -> bool:
        return self._spans is not None

    def tokens(self, index: int, start: int = 0, end: int | None = None) -> np.ndarray:
        length = (self.lengths[index] if end is None else end) - start
        return np.asarray(self._docs.get(index, offset=start, length=length), dtype=np.int64)

    def spans(self, index: int) -> np.ndarray:
        """[k, 2] token-index spans of document ``index`` (empty without a side-file)."""
        if self._spans is None:
            return np.zeros((0, 2), dtype=np.int64)
        return np.asarray(self._spans[index], dtype=np.int64).reshape(-1, 2)
