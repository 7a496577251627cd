"""Make megatron-core 0.16 run on machines without CUDA (CPU tests, gloo).

megatron-core assumes CUDA in a handful of places: scratch buffers and p2p receive buffers
allocated on ``torch.cuda.current_device()``, masks and token counters built with
``device="cuda"``, ``torch.cuda.synchronize``, and an RNG tracker built on CUDA generator
states. ``apply_cpu_shims()`` points exactly those modules at the CPU; it does nothing when
CUDA is present, so GPU runs use megatron-core untouched. Each shim is covered by
``tests/unit/test_cpu_shims.py`` or the distributed tests.
"""

from __future__ import annotations

import contextlib
import importlib
import types
from typing import Any, Callable

import torch

# Modules whose module-level ``torch`` name is replaced by a CPU-redirecting proxy.
PROXIED_MODULES: tuple[str, ...] = (
    "megatron.core.utils",  # GlobalMemoryBuffer.get_tensor, grad-norm helpers
    "megatron.core.transformer.utils",  # default causal / sliding-window masks
    "megatron.core.pipeline_parallel.schedules",  # token counter on cuda
    "megatron.core.pipeline_parallel.p2p_communication",  # recv buffers, synchronize
    "megatron.core.distributed.param_and_grad_buffer",  # DDP grad buffers
    "megatron.core.distributed.distributed_data_parallel",  # synchronize
    "megatron.core.optimizer.optimizer",
    "megatron.core.optimizer.clip_grads",
    "megatron.core.models.common.embeddings.rotary_pos_embedding",  # inv_freq to cuda
    "megatron.core.tensor_parallel.mappings",  # _gather_along_last_dim buffers
    "megatron.core.dist_checkpointing.strategies.filesystem_async",  # synchronize
    "megatron.core.dist_checkpointing.strategies.state_dict_saver",  # current_device
)

_FACTORIES = (
    "empty", "zeros", "ones", "full", "tensor", "arange", "rand", "randn", "randint",
    "empty_like", "zeros_like", "ones_like", "full_like", "as_tensor", "eye", "linspace",
)


def _is_cuda_device(device: Any) -> bool:
    if device is None:
        return False
    if isinstance(device, int):
        return True
    return torch.device(device).type == "cuda"


def _cpu_factory(fn: Callable) -> Callable:
    def wrapped(*args, **kwargs):
        if _is_cuda_device(kwargs.get("device")):
            kwargs["device"] = "cpu"
        kwargs.pop("pin_memory", None)  # pinning needs CUDA
        return fn(*args, **kwargs)

    wrapped.__name__ = fn.__name__
    return wrapped


class _CpuCuda(types.ModuleType):
    """``torch.cuda`` as seen by a proxied module: the "current device" is the CPU."""

    def __init__(self) -> None:
        super().__init__("torch.cuda")
        self.current_device = lambda: torch.device("cpu")
        self.synchronize = lambda *a, **k: None
        self.empty_cache = lambda: None
        self.is_available = lambda: False
        self.default_stream = lambda *a, **k: _NullStream()
        self.Stream = lambda *a, **k: _NullStream()
        self.stream = lambda s: contextlib.nullcontext()

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cuda, name)


class _NullStream:
    def wait_stream(self, other: Any) -> None:
        return None

    def synchronize(self) -> None:
        return None


class _CpuTorch(types.ModuleType):
    """A stand-in for the ``torch`` module: everything is torch, except ``torch.cuda``
    and the tensor factories, which send ``device="cuda"`` to the CPU."""

    def __init__(self) -> None:
        super().__init__("torch")
        self.cuda = _CpuCuda()
        for name in _FACTORIES:
            setattr(self, name, _cpu_factory(getattr(torch, name)))

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)


# --- RNG -------------------------------------------------------------------------------


def _get_cpu_rng_state(device: int = -1, clone: bool = False, graph_safe: bool = False):
    return torch.get_rng_state()


def _set_cpu_rng_state(new_state: torch.Tensor, device: int = -1, graph_safe: bool = False):
    torch.set_rng_state(new_state)


def _make_cpu_tracker_class():
    from megatron.core.tensor_parallel import random as mp_random

    class CpuRNGStatesTracker(mp_random.CudaRNGStatesTracker):
        """megatron's RNG tracker keeping CPU generator states: attention and dropout fork
        it even with dropout 0, and tensor-parallel dropout needs per-rank streams."""

        def add(self, name: str, seed: int) -> None:
            self._is_initialized = True
            if seed in self.seeds_:
                raise ValueError(f"seed {seed} already exists")
            if name in self.states_:
                raise ValueError(f"rng state {name} already exists")
            self.seeds_.add(seed)
            orig = torch.get_rng_state()
            torch.manual_seed(seed)
            self.states_[name] = torch.get_rng_state()
            torch.set_rng_state(orig)

        @contextlib.contextmanager
        def fork(self, name: str = mp_random._MODEL_PARALLEL_RNG_TRACKER_NAME):
            if name not in self.states_:
                raise KeyError(f"rng state {name} is not added")
            orig = torch.get_rng_state()
            torch.set_rng_state(self.states_[name])
            try:
                yield
            finally:
                self.states_[name] = torch.get_rng_state()
                torch.set_rng_state(orig)

    return CpuRNGStatesTracker


def model_parallel_manual_seed(seed: int, tp_rank: int | None = None) -> None:
    """CPU twin of ``tensor_parallel.model_parallel_cuda_manual_seed``: same seeds, same
    tracker names, CPU generator states."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import random as mp_random

    if tp_rank is None:
        tp_rank = parallel_state.get_tensor_model_parallel_rank()
    torch.manual_seed(seed)
    tracker = mp_random.get_cuda_rng_tracker()
    tracker.reset()
    tracker.add(mp_random._DATA_PARALLEL_RNG_TRACKER_NAME, seed)
    tracker.add(mp_random._MODEL_PARALLEL_RNG_TRACKER_NAME, seed + 2718 + tp_rank)
    tracker.add(mp_random._EXPERT_PARALLEL_RNG_TRACKER_NAME, seed + 1024)


# --- LanguageModule: tied embedding copy on the last pipeline stage ----------------------


def _patch_language_module() -> None:
    """``setup_embeddings_and_output_layer`` moves the last stage's embedding copy with
    ``.cuda()`` before the all-reduce that syncs it; on CPU that move is a no-op."""
    from megatron.core.models.common.language_module.language_module import LanguageModule

    original = LanguageModule.setup_embeddings_and_output_layer
    if getattr(original, "_rexbert_cpu_shim", False):
        return

    def setup_embeddings_and_output_layer(self) -> None:
        cuda = torch.Tensor.cuda
        torch.Tensor.cuda = lambda t, *a, **k: t
        try:
            original(self)
        finally:
            torch.Tensor.cuda = cuda

    setup_embeddings_and_output_layer._rexbert_cpu_shim = True
    LanguageModule.setup_embeddings_and_output_layer = setup_embeddings_and_output_layer


# --- gradient clipping ----------------------------------------------------------------


def clip_grad_by_total_norm_fp32(parameters, max_norm, total_norm, use_decoupled_grad: bool = False) -> None:
    """megatron's ``clip_grad_by_total_norm_fp32`` without its ``torch.cuda.FloatTensor``
    assertion: scale every gradient in place by max_norm / total_norm when that is < 1."""
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    attr = "decoupled_grad" if use_decoupled_grad else "grad"
    clip_coeff = max_norm / (total_norm + 1.0e-6)
    if clip_coeff < 1.0:
        for param in parameters:
            grad = getattr(param, attr, None)
            if grad is not None:
                grad.detach().mul_(clip_coeff)


def _patch_clip_grads() -> None:
    from megatron.core.optimizer import clip_grads, optimizer

    clip_grads.clip_grad_by_total_norm_fp32 = clip_grad_by_total_norm_fp32
    optimizer.clip_grad_by_total_norm_fp32 = clip_grad_by_total_norm_fp32  # imported by name


_applied = False


def shims_applied() -> bool:
    return _applied


def apply_cpu_shims(force: bool = False) -> bool:
    """Apply every CPU shim once. Returns True if applied (CUDA absent, or ``force``)."""
    global _applied
    if _applied:
        return True
    if torch.cuda.is_available() and not force:
        return False
    proxy = _CpuTorch()
    for name in PROXIED_MODULES:
        module = importlib.import_module(name)
        module.torch = proxy

    from megatron.core.tensor_parallel import random as mp_random

    mp_random._get_cuda_rng_state = _get_cpu_rng_state
    mp_random._set_cuda_rng_state = _set_cpu_rng_state
    mp_random._CUDA_RNG_STATE_TRACKER = _make_cpu_tracker_class()()
    mp_random._CUDA_RNG_STATE_TRACKER_INITIALIZED = True
    _patch_language_module()
    _patch_clip_grads()
    _applied = True
    return True
