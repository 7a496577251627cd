"""An `IndexedDatasetBuilder` whose index lives on disk until `finalize`.

megatron's builder keeps `sequence_lengths` / `document_indices` as Python lists, ~50 bytes
per document: a 5M-document shard grows the writer by ~250 MB. Here both go to anonymous
temporary files (unlinked at once, so a SIGKILL leaves nothing behind) and `finalize` streams
the .idx in megatron's exact byte layout (a unit test compares bytes with the stock builder).
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
from megatron.core.datasets.indexed_dataset import (
    _INDEX_HEADER,
    DType,
    IndexedDataset,
    IndexedDatasetBuilder,
    get_bin_path,
)

_READ_ELEMS = 1 << 20  # elements per streamed block in finalize


class SpooledIndexedDatasetBuilder(IndexedDatasetBuilder):
    """Same API and output bytes as `IndexedDatasetBuilder` (non-multimodal), O(1) memory."""

    def __init__(self, bin_path: str, dtype: type[np.number]) -> None:
        super().__init__(bin_path, dtype=dtype, multimodal=False)
        spool_dir = str(Path(bin_path).parent)
        self._lengths: BinaryIO = tempfile.TemporaryFile(dir=spool_dir)  # int32 per sequence
        self._doc_ends: BinaryIO = tempfile.TemporaryFile(dir=spool_dir)  # int64 per document
        self._n_seq = 0
        self._n_doc_idx = 0
        self._write_doc_ends(np.zeros(1, dtype=np.int64))  # megatron's leading 0

    def _write_doc_ends(self, ends: np.ndarray) -> None:
        self._doc_ends.write(np.ascontiguousarray(ends, dtype=np.int64).tobytes())
        self._n_doc_idx += len(ends)

    def _write_lengths(self, lengths: np.ndarray) -> None:
        self._lengths.write(np.ascontiguousarray(lengths, dtype=np.int32).tobytes())
        self._n_seq += len(lengths)

    def add_item(self, tensor, mode: int = 0) -> None:
        arr = np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor, dtype=self.dtype)
        self.data_file.write(arr.tobytes(order="C"))
        self._write_lengths(np.array([arr.size]))

    def add_document(self, tensor, lengths: list[int], modes=None) -> None:
        arr = np.asarray(tensor, dtype=self.dtype)
        self.data_file.write(arr.tobytes(order="C"))
        self._write_lengths(np.asarray(lengths))
        self._write_doc_ends(np.array([self._n_seq]))

    def end_document(self) -> None:
        self._write_doc_ends(np.array([self._n_seq]))

    def add_documents(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Many one-sequence documents at once: same bytes as `add_document(doc, [len])` each."""
        if int(lengths.sum()) != tokens.size:
            raise ValueError("lengths do not add up to the number of tokens")
        self.data_file.write(np.ascontiguousarray(tokens, dtype=self.dtype).tobytes())
        start = self._n_seq
        self._write_lengths(lengths)
        self._write_doc_ends(np.arange(start + 1, self._n_seq + 1, dtype=np.int64))

    def add_index(self, path_prefix: str) -> None:
        """Append a whole dataset (memory-mapped, so also O(1) memory)."""
        ds = IndexedDataset(path_prefix, mmap=False)  # mmap=True cannot map an empty .bin
        if ds.index.dtype != self.dtype:
            raise ValueError(
                f"{path_prefix}: dtype {ds.index.dtype.__name__} differs from {self.dtype.__name__}"
            )
        offset = self._n_seq
        self._write_lengths(ds.sequence_lengths)
        self._write_doc_ends(offset + ds.document_indices[1:].astype(np.int64))
        del ds
        with open(get_bin_path(path_prefix), "rb") as src:
            shutil.copyfileobj(src, self.data_file, 16 << 20)

    def finalize(self, idx_path: str) -> None:
        self.data_file.close()
        itemsize = DType.size(self.dtype)
        with open(idx_path, "wb") as out:
            out.write(_INDEX_HEADER)
            out.write(struct.pack("<Q", 1))
            out.write(struct.pack("<B", DType.code_from_dtype(self.dtype)))
            out.write(struct.pack("<Q", self._n_seq))
            out.write(struct.pack("<Q", self._n_doc_idx))
            self._lengths.flush()
            self._lengths.seek(0)
            shutil.copyfileobj(self._lengths, out, 16 << 20)
            self._write_pointers(out, itemsize)
            self._doc_ends.flush()
            self._doc_ends.seek(0)
            shutil.copyfileobj(self._doc_ends, out, 16 << 20)
        self._lengths.close()
        self._doc_ends.close()

    def _write_pointers(self, out: BinaryIO, itemsize: int) -> None:
        # Byte offset of each sequence = exclusive prefix sum of lengths * itemsize (int64).
        self._lengths.seek(0)
        carry = 0
        while block := self._lengths.read(_READ_ELEMS * 4):
            lengths = np.frombuffer(block, dtype=np.int32).astype(np.int64) * itemsize
            ends = np.cumsum(lengths) + carry
            out.write((ends - lengths).tobytes())
            carry = int(ends[-1])
