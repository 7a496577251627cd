"""Model FLOPs of a training step, for the MFU estimate (formula in docs/training.md).

Forward FLOPs per token and layer: 2·(4H² + 3HF) for the QKV, output, and GeGLU MLP
matmuls (fc1 is H → 2F) plus 4·H·c for attention scores and values over c attended keys
(c = the piece length on global layers, min(piece, window + 1) on local ones; no causal
halving for CLM). The MLM head runs on predicted positions only: 2·(H² + H·V) each.
Training = 3 × forward, i.e. 6·N_non-embedding per token + attention + head. Pass the real
pieces only (``rexbert.data.collate.document_lengths``: no FP8 padding segment).
"""

from __future__ import annotations

import numpy as np

from rexbert.model.config import RexBertConfig


def step_flops(config: RexBertConfig, piece_lengths: np.ndarray, predicted_tokens: int) -> float:
    h, f, v = config.hidden_size, config.ffn_hidden_size, config.vocab_size
    lengths = np.asarray(piece_lengths, dtype=np.float64)
    tokens = lengths.sum()
    dense = 2.0 * (4 * h * h + 3 * h * f) * tokens * config.num_layers
    attention = 0.0
    for layer in range(config.num_layers):
        keys = lengths if config.is_global_layer(layer) else np.minimum(lengths, config.local_attention_window + 1)
        attention += 4.0 * h * float((lengths * keys).sum())
    head = 2.0 * (h * h + h * v) * predicted_tokens
    return 3.0 * (dense + attention + head)
