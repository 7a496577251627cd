"""Learning-rate schedules (warmup-stable-decay with 1-sqrt, linear or cosine decay;
warmup + constant) and ModernBERT's batch-size warm-up by tokens.

The peak and floor come from the optimizer's parameter groups (``max_lr`` / ``min_lr``, set
from ``optimizer.lr`` / ``optimizer.min_lr`` by megatron's grouping), so the schedule config
holds only the shape. Positions are in steps or in consumed tokens (``unit``): ModernBERT
states its warmup and decay in tokens, which differ from steps while the batch size ramps.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any, Optional

SCHEDULE_UNITS = ("steps", "tokens")
DECAY_STYLES = ("1-sqrt", "linear", "cosine", "constant")


@dataclass
class LRScheduleConfig:
    """warmup → stable at max_lr → decay over the last ``decay`` units to min_lr.

    ``decay_style="constant"``: warmup then max_lr for good (ModernBERT's pretraining phase;
    its decay phase is a separate run with ``warmup=0`` and ``decay == total``)."""

    unit: str = "steps"  # "steps" | "tokens": what warmup, decay and total count
    warmup: int = 0
    init_lr: float = 0.0  # the warmup starts here (absolute lr); the first step runs at it
    decay_style: str = "constant"  # "1-sqrt" | "linear" | "cosine" | "constant"
    decay: int = 0
    # Where the decay ends (then min_lr). None: the trainer's max_steps (unit "steps" only).
    total: Optional[int] = None

    def __post_init__(self) -> None:
        if self.unit not in SCHEDULE_UNITS:
            raise ValueError(f"schedule.unit={self.unit!r}: choose one of {SCHEDULE_UNITS}")
        if self.decay_style not in DECAY_STYLES:
            raise ValueError(f"schedule.decay_style={self.decay_style!r}: choose one of {DECAY_STYLES}")
        if self.warmup < 0:
            raise ValueError(f"schedule.warmup={self.warmup} must be >= 0")
        if self.init_lr < 0:
            raise ValueError(f"schedule.init_lr={self.init_lr} must be >= 0")
        if self.decay_style == "constant":
            if self.decay:
                raise ValueError(f"schedule.decay={self.decay} must be 0 with schedule.decay_style=constant")
        elif self.decay <= 0:
            raise ValueError(f"schedule.decay={self.decay} must be > 0 with schedule.decay_style={self.decay_style}")
        if self.total is not None:
            self.check_total(self.total)

    def check_total(self, total: int) -> None:
        if self.decay_style != "constant" and total < self.warmup + self.decay:
            raise ValueError(f"schedule.total={total} must be >= schedule.warmup + schedule.decay "
                             f"= {self.warmup + self.decay} (warmup and decay may not overlap)")


def lr_at(config: LRScheduleConfig, t: float, max_lr: float, min_lr: float = 0.0) -> float:
    """The lr after ``t`` units (steps or tokens) of training.

    warmup: init_lr + (max_lr - init_lr)·t/warmup; then max_lr until total - decay; then, with
    f = (t - (total - decay)) / decay: 1-sqrt min + (max - min)·(1 - √f), linear
    min + (max - min)·(1 - f), cosine min + (max - min)·(1 + cos πf)/2; min_lr from total on."""
    if t < 0:
        raise ValueError(f"schedule position must be >= 0, got {t}")
    if t < config.warmup:
        return config.init_lr + (max_lr - config.init_lr) * t / config.warmup
    if config.decay_style == "constant":
        return max_lr
    if config.total is None:
        raise ValueError("schedule.total is required for a decaying schedule (or pass total_steps)")
    decay_start = config.total - config.decay
    if t <= decay_start:
        return max_lr
    if t >= config.total:
        return min_lr
    f = (t - decay_start) / config.decay
    if config.decay_style == "1-sqrt":
        shape = 1.0 - math.sqrt(f)
    elif config.decay_style == "linear":
        shape = 1.0 - f
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * f))
    return min_lr + (max_lr - min_lr) * shape


class LRScheduler:
    """Sets each parameter group's ``lr`` (schedule × ``lr_mult``) and ``weight_decay``
    (``weight_decay`` × ``wd_mult``) for the step about to run.

    ``step(n, consumed_tokens)`` takes the absolute position (after n optimizer steps), so
    calling it again after a resume is harmless. The peak and floor are each group's
    ``max_lr`` / ``min_lr`` (megatron's groups carry them; plain groups fall back to their
    ``lr`` and 0)."""

    def __init__(self, config: LRScheduleConfig, optimizer: Any, total_steps: Optional[int] = None,
                 weight_decay: Optional[float] = None) -> None:
        if config.total is None and config.decay_style != "constant":
            if config.unit != "steps" or total_steps is None:
                raise ValueError(f"schedule.total is required with schedule.unit={config.unit!r} "
                                 f"and schedule.decay_style={config.decay_style!r}")
            config.check_total(total_steps)
            config = replace(config, total=total_steps)
        self.config = config
        self.optimizer = optimizer
        if weight_decay is None:  # megatron's optimizer wrappers carry their config
            weight_decay = optimizer.config.weight_decay
        self.weight_decay = weight_decay
        for group in optimizer.param_groups:
            group.setdefault("max_lr", group["lr"])
            group.setdefault("min_lr", 0.0)
            if config.init_lr > group["max_lr"]:
                raise ValueError(f"schedule.init_lr={config.init_lr} exceeds the peak lr {group['max_lr']}")
        self.num_steps = 0
        self.consumed_tokens = 0
        self._apply()

    @property
    def position(self) -> int:
        return self.num_steps if self.config.unit == "steps" else self.consumed_tokens

    @property
    def current_lr(self) -> float:
        """The lr of the first group with lr_mult 1 (the one to log)."""
        groups = self.optimizer.param_groups
        return next((g["lr"] for g in groups if g.get("lr_mult", 1.0) == 1.0), groups[0]["lr"])

    def step(self, step: int, consumed_tokens: Optional[int] = None) -> float:
        if self.config.unit == "tokens" and consumed_tokens is None:
            raise ValueError("schedule.unit=tokens: LRScheduler.step needs consumed_tokens")
        self.num_steps = step
        if consumed_tokens is not None:
            self.consumed_tokens = consumed_tokens
        return self._apply()

    def _apply(self) -> float:
        t = self.position
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.config, t, group["max_lr"], group["min_lr"]) * group.get("lr_mult", 1.0)
            group["weight_decay"] = self.weight_decay * group.get("wd_mult", 1.0)
        return self.current_lr

    def state_dict(self) -> dict:
        return {"num_steps": self.num_steps, "consumed_tokens": self.consumed_tokens, "config": asdict(self.config)}

    def load_state_dict(self, state: dict) -> None:
        """Restore the position; the shape stays this run's config (a new phase may change it)."""
        self.num_steps = int(state["num_steps"])
        self.consumed_tokens = int(state["consumed_tokens"])
        self._apply()


# ---------------------------------------------------------------------------------------
# Batch-size warm-up


@dataclass
class BatchSizeRampConfig:
    """Grow the global batch from ``start_global_batch_size`` (default: one micro-batch per
    data-parallel rank) to the trainer's global batch over ``ramp_tokens`` consumed tokens,
    in steps of micro_batch × DP. Like ModernBERT's ``BatchSizeWarmupScheduler``, each level
    lasts tokens ∝ its batch size, i.e. about the same number of optimizer steps."""

    ramp_tokens: int = 0  # 0: no ramp
    start_global_batch_size: Optional[int] = None

    def __post_init__(self) -> None:
        if self.ramp_tokens < 0:
            raise ValueError(f"batch_ramp.ramp_tokens={self.ramp_tokens} must be >= 0")
        if self.start_global_batch_size is not None and self.start_global_batch_size < 1:
            raise ValueError(f"batch_ramp.start_global_batch_size={self.start_global_batch_size} must be >= 1")


def global_batch_size_at(config: BatchSizeRampConfig, consumed_tokens: int, global_batch_size: int,
                         micro_batch_size: int, data_parallel_size: int) -> int:
    """The global batch (sequences) for the step after ``consumed_tokens`` tokens: a multiple
    of micro_batch_size × data_parallel_size, non-decreasing, equal to global_batch_size
    from ``ramp_tokens`` on."""
    unit = micro_batch_size * data_parallel_size
    if micro_batch_size < 1 or data_parallel_size < 1:
        raise ValueError(f"trainer.micro_batch_size={micro_batch_size} and data-parallel size "
                         f"{data_parallel_size} must be >= 1")
    if global_batch_size % unit:
        raise ValueError(f"trainer.global_batch_size={global_batch_size} must be a multiple of "
                         f"micro_batch_size × data-parallel size = {unit}")
    start = unit if config.start_global_batch_size is None else config.start_global_batch_size
    if start % unit or start > global_batch_size:
        raise ValueError(f"batch_ramp.start_global_batch_size={start} must be a multiple of {unit} "
                         f"and <= trainer.global_batch_size={global_batch_size}")
    if consumed_tokens >= config.ramp_tokens or start == global_batch_size:
        return global_batch_size
    levels, ends = _ramp(start, global_batch_size, unit, config.ramp_tokens)
    return levels[bisect.bisect_right(ends, consumed_tokens)]


@lru_cache(maxsize=8)
def _ramp(start: int, target: int, unit: int, ramp_tokens: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Levels below the target and the token count at which each one ends (the last at
    ramp_tokens exactly); integer arithmetic so the end is hit exactly."""
    levels = tuple(range(start, target, unit))
    total = sum(levels)
    ends, cum = [], 0
    for level in levels:
        cum += level
        ends.append(-(-ramp_tokens * cum // total))  # ceil
    return levels, tuple(ends)
