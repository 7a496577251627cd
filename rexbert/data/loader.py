"""Collated micro-batches for one data-parallel rank, from a resumable position.

Wraps ``PretrainingDataset`` + ``GlobalBatchSampler`` in a torch ``DataLoader`` (worker
processes build and mask samples in the background; the order stays the sampler's).
"""

from __future__ import annotations

from functools import partial
from typing import Iterator

import torch

from rexbert.data.collate import collate_packed, collate_padded
from rexbert.data.dataset import PretrainingDataset
from rexbert.data.sampler import GlobalBatchSampler


class _MicroBatches(torch.utils.data.Sampler):
    def __init__(self, sampler: GlobalBatchSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        for micro_batches in self.sampler:
            yield from micro_batches


def micro_batch_loader(dataset: PretrainingDataset, sampler: GlobalBatchSampler, num_workers: int = 0,
                       pad_to_multiple: int = 0):
    """An endless iterable of collated micro-batches: ``sampler.num_micro_batches`` of them
    make one global step on this rank. ``pad_to_multiple``: see ``collate_packed``."""
    if dataset.config.packed:
        collate = partial(collate_packed, pad_to_multiple=pad_to_multiple, pad_id=dataset.special.pad_id)
    else:
        collate = partial(collate_padded, pad_id=dataset.special.pad_id)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=_MicroBatches(sampler), collate_fn=collate, num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
