"""ModernBERT attention on megatron-core: a core attention for padded or packed batches
with an optional bidirectional sliding window, and a self-attention that picks its own
RoPE table (global and local layers use different thetas).

Packed batches on the SDPA core attention (measured in docs/benchmarks.md, training step):
documents are sorted by length into a few groups of padded rows, one SDPA call per group,
instead of all padded to the batch's longest; index maps, masks and per-slot RoPE cos/sin are
built once per batch (``packed_layout``) and shared by every layer; RoPE is applied here
(``rotary_in_core``) instead of by megatron's THD path, which splits the pack per document and
recomputes cos/sin per token in every layer; the gathers into and out of the groups have
gathers as their backward. Same formulas element by element: with one group the results are
bitwise those of padding every document to the batch's longest; several groups change SDPA's
blocking, i.e. rounding (~1e-6 relative), as a batch with another longest document already does.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
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


# Packed documents are attended in at most this many groups of rows sorted by length, each
# padded to its own longest document: attention work is ~rows·width², and product-length
# documents vary by 5× within one batch.
MAX_ROW_GROUPS = 8


def row_groups(lengths: list[int], max_groups: int) -> list[tuple[int, int]]:
    """Split rows of ascending ``lengths`` into at most ``max_groups`` consecutive, non-empty
    [start, end) groups minimising Σ rows · (longest row)², the padded attention work (dynamic
    programming). Fewer groups win unless more save over 5%: each group is one more kernel call."""
    n = len(lengths)
    sq = np.asarray(lengths, dtype=np.float64) ** 2
    best = np.full(n + 1, np.inf)
    best[0] = 0.0  # least cost of rows [0, j) in the previous round's number of groups
    cuts, totals = [], []
    for _ in range(min(max_groups, n)):
        new, cut = np.full(n + 1, np.inf), np.zeros(n + 1, dtype=np.int64)
        for j in range(1, n + 1):
            cost = best[:j] + (j - np.arange(j)) * sq[j - 1]  # the last group is rows [i, j)
            cut[j] = int(np.argmin(cost))
            new[j] = cost[cut[j]]
        cuts.append(cut)
        totals.append(new[n])
        best = new
    used = next((k for k, total in enumerate(totals) if total <= 1.05 * min(totals)), -1) + 1
    groups, end = [], n
    for cut in reversed(cuts[:used]):
        groups.append((int(cut[end]), end))
        end = int(cut[end])
    return groups[::-1]


@dataclasses.dataclass
class RowGroup:
    """Rows (documents) padded to one width, attended in one SDPA call."""

    rows: int
    width: int
    padding: torch.Tensor  # [rows, width] True at padding
    masks: dict  # (half_window, causal, dtype) -> additive mask [rows, 1, width, width]

    def additive_mask(self, half_window: Optional[int], causal: bool, dtype: torch.dtype) -> torch.Tensor:
        """0 where attended, -inf elsewhere: what SDPA makes of the boolean mask on every call."""
        key = (half_window, causal, dtype)
        if key not in self.masks:
            keep = attention_keep_mask(self.padding, half_window, causal)
            self.masks[key] = torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill_(
                ~keep, float("-inf"))
        return self.masks[key]


@dataclasses.dataclass
class PackedLayout:
    """A packed THD batch seen as groups of padded rows ("slots"), shared by the layers of a forward."""

    gather_index: torch.Tensor  # [slots] packed token of each slot, group after group (0 at padding)
    scatter_index: torch.Tensor  # [t] slot of each packed token
    padding_slots: torch.Tensor  # [slots - t] the slots that hold padding
    slot_positions: torch.Tensor  # [slots] position of each slot in its row (RoPE restarts per row)
    groups: list[RowGroup]
    rotary: dict = dataclasses.field(default_factory=dict)  # table key -> (table, cos, sin)

    def rotary_cos_sin(self, freqs: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin ``[slots, 1, hn]`` of megatron's table ``freqs [s, 1, 1, hn]`` at each
        slot's position, once per table (an entry holds its table, so no other tensor can
        reuse that storage, hence the key, while the entry lives)."""
        key = (freqs.data_ptr(), tuple(freqs.shape), tuple(freqs.stride()), freqs.dtype, dtype)
        if key not in self.rotary:
            angles = freqs.reshape(freqs.shape[0], freqs.shape[-1]).index_select(0, self.slot_positions)
            cos_, sin_ = (f(angles).to(dtype).unsqueeze(1) for f in (torch.cos, torch.sin))
            self.rotary[key] = (freqs, cos_, sin_)
        return self.rotary[key][1:]

    def to_slots(self, packed: torch.Tensor) -> torch.Tensor:
        """[t, ...] → [slots, ...] (padding slots repeat token 0)."""
        return _ToSlots.apply(packed, self)

    def from_slots(self, slots: torch.Tensor) -> torch.Tensor:
        """[slots, ...] → [t, ...] (padding slots dropped)."""
        return _FromSlots.apply(slots, self)


class _ToSlots(torch.autograd.Function):
    """``index_select`` by ``gather_index`` whose backward is a gather too (autograd's backward
    of ``index_select`` is an ``index_add``, serial on CPU). Every token has exactly one real
    slot; padding slots hold token 0, so their gradients (zeros: nothing attends to padding)
    are added to row 0, as ``index_add`` would."""

    @staticmethod
    def forward(ctx, packed: torch.Tensor, layout: PackedLayout) -> torch.Tensor:
        ctx.layout = layout
        return packed.index_select(0, layout.gather_index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        layout = ctx.layout
        out = grad.index_select(0, layout.scatter_index)
        if layout.padding_slots.numel():
            out[0] += grad.index_select(0, layout.padding_slots).sum(0)
        return out, None


class _FromSlots(torch.autograd.Function):
    """``index_select`` by ``scatter_index``; the backward puts each token's gradient in its
    slot and zeros in the padding slots, by one gather."""

    @staticmethod
    def forward(ctx, slots: torch.Tensor, layout: PackedLayout) -> torch.Tensor:
        ctx.layout = layout
        return slots.index_select(0, layout.scatter_index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        layout = ctx.layout
        out = grad.index_select(0, layout.gather_index)  # padding slots: token 0's, then zeros
        if layout.padding_slots.numel():
            out.index_fill_(0, layout.padding_slots, 0.0)
        return out, None


def build_packed_layout(cu_seqlens: torch.Tensor, max_groups: Optional[int] = None) -> PackedLayout:
    """Rows sorted by length and grouped (``row_groups``), and the index maps between the pack
    and the groups' slots."""
    device = cu_seqlens.device
    bounds = cu_seqlens.tolist()
    lengths = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    starts = cu_seqlens[:-1].long()
    gathers, pads, positions, groups = [], [], [], []
    scatter = torch.empty(bounds[-1], dtype=torch.long, device=device)
    slot = 0
    for lo, hi in row_groups([lengths[i] for i in order], max_groups or MAX_ROW_GROUPS):
        rows = torch.tensor(order[lo:hi], dtype=torch.long, device=device)
        width = lengths[order[hi - 1]]
        offsets = torch.arange(width, device=device)
        padding = offsets[None, :] >= (cu_seqlens[rows + 1] - cu_seqlens[rows]).long()[:, None]
        tokens = starts[rows][:, None] + offsets[None, :]
        real = ~padding.reshape(-1)
        scatter[tokens.reshape(-1)[real]] = slot + torch.nonzero(real).squeeze(1)
        gathers.append(tokens.masked_fill(padding, 0).reshape(-1))
        pads.append(slot + torch.nonzero(~real).squeeze(1))
        positions.append(offsets.repeat(hi - lo))
        groups.append(RowGroup(hi - lo, width, padding, {}))
        slot += (hi - lo) * width
    gather, padding_slots = torch.cat(gathers), torch.cat(pads)
    return PackedLayout(gather, scatter, padding_slots, torch.cat(positions), groups)


_LAYOUT_ATTR = "_rexbert_packed_layout"


def packed_layout(params: PackedSeqParams) -> PackedLayout:
    """The layout of ``params.cu_seqlens_q``, built on first use and kept on ``params``."""
    if isinstance(params, RotaryPackedSeqParams):
        return params.layout
    cached = getattr(params, _LAYOUT_ATTR, None)
    if cached is not None and cached[0] is params.cu_seqlens_q:
        return cached[1]
    layout = build_packed_layout(params.cu_seqlens_q)
    setattr(params, _LAYOUT_ATTR, (params.cu_seqlens_q, layout))
    return layout


@dataclasses.dataclass
class RotaryPackedSeqParams(PackedSeqParams):
    """``PackedSeqParams`` that also carry one layer's RoPE table ``[s, 1, 1, hn]`` and the
    batch's layout to a core attention that applies RoPE itself (megatron then applies none)."""

    rotary_pos_emb: Optional[torch.Tensor] = None
    layout: Optional[PackedLayout] = None

    @classmethod
    def wrap(cls, params: PackedSeqParams, rotary_pos_emb: torch.Tensor) -> "RotaryPackedSeqParams":
        fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(PackedSeqParams)}
        return cls(**fields, rotary_pos_emb=rotary_pos_emb, layout=packed_layout(params))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = torch.chunk(x, 2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class _Rotary(torch.autograd.Function):
    """``x·cos + rotate_half(x)·sin`` without building ``rotate_half(x)``: per element the same
    two products and one sum as that expression (a − b where it adds −b, which rounds alike),
    and in backward the same as its autograd graph (``g·cos`` plus the rotated ``g·sin``), so
    values and gradients are bitwise those; the negation and the two concatenations (forward,
    and the chunk's backward) are gone."""

    @staticmethod
    def forward(ctx, x, cos_, sin_):
        half = x.shape[-1] // 2
        out = x * cos_
        out[..., :half] -= x[..., half:] * sin_[..., :half]
        out[..., half:] += x[..., :half] * sin_[..., half:]
        ctx.save_for_backward(cos_, sin_)
        return out

    @staticmethod
    def backward(ctx, grad):
        cos_, sin_ = ctx.saved_tensors
        half = grad.shape[-1] // 2
        grad_sin = grad * sin_
        grad_x = grad * cos_
        grad_x[..., :half] += grad_sin[..., half:]
        grad_x[..., half:] -= grad_sin[..., :half]
        return grad_x, None, None


def apply_rotary(x: torch.Tensor, cos_: torch.Tensor, sin_: torch.Tensor) -> torch.Tensor:
    """megatron's unfused RoPE (``_apply_rotary_pos_emb_bshd``: non-interleaved, mscale 1),
    element for element, on slots ``[slots, np, hn]`` with per-slot ``[slots, 1, hn]`` cos/sin:
    a broadcast over heads only (broadcasting over rows too is ~100× slower in torch's CPU kernels)."""
    if cos_.requires_grad or sin_.requires_grad:  # never from megatron's tables; keep autograd's
        return (x * cos_) + (_rotate_half(x) * sin_)
    return _Rotary.apply(x, cos_, sin_)


class SdpaCoreAttention(MegatronModule):
    """Core attention for the local (pure torch) spec.

    Accepts megatron's padded layout (``[s, b, np, hn]`` with a ``[b, 1, 1, s]`` bool padding
    mask, True = masked) and packed THD (``[t, np, hn]`` with ``packed_seq_params``), where
    attention never crosses a document and the window restarts per document. Packed input
    is gathered into padded rows (grouped by length, ``packed_layout``), so both layouts run
    the same kernel; with ``RotaryPackedSeqParams`` it applies their RoPE table to q and k.
    """

    rotary_in_core = True  # RexBertSelfAttention hands packed batches' RoPE to this module

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
        _, heads, head_dim = query.shape
        layout = packed_layout(params)
        q_all, k_all, v_all = (layout.to_slots(t) for t in (query, key, value))  # [slots, np, hn]
        rotary = getattr(params, "rotary_pos_emb", None)
        if rotary is not None:
            cos_, sin_ = layout.rotary_cos_sin(rotary, q_all.dtype)
            q_all, k_all = apply_rotary(q_all, cos_, sin_), apply_rotary(k_all, cos_, sin_)
        sizes = [g.rows * g.width for g in layout.groups]
        outs = []
        for group, q, k, v in zip(layout.groups, *(t.split(sizes) for t in (q_all, k_all, v_all))):
            shape = (group.rows, group.width, heads, head_dim)
            q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))  # [rows, np, width, hn]
            out = self._attend(q, k, v, group.additive_mask(self.half_window, causal, q.dtype))
            outs.append(out.transpose(1, 2).reshape(group.rows * group.width, heads * head_dim))
        return layout.from_slots(outs[0] if len(outs) == 1 else torch.cat(outs))  # [t, np * hn]


class RexBertSelfAttention(SelfAttention):
    """megatron's SelfAttention, handed a stacked ``[2, s, 1, 1, d]`` rotary table by the
    block (one tensor, so full recompute can save it) and using row ``rope_index``.

    For a packed batch and a core attention with ``rotary_in_core`` the row travels to the
    core attention in ``RotaryPackedSeqParams`` instead of through megatron's THD RoPE."""

    def __init__(self, *args, rope_index: int = GLOBAL_ROPE, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rope_index = rope_index

    def forward(self, hidden_states, attention_mask, *args, rotary_pos_emb=None, packed_seq_params=None, **kwargs):
        if rotary_pos_emb is not None:
            rotary_pos_emb = rotary_pos_emb[self.rope_index]
            if (
                packed_seq_params is not None
                and packed_seq_params.qkv_format == "thd"
                and packed_seq_params.cu_seqlens_q_padded is None
                and getattr(self.core_attention, "rotary_in_core", False)
            ):
                packed_seq_params = RotaryPackedSeqParams.wrap(packed_seq_params, rotary_pos_emb)
                rotary_pos_emb = None
        return super().forward(hidden_states, attention_mask, *args, rotary_pos_emb=rotary_pos_emb,
                               packed_seq_params=packed_seq_params, **kwargs)
