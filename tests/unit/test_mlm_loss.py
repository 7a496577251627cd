"""The fused sparse-head decoder + cross-entropy (rexbert/model/mlm_loss.py) is bitwise
megatron's ColumnParallelLinear + vocab_parallel_cross_entropy at TP=1: losses, top-1 and
every gradient, for row counts that do and do not divide into blocks, with the real
vocabulary width (so the per-row reductions are the production-sized ones)."""

from __future__ import annotations

import pytest
import torch

from helpers import padded_batch, randomize_, small_config


def _unfused(hidden, weight, bias, targets):
    """What RexBertModel did before: megatron's linear (+bias), then megatron's cross-entropy,
    then the top-1 argmax over the (in-place softmaxed) logits."""
    from megatron.core import tensor_parallel
    from megatron.core.tensor_parallel.layers import linear_with_grad_accumulation_and_async_allreduce

    logits = linear_with_grad_accumulation_and_async_allreduce(
        hidden, weight, bias, gradient_accumulation_fusion=False, allreduce_dgrad=False, sequence_parallel=False)
    losses = tensor_parallel.vocab_parallel_cross_entropy(logits.unsqueeze(0), targets.unsqueeze(0))[0]
    return losses, logits.detach().max(dim=-1)[1] == targets


def _leaves(n: int, hidden: int, vocab: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, hidden, generator=gen)
    w = torch.randn(vocab, hidden, generator=gen) / hidden**0.5
    b = 0.5 * torch.randn(vocab, generator=gen)
    t = torch.randint(0, vocab, (n,), generator=gen)
    t[: n // 3] = (x[: n // 3] @ w.t() + b).argmax(-1)  # some rows predicted right
    g = torch.rand(n, generator=gen)  # a non-uniform loss gradient (token weights)
    return x, w, b, t, g


@pytest.mark.parametrize("n, block_rows", [(37, 8), (64, 8), (5, 8), (33, 8), (37, 2), (37, 64), (1, 8)])
def test_bitwise_megatron(world_of_one, n, block_rows):
    from rexbert.model.mlm_loss import decoder_cross_entropy

    x, w, b, t, g = _leaves(n, 64, 50_368, seed=n + block_rows)
    results = []
    for fused in (True, False):
        leaves = [v.clone().requires_grad_() for v in (x, w, b)]
        if fused:
            losses, correct = decoder_cross_entropy(*leaves, t, want_correct=True, block_rows=block_rows)
        else:
            losses, correct = _unfused(*leaves, t)
        (losses * g).sum().backward()
        results.append((losses.detach(), correct, *[v.grad for v in leaves]))
    for name, a, c in zip(("losses", "correct", "grad x", "grad weight", "grad bias"), *results):
        assert torch.equal(a, c), name
    if n >= 3:
        assert results[0][1].any() and not results[0][1].all()


def test_model_uses_it_and_matches_logits(world_of_one):
    """The model's labelled path (fused at TP=1 fp32) gives the per-token cross-entropy and
    top-1 of its own full logits, and a no-bias decoder would not (the bias is applied)."""
    from rexbert.model.build import build_model

    model = build_model(small_config()).eval()
    randomize_(model, seed=21)
    ids, padding = padded_batch([50, 31], seed=22)
    labels = torch.where(~padding, ids, torch.full_like(ids, -100))
    with torch.no_grad():
        losses, correct = model(ids, padding_mask=padding, labels=labels, return_correct=True)
        only_losses = model(ids, padding_mask=padding, labels=labels)
        logits = model(ids, padding_mask=padding)[~padding]
    want = torch.nn.functional.cross_entropy(logits, ids[~padding], reduction="none")
    assert torch.equal(losses, only_losses)
    assert (losses - want).abs().max() <= 1e-5
    assert torch.equal(correct, logits.argmax(-1) == ids[~padding])


def test_not_fused_where_megatron_is_needed():
    from rexbert.model.mlm_loss import can_fuse

    w = torch.zeros(4, 4)
    assert can_fuse(w, 1)
    assert not can_fuse(w, 2)  # vocab-parallel logits
    assert not can_fuse(w.bfloat16(), 1)  # megatron upcasts bf16 logits


def test_reused_logits_buffer_is_safe(world_of_one):
    """The CPU logits buffer is reused across micro-batches: two forwards before either
    backward, and a no-grad forward in between, still give each its own exact gradients."""
    from rexbert.model.mlm_loss import decoder_cross_entropy

    first, second = _leaves(40, 64, 50_368, seed=1), _leaves(23, 64, 50_368, seed=2)
    want = []
    for x, w, b, t, g in (first, second):
        leaves = [v.clone().requires_grad_() for v in (x, w, b)]
        (_unfused(*leaves, t)[0] * g).sum().backward()
        want.append([v.grad for v in leaves])
    leaves = [[v.clone().requires_grad_() for v in case[:3]] for case in (first, second)]
    losses = [decoder_cross_entropy(*lv, case[3])[0] for lv, case in zip(leaves, (first, second))]
    with torch.no_grad():
        decoder_cross_entropy(*second[:4])
    for loss, lv, case, grads in zip(reversed(losses), reversed(leaves), (second, first), reversed(want)):
        (loss * case[4]).sum().backward()
        for v, grad in zip(lv, grads):
            assert torch.equal(v.grad, grad)
