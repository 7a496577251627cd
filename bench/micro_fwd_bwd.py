"""Forward+backward throughput of rexbert-micro vs Hugging Face ModernBertForMaskedLM with
the same config and weights, in one run (fp32, CPU). Reports tokens/s and the ratio.

    python bench/micro_fwd_bwd.py [--batch 8] [--seq 512] [--steps 5] [--warmup 2]

Two modes: "sparse" — MLM loss on 30% of positions with the head on those positions only
(ours always; HF with sparse_prediction=True); "dense" — logits for every position.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch


def timed_steps(step, steps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="micro")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import ModernBertForMaskedLM

    from megatron_ext.parallel import init_parallel
    from rexbert.config import load_model_config
    from rexbert.model.build import build_model
    from rexbert.model.hf import to_hf_config
    from rexbert.model.hf_mapping import megatron_to_hf

    config = load_model_config(args.size)
    init_parallel(1, 1)
    ours = build_model(config).train()
    results = {}
    for mode in ("sparse", "dense"):
        hf_config = to_hf_config(config)
        hf_config._attn_implementation = "sdpa"
        hf_config.sparse_prediction = mode == "sparse"
        hf = ModernBertForMaskedLM(hf_config).train()
        hf.load_state_dict(megatron_to_hf(ours.state_dict(), config), strict=True)

        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(5, config.vocab_size, (args.batch, args.seq), generator=gen)
        if mode == "sparse":
            labels = torch.where(torch.rand(ids.shape, generator=gen) < 0.3, ids, torch.full_like(ids, -100))
        else:
            labels = ids.clone()
        attention = torch.ones_like(ids)

        def ours_step():
            ours.zero_grad(set_to_none=True)
            if mode == "sparse":
                loss = ours(ids, labels=labels).mean()
            else:
                logits = ours(ids)
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
            loss.backward()

        def hf_step():
            hf.zero_grad(set_to_none=True)
            hf(input_ids=ids, attention_mask=attention, labels=labels).loss.backward()

        tokens = args.batch * args.seq
        # Interleave to share any drift in machine load between the two.
        t_ours = statistics.median(timed_steps(ours_step, args.steps, args.warmup))
        t_hf = statistics.median(timed_steps(hf_step, args.steps, args.warmup))
        results[mode] = (tokens / t_ours, tokens / t_hf)

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{args.size}, batch {args.batch} x seq {args.seq}, fp32, median of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'mode':<8} {'ours tok/s':>12} {'HF tok/s':>12} {'ours/HF':>8}")
    for mode, (a, b) in results.items():
        print(f"{mode:<8} {a:>12.0f} {b:>12.0f} {a / b:>8.2f}")


if __name__ == "__main__":
    main()
