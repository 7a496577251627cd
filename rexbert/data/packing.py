"""Pack documents into sequences of at most L tokens without padding (ModernBERT-style
unpadding).

Each document is framed [CLS] … [SEP]. A document longer than L − 2 tokens is split into
consecutive chunks of L − 2 tokens (the last one shorter), each framed on its own, so every
piece fits a sequence; positions (RoPE) restart at every piece. Per epoch, the documents of
a dataset are shuffled by (seed, dataset, epoch) and their pieces packed greedily in that
order (next-fit: a piece that does not fit closes the sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAMING = 2  # [CLS] and [SEP]


@dataclass(frozen=True)
class Piece:
    document: int
    start: int  # token range [start, end) of the document's stored ids
    end: int
    chunk: int  # index of this chunk within its document

    @property
    def framed_length(self) -> int:
        return self.end - self.start + FRAMING


@dataclass
class EpochPacking:
    """The packed sequences of one dataset for one epoch, as arrays over pieces."""

    piece_document: np.ndarray
    piece_chunk: np.ndarray
    piece_start: np.ndarray
    piece_end: np.ndarray
    sequence_offsets: np.ndarray  # sequence s holds pieces [offsets[s], offsets[s+1])

    @property
    def num_sequences(self) -> int:
        return len(self.sequence_offsets) - 1

    def pieces(self, sequence: int) -> list[Piece]:
        lo, hi = self.sequence_offsets[sequence], self.sequence_offsets[sequence + 1]
        return [
            Piece(int(self.piece_document[i]), int(self.piece_start[i]), int(self.piece_end[i]), int(self.piece_chunk[i]))
            for i in range(lo, hi)
        ]


def split_into_pieces(order: np.ndarray, lengths: np.ndarray, seq_length: int):
    """Pieces of the documents in ``order``: (document, chunk, start, end) arrays."""
    body = seq_length - FRAMING
    if body < 1:
        raise ValueError(f"data.seq_length={seq_length} leaves no room between [CLS] and [SEP]")
    doc_lengths = lengths[order]
    chunks = -(-doc_lengths // body)  # ceil; empty documents give no piece
    document = np.repeat(order, chunks)
    first = np.repeat(np.cumsum(chunks) - chunks, chunks)
    chunk = np.arange(len(document)) - first
    start = chunk * body
    end = np.minimum(start + body, lengths[document])
    return document, chunk, start, end


def next_fit_offsets(framed_lengths: np.ndarray, seq_length: int) -> np.ndarray:
    """Sequence boundaries for greedy next-fit packing of pieces in the given order."""
    offsets = [0]
    used = 0
    for i, n in enumerate(framed_lengths.tolist()):
        if used + n > seq_length:
            offsets.append(i)
            used = 0
        used += n
    if used:
        offsets.append(len(framed_lengths))
    return np.asarray(offsets, dtype=np.int64)


def pack_epoch(lengths: np.ndarray, seq_length: int, seed: int, dataset: int, epoch: int) -> EpochPacking:
    order = np.random.default_rng([seed, dataset, epoch]).permutation(len(lengths))
    document, chunk, start, end = split_into_pieces(order, lengths, seq_length)
    offsets = next_fit_offsets(end - start + FRAMING, seq_length)
    return EpochPacking(document, chunk, start, end, offsets)
