"""The one place that imports GPU-only libraries (Transformer Engine, flash-attn, NVIDIA apex,
DALI). Everything else asks here, so CPU machines import the whole project without them.

    from megatron_ext.compat import HAVE_TE, require_te
    te = require_te("the Transformer Engine layer spec")   # module, or one clear ImportError

The `HAVE_*` flags are evaluated on first access (module `__getattr__`), not at import:
probing DALI or TE costs seconds and may touch CUDA, which CPU tests must not pay for.
Each probe catches any Exception, because these libraries fail with OSError/RuntimeError
(missing libcuda, ABI mismatch), not only ImportError, when CUDA is absent.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

__all__ = [
    "HAVE_APEX",
    "HAVE_CUDA",
    "HAVE_DALI",
    "HAVE_FLASH_ATTN",
    "HAVE_TE",
    "Probe",
    "probe",
    "require_apex",
    "require_dali",
    "require_dali_pytorch",
    "require_flash_attn",
    "require_te",
]


def _import_te() -> ModuleType:
    importlib.import_module("transformer_engine")
    return importlib.import_module("transformer_engine.pytorch")


def _import_apex() -> ModuleType:
    # PyPI `apex` is an unrelated web toolkit: only NVIDIA apex has these submodules.
    apex = importlib.import_module("apex")
    try:
        importlib.import_module("apex.normalization")
    except ImportError:
        importlib.import_module("apex.optimizers")
    return apex


def _import_dali() -> ModuleType:
    dali = importlib.import_module("nvidia.dali")
    for sub in ("fn", "types", "pipeline"):  # what pipelines use, as attributes of the module
        importlib.import_module(f"nvidia.dali.{sub}")
    return dali


@dataclass(frozen=True)
class _Lib:
    load: Callable[[], ModuleType]
    package: str  # the name users install
    pip: str  # how to install it outside the container
    cpu_hint: str  # what to do instead on CPU


_LIBS: dict[str, _Lib] = {
    "te": _Lib(
        _import_te,
        "transformer-engine",
        "`pip install --no-build-isolation transformer-engine[pytorch]`",
        "on CPU set model.transformer_impl=local",
    ),
    "flash_attn": _Lib(
        lambda: importlib.import_module("flash_attn"),
        "flash-attn",
        "`pip install --no-build-isolation flash-attn`",
        "on CPU use the local attention backend",
    ),
    "apex": _Lib(
        _import_apex,
        "NVIDIA apex",
        "a source build of https://github.com/NVIDIA/apex (the PyPI `apex` is unrelated)",
        "on CPU use the torch implementation",
    ),
    "dali": _Lib(
        _import_dali,
        "nvidia-dali",
        "`pip install nvidia-dali-cuda120`",
        "on CPU use the PyTorch data loader",
    ),
}


@dataclass(frozen=True)
class Probe:
    """Result of trying to import a library: the module, or why it is unavailable."""

    module: ModuleType | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.module is not None


@functools.cache
def probe(key: str) -> Probe:
    """Import library `key` ("te", "flash_attn", "apex", "dali") once and cache the outcome."""
    try:
        return Probe(_LIBS[key].load())
    except Exception as err:  # noqa: BLE001 - CUDA-less failures are not always ImportError
        return Probe(None, f"{type(err).__name__}: {err}")


def _require(key: str, feature: str) -> ModuleType:
    found = probe(key)
    if found.module is not None:
        return found.module
    lib = _LIBS[key]
    raise ImportError(
        f"{feature} needs {lib.package}: use the GPU container (docker/Dockerfile) or "
        f"{lib.pip} on a CUDA machine; {lib.cpu_hint} (import failed: {found.reason})"
    )


def require_te(feature: str) -> ModuleType:
    """`transformer_engine.pytorch`, or ImportError saying `feature` needs transformer-engine."""
    return _require("te", feature)


def require_flash_attn(feature: str) -> ModuleType:
    """`flash_attn`, or ImportError saying `feature` needs flash-attn."""
    return _require("flash_attn", feature)


def require_apex(feature: str) -> ModuleType:
    """NVIDIA `apex` (checked via apex.normalization/optimizers), or ImportError."""
    return _require("apex", feature)


def require_dali(feature: str) -> ModuleType:
    """`nvidia.dali`, or ImportError saying `feature` needs DALI."""
    return _require("dali", feature)


def require_dali_pytorch(feature: str) -> ModuleType:
    """DALI's PyTorch plugin (`nvidia.dali.plugin.pytorch`: `DALIGenericIterator`), or the
    ImportError of `require_dali`."""
    require_dali(feature)
    return importlib.import_module("nvidia.dali.plugin.pytorch")


@functools.cache
def _have_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# Declared for type checkers only: the values come from __getattr__ on first access.
HAVE_TE: bool
HAVE_FLASH_ATTN: bool
HAVE_APEX: bool
HAVE_DALI: bool
HAVE_CUDA: bool

_FLAGS = {
    "HAVE_TE": "te",
    "HAVE_FLASH_ATTN": "flash_attn",
    "HAVE_APEX": "apex",
    "HAVE_DALI": "dali",
}


def __getattr__(name: str) -> bool:
    # PEP 562: `from megatron_ext.compat import HAVE_TE` probes lazily, then caches.
    if name == "HAVE_CUDA":
        return _have_cuda()
    if name in _FLAGS:
        return probe(_FLAGS[name]).ok
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
