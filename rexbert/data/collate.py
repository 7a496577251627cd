"""Micro-batches from masked pieces: packed (one THD row with cu_seqlens, no padding) or
padded (one piece per row) — the same pieces give the same per-token targets either way."""

from __future__ import annotations

import numpy as np
import torch

from rexbert.data.dataset import MaskedPiece


def flatten(samples: list[list[MaskedPiece]]) -> list[MaskedPiece]:
    return [piece for sample in samples for piece in sample]


def collate_packed(samples: list[list[MaskedPiece]]) -> dict:
    """{"input_ids" [1, T], "labels" [1, T], "cu_seqlens" int32 [n+1], "max_seqlen"}."""
    pieces = flatten(samples)
    lengths = np.array([len(p.input_ids) for p in pieces])
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return {
        "input_ids": torch.from_numpy(np.concatenate([p.input_ids for p in pieces]))[None, :],
        "labels": torch.from_numpy(np.concatenate([p.labels for p in pieces]))[None, :],
        "cu_seqlens": torch.from_numpy(cu),
        "max_seqlen": int(lengths.max()),
    }


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
