"""Varlen core attention for the local spec: packed THD tokens with ``cu_seqlens`` go straight
to a variable-length kernel — flash-attn's ``flash_attn_varlen_func`` (CUDA, bf16/fp16) or
torch's FlexAttention — with ModernBERT's bidirectional ±half_window on local layers.

Same constructor and forward as ``SdpaCoreAttention``, so the spec swaps one for the other
(``model.attention_backend``). A padded batch (``[s, b, np, hn]`` + ``[b, 1, 1, s]`` padding
mask) is unpadded into THD first, run, and scattered back; each row's real tokens must be
contiguous (right- or left-padding), which is what the collators produce. Padding positions
come back as zeros.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import torch
from megatron.core.packed_seq_params import PackedSeqParams
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.module import MegatronModule
from megatron.core.transformer.transformer_config import TransformerConfig

# kernel(q, k, v, cu_seqlens, max_seqlen, *, causal, half_window, dropout_p, softmax_scale) -> out;
# q, k, v and out are [t, np, hn], cu_seqlens int32 [n + 1].
VarlenKernel = Callable[..., torch.Tensor]


def unpad(key_padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``[b, s]`` padding mask (True at padding) → (flat indices of real tokens [t] into b*s,
    cu_seqlens int32 [b + 1], max length)."""
    lengths = (~key_padding).sum(dim=1, dtype=torch.int32)
    cu_seqlens = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    indices = torch.nonzero(~key_padding.reshape(-1), as_tuple=False).flatten()
    return indices, cu_seqlens, int(lengths.max())


def _flash_attn_kernel() -> VarlenKernel:
    from megatron_ext.compat import require_flash_attn

    flash_attn = require_flash_attn("the flash-attn core attention (model.attention_backend=flash_attn)")
    if not torch.cuda.is_available():
        raise RuntimeError(
            "model.attention_backend=flash_attn needs a CUDA GPU; on CPU use model.attention_backend=sdpa"
        )
    varlen = flash_attn.flash_attn_varlen_func

    def kernel(q, k, v, cu_seqlens, max_seqlen, *, causal, half_window, dropout_p, softmax_scale):
        # flash-attn: query i sees keys [i - left, i + right]; -1 = unbounded.
        window = (-1, -1) if half_window is None else (half_window, half_window)
        return varlen(q, k, v, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen, dropout_p=dropout_p,
                      softmax_scale=softmax_scale, causal=causal, window_size=window)

    return kernel


@functools.lru_cache(maxsize=8)
def _flex_block_mask(cu_seqlens: tuple[int, ...], half_window: Optional[int], causal: bool, device: str):
    """Block mask of one pack, shared by the layers of a forward (same documents, same window)."""
    from torch.nn.attention.flex_attention import create_block_mask

    total = cu_seqlens[-1]
    bounds = torch.tensor(cu_seqlens[1:], device=device)
    doc = torch.searchsorted(bounds, torch.arange(total, device=device), right=True)

    def mask_mod(b, h, q_idx, kv_idx):
        keep = doc[q_idx] == doc[kv_idx]
        if half_window is not None:
            keep = keep & ((q_idx - kv_idx).abs() <= half_window)
        if causal:
            keep = keep & (kv_idx <= q_idx)
        return keep

    return create_block_mask(mask_mod, None, None, total, total, device=device)


def _flex_kernel() -> VarlenKernel:
    try:
        from torch.nn.attention.flex_attention import flex_attention
    except ImportError as err:  # torch < 2.5
        raise ImportError(
            f"model.attention_backend=flex needs torch >= 2.5 (FlexAttention): {err}; use sdpa"
        ) from err
    # Compiled on CUDA (the eager path materialises the full score matrix); eager on CPU, where
    # it runs as a reference implementation.
    flex = torch.compile(flex_attention, dynamic=True) if torch.cuda.is_available() else flex_attention

    def kernel(q, k, v, cu_seqlens, max_seqlen, *, causal, half_window, dropout_p, softmax_scale):
        assert dropout_p == 0.0, "flex has no attention dropout (checked in RexBertConfig)"
        mask = _flex_block_mask(tuple(cu_seqlens.tolist()), half_window, causal, str(q.device))
        # [t, np, hn] -> [1, np, t, hn]
        q, k, v = (x.transpose(0, 1).unsqueeze(0) for x in (q, k, v))
        out = flex(q, k, v, block_mask=mask, scale=softmax_scale)
        return out.squeeze(0).transpose(0, 1)

    return kernel


_KERNELS: dict[str, Callable[[], VarlenKernel]] = {"flash_attn": _flash_attn_kernel, "flex": _flex_kernel}


@functools.cache
def varlen_kernel(backend: str) -> VarlenKernel:
    """The kernel of ``model.attention_backend`` (``flash_attn`` or ``flex``); raises the guard's
    ImportError (or a RuntimeError without CUDA) when it cannot run here."""
    return _KERNELS[backend]()


class VarlenCoreAttention(MegatronModule):
    """Core attention through a varlen kernel; drop-in for ``SdpaCoreAttention``.

    ``kernel`` comes from ``varlen_kernel(backend)``, resolved once by the spec getter.
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
        kernel: Optional[VarlenKernel] = None,
    ) -> None:
        super().__init__(config=config)
        if kernel is None:
            raise ValueError("VarlenCoreAttention needs a kernel: varlen_kernel('flash_attn' | 'flex')")
        self.kernel = kernel
        self.attn_mask_type = attn_mask_type
        self.half_window = half_window
        self.dropout_p = config.attention_dropout if attention_dropout is None else attention_dropout
        self.softmax_scale = softmax_scale

    def _attend(self, q, k, v, cu_seqlens: torch.Tensor, max_seqlen: int, causal: bool) -> torch.Tensor:
        dropout_p = self.dropout_p if self.training else 0.0
        kwargs = dict(causal=causal, half_window=self.half_window, dropout_p=dropout_p,
                      softmax_scale=self.softmax_scale)
        if dropout_p > 0:
            from megatron.core import tensor_parallel

            with tensor_parallel.get_cuda_rng_tracker().fork():
                return self.kernel(q, k, v, cu_seqlens, max_seqlen, **kwargs)
        return self.kernel(q, k, v, cu_seqlens, max_seqlen, **kwargs)

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
            raise NotImplementedError("VarlenCoreAttention does not take an attention_bias")
        causal = (attn_mask_type or self.attn_mask_type) in (AttnMaskType.causal, AttnMaskType.padding_causal)
        if packed_seq_params is not None:
            if packed_seq_params.qkv_format != "thd":
                raise ValueError(
                    f"packed_seq_params.qkv_format={packed_seq_params.qkv_format!r}; only 'thd' is supported"
                )
            total, heads, head_dim = query.shape
            cu_seqlens = packed_seq_params.cu_seqlens_q.to(device=query.device, dtype=torch.int32)
            max_seqlen = int(packed_seq_params.max_seqlen_q)
            out = self._attend(query, key, value, cu_seqlens, max_seqlen, causal)
            return out.reshape(total, heads * head_dim)

        seq_len, batch, heads, head_dim = query.shape
        if attention_mask is None:
            key_padding = torch.zeros(batch, seq_len, dtype=torch.bool, device=query.device)
        else:
            key_padding = attention_mask.reshape(batch, seq_len)  # [b, 1, 1, s], True = padding
        indices, cu_seqlens, max_seqlen = unpad(key_padding)
        # [s, b, np, hn] -> [b*s, np, hn] (batch-major, as the padding mask) -> real tokens only
        q, k, v = (x.transpose(0, 1).reshape(batch * seq_len, heads, head_dim)[indices]
                   for x in (query, key, value))
        out = self._attend(q, k, v, cu_seqlens, max_seqlen, causal)
        padded = out.new_zeros(batch * seq_len, heads, head_dim)
        padded[indices] = out
        return padded.reshape(batch, seq_len, heads * head_dim).transpose(0, 1).contiguous()
