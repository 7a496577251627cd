"""StableAdamW / AdamW from torch-optimi inside megatron-core's optimizer wrappers.

``build_optimizer`` stands beside megatron's ``get_megatron_optimizer`` (which knows only
adam and sgd): it takes megatron's parameter groups, builds an optimi optimizer on them and
wraps it in megatron's ``FP32Optimizer`` (fp32 params) or ``Float16OptimizerWithFloat16Params``
(bf16 params on GPU), so grad clipping, ``main_grad`` handling and sharded checkpoints stay
megatron's. Two additions make that correct:

- ``TPStableAdamW``: StableAdamW's update clipping uses the RMS of g²/max(v, eps²) over the
  whole tensor; under tensor parallelism each rank holds a shard, so the per-tensor sums are
  all-reduced over the TP group (one collective per step) and TP=N steps equal TP=1.
- checkpoint hooks: optimi keeps derived per-parameter entries (``eps_sq`` 0-dim,
  ``kahan_comp`` None) that megatron's sharded state cannot hold, and it silently re-creates
  ALL state (zeroed moments) for a parameter whose ``kahan_comp`` is missing. ``state_dict()``
  drops the derived entries, ``load_state_dict()`` rebuilds them and refuses state without
  moments. See docs/optimizer.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist
from optimi import AdamW as _OptimiAdamW
from optimi import StableAdamW as _OptimiStableAdamW
from optimi.utils import debias_beta

OPTIMIZER_NAMES = ("stable_adamw", "adamw")
# Elements per piece of StableAdamW's chunked step on CPU (docs/optimizer.md, measured there).
CPU_STEP_CHUNK = 1 << 18
NO_DECAY_KINDS = ("norm", "bias", "embedding")
# Per-parameter optimi entries that are derived from the group or are scratch space.
_DERIVED_STATE = ("eps_sq", "kahan_comp", "mean_square")


@dataclass
class OptimizerConfig:
    """ModernBERT's optimizer by default (StableAdamW, fully decoupled weight decay)."""

    name: str = "stable_adamw"  # "stable_adamw" | "adamw"
    lr: float = 8e-4  # the peak (max) lr; the schedule scales it
    min_lr: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    # Fully decoupled: p *= 1 - (lr_t / lr) * weight_decay, so it is not scaled by lr.
    weight_decay: float = 1e-5
    # Which parameters get no weight decay: "norm" (every weight with ndim <= 1: the norm
    # gains), "bias" (names ending in .bias), "embedding" (the word embeddings, tied decoder).
    no_decay_on: tuple[str, ...] = ("norm", "bias")
    # Global grad-norm clipping by megatron (0: off). StableAdamW's update clipping is
    # ModernBERT's guard against spikes; set this for AdamW.
    clip_grad: float = 0.0
    # StableAdamW's step on cache-sized pieces (bitwise the same update; docs/optimizer.md):
    # elements per piece; null: CPU_STEP_CHUNK for CPU parameters, whole tensors on CUDA;
    # 0: whole tensors (optimi's foreach walks).
    step_chunk: Optional[int] = None

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # Hydra hands over a list
        self.no_decay_on = tuple(self.no_decay_on)
        if self.name not in OPTIMIZER_NAMES:
            raise ValueError(f"optimizer.name={self.name!r}: choose one of {OPTIMIZER_NAMES}")
        if not self.lr > 0:
            raise ValueError(f"optimizer.lr={self.lr} must be > 0")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"optimizer.min_lr={self.min_lr} must be in [0, optimizer.lr={self.lr}]")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optimizer.betas={self.betas}: two values in [0, 1)")
        if not self.eps > 0:
            raise ValueError(f"optimizer.eps={self.eps} must be > 0")
        if self.weight_decay < 0:
            raise ValueError(f"optimizer.weight_decay={self.weight_decay} must be >= 0")
        unknown = set(self.no_decay_on) - set(NO_DECAY_KINDS)
        if unknown:
            raise ValueError(f"optimizer.no_decay_on: unknown {sorted(unknown)}; choose from {NO_DECAY_KINDS}")
        if self.clip_grad < 0:
            raise ValueError(f"optimizer.clip_grad={self.clip_grad} must be >= 0 (0: off)")
        if self.step_chunk is not None and self.step_chunk < 0:
            raise ValueError(f"optimizer.step_chunk={self.step_chunk} must be >= 0 (0: whole tensors; null: auto)")


def is_no_decay(name: str, param: torch.Tensor, kinds: Sequence[str]) -> bool:
    """Whether ``param`` (named as in ``named_parameters``) is excluded from weight decay."""
    if "bias" in kinds and name.endswith(".bias"):
        return True
    if "norm" in kinds and param.ndim <= 1 and not name.endswith(".bias"):
        return True
    return "embedding" in kinds and name.endswith("word_embeddings.weight")


# ---------------------------------------------------------------------------------------
# StableAdamW with a tensor-parallel-aware update-clipping RMS


class TPStableAdamW(_OptimiStableAdamW):
    """``optimi.StableAdamW`` (foreach math, same state layout) whose per-tensor RMS for
    ``tensor_model_parallel`` parameters covers the full tensor across ``tp_group``.

    optimi computes the RMS inside its step with no hook for it, so the step is re-stated
    here in three phases: moments and g²/max(v, eps²) for every group; one all-reduce of
    the sharded tensors' sums; the clipped, decayed update. With ``tp_group=None`` (or a
    group of one) it is bitwise optimi's foreach step. Triton and gradient release are not
    used. Like optimi, it leaves scratch values in ``p.grad``.

    ``chunk_elems > 0`` (the CPU default, ``optimizer.step_chunk``) runs the same ops on
    cache-sized pieces: float32 tensors are cut into flat views of at most ``chunk_elems``
    elements and each phase runs all its ops on one view before the next — three walks over
    memory (moments, the RMS mean, the update) instead of optimi's twelve, no full-size
    temporaries (optimi's ``max(v, eps²)`` allocates one per tensor, page faults included),
    and ``sqrt(v)`` written straight into the scratch instead of copy-then-sqrt. The ops and
    their order per element are unchanged and each tensor's mean is still taken over the
    whole tensor, so the result is bitwise the foreach one (tests/unit/test_optim.py).
    ``chunk_elems=0``: optimi's whole-tensor foreach walks (the choice on CUDA, where foreach
    kernels are fused), also used for bf16/fp16 parameters (Kahan summation).
    """

    def __init__(self, params: Iterable[Any], *, lr: float, betas: tuple[float, float], eps: float,
                 weight_decay: float, tp_group: Optional[dist.ProcessGroup] = None, chunk_elems: int = 0) -> None:
        with warnings.catch_warnings():  # optimi deprecates foreach in favour of triton
            warnings.simplefilter("ignore", DeprecationWarning)
            super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                             decouple_lr=True, foreach=True, triton=False)
        self.tp_group = tp_group if tp_group is not None and dist.get_world_size(tp_group) > 1 else None
        if chunk_elems < 0:
            raise ValueError(f"chunk_elems={chunk_elems} must be >= 0 (0: whole-tensor foreach)")
        self.chunk_elems = chunk_elems

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None, param: Optional[torch.Tensor] = None):
        if param is not None:
            raise ValueError("TPStableAdamW does not support gradient release (step(param=...))")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        buckets = [b for group in self.param_groups for b in self._moments(group)]
        rms = self._rms(buckets)
        for bucket, bucket_rms in zip(buckets, rms):
            self._update(bucket, bucket_rms)
        return loss

    def _chunked(self, b: dict) -> bool:
        return (self.chunk_elems > 0 and b["dtype"] == torch.float32
                and all(t.is_contiguous() for name in _CHUNKED_LISTS for t in b[name]))

    def _moments(self, group: dict) -> list[dict]:
        """Update the moments; leave g²/max(v, eps²) in the grads. One bucket per (device, dtype)."""
        params, grads, exp_avgs, exp_avg_sqs, eps_sqs, kahan_comps = [], [], [], [], [], []
        self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, eps_sqs, kahan_comps, [])
        if not params:
            return []
        group["step"].add_(1)
        step = group["step"].item()
        beta1_comp = 1 - debias_beta(group["beta1"], step)
        beta2_hat = debias_beta(group["beta2"], step)
        beta2_comp = 1 - beta2_hat
        keyed: dict[tuple, list[int]] = {}
        for i, p in enumerate(params):
            keyed.setdefault((p.device, p.dtype), []).append(i)
        buckets = []
        for (_, dtype), idx in keyed.items():
            b = {"group": group, "dtype": dtype}
            for name, values in (("params", params), ("grads", grads), ("exp_avgs", exp_avgs),
                                 ("exp_avg_sqs", exp_avg_sqs), ("eps_sqs", eps_sqs), ("kahan_comps", kahan_comps)):
                b[name] = [values[i] for i in idx]
            buckets.append(b)
            if self._chunked(b):
                b["pieces"] = _pieces(b, self.chunk_elems)
                scratch = torch.empty(max(len(v) for *_, v in b["pieces"]), dtype=dtype, device=b["params"][0].device)
                for i, _, grad, exp_avg, exp_avg_sq in b["pieces"]:  # per element: the foreach ops below
                    exp_avg.lerp_(grad, beta1_comp)
                    exp_avg_sq.mul_(beta2_hat)
                    exp_avg_sq.addcmul_(grad, grad, value=beta2_comp)
                    max_exp_avg_sq = torch.maximum(exp_avg_sq, b["eps_sqs"][i], out=scratch[: len(exp_avg_sq)])
                    grad.pow_(2)
                    grad.div_(max_exp_avg_sq)
                continue
            # The same ops, in the same order, as optimi's _foreach_stableadamw.
            torch._foreach_lerp_(b["exp_avgs"], b["grads"], weight=beta1_comp)
            torch._foreach_mul_(b["exp_avg_sqs"], scalar=beta2_hat)
            torch._foreach_addcmul_(b["exp_avg_sqs"], b["grads"], b["grads"], value=beta2_comp)
            max_exp_avg_sqs = torch._foreach_maximum(b["exp_avg_sqs"], other=b["eps_sqs"])
            torch._foreach_pow_(b["grads"], exponent=2)
            torch._foreach_div_(b["grads"], max_exp_avg_sqs)
            del max_exp_avg_sqs
        return buckets

    def _rms(self, buckets: list[dict]) -> list[list[float]]:
        """Per-tensor RMS of g²/max(v, eps²); full-tensor for TP-sharded parameters."""
        mean_sqs = [[r.mean() for r in b["grads"]] for b in buckets]
        if self.tp_group is not None:
            sharded = [(i, j) for i, b in enumerate(buckets) for j, p in enumerate(b["params"])
                       if getattr(p, "tensor_model_parallel", False)]
            if sharded:
                sums = torch.stack([buckets[i]["grads"][j].sum(dtype=torch.float32) for i, j in sharded])
                dist.all_reduce(sums, group=self.tp_group)
                tp = dist.get_world_size(self.tp_group)
                for (i, j), total in zip(sharded, sums):
                    mean_sqs[i][j] = total / (buckets[i]["params"][j].numel() * tp)
        return [[m.sqrt().item() for m in ms] for ms in mean_sqs]

    def _update(self, b: dict, rms: list[float]) -> None:
        group = b["group"]
        lr, weight_decay, max_lr, eps = group["lr"], group["weight_decay"], group["max_lr"], group["eps"]
        neg_lrs = [-lr / max(1, r) for r in rms]
        decays = [1 + (n / max_lr) * weight_decay for n in neg_lrs]  # fully decoupled: lr_t / max_lr
        if "pieces" in b:
            for i, param, denom, exp_avg, exp_avg_sq in b["pieces"]:  # per element: the foreach ops below
                if weight_decay != 0:
                    param.mul_(decays[i])
                torch.sqrt(exp_avg_sq, out=denom)
                denom.add_(eps)
                param.addcdiv_(exp_avg, denom, value=neg_lrs[i])
            return
        if weight_decay != 0:
            torch._foreach_mul_(b["params"], scalars=decays)
        denom = b["grads"]  # scratch, as in optimi
        torch._foreach_copy_(denom, b["exp_avg_sqs"])
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, eps)
        if group["kahan_sum"] and b["dtype"] in (torch.float16, torch.bfloat16):
            torch._foreach_addcdiv_(b["kahan_comps"], b["exp_avgs"], denom, scalars=neg_lrs)
            torch._foreach_copy_(denom, b["params"])
            torch._foreach_add_(b["params"], b["kahan_comps"], alpha=1)
            torch._foreach_sub_(denom, b["params"], alpha=1)
            torch._foreach_add_(b["kahan_comps"], denom, alpha=1)
        else:
            torch._foreach_addcdiv_(b["params"], b["exp_avgs"], denom, scalars=neg_lrs)


_CHUNKED_LISTS = ("params", "grads", "exp_avgs", "exp_avg_sqs")


def _pieces(b: dict, chunk_elems: int) -> list[tuple[int, torch.Tensor, ...]]:
    """(tensor index, param, grad, exp_avg, exp_avg_sq) flat views of at most ``chunk_elems``
    elements, starting at multiples of ``chunk_elems`` within each tensor."""
    pieces = []
    for i, p in enumerate(b["params"]):
        flat = [b[name][i].view(-1) for name in _CHUNKED_LISTS]
        for lo in range(0, p.numel(), chunk_elems):
            pieces.append((i, *(t[lo: lo + chunk_elems] for t in flat)))
    return pieces


# ---------------------------------------------------------------------------------------
# Checkpoint state: drop optimi's derived entries on save, rebuild them on load


def optimizer_state_for_checkpoint(state_dict: dict) -> dict:
    """A copy of an optimi ``state_dict()`` holding only tensors shaped like their
    parameter (``exp_avg``, ``exp_avg_sq``, a real Kahan buffer), which megatron's
    ``optim_state_to_sharding_state`` can shard; param_groups (with optimi's ``step``) stay."""
    state = {}
    for idx, entries in state_dict["state"].items():
        kept = dict(entries)
        for key in _DERIVED_STATE:
            value = kept.get(key)
            if key in kept and not (key == "kahan_comp" and _is_param_shaped(value, entries)):
                del kept[key]
        state[idx] = kept
    return {**state_dict, "state": state}


def _is_param_shaped(value: Any, entries: dict) -> bool:
    return isinstance(value, torch.Tensor) and value.shape == entries["exp_avg"].shape and value.ndim > 0


def restore_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Re-create optimi's derived entries after a load, keeping the loaded moments. Without
    them optimi's ``_init_state`` would reset every moment to zero on the next step."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state:
                continue  # never stepped: optimi creates it on the first step
            if "exp_avg" not in state or "exp_avg_sq" not in state:
                raise ValueError("optimizer state without exp_avg/exp_avg_sq: the checkpoint lost the moments")
            if isinstance(optimizer, _OptimiStableAdamW) and "eps_sq" not in state:
                state["eps_sq"] = torch.tensor(group["eps"] ** 2, dtype=p.dtype, device=p.device)
            if "kahan_comp" not in state:
                low = group["kahan_sum"] and p.dtype in (torch.float16, torch.bfloat16)
                state["kahan_comp"] = torch.zeros_like(p) if low else None


def init_optimizer_state(optimizer: torch.optim.Optimizer, config: Any = None) -> None:
    """Create zero state for every parameter (megatron's ``init_state_fn``: the sharded
    load needs tensors to load into). ``config`` is megatron's and unused."""
    for group in optimizer.param_groups:
        if not group["setup"]:
            group["setup"] = True
            group["step"] = torch.tensor(0, dtype=torch.int32)
        for p in group["params"]:
            optimizer._init_state(group, optimizer.state[p], p)


def _install_checkpoint_hooks(optimizer: torch.optim.Optimizer) -> None:
    optimizer.register_state_dict_post_hook(lambda opt, sd: optimizer_state_for_checkpoint(sd))
    optimizer.register_load_state_dict_post_hook(restore_optimizer_state)


# ---------------------------------------------------------------------------------------
# Megatron wrapper


def _megatron_config(config: OptimizerConfig, bf16: bool):
    from megatron.core.optimizer import OptimizerConfig as MegatronOptimizerConfig

    # optimizer="adam" is megatron's only field value that fits; megatron never builds it here.
    return MegatronOptimizerConfig(
        optimizer="adam", lr=config.lr, min_lr=config.min_lr, weight_decay=config.weight_decay,
        adam_beta1=config.betas[0], adam_beta2=config.betas[1], adam_eps=config.eps,
        clip_grad=config.clip_grad, bf16=bf16, params_dtype=torch.bfloat16 if bf16 else torch.float32,
    )


def param_groups(config: OptimizerConfig, model_chunks: Sequence[torch.nn.Module], mconfig=None) -> list[dict]:
    """megatron's parameter groups (``max_lr``, ``min_lr``, ``wd_mult``, ``lr_mult``, … which
    its checkpoint reload matches on) with no decay on ``config.no_decay_on``; each group's
    ``lr`` and ``weight_decay`` are set for step 0 of a constant schedule."""
    from megatron.core.optimizer import _get_param_groups
    from megatron.core.optimizer.optimizer_config import ParamKey, ParamWithNamePredicate

    kinds = tuple(sorted(config.no_decay_on))
    overrides = {}
    if kinds:
        predicate = ParamWithNamePredicate(name="rexbert_no_decay:" + ",".join(kinds),
                                           fn=lambda p, n: is_no_decay(n, p, kinds))
        overrides[ParamKey(with_name_predicate=predicate)] = {"wd_mult": 0.0}
    groups = _get_param_groups(list(model_chunks), mconfig or _megatron_config(config, False), overrides)
    for g in groups:
        g["lr"] = g["max_lr"] * g["lr_mult"]
        g["weight_decay"] = config.weight_decay * g["wd_mult"]
    return groups


def build_optimizer(config: OptimizerConfig, model_chunks: Sequence[torch.nn.Module], *,
                    tp_aware_update_clipping: bool = True):
    """A megatron ``MegatronOptimizer`` running optimi's StableAdamW or AdamW on the
    chunks' parameters (bare modules or megatron-DDP-wrapped). Collective (megatron
    gathers the group keys over the world). ``tp_aware_update_clipping=False`` exists only
    to show in tests what goes wrong without it."""
    from megatron.core import parallel_state
    from megatron.core.optimizer import Float16OptimizerWithFloat16Params, FP32Optimizer

    dtypes = {p.dtype for chunk in model_chunks for p in chunk.parameters() if p.requires_grad}
    if torch.float16 in dtypes:
        raise ValueError("model.params_dtype=float16 is not supported by build_optimizer: use bfloat16")
    bf16 = torch.bfloat16 in dtypes
    if bf16 and not torch.cuda.is_available():
        raise ValueError("model.params_dtype=bfloat16 needs CUDA: megatron's bf16 optimizer wrapper "
                         "accepts only torch.cuda tensors (use float32 on CPU)")
    mconfig = _megatron_config(config, bf16)
    groups = param_groups(config, model_chunks, mconfig)
    kwargs = dict(lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay)
    if config.name == "stable_adamw":
        tp_group = parallel_state.get_tensor_model_parallel_group() if tp_aware_update_clipping else None
        chunk = config.step_chunk
        if chunk is None:
            on_cuda = any(p.is_cuda for g in groups for p in g["params"])
            chunk = 0 if on_cuda else CPU_STEP_CHUNK
        inner = TPStableAdamW(groups, tp_group=tp_group, chunk_elems=chunk, **kwargs)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            inner = _OptimiAdamW(groups, decouple_lr=True, foreach=True, triton=False, **kwargs)
    _install_checkpoint_hooks(inner)
    if bf16:  # GPU only: fp32 main params (their TP attributes copied by megatron)
        optimizer = Float16OptimizerWithFloat16Params(inner, mconfig, None, init_optimizer_state)
    else:
        optimizer = FP32Optimizer(inner, mconfig, init_optimizer_state)
    # What get_megatron_optimizer sets: grad-norm reduction and TP-duplicate filtering.
    optimizer.grad_stats_parallel_group = parallel_state.get_model_parallel_group()
    optimizer.tp_group = parallel_state.get_tensor_model_parallel_group()
    return optimizer
