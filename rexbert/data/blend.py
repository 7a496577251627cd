"""Blends of datasets in Megatron's format — ``["0.7", "path/a", "0.3", "path/b"]`` (weight,
prefix pairs; a single prefix means weight 1) — and a weight schedule over training: the
weights move linearly from ``blend`` to ``blend_end`` between two sample counts (phase 3
anneals from the general mix onto the domain mix).

Which dataset serves global sample i is decided greedily so that every dataset's count
tracks its cumulative weight (Megatron's blending rule, extended to moving weights): it is
deterministic and depends on i only, never on ranks or batch sizes.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def parse_blend(blend: Sequence[str] | str) -> tuple[list[float], list[str]]:
    """Megatron blend list → (normalised weights, prefixes)."""
    items = [blend] if isinstance(blend, str) else list(blend)
    if len(items) == 1:
        return [1.0], [str(items[0])]
    if len(items) % 2:
        raise ValueError(f"data.blend must alternate weight and prefix, got {len(items)} items: {items}")
    try:
        weights = [float(w) for w in items[0::2]]
    except ValueError as err:
        raise ValueError(f"data.blend weights must be numbers: {items[0::2]}") from err
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"data.blend weights must be >= 0 with a positive sum: {weights}")
    total = sum(weights)
    return [w / total for w in weights], [str(p) for p in items[1::2]]


class BlendSchedule:
    """Dataset choice per global sample under (possibly moving) blend weights."""

    def __init__(self, blend: Sequence[str] | str, blend_end: Optional[Sequence[str]] = None,
                 anneal_start_sample: int = 0, anneal_end_sample: int = 0) -> None:
        self.start_weights, self.prefixes = parse_blend(blend)
        if blend_end:
            end_weights, end_prefixes = parse_blend(blend_end)
            if end_prefixes != self.prefixes:
                raise ValueError(f"data.blend_end must name the same prefixes in the same order as data.blend: "
                                 f"{end_prefixes} vs {self.prefixes}")
            if anneal_end_sample < anneal_start_sample:
                raise ValueError("data.anneal_end_sample must be >= data.anneal_start_sample")
        else:
            end_weights = self.start_weights
        self.end_weights = end_weights
        self.anneal = (anneal_start_sample, anneal_end_sample)
        self._dataset = np.zeros(0, dtype=np.int32)
        self._within = np.zeros(0, dtype=np.int64)
        self._target = np.zeros(len(self.prefixes))
        self._counts = np.zeros(len(self.prefixes), dtype=np.int64)

    def weights_at(self, sample: int) -> np.ndarray:
        lo, hi = self.anneal
        t = float(np.clip((sample - lo) / max(hi - lo, 1), 0.0, 1.0))
        return (1 - t) * np.asarray(self.start_weights) + t * np.asarray(self.end_weights)

    def _extend(self, upto: int) -> None:
        n0 = len(self._dataset)
        if upto <= n0:
            return
        dataset = np.empty(upto - n0, dtype=np.int32)
        within = np.empty(upto - n0, dtype=np.int64)
        for k, i in enumerate(range(n0, upto)):
            self._target += self.weights_at(i)
            d = int(np.argmax(self._target - self._counts))
            dataset[k], within[k] = d, self._counts[d]
            self._counts[d] += 1
        self._dataset = np.concatenate([self._dataset, dataset])
        self._within = np.concatenate([self._within, within])

    def lookup(self, sample: int) -> tuple[int, int]:
        """(dataset index, sample index within that dataset) for global sample ``sample``."""
        self._extend(max(sample + 1, 2 * len(self._dataset)) if sample >= len(self._dataset) else 0)
        return int(self._dataset[sample]), int(self._within[sample])
