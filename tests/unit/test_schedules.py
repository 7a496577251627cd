"""LR schedules against their formulas, the scheduler's per-group writes and state, and the
batch-size ramp (monotone, multiples of micro × DP, exactly the target at the end)."""

from __future__ import annotations

import math

import pytest
import torch

from rexbert.train.schedules import (
    BatchSizeRampConfig,
    LRScheduleConfig,
    LRScheduler,
    global_batch_size_at,
    lr_at,
)

MAX, MIN = 8e-4, 8e-7


def test_wsd_one_minus_sqrt_at_chosen_steps():
    cfg = LRScheduleConfig(warmup=100, decay=400, total=1000, decay_style="1-sqrt")
    assert lr_at(cfg, 0, MAX, MIN) == 0.0
    assert lr_at(cfg, 50, MAX, MIN) == pytest.approx(MAX / 2, rel=1e-12)
    assert lr_at(cfg, 100, MAX, MIN) == MAX  # warmup end
    assert lr_at(cfg, 350, MAX, MIN) == MAX  # stable
    assert lr_at(cfg, 600, MAX, MIN) == MAX  # decay starts at total - decay
    mid = MIN + (MAX - MIN) * (1 - math.sqrt(0.5))
    assert lr_at(cfg, 800, MAX, MIN) == pytest.approx(mid, rel=1e-12)
    assert lr_at(cfg, 700, MAX, MIN) == pytest.approx(MIN + (MAX - MIN) * (1 - math.sqrt(0.25)), rel=1e-12)
    assert lr_at(cfg, 1000, MAX, MIN) == MIN
    assert lr_at(cfg, 5000, MAX, MIN) == MIN


def test_warmup_from_init_lr():
    cfg = LRScheduleConfig(warmup=10, init_lr=1e-4, decay_style="constant")
    assert lr_at(cfg, 0, MAX) == 1e-4
    assert lr_at(cfg, 5, MAX) == pytest.approx(1e-4 + (MAX - 1e-4) / 2, rel=1e-12)
    assert lr_at(cfg, 10, MAX) == MAX
    assert lr_at(cfg, 10**9, MAX) == MAX  # warmup + constant never decays


@pytest.mark.parametrize(
    "style, shape",
    [("linear", lambda f: 1 - f), ("cosine", lambda f: 0.5 * (1 + math.cos(math.pi * f))),
     ("1-sqrt", lambda f: 1 - math.sqrt(f))],
)
def test_decay_styles(style, shape):
    cfg = LRScheduleConfig(warmup=0, decay=200, total=300, decay_style=style)
    for t in (100, 130, 150, 200, 299):
        f = (t - 100) / 200
        assert lr_at(cfg, t, MAX, MIN) == pytest.approx(MIN + (MAX - MIN) * shape(f), rel=1e-12), t
    assert lr_at(cfg, 300, MAX, MIN) == MIN
    lrs = [lr_at(cfg, t, MAX, MIN) for t in range(0, 320)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_token_unit_modernbert_decay_phase():
    """ModernBERT's decay phase: 1-sqrt from the peak over 50B tokens, no warmup."""
    cfg = LRScheduleConfig(unit="tokens", warmup=0, decay=50 * 10**9, total=50 * 10**9, decay_style="1-sqrt")
    assert lr_at(cfg, 0, 3e-4, 3e-7) == 3e-4
    assert lr_at(cfg, 25 * 10**9, 3e-4, 3e-7) == pytest.approx(3e-7 + (3e-4 - 3e-7) * (1 - math.sqrt(0.5)))
    assert lr_at(cfg, 50 * 10**9, 3e-4, 3e-7) == 3e-7


def _optimizer():
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
    return torch.optim.SGD([
        {"params": params[:1], "max_lr": MAX, "min_lr": MIN, "lr_mult": 1.0, "wd_mult": 1.0},
        {"params": params[1:2], "max_lr": MAX, "min_lr": MIN, "lr_mult": 1.0, "wd_mult": 0.0},
        {"params": params[2:], "max_lr": MAX, "min_lr": MIN, "lr_mult": 0.5, "wd_mult": 1.0},
    ], lr=MAX)


def test_scheduler_sets_groups_and_round_trips():
    cfg = LRScheduleConfig(warmup=10, decay=20, decay_style="1-sqrt")
    opt = _optimizer()
    sched = LRScheduler(cfg, opt, total_steps=100, weight_decay=1e-5)  # total from the trainer
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0, 0.0]
    sched.step(5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([MAX / 2, MAX / 2, MAX / 4])
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-5, 0.0, 1e-5]
    sched.step(90)
    expected = lr_at(LRScheduleConfig(warmup=10, decay=20, total=100, decay_style="1-sqrt"), 90, MAX, MIN)
    assert sched.current_lr == expected
    state = sched.state_dict()

    other_opt = _optimizer()
    other = LRScheduler(cfg, other_opt, total_steps=100, weight_decay=1e-5)
    other.load_state_dict(state)
    assert [g["lr"] for g in other_opt.param_groups] == [g["lr"] for g in opt.param_groups]
    sched.step(100)
    assert sched.current_lr == MIN


def test_scheduler_in_tokens_needs_tokens():
    cfg = LRScheduleConfig(unit="tokens", warmup=1000, decay_style="constant")
    sched = LRScheduler(cfg, _optimizer(), weight_decay=0.0)
    assert sched.step(3, consumed_tokens=500) == pytest.approx(MAX / 2)
    with pytest.raises(ValueError, match="consumed_tokens"):
        sched.step(4)


@pytest.mark.parametrize(
    "fields, key",
    [({"unit": "epochs"}, "schedule.unit"), ({"decay_style": "exp"}, "schedule.decay_style"),
     ({"warmup": -1}, "schedule.warmup"), ({"init_lr": -1.0}, "schedule.init_lr"),
     ({"decay_style": "constant", "decay": 5}, "schedule.decay"), ({"decay": 0}, "schedule.decay"),
     ({"warmup": 60, "decay": 50, "total": 100}, "schedule.total")],
)
def test_bad_schedule_names_the_key(fields, key):
    base = {"decay": 10, "decay_style": "1-sqrt"}
    with pytest.raises(ValueError, match=key):
        LRScheduleConfig(**{**base, **fields})


def test_scheduler_needs_a_total_in_tokens():
    with pytest.raises(ValueError, match="schedule.total"):
        LRScheduler(LRScheduleConfig(unit="tokens", decay=10, decay_style="linear"), _optimizer(), total_steps=100,
                    weight_decay=0.0)


@pytest.mark.parametrize("micro, dp, target, ramp", [(4, 2, 64, 10**6), (16, 8, 4608, 50 * 10**9), (1, 1, 7, 1000)])
def test_batch_ramp_monotone_multiple_and_exact(micro, dp, target, ramp):
    cfg = BatchSizeRampConfig(ramp_tokens=ramp)
    unit = micro * dp
    points = sorted({0, ramp - 1, ramp, ramp + 1, *range(0, ramp, max(1, ramp // 2000))})
    sizes = [global_batch_size_at(cfg, t, target, micro, dp) for t in points]
    assert sizes[0] == unit
    assert all(s % unit == 0 and unit <= s <= target for s in sizes)
    assert all(a <= b for a, b in zip(sizes, sizes[1:]))
    assert global_batch_size_at(cfg, ramp - 1, target, micro, dp) < target
    assert global_batch_size_at(cfg, ramp, target, micro, dp) == target
    assert len(set(sizes)) == target // unit  # every level is visited


def test_batch_ramp_levels_take_about_equal_steps():
    """Each level lasts tokens ∝ its batch size: about the same number of optimizer steps."""
    seq, micro, dp, target, ramp = 128, 2, 2, 32, 4_000_000
    cfg = BatchSizeRampConfig(ramp_tokens=ramp)
    steps_per_level: dict[int, int] = {}
    tokens = 0
    while tokens < ramp:
        batch = global_batch_size_at(cfg, tokens, target, micro, dp)
        steps_per_level[batch] = steps_per_level.get(batch, 0) + 1
        tokens += batch * seq
    counts = list(steps_per_level.values())
    assert sorted(steps_per_level) == list(range(4, 32, 4))
    assert max(counts) - min(counts) <= 2, steps_per_level


def test_batch_ramp_off_and_custom_start():
    assert global_batch_size_at(BatchSizeRampConfig(), 0, 64, 4, 2) == 64
    cfg = BatchSizeRampConfig(ramp_tokens=1000, start_global_batch_size=32)
    assert global_batch_size_at(cfg, 0, 64, 4, 2) == 32


@pytest.mark.parametrize(
    "cfg, args, key",
    [(BatchSizeRampConfig(ramp_tokens=10), (65, 4, 2), "trainer.global_batch_size"),
     (BatchSizeRampConfig(ramp_tokens=10, start_global_batch_size=12), (64, 4, 2),
      "batch_ramp.start_global_batch_size"),
     (BatchSizeRampConfig(ramp_tokens=10, start_global_batch_size=128), (64, 4, 2),
      "batch_ramp.start_global_batch_size"),
     (BatchSizeRampConfig(ramp_tokens=10), (64, 0, 2), "trainer.micro_batch_size")],
)
def test_bad_batch_ramp_names_the_key(cfg, args, key):
    with pytest.raises(ValueError, match=key):
        global_batch_size_at(cfg, 0, *args)


def test_bad_ramp_config_names_the_key():
    with pytest.raises(ValueError, match="batch_ramp.ramp_tokens"):
        BatchSizeRampConfig(ramp_tokens=-1)


def test_defaults_are_valid():
    """Hydra instantiates the dataclass defaults: they must pass their own checks."""
    from rexbert.train.optim import OptimizerConfig

    assert LRScheduleConfig().decay_style == "constant"
    assert BatchSizeRampConfig().ramp_tokens == 0
    assert OptimizerConfig().betas == (0.9, 0.98)
