"""Micro-batches from masked pieces: packed (one THD row with cu_seqlens, no padding) or
padded (one piece per row) — the same pieces give the same per-token targets either way."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from rexbert.data.dataset import MaskedPiece

# Transformer Engine's FP8 GEMMs need the token dimension to divide by 16.
FP8_TOKEN_MULTIPLE = 16


def flatten(samples: list[list[MaskedPiece]]) -> list[MaskedPiece]:
    return [piece for sample in samples for piece in sample]


def collate_packed(samples: list[list[MaskedPiece]], pad_to_multiple: int = 0, pad_id: int = 0) -> dict:
    """{"input_ids" [1, T], "labels" [1, T], "cu_seqlens" int32 [n+1], "max_seqlen"}.

    ``pad_to_multiple`` N > 1 (FP8: Transformer Engine's FP8 GEMMs need the token count to
    divide by 16) pads T up to a multiple of N with one extra segment at the end — ``pad_id``
    tokens, labels -100, its own entry in ``cu_seqlens`` — so no real token attends to it or
    is attended by it, and nothing is predicted there; ``num_padding`` (only present when
    padded) says how many tokens it holds. ``document_lengths`` gives the real pieces back.
    """
    pieces = flatten(samples)
    lengths = np.array([len(p.input_ids) for p in pieces])
    input_ids = np.concatenate([p.input_ids for p in pieces])
    labels = np.concatenate([p.labels for p in pieces])
    total = int(lengths.sum())
    padding = (-total) % pad_to_multiple if pad_to_multiple > 1 else 0
    if padding:
        lengths = np.append(lengths, padding)
        input_ids = np.concatenate([input_ids, np.full(padding, pad_id, dtype=input_ids.dtype)])
        labels = np.concatenate([labels, np.full(padding, -100, dtype=labels.dtype)])
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    batch = {
        "input_ids": torch.from_numpy(input_ids)[None, :],
        "labels": torch.from_numpy(labels)[None, :],
        "cu_seqlens": torch.from_numpy(cu),
        "max_seqlen": int(lengths.max()),
    }
    if padding:
        batch["num_padding"] = padding
    return batch


def document_lengths(batch: dict) -> list[int]:
    """Lengths of the real pieces of a packed batch (without the padding segment, if any)."""
    lengths = torch.diff(batch["cu_seqlens"]).tolist()
    return lengths[:-1] if batch.get("num_padding", 0) else lengths


def pack_multiple(pad_packed_to: Optional[int], fp8: Optional[str]) -> int:
    """The multiple packed micro-batches are padded to: ``data.pad_packed_to`` when set
    (0 or 1: never), else 16 when ``model.fp8`` is on (TE's FP8 GEMMs) and no padding otherwise."""
    if pad_packed_to is not None:
        return pad_packed_to
    return FP8_TOKEN_MULTIPLE if fp8 else 0


def collate_padded(samples: list[list[MaskedPiece]], pad_id: int) -> dict:
    """{"input_ids" [n, L], "labels" [n, L], "padding_mask" [n, L] (True at padding)}."""
    pieces = flatten(samples)
    width = max(len(p.input_ids) for p in pieces)
    ids = torch.full((len(pieces), width), pad_id, dtype=torch.long)
    labels = torch.full((len(pieces), width), -100, dtype=torch.long)
    padding = torch.ones((len(pieces), width), dtype=torch.bool)
    for row, p in enumerate(pieces):
        n = len(p.input_ids)
        ids[row, :n] = torch.from_numpy(p.input_ids)
        labels[row, :n] = torch.from_numpy(p.labels)
        padding[row, :n] = False
    return {"input_ids": ids, "labels": labels, "padding_mask": padding}


def packed_seq_params(batch: dict):
    """megatron's PackedSeqParams for a packed batch."""
    from megatron.core.packed_seq_params import PackedSeqParams

    cu = batch["cu_seqlens"]
    return PackedSeqParams(qkv_format="thd", cu_seqlens_q=cu, cu_seqlens_kv=cu,
                           max_seqlen_q=batch["max_seqlen"], max_seqlen_kv=batch["max_seqlen"])
