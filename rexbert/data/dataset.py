"""Global sample index → masked, framed document pieces, ready to collate.

blend (which dataset) → that dataset's packed sequences, epoch by epoch → pieces → tokens
framed [CLS] … [SEP] → masking keyed by (seed, epoch, dataset, document, chunk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from rexbert.data.blend import BlendSchedule
from rexbert.data.documents import DocumentSource
from rexbert.data.masking import MaskingConfig, SpecialTokens, mask_piece, piece_rng
from rexbert.data.packing import EpochPacking, Piece, pack_epoch


LOADER_BACKENDS = ("torch", "dali")


@dataclass
class DataConfig:
    """Data for one phase. ``blend`` is Megatron's [weight, prefix, …] list (or one prefix)."""

    blend: List[str] = field(default_factory=list)
    blend_end: Optional[List[str]] = None  # weights at the end of the anneal (same prefixes)
    anneal_start_sample: int = 0
    anneal_end_sample: int = 0
    eval_blend: Optional[List[str]] = None  # held-out data for evaluate(); masked the same way
    seq_length: int = 512
    seed: int = 1234
    packed: bool = True  # False: one document piece per row, padded (for comparison)
    # Pad each packed micro-batch's token count up to a multiple of this, with one dummy
    # segment (its own document, labels ignored). null: 16 when model.fp8 is on (TE's FP8
    # GEMMs need it), else off; 0 or 1: off.
    pad_packed_to: Optional[int] = None
    # How the trainer's micro-batches reach the model: "torch" (built on the host, copied
    # to the GPU at the step) or "dali" (an NVIDIA DALI pipeline prefetches them to the GPU;
    # needs nvidia-dali; unmeasured, see docs/gpu.md).
    loader_backend: str = "torch"
    masking: MaskingConfig = field(default_factory=MaskingConfig)

    def __post_init__(self) -> None:
        if self.loader_backend not in LOADER_BACKENDS:
            raise ValueError(f"data.loader_backend={self.loader_backend!r}: choose one of {LOADER_BACKENDS}")
        if self.pad_packed_to is not None and self.pad_packed_to < 0:
            raise ValueError(f"data.pad_packed_to={self.pad_packed_to} must be >= 0 (0 or 1: off; null: auto)")


@dataclass
class MaskedPiece:
    piece: Piece
    dataset: int
    epoch: int
    input_ids: np.ndarray
    labels: np.ndarray


class PackedDataset:
    """The packed sequences of one dataset, over as many epochs as are read."""

    def __init__(self, source: DocumentSource, seq_length: int, seed: int, dataset_index: int) -> None:
        if len(source) == 0 or int(source.lengths.sum()) == 0:
            raise ValueError(f"{source.prefix}: no tokens")
        self.source = source
        self.seq_length = seq_length
        self.seed = seed
        self.dataset_index = dataset_index
        self._epochs: list[EpochPacking] = []
        self._starts = [0]  # first sequence index of each epoch

    def _epoch_of(self, index: int) -> int:
        while index >= self._starts[-1]:
            packing = pack_epoch(self.source.lengths, self.seq_length, self.seed, self.dataset_index, len(self._epochs))
            self._epochs.append(packing)
            self._starts.append(self._starts[-1] + packing.num_sequences)
        return int(np.searchsorted(self._starts, index, side="right") - 1)

    def sequence(self, index: int) -> tuple[int, list[Piece]]:
        epoch = self._epoch_of(index)
        return epoch, self._epochs[epoch].pieces(index - self._starts[epoch])


class PretrainingDataset:
    """``dataset[i]`` → the masked pieces of global sample i (deterministic in i)."""

    def __init__(self, config: DataConfig, special: Optional[SpecialTokens] = None) -> None:
        self.config = config
        self.special = special or SpecialTokens.modernbert()
        self.schedule = BlendSchedule(config.blend, config.blend_end, config.anneal_start_sample,
                                      config.anneal_end_sample)
        self.sources = [DocumentSource(p) for p in self.schedule.prefixes]
        guided = config.masking.strategy == "guided" or config.masking.guided_fraction > 0
        if guided and not any(s.has_spans for s in self.sources):
            # Datasets without a span side-file fall back to span masking for guided pieces;
            # with none at all, guided masking was surely not meant.
            raise FileNotFoundError("guided masking needs a span side-file (<prefix>_spans.bin/.idx) for at "
                                    f"least one of {self.schedule.prefixes}")
        self.datasets = [PackedDataset(s, config.seq_length, config.seed, d) for d, s in enumerate(self.sources)]

    def __getitem__(self, index: int) -> list[MaskedPiece]:
        d, within = self.schedule.lookup(index)
        epoch, pieces = self.datasets[d].sequence(within)
        return [self.mask(d, epoch, piece) for piece in pieces]

    def framed(self, dataset: int, piece: Piece) -> tuple[np.ndarray, np.ndarray]:
        """[CLS] tokens [SEP], and the mined spans that fall in this piece (piece coordinates)."""
        source = self.sources[dataset]
        body = source.tokens(piece.document, piece.start, piece.end)
        tokens = np.concatenate([[self.special.cls_id], body, [self.special.sep_id]])
        spans = np.clip(source.spans(piece.document) - piece.start, 0, piece.end - piece.start) + 1
        return tokens, spans[spans[:, 1] > spans[:, 0]]

    def mask(self, dataset: int, epoch: int, piece: Piece) -> MaskedPiece:
        tokens, spans = self.framed(dataset, piece)
        rng = piece_rng(self.config.seed, epoch, dataset, piece.document, piece.chunk)
        inputs, labels = mask_piece(tokens, spans, self.config.masking, self.special, rng)
        return MaskedPiece(piece, dataset, epoch, inputs, labels)
