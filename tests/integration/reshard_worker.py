"""Worker for test_reshard.py: save a checkpoint under TP=2 / PP=2, or load one at TP=1 PP=1.

    torchrun --nproc_per_node 2 reshard_worker.py save --out DIR --steps N <overrides>
    python reshard_worker.py load --out DIR --steps N <overrides>

``save`` (2 ranks) trains ``tp2`` (TP=2) and then ``pp2`` (PP=2) for N steps each in
``DIR/<layout>`` and saves ``iter_N`` there, gathers the model and the optimizer
moments (full TP=1 tensors) as they are in memory, then takes two more steps at the same
layout and records their metrics. ``load`` (1 process) starts a new run from each of those checkpoints with
nothing reset, gathers the same tensors and takes the next two steps. Rank 0 writes
``DIR/<mode>.pt``: {layout: {"model", "exp_avg", "exp_avg_sq": {name: tensor}, "next": [metrics]}}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NEXT_STEPS = 2  # the first shows the weights, the second the optimizer state and the schedule
LAYOUTS = {"tp2": ["model.tensor_model_parallel_size=2"], "pp2": ["model.pipeline_model_parallel_size=2"]}


def gathered(trainer) -> dict:
    from rexbert.model.parallel_state_dict import gather_full_state_dict

    model = trainer.model
    state = trainer.optimizer.optimizer.state  # FP32Optimizer → optimi's optimizer, keyed by the model's params
    out = {"model": gather_full_state_dict(model)}
    for key in ("exp_avg", "exp_avg_sq"):
        out[key] = gather_full_state_dict(model, {n: state[p][key] for n, p in model.named_parameters()})
    # Copies: on CPU, unsharded tensors come back as the live parameters / moments themselves.
    return {part: {n: t.clone() for n, t in tensors.items()} for part, tensors in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("save", "load"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()

    import torch
    import torch.distributed as dist

    from rexbert.config import load_run_config
    from rexbert.train.trainer import Trainer

    results = {}
    for layout, parallel in LAYOUTS.items():
        if args.mode == "save":
            run = [f"trainer.run_dir={args.out / layout}", *parallel]
        else:
            source = args.out / layout / "checkpoints" / f"iter_{args.steps:07d}"
            run = [f"trainer.run_dir={args.out / ('from_' + layout)}", f"trainer.load={source}", "trainer.reset_optimizer=false", "trainer.reset_schedule=false",
                   "trainer.reset_data_position=false"]
        trainer = Trainer(load_run_config([*args.overrides, *run]))
        how = trainer.maybe_resume()
        if args.mode == "save":
            assert how == "fresh start", how
            for _ in range(args.steps):
                trainer.train_step()
            trainer.save()
        else:
            assert how.startswith("started from checkpoint"), how
            assert trainer.step == args.steps, trainer.step
        tensors = gathered(trainer)
        tensors["next"] = [trainer.train_step() for _ in range(NEXT_STEPS)]
        results[layout] = tensors
    if dist.get_rank() == 0:
        torch.save(results, args.out / f"{args.mode}.pt")
    dist.barrier()


if __name__ == "__main__":
    sys.exit(main())
