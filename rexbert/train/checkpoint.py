"""Sharded checkpoints with megatron-core ``dist_checkpointing``: atomic, last-K, resumable
at a different TP/PP.

Layout: ``<run_dir>/checkpoints/iter_0000100/`` (+ ``latest`` holding the newest name).
A save goes to ``iter_N.tmp``; after every rank has written, rank 0 marks it ``COMPLETE``,
fsyncs, renames it to ``iter_N`` and replaces ``latest``. Only directories with
``COMPLETE`` are ever loaded, so a crash mid-save leaves the previous checkpoint in charge.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist

COMPLETE = "COMPLETE"
_ITER = re.compile(r"^iter_(\d{7})$")
def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _ITER.match(p.name) and (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(_ITER.match(p.name).group(1)))


def find_checkpoint(path: str | Path) -> Optional[Path]:
    """The newest complete checkpoint at ``path``: a run dir, its checkpoints/ folder or
    one iter_* folder. None if there is none."""
    path = Path(path)
    if (path / COMPLETE).is_file():
        return path
    for root in (path, checkpoint_root(path)):
        found = complete_checkpoints(root)
        if found:
            return found[-1]
    return None


def _sharded_state(model, optimizer, common: dict, rng: bool, is_loading: bool) -> dict:
    from megatron.core.dist_checkpointing.mapping import ShardedObject
    from megatron.core import parallel_state

    state: dict[str, Any] = {"model": model.sharded_state_dict(), "common": common}
    if optimizer is not None:
        # rexbert.train.optim's hooks drop optimi's derived entries here and rebuild them on load.
        state["optimizer"] = optimizer.sharded_state_dict(state["model"], is_loading=is_loading)
    if rng:
        from megatron.core.tensor_parallel import get_cuda_rng_tracker

        states = {"cpu": torch.get_rng_state(), "tracker": get_cuda_rng_tracker().get_states()}
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state()
        pp, tp = parallel_state.get_pipeline_model_parallel_world_size(), parallel_state.get_tensor_model_parallel_world_size()
        state["rng_state"] = ShardedObject(
            "rng_state", states, (pp, tp),
            (parallel_state.get_pipeline_model_parallel_rank(), parallel_state.get_tensor_model_parallel_rank()),
            replica_id=parallel_state.get_data_parallel_rank(),
        )
    return state


def save_checkpoint(run_dir: str | Path, step: int, model, optimizer, common: dict, keep_last: int) -> Path:
    """Collective. Returns the final directory."""
    from megatron.core import dist_checkpointing

    root = checkpoint_root(run_dir)
    final = root / f"iter_{step:07d}"
    tmp = root / f"iter_{step:07d}.tmp"
    rank0 = not dist.is_initialized() or dist.get_rank() == 0
    if rank0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    if dist.is_initialized():
        dist.barrier()  # the directory must exist on every rank before anyone writes
    dist_checkpointing.save(_sharded_state(model, optimizer, common, rng=True, is_loading=False), str(tmp))
    if dist.is_initialized():
        dist.barrier()
    if rank0:
        marker = tmp / COMPLETE
        marker.write_text(f"{step}\n")
        with open(marker) as f:
            os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync_dir(root)
        latest_tmp = root / "latest.tmp"
        latest_tmp.write_text(final.name + "\n")
        os.replace(latest_tmp, root / "latest")
        for old in complete_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old)
    if dist.is_initialized():
        dist.barrier()
    return final


def load_checkpoint(path: Path, model, optimizer=None, load_rng: bool = True) -> dict:
    """Load model (+ optimizer, + RNG when the parallel layout matches) from a complete
    checkpoint; returns its common state (step, consumed samples, scheduler, …)."""
    from megatron.core import dist_checkpointing

    if not (path / COMPLETE).is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {COMPLETE} marker)")
    common = dist_checkpointing.load_common_state_dict(str(path))["common"]
    same_layout = common.get("parallel") == _layout()
    template = _sharded_state(model, optimizer, {}, rng=load_rng and same_layout, is_loading=True)
    template.pop("common")
    loaded = dist_checkpointing.load(template, str(path))
    model.load_state_dict(loaded["model"])
    if optimizer is not None:
        optimizer.load_state_dict(loaded["optimizer"])
    if "rng_state" in loaded:
        from megatron.core.tensor_parallel import get_cuda_rng_tracker

        rng = loaded["rng_state"]
        torch.set_rng_state(rng["cpu"])
        get_cuda_rng_tracker().set_states(rng["tracker"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    return common


def _layout() -> dict:
    from megatron.core import parallel_state

    return {
        "tp": parallel_state.get_tensor_model_parallel_world_size(),
        "pp": parallel_state.get_pipeline_model_parallel_world_size(),
        "dp": parallel_state.get_data_parallel_world_size(),
    }


def common_state(step: int, consumed_samples: int, scheduler_state: dict, extra: Optional[dict] = None) -> dict:
    return {"step": step, "consumed_samples": consumed_samples, "scheduler": scheduler_state,
            "parallel": _layout(), **(extra or {})}
