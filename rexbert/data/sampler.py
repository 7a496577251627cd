"""Which global samples each data-parallel rank reads at each step.

Global batch k is samples [k·G, (k+1)·G). Rank r of D takes the contiguous slice
[k·G + r·G/D, k·G + (r+1)·G/D) and splits it into micro-batches in order — so the D ranks
together read exactly the global batch one rank would (Megatron's pretraining sampler
rule). Resuming from ``consumed_samples`` continues with exactly the next batch.
"""

from __future__ import annotations

from typing import Iterator


class GlobalBatchSampler:
    def __init__(self, global_batch_size: int, micro_batch_size: int, dp_rank: int = 0, dp_size: int = 1,
                 consumed_samples: int = 0) -> None:
        if global_batch_size % (micro_batch_size * dp_size):
            raise ValueError(
                f"global batch {global_batch_size} must divide by micro batch {micro_batch_size} × DP {dp_size}"
            )
        if consumed_samples % global_batch_size:
            raise ValueError(f"consumed_samples={consumed_samples} is not a whole number of global batches "
                             f"of {global_batch_size}")
        self.global_batch_size = global_batch_size
        self.micro_batch_size = micro_batch_size
        self.dp_rank = dp_rank
        self.dp_size = dp_size
        self.consumed_samples = consumed_samples

    @property
    def num_micro_batches(self) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.dp_size)

    def step_indices(self, step: int) -> list[list[int]]:
        """Micro-batches (lists of global sample indices) of this rank for global batch ``step``."""
        per_rank = self.global_batch_size // self.dp_size
        first = step * self.global_batch_size + self.dp_rank * per_rank
        mbs = self.micro_batch_size
        return [list(range(first + m * mbs, first + (m + 1) * mbs)) for m in range(self.num_micro_batches)]

    def __iter__(self) -> Iterator[list[list[int]]]:
        step = self.consumed_samples // self.global_batch_size
        while True:
            yield self.step_indices(step)
            step += 1
            self.consumed_samples = step * self.global_batch_size
