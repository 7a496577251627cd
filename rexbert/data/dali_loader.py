"""``data.loader_backend=dali``: packed micro-batches brought to the GPU by an NVIDIA DALI
pipeline, ahead of the step that uses them.

**Unmeasured** (no GPU has been lent to this project yet; docs/gpu.md), so not the default:
``torch`` stays the default until a GPU measurement shows this is faster.

The host still builds every micro-batch exactly as the torch backend does (dataset → masking →
``collate_packed``, deterministic in the sample index). A generator walks the training steps
from a given sample on (each step's global batch from the batch-size ramp), and DALI's
``external_source`` takes its micro-batches one per pipeline iteration; the pipeline copies
them to the GPU (``.gpu()``) and keeps ``prefetch_depth`` iterations in flight, so building
and the host-to-device copy overlap the previous steps' compute. Outputs reach torch through
DALI's PyTorch plugin (``DALIGenericIterator``) on the current CUDA stream.

DALI is imported only through ``megatron_ext.compat``: without the ``nvidia-dali`` package,
building this loader raises the guard's ImportError naming it. Without CUDA (tests, CPU
machines with DALI installed) the same pipeline runs on the CPU and yields CPU tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Optional

import numpy as np
import torch

from megatron_ext.compat import require_dali, require_dali_pytorch

FEATURE = "the DALI data loader (data.loader_backend=dali)"
_OUTPUTS = ("input_ids", "labels", "cu_seqlens", "cu_seqlens_host", "meta")


class DaliMicroBatches:
    """Prefetched micro-batches for the steps starting at sample ``first_sample``.

    ``plan(first_sample)`` → that step's global batch (samples over all DP ranks);
    ``collate_step(first_sample, global_batch)`` → this rank's collated micro-batches of
    that step (numpy-backed torch tensors, as ``Trainer._micro_batches`` makes them).
    ``step(first_sample, global_batch)`` returns the next step's micro-batches and checks
    they are the ones asked for.
    """

    def __init__(self, plan: Callable[[int], int], collate_step: Callable[[int, int], list[dict]],
                 first_sample: int, device_id: Optional[int], prefetch_depth: int = 2, num_threads: int = 2) -> None:
        dali = require_dali(FEATURE)
        plugin = require_dali_pytorch(FEATURE)
        self.first_sample = first_sample
        source = _source(plan, collate_step, first_sample)

        @dali.pipeline_def(batch_size=1, num_threads=num_threads, device_id=device_id,
                           prefetch_queue_depth=prefetch_depth)
        def pipeline():
            ids, labels, cu, meta = dali.fn.external_source(
                source=source, num_outputs=4, batch=False,
                dtype=[dali.types.INT64, dali.types.INT64, dali.types.INT32, dali.types.INT64])
            if device_id is None:
                return ids, labels, cu, cu, meta
            return ids.gpu(), labels.gpu(), cu.gpu(), cu, meta

        self._pipe = pipeline()
        self._pipe.build()
        self._iter = plugin.DALIGenericIterator([self._pipe], list(_OUTPUTS), size=-1, auto_reset=False)

    def step(self, first_sample: int, global_batch: int) -> list[dict]:
        """The micro-batches of the step that starts at ``first_sample``."""
        batches = []
        while True:
            out = next(self._iter)[0]
            first, index, count, padding = (int(v) for v in out["meta"][0].tolist())
            if first != first_sample or index != len(batches):
                raise RuntimeError(f"DALI loader out of step: it holds sample {first} micro-batch {index}, the "
                                   f"trainer asked for sample {first_sample} (rebuild the loader after a jump)")
            batches.append(_batch(out, padding))
            if len(batches) == count:
                return batches


def _source(plan: Callable[[int], int], collate_step: Callable[[int, int], list[dict]],
            first_sample: int) -> Iterator[tuple[np.ndarray, ...]]:
    first = first_sample
    while True:
        global_batch = plan(first)
        micro_batches = collate_step(first, global_batch)
        for index, mb in enumerate(micro_batches):
            meta = np.array([first, index, len(micro_batches), mb.get("num_padding", 0)], dtype=np.int64)
            yield (mb["input_ids"][0].numpy(), mb["labels"][0].numpy(), mb["cu_seqlens"].numpy(), meta)
        first += global_batch


def _batch(out: dict, padding: int) -> dict:
    cu_host = out["cu_seqlens_host"][0]
    batch = {"input_ids": out["input_ids"], "labels": out["labels"], "cu_seqlens": out["cu_seqlens"][0],
             "max_seqlen": int(torch.diff(cu_host).max())}
    if padding:
        batch["num_padding"] = padding
    return batch
