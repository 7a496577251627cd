"""Ordered parallel map with a bounded number of tasks in flight.

`Pool.imap` drains its input iterator eagerly, so a fast reader would queue the whole file in
memory; here the reader is only advanced when a slot frees up, which keeps memory flat.
"""

from __future__ import annotations

from collections import deque
from multiprocessing.pool import Pool
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M")


def ordered_map(
    pool: Pool | None, fn: Callable[[T], R], items: Iterable[tuple[T, M]], in_flight: int
) -> Iterator[tuple[R, M]]:
    """Yield (fn(item), meta) in input order; `pool=None` runs in this process."""
    if pool is None:
        for item, meta in items:
            yield fn(item), meta
        return
    pending: deque = deque()
    for item, meta in items:
        pending.append((pool.apply_async(fn, (item,)), meta))
        if len(pending) >= in_flight:
            result, m = pending.popleft()
            yield result.get(), m
    while pending:
        result, m = pending.popleft()
        yield result.get(), m
