"""Acceptance 2: the same documents packed (THD, cu_seqlens) and padded give the same
per-token logits; attention never crosses a document in a pack."""

from __future__ import annotations

import torch
from megatron.core.packed_seq_params import PackedSeqParams

from helpers import padded_batch, randomize_, small_config
from rexbert.model.build import build_model

LENGTHS = [300, 70, 181]


def packed_params(lengths: list[int]) -> PackedSeqParams:
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return PackedSeqParams(qkv_format="thd", cu_seqlens_q=cu, cu_seqlens_kv=cu,
                           max_seqlen_q=max(lengths), max_seqlen_kv=max(lengths))


def pack(ids: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    return ids[~padding][None, :]  # row-major: documents one after another


def test_packed_equals_padded(world_of_one):
    model = build_model(small_config()).eval()
    randomize_(model, seed=5)
    ids, padding = padded_batch(LENGTHS, seed=6)
    with torch.no_grad():
        padded = model(ids, padding_mask=padding)[~padding]
        packed = model(pack(ids, padding), packed_seq_params=packed_params(LENGTHS))[0]
    assert packed.shape == padded.shape
    assert (packed - padded).abs().max().item() <= 1e-5


def test_pack_does_not_leak_between_documents(world_of_one):
    model = build_model(small_config()).eval()
    randomize_(model, seed=7)
    ids, padding = padded_batch(LENGTHS, seed=8)
    flat = pack(ids, padding)
    changed = flat.clone()
    changed[0, LENGTHS[0]:] = torch.randint(4, 512, (1, sum(LENGTHS[1:])))  # rewrite docs 2, 3
    params = packed_params(LENGTHS)
    with torch.no_grad():
        a = model(flat, packed_seq_params=params)[0, : LENGTHS[0]]
        b = model(changed, packed_seq_params=params)[0, : LENGTHS[0]]
    assert torch.equal(a, b)


def test_packed_loss_on_masked_positions_only(world_of_one):
    """With labels, the head runs on labelled positions only and gives their losses."""
    model = build_model(small_config()).eval()
    randomize_(model, seed=9)
    ids, padding = padded_batch(LENGTHS, seed=10)
    flat = pack(ids, padding)
    labels = torch.full_like(flat, -100)
    chosen = torch.tensor([0, 5, 299, 300, 369, 400])
    labels[0, chosen] = flat[0, chosen]
    params = packed_params(LENGTHS)
    with torch.no_grad():
        losses = model(flat, packed_seq_params=params, labels=labels)
        logits = model(flat, packed_seq_params=params)[0, chosen]
    expected = torch.nn.functional.cross_entropy(logits, flat[0, chosen], reduction="none")
    assert losses.shape == (len(chosen),)
    assert torch.allclose(losses, expected, atol=1e-5)


def test_causal_switch_makes_attention_causal(world_of_one):
    """CLM uses the same encoder with a causal mask: a token's logits ignore later tokens."""
    model = build_model(small_config()).eval()
    randomize_(model, seed=13)
    ids, padding = padded_batch([120], seed=14)
    changed = ids.clone()
    changed[0, 60:] = (changed[0, 60:] + 7) % 500 + 4
    model.set_causal(True)
    assert model.is_causal
    with torch.no_grad():
        a, b = model(ids)[0, :60], model(changed)[0, :60]
        packed = model(ids[0][None], packed_seq_params=packed_params([120]))[0]
    assert torch.equal(a, b)
    assert (packed - model(ids)[0]).abs().max() <= 1e-5
    model.set_causal(False)
    with torch.no_grad():
        assert not torch.allclose(model(ids)[0, :60], model(changed)[0, :60])


def test_return_correct_is_top1(world_of_one):
    model = build_model(small_config()).eval()
    randomize_(model, seed=15)
    ids, padding = padded_batch([50, 40], seed=16)
    labels = torch.where(~padding, ids, torch.full_like(ids, -100))
    with torch.no_grad():
        losses, correct = model(ids, padding_mask=padding, labels=labels, return_correct=True)
        logits = model(ids, padding_mask=padding)
    assert torch.equal(correct, logits[~padding].argmax(-1) == ids[~padding])
    assert losses.shape == correct.shape


def test_rotary_function_is_bitwise_the_rotate_half_expression():
    """The packed path's RoPE (an autograd Function without the concatenations) gives the
    values and input gradients of megatron's ``x·cos + rotate_half(x)·sin``, bit for bit."""
    from rexbert.model.attention import _rotate_half, apply_rotary

    gen = torch.Generator().manual_seed(7)
    x = torch.randn(517, 4, 32, generator=gen)
    angles = torch.randn(517, 1, 16, generator=gen) * 10
    cos_, sin_ = (f(torch.cat([angles, angles], -1)) for f in (torch.cos, torch.sin))
    grad = torch.randn(x.shape, generator=gen)
    ref, new = x.clone().requires_grad_(), x.clone().requires_grad_()
    want = ref * cos_ + _rotate_half(ref) * sin_
    got = apply_rotary(new, cos_, sin_)
    want.backward(grad)
    got.backward(grad)
    assert torch.equal(got, want) and torch.equal(new.grad, ref.grad)
