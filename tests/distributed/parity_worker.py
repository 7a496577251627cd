"""Run under torchrun with 2 CPU processes (gloo). For the same full weights and batch it
computes logits, the MLM loss's gradients (Megatron DDP + finalize_model_grads) and an HF
export at TP=1 (the 1-process reference, replicated as DP=2), TP=2 and PP=2, and saves
them for tests/distributed/test_parallel_parity.py to compare."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for helpers

from helpers import padded_batch, randomize_, small_config, weights  # noqa: E402

LENGTHS = [160, 121]


def run_layout(tp: int, pp: int, full: dict, batch: tuple, out_dir: Path) -> dict:
    from megatron.core import tensor_parallel
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from megatron_ext.parallel import init_parallel
    from rexbert.model.build import build_model
    from rexbert.model.hf import export_hf
    from rexbert.model.parallel_state_dict import gather_full_state_dict, load_full_state_dict

    init_parallel(tp, pp)
    config = dataclasses.replace(small_config(), tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    model = build_model(config)
    load_full_state_dict(model, full)
    ddp = DistributedDataParallel(config=model.config, ddp_config=DistributedDataParallelConfig(), module=model)
    ddp.zero_grad_buffer()
    ids, padding, labels = batch
    captured = {}

    def loss_func(logits):
        captured["logits"] = logits.detach().clone()
        selected = labels != -100
        losses = tensor_parallel.vocab_parallel_cross_entropy(logits[selected][None], labels[selected][None])
        loss = losses.mean()
        return loss, {"loss": loss.detach()}

    def forward_step(data_iterator, module):
        next(data_iterator)
        return module(ids, padding_mask=padding), loss_func

    get_forward_backward_func()(
        forward_step_func=forward_step, data_iterator=iter([None]), model=[ddp], num_microbatches=1,
        seq_length=ids.shape[1], micro_batch_size=ids.shape[0], forward_only=False,
    )
    finalize_model_grads([ddp])
    grads = {n: p.main_grad.detach().clone() for n, p in model.named_parameters()}
    result = {"grads": gather_full_state_dict(model, grads)}
    if "logits" in captured:  # vocab-parallel → full vocab (megatron's gather; CPU-shimmed)
        result["logits"] = tensor_parallel.gather_from_tensor_model_parallel_region(captured["logits"])
    export_hf(model, out_dir / f"export_tp{tp}_pp{pp}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from megatron_ext.parallel import destroy_parallel, init_parallel
    from rexbert.model.build import build_model

    init_parallel(1, 1)
    reference = build_model(small_config())
    randomize_(reference, seed=11)
    full = weights(reference)
    ids, padding = padded_batch(LENGTHS, seed=12)
    gen = torch.Generator().manual_seed(13)
    labels = torch.where((torch.rand(ids.shape, generator=gen) < 0.3) & ~padding, ids, torch.full_like(ids, -100))

    results = {}
    for tp, pp in ((1, 1), (2, 1), (1, 2)):
        results[f"tp{tp}_pp{pp}"] = run_layout(tp, pp, full, (ids, padding, labels), args.out)
    results["padding"] = padding
    torch.save(results, args.out / f"rank{dist.get_rank()}.pt")
    destroy_parallel()


if __name__ == "__main__":
    main()
