"""Process-group set-up at the edge of the program: torch.distributed + megatron-core's
parallel_state, CPU shims when CUDA is absent, and the seeded RNG tracker."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_rendezvous() -> dict | None:
    """Rank, world size, local rank and address of one task of an ``srun`` step (one task per
    GPU, as launch/phase*.sh starts them), or None outside an srun step. The batch script
    exports MASTER_ADDR (first node of the job) and MASTER_PORT (from the job id)."""
    env = os.environ
    if "SLURM_PROCID" not in env or "SLURM_STEP_ID" not in env:
        return None
    world = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or 1)
    if world > 1 and "MASTER_ADDR" not in env:
        raise RuntimeError("srun with several tasks: set MASTER_ADDR (the job's first node; "
                           "launch/common.sh exports it) so the ranks can meet")
    port = env.get("MASTER_PORT") or str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000)
    return {"rank": int(env["SLURM_PROCID"]), "world_size": world, "local_rank": int(env.get("SLURM_LOCALID", 0)),
            "init_method": f"tcp://{env.get('MASTER_ADDR', '127.0.0.1')}:{port}"}


def init_parallel(
    tensor_model_parallel_size: int = 1,
    pipeline_model_parallel_size: int = 1,
    seed: int = 1234,
    backend: str | None = None,
) -> None:
    """Initialise torch.distributed (from torchrun/Slurm env vars, or as a world of one)
    and megatron-core's model-parallel groups. Idempotent for the same sizes."""
    from megatron.core import parallel_state, tensor_parallel

    from megatron_ext.cpu import apply_cpu_shims, model_parallel_manual_seed

    cuda = torch.cuda.is_available()
    if not cuda:
        apply_cpu_shims()
    if not dist.is_initialized():
        backend = backend or ("nccl" if cuda else "gloo")
        slurm = None if "RANK" in os.environ else slurm_rendezvous()
        if cuda:
            local_rank = slurm["local_rank"] if slurm else int(os.environ.get("LOCAL_RANK", 0))
            # modulo: clusters that bind one GPU per task show each task a single device
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        if "RANK" in os.environ:  # torchrun: rank, world size and address from the env
            dist.init_process_group(backend)
        elif slurm:  # one srun task per GPU: rank from SLURM_PROCID
            dist.init_process_group(backend, init_method=slurm["init_method"], rank=slurm["rank"],
                                    world_size=slurm["world_size"])
        else:  # a single process outside any launcher; leave os.environ alone for children
            dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    if parallel_state.model_parallel_is_initialized():
        same = (
            parallel_state.get_tensor_model_parallel_world_size() == tensor_model_parallel_size
            and parallel_state.get_pipeline_model_parallel_world_size() == pipeline_model_parallel_size
        )
        if not same:
            parallel_state.destroy_model_parallel()
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(
            tensor_model_parallel_size=tensor_model_parallel_size,
            pipeline_model_parallel_size=pipeline_model_parallel_size,
        )
    if cuda:
        tensor_parallel.model_parallel_cuda_manual_seed(seed)
    else:
        model_parallel_manual_seed(seed)


def destroy_parallel() -> None:
    from megatron.core import parallel_state

    parallel_state.destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()
