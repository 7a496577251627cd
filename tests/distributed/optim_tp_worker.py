"""Run under torchrun with 2 CPU processes (gloo). From the same full weights, three
StableAdamW steps on the same three batches at TP=1 (the 1-process reference, replicated as
DP=2), at TP=2, and at TP=2 with the update-clipping RMS left per shard; saves the gathered
parameters after every step for tests/distributed/test_optim_tp.py."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for helpers

from helpers import padded_batch, randomize_, small_config, weights  # noqa: E402

LENGTHS = [96, 71]
STEPS = 3


def run_layout(tp: int, tp_aware: bool, full: dict, batches: list) -> list[dict]:
    from megatron.core import tensor_parallel
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from megatron_ext.parallel import init_parallel
    from rexbert.model.build import build_model
    from rexbert.model.parallel_state_dict import gather_full_state_dict, load_full_state_dict
    from rexbert.train.optim import OptimizerConfig, build_optimizer

    init_parallel(tp, 1)
    model = build_model(dataclasses.replace(small_config(), tensor_model_parallel_size=tp))
    load_full_state_dict(model, full)
    ddp = DistributedDataParallel(config=model.config, ddp_config=DistributedDataParallelConfig(), module=model)
    optimizer = build_optimizer(OptimizerConfig(lr=1e-3, weight_decay=0.1), [ddp], tp_aware_update_clipping=tp_aware)
    gathered = []
    for k, (ids, padding, labels) in enumerate(batches):
        ddp.zero_grad_buffer()
        optimizer.zero_grad()

        def loss_func(logits, k=k, labels=labels):
            selected = labels != -100
            losses = tensor_parallel.vocab_parallel_cross_entropy(logits[selected][None], labels[selected][None])
            # Growing gradients (×4 a step) engage the update clipping. The small base scale
            # keeps many |g| near eps, where Adam's first step is ~linear in g: at scale 1 a
            # near-zero gradient whose sign depends on reduction order flips a ±lr update.
            loss = losses.mean() * 0.01 * 4.0**k
            return loss, {"loss": loss.detach().clone()}

        def forward_step(data_iterator, module, ids=ids, padding=padding):
            next(data_iterator)
            return module(ids, padding_mask=padding), loss_func

        get_forward_backward_func()(
            forward_step_func=forward_step, data_iterator=iter([None]), model=[ddp], num_microbatches=1,
            seq_length=ids.shape[1], micro_batch_size=ids.shape[0], forward_only=False,
        )
        finalize_model_grads([ddp])
        optimizer.step()
        gathered.append({n: t.detach().clone() for n, t in gather_full_state_dict(model).items()})
    return gathered


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from megatron_ext.parallel import destroy_parallel, init_parallel
    from rexbert.model.build import build_model

    init_parallel(1, 1)
    reference = build_model(small_config())
    randomize_(reference, seed=21)
    full = weights(reference)
    batches = []
    for k in range(STEPS):
        ids, padding = padded_batch(LENGTHS, seed=30 + k)
        gen = torch.Generator().manual_seed(40 + k)
        labels = torch.where((torch.rand(ids.shape, generator=gen) < 0.3) & ~padding, ids, torch.full_like(ids, -100))
        batches.append((ids, padding, labels))

    results = {
        "tp1": run_layout(1, True, full, batches),
        "tp2": run_layout(2, True, full, batches),
        "tp2_per_shard_rms": run_layout(2, False, full, batches),
    }
    if dist.get_rank() == 0:
        torch.save(results, args.out / "params.pt")
    destroy_parallel()


if __name__ == "__main__":
    main()
