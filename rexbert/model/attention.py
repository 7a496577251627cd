"""ModernBERT attention on megatron-core: a core attention for padded or packed batches
with an optional bidirectional sliding window, and a self-attention that picks its own
RoPE table (global and local layers use different thetas)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from megatron.core.packed_seq_params import PackedSeqParams
from megatron.core.transformer.attention import SelfAttention
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.module import MegatronModule
from megatron.core.transformer.transformer_config import TransformerConfig

GLOBAL_ROPE, LOCAL_ROPE = 0, 1  # indices into the stacked rotary tables


def attention_keep_mask(
    key_padding: torch.Tensor, half_window: Optional[int], causal: bool = False
) -> torch.Tensor:
    """Bool ``[b, 1, s, s]``, True where query i may attend to key j.

    ``key_padding`` is ``[b, s]``, True at padding. A local layer keeps |i - j| <= half_window.
    Every position keeps itself, so a padding query far from any real token still has one
    finite score (its output is never used, but a NaN there would leak through 0 × NaN).
    """
    seq_len = key_padding.shape[-1]
    keep = ~key_padding[:, None, None, :]
    pos = torch.arange(seq_len, device=key_padding.device)
    if half_window is not None:
        keep = keep & ((pos[:, None] - pos[None, :]).abs() <= half_window)
    if causal:
        keep = keep & (pos[None, :] <= pos[:, None])
    return keep | torch.eye(seq_len, dtype=torch.bool, device=key_padding.device)


def unpack_index(cu_seqlens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Index maps between a packed THD batch and a right-padded [b, max_len] view.

    Returns (token_index [b, max_len] into the packed dim, padding [b, max_len], max_len).
    """
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
    max_len = int(lengths.max())
    offsets = torch.arange(max_len, device=cu_seqlens.device)
    padding = offsets[None, :] >= lengths[:, None]
    token_index = (cu_seqlens[:-1, None].long() + offsets[None, :]).masked_fill(padding, 0)
    return token_index, padding, max_len


class SdpaCoreAttention(MegatronModule):
    """Core attention for the local (pure torch) spec.

    Accepts megatron's padded layout (``[s, b, np, hn]`` with a ``[b, 1, 1, s]`` bool padding
    mask, True = masked) and packed THD (``[t, np, hn]`` with ``packed_seq_params``), where
    attention never crosses a document and the window restarts per document. Packed input
    is gathered into a padded view, so both layouts run the same kernel.
    """

    def __init__(
        self,
        config: TransformerConfig,
        layer_number: int,
        attn_mask_type: AttnMaskType,
        attention_type: str,
        attention_dropout: Optional[float] = None,
        softmax_scale: Optional[float] = None,
        cp_comm_type: Optional[str] = None,
        pg_collection=None,
        half_window: Optional[int] = None,
    ) -> None:
        super().__init__(config=config)
        self.attn_mask_type = attn_mask_type
        self.half_window = half_window
        self.dropout_p = config.attention_dropout if attention_dropout is None else attention_dropout
        self.softmax_scale = softmax_scale

    def _attend(self, q, k, v, keep) -> torch.Tensor:
        # q, k, v: [b, np, s, hn]
        dropout_p = self.dropout_p if self.training else 0.0
        if dropout_p > 0:
            from megatron.core import tensor_parallel

            with tensor_parallel.get_cuda_rng_tracker().fork():
                return F.scaled_dot_product_attention(q, k, v, keep, dropout_p, scale=self.softmax_scale)
        return F.scaled_dot_product_attention(q, k, v, keep, 0.0, scale=self.softmax_scale)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: Optional[torch.Tensor],
        attn_mask_type: Optional[AttnMaskType] = None,
        attention_bias: Optional[torch.Tensor] = None,
        packed_seq_params: Optional[PackedSeqParams] = None,
    ) -> torch.Tensor:
        if attention_bias is not None:
            raise NotImplementedError("SdpaCoreAttention does not take an attention_bias")
        causal = (attn_mask_type or self.attn_mask_type) in (AttnMaskType.causal, AttnMaskType.padding_causal)
        if packed_seq_params is not None:
            return self._forward_packed(query, key, value, packed_seq_params, causal)

        seq_len, batch, heads, head_dim = query.shape
        if attention_mask is None:
            key_padding = torch.zeros(batch, seq_len, dtype=torch.bool, device=query.device)
        else:
            key_padding = attention_mask.reshape(batch, seq_len)  # [b, 1, 1, s] padding mask
        keep = attention_keep_mask(key_padding, self.half_window, causal)
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))
        out = self._attend(q, k, v, keep)  # [b, np, s, hn]
        return out.permute(2, 0, 1, 3).reshape(seq_len, batch, heads * head_dim)

    def _forward_packed(self, query, key, value, params: PackedSeqParams, causal: bool) -> torch.Tensor:
        if params.qkv_format != "thd":
            raise ValueError(f"packed_seq_params.qkv_format={params.qkv_format!r}; only 'thd' is supported")
        total, heads, head_dim = query.shape
        token_index, padding, _ = unpack_index(params.cu_seqlens_q)
        keep = attention_keep_mask(padding, self.half_window, causal)
        # [t, np, hn] -> [b, np, L, hn]
        q, k, v = (t[token_index].permute(0, 2, 1, 3) for t in (query, key, value))
        out = self._attend(q, k, v, keep).permute(0, 2, 1, 3)  # [b, L, np, hn]
        packed = out.new_zeros(total, heads, head_dim)
        packed[token_index[~padding]] = out[~padding]
        return packed.reshape(total, heads * head_dim)


class RexBertSelfAttention(SelfAttention):
    """megatron's SelfAttention, handed a stacked ``[2, s, 1, 1, d]`` rotary table by the
    block (one tensor, so full recompute can save it) and using row ``rope_index``."""

    def __init__(self, *args, rope_index: int = GLOBAL_ROPE, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rope_index = rope_index

    def forward(self, hidden_states, attention_mask, *args, rotary_pos_emb=None, **kwargs):
        if rotary_pos_emb is not None:
            rotary_pos_emb = rotary_pos_emb[self.rope_index]
        return super().forward(hidden_states, attention_mask, *args, rotary_pos_emb=rotary_pos_emb, **kwargs)
