"""The sparse MLM head's tied decoder and its cross-entropy as one autograd function, for
tensor-parallel size 1 in float32 (the CPU training path).

The ops are megatron-core's, element by element and in the same order —
``ColumnParallelLinear`` (``x @ Wᵀ`` then ``+ bias``) followed by
``vocab_parallel_cross_entropy`` (row max, subtract, exp, row sum, loss = log(sum) − target
logit, divide to the softmax kept for backward; backward: softmax − one-hot, times the loss
gradient, then the linear's ``grad @ W``, ``gradᵀ @ x``, ``grad.sum(0)``) — so losses and
gradients are bitwise those of the unfused path (tests/unit/test_mlm_loss.py). What changes is
memory traffic: the unfused path walks the [n, vocab] logits ~8 times in forward (bias add
into a fresh tensor, max, subtract, exp, sum, divide, and the top-1 argmax) — at
n ≈ 550 masked tokens × 50,368 that is 110 MB per walk. Here the logits are walked in blocks
of rows that stay in cache: the bias add, every softmax step and the top-1 argmax run on one
block before the next is read. (Folding the bias into the GEMM with ``addmm`` instead would
still cost a pass and rounds differently from megatron's add; in the block loop it costs
nothing and stays exact.)
"""

from __future__ import annotations

from typing import Optional

import torch

# Rows of logits per block on CPU: 8 × 50,368 fp32 = 1.6 MB, split over the threads. Each row's
# max and sum are reduced by the same kernel either way (tests check bitwise equality).
CPU_BLOCK_ROWS = 8


def _blocks(n: int, block_rows: int) -> list[tuple[int, int]]:
    """[start, stop) row blocks. A lone last row joins the block before it: torch splits a
    one-row reduction across threads (other rounding than the row-per-thread reduction of
    the whole tensor), while blocks of two or more rows reduce each row as the whole does."""
    starts = list(range(0, n, block_rows))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


# Reused [n, V] logits storage per (device, dtype), CPU only: a fresh 110 MB tensor is a fresh
# mmap whose first touch costs page faults (~40 ms per micro-batch measured, one thread) —
# CUDA's caching allocator already reuses. A forward takes the buffer (or allocates one when
# it is taken or too small) and its backward hands it back once the gradient is computed.
_FREE_LOGITS: dict[tuple, torch.Tensor] = {}


def _take_logits(rows: int, vocab: int, like: torch.Tensor) -> tuple[Optional[torch.Tensor], torch.Tensor]:
    if like.device.type != "cpu":
        return None, torch.empty(rows, vocab, dtype=like.dtype, device=like.device)
    base = _FREE_LOGITS.pop((like.device, like.dtype), None)
    if base is None or base.numel() < rows * vocab:
        base = torch.empty(rows * vocab, dtype=like.dtype, device=like.device)
    return base, base[: rows * vocab].view(rows, vocab)


def _give_back(base: Optional[torch.Tensor]) -> None:
    if base is not None:
        _FREE_LOGITS[(base.device, base.dtype)] = base


class _DecoderCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, want_correct: bool, block_rows: int):
        base, logits = _take_logits(hidden.shape[0], weight.shape[0], hidden)
        torch.mm(hidden, weight.t(), out=logits)  # [n, V]: megatron's linear, bias below
        n = logits.shape[0]
        losses = torch.empty(n, dtype=logits.dtype, device=logits.device)
        correct = torch.empty(n, dtype=torch.bool, device=logits.device) if want_correct else None
        for start, stop in _blocks(n, block_rows):
            block, target = logits[start:stop], targets[start:stop]
            if bias is not None:
                block.add_(bias)
            block.sub_(torch.amax(block, dim=-1, keepdim=True))  # megatron's max(dim)[0]: same values, no indices
            predicted = block[torch.arange(stop - start, device=block.device), target]
            torch.exp(block, out=block)
            sum_exp = block.sum(dim=-1)
            losses[start:stop] = torch.log(sum_exp) - predicted
            block.div_(sum_exp.unsqueeze(-1))
            if correct is not None:  # top-1 of the softmax: the argmax the unfused path takes
                correct[start:stop] = block.max(dim=-1)[1] == target
        ctx.has_bias = bias is not None
        ctx.block_rows = block_rows
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(hidden, weight, logits, targets)
            ctx.logits_base = base
        else:  # no backward will come: the softmax is not needed any more
            _give_back(base)
        if correct is not None:
            ctx.mark_non_differentiable(correct)
        return losses, correct

    @staticmethod
    def backward(ctx, grad_losses, _grad_correct):
        hidden, weight, softmax, targets = ctx.saved_tensors
        grad = softmax  # in place, as megatron's cross-entropy does
        n = grad.shape[0]
        for start, stop in _blocks(n, ctx.block_rows):
            block = grad[start:stop]
            rows = torch.arange(stop - start, device=block.device)
            block[rows, targets[start:stop]] -= 1.0
            block.mul_(grad_losses[start:stop].unsqueeze(-1))
        grad_hidden = grad.matmul(weight)
        grad_weight = grad.t().matmul(hidden)
        grad_bias = grad.sum(dim=0) if ctx.has_bias else None
        _give_back(ctx.logits_base)
        ctx.logits_base = None
        return grad_hidden, grad_weight, grad_bias, None, None, None


def can_fuse(weight: torch.Tensor, tp_size: int) -> bool:
    """The fused path covers tensor-parallel size 1 in float32, eager; anything else
    (vocab-parallel logits, bf16 logits that megatron upcasts, a ``torch.compile`` trace, which
    would specialise on the row loop) takes megatron's modules."""
    return tp_size == 1 and weight.dtype == torch.float32 and not torch.compiler.is_compiling()


def decoder_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                          targets: torch.Tensor, want_correct: bool = False,
                          block_rows: Optional[int] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Per-token losses [n] of ``hidden [n, h] @ weightᵀ + bias`` against ``targets [n]`` and,
    with ``want_correct``, whether each row's top-1 is its target. On CUDA one block (the
    kernels are already parallel; fewer launches win)."""
    if block_rows is None:
        block_rows = CPU_BLOCK_ROWS if hidden.device.type == "cpu" else max(1, hidden.shape[0])
    return _DecoderCrossEntropy.apply(hidden, weight, bias, targets, want_correct, block_rows)
