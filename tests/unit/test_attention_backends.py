"""The varlen core attention (``model.attention_backend=flex|flash_attn``) gives the SDPA spec's
logits on CPU in float32: FlexAttention for real (forward only on CPU), and the flash-attn glue
driven by a pure-torch stand-in that follows flash-attn's documented varlen contract."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from megatron.core.packed_seq_params import PackedSeqParams

from helpers import padded_batch, randomize_, small_config
from rexbert.model.build import build_model

LENGTHS = [300, 70, 181]  # the first document is longer than the 128-token local window


def packed_params(lengths: list[int]) -> PackedSeqParams:
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return PackedSeqParams(qkv_format="thd", cu_seqlens_q=cu, cu_seqlens_kv=cu,
                           max_seqlen_q=max(lengths), max_seqlen_kv=max(lengths))


def twin(reference, config):
    model = build_model(config).eval()
    model.load_state_dict(reference.state_dict())
    return model


def assert_same_logits(sdpa, other, causal: bool) -> None:
    ids, padding = padded_batch(LENGTHS, seed=6)
    flat = ids[~padding][None, :]
    for model in (sdpa, other):
        model.set_causal(causal)
    with torch.no_grad():
        padded = [m(ids, padding_mask=padding)[~padding] for m in (sdpa, other)]
        packed = [m(flat, packed_seq_params=packed_params(LENGTHS))[0] for m in (sdpa, other)]
    assert (padded[0] - padded[1]).abs().max().item() <= 2e-5
    assert (packed[0] - packed[1]).abs().max().item() <= 2e-5


@pytest.mark.parametrize("causal", [False, True], ids=["mlm", "clm"])
def test_flex_matches_sdpa(world_of_one, causal):
    sdpa = build_model(small_config()).eval()
    randomize_(sdpa, seed=5)
    flex = twin(sdpa, small_config(attention_backend="flex"))
    assert_same_logits(sdpa, flex, causal)


def reference_flash_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                           softmax_scale=None, causal=False, window_size=(-1, -1)):
    """flash-attn's varlen contract in torch: q/k/v [t, h, d], int32 cu_seqlens, int max lengths;
    query i sees keys [i - window_size[0], i + window_size[1]] (-1 = unbounded), causal → j <= i."""
    assert q.dim() == 3 and cu_seqlens_q.dtype == torch.int32 and torch.equal(cu_seqlens_q, cu_seqlens_k)
    assert isinstance(max_seqlen_q, int) and isinstance(max_seqlen_k, int) and dropout_p == 0.0
    left, right = window_size
    out = torch.empty_like(q)
    bounds = cu_seqlens_q.tolist()
    assert max_seqlen_q == max(b - a for a, b in zip(bounds, bounds[1:]))
    for start, end in zip(bounds, bounds[1:]):
        pos = torch.arange(end - start)
        offset = pos[None, :] - pos[:, None]  # j - i
        keep = torch.ones(end - start, end - start, dtype=torch.bool)
        if left >= 0:
            keep &= offset >= -left
        if right >= 0:
            keep &= offset <= right
        if causal:
            keep &= offset <= 0
        qd, kd, vd = (x[start:end].transpose(0, 1) for x in (q, k, v))
        out[start:end] = F.scaled_dot_product_attention(qd, kd, vd, keep, scale=softmax_scale).transpose(0, 1)
    return out


@pytest.mark.parametrize("causal", [False, True], ids=["mlm", "clm"])
def test_flash_attn_glue_matches_sdpa(world_of_one, monkeypatch, causal):
    """The arguments handed to flash_attn_varlen_func (window (64, 64) on local layers, (-1, -1)
    on global ones, causal for CLM, int32 cu_seqlens) give SDPA's results under its contract."""
    import megatron_ext.compat as compat
    from rexbert.model import flash_attention, specs

    windows = []

    def spy(*args, **kwargs):
        windows.append(kwargs["window_size"])
        return reference_flash_varlen(*args, **kwargs)

    with monkeypatch.context() as patch:  # only while resolving the kernel
        patch.setattr(compat, "require_flash_attn", lambda feature: SimpleNamespace(flash_attn_varlen_func=spy))
        patch.setattr(torch.cuda, "is_available", lambda: True)
        kernel = flash_attention._flash_attn_kernel()
    # float32 on CPU: build through the flex config and swap in the flash glue kernel.
    monkeypatch.setattr(specs, "varlen_kernel", lambda backend: kernel)
    sdpa = build_model(small_config()).eval()
    randomize_(sdpa, seed=7)
    flash = twin(sdpa, small_config(attention_backend="flex"))
    assert_same_logits(sdpa, flash, causal)
    # small_config: 4 layers, global at 0 and 3; two forwards (padded, packed).
    assert windows == [(-1, -1), (64, 64), (64, 64), (-1, -1)] * 2


def test_unpad_indexes_real_tokens():
    from rexbert.model.flash_attention import unpad

    padding = torch.tensor([[False, False, True], [False, True, True], [False, False, False]])
    indices, cu_seqlens, max_len = unpad(padding)
    assert indices.tolist() == [0, 1, 3, 6, 7, 8]
    assert cu_seqlens.tolist() == [0, 2, 3, 6] and cu_seqlens.dtype == torch.int32 and max_len == 3
