"""The small pieces megatron-core lacks for ModernBERT: a bias-free LayerNorm, the
embedding with its LayerNorm, and the MLM prediction head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core import tensor_parallel
from megatron.core.transformer.module import MegatronModule
from megatron.core.transformer.transformer_config import TransformerConfig


class BiasFreeLayerNorm(torch.nn.Module):
    """LayerNorm with a weight and no bias (megatron's ``WrappedTorchNorm`` always has one).

    The signature is megatron's norm-builder signature, so specs can name it directly.
    """

    def __init__(self, config: TransformerConfig, hidden_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(hidden_size, dtype=config.params_dtype))
        # Replicated across tensor-parallel ranks; megatron's sharded_state_dict treats
        # plain modules as replicated, which is what this is.

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(hidden_states, (self.hidden_size,), self.weight, None, self.eps)


class RexBertEmbedding(MegatronModule):
    """Token embedding (vocab-parallel) → LayerNorm → dropout. No absolute positions:
    positions come from RoPE inside attention."""

    def __init__(self, config: TransformerConfig, vocab_size: int, dropout: float, tp_group=None) -> None:
        super().__init__(config=config)
        self.word_embeddings = tensor_parallel.VocabParallelEmbedding(
            num_embeddings=vocab_size,
            embedding_dim=config.hidden_size,
            init_method=config.embedding_init_method,
            config=config,
            tp_group=tp_group,
        )
        self.norm = BiasFreeLayerNorm(config, config.hidden_size, config.layernorm_epsilon)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[b, s] token ids → [s, b, h] (megatron's sequence-first layout)."""
        embeddings = self.word_embeddings(input_ids).transpose(0, 1).contiguous()
        return self.dropout(self.norm(embeddings))


class MLMHead(MegatronModule):
    """ModernBERT's prediction head before the decoder: dense → GELU → LayerNorm.

    Replicated across tensor-parallel ranks (its input is replicated); the tied decoder
    that follows is vocab-parallel.
    """

    def __init__(self, config: TransformerConfig, init_std: float, cutoff: float) -> None:
        super().__init__(config=config)
        h = config.hidden_size
        self.dense = torch.nn.Linear(h, h, bias=False, dtype=config.params_dtype)
        torch.nn.init.trunc_normal_(self.dense.weight, std=init_std, a=-cutoff * init_std, b=cutoff * init_std)
        self.norm = BiasFreeLayerNorm(config, h, config.layernorm_epsilon)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.dense(hidden_states)))
