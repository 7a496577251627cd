"""StableAdamW inside megatron's wrapper: the update equals an independent reference of the
paper's rule, weight decay skips the configured parameters, and checkpoint state survives
a save/load bitwise (torch state_dict and megatron dist_checkpointing)."""

from __future__ import annotations

import io
import math
import warnings

import pytest
import torch

from helpers import padded_batch, randomize_, small_config

BETAS = (0.9, 0.98)
EPS = 1e-6


def _model(seed: int = 0):
    from rexbert.model.build import build_model

    model = build_model(small_config())
    randomize_(model, seed=seed)
    return model


def _backward(model, seed: int, scale: float = 1.0) -> None:
    """MLM loss on a fresh batch; the scale grows the gradients so update clipping engages."""
    for p in model.parameters():
        p.grad = None
    ids, padding = padded_batch([48, 33], seed=seed)
    gen = torch.Generator().manual_seed(seed + 1000)
    labels = torch.where((torch.rand(ids.shape, generator=gen) < 0.3) & ~padding, ids, torch.full_like(ids, -100))
    (model(ids, padding_mask=padding, labels=labels).mean() * scale).backward()


class ReferenceStableAdamW:
    """StableAdamW from the paper in float64: Adam moments with bias correction, per-tensor
    lr_t = lr / max(1, sqrt(mean(g² / max(v̂, eps²)))), fully decoupled decay
    p *= 1 - (lr_t / max_lr)·wd on ndim > 1 only, then p -= lr_t·m̂ / (sqrt(v̂) + eps)."""

    def __init__(self, params: dict[str, torch.Tensor], max_lr: float, weight_decay: float) -> None:
        self.params = {n: p.detach().double().clone() for n, p in params.items()}
        self.m = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.max_lr, self.wd, self.t = max_lr, weight_decay, 0
        self.rms_seen: list[float] = []

    def step(self, grads: dict[str, torch.Tensor], lr: float) -> None:
        self.t += 1
        b1, b2 = BETAS
        for n, p in self.params.items():
            g = grads[n].double()
            self.m[n] = b1 * self.m[n] + (1 - b1) * g
            self.v[n] = b2 * self.v[n] + (1 - b2) * g * g
            m_hat = self.m[n] / (1 - b1**self.t)
            v_hat = self.v[n] / (1 - b2**self.t)
            rms = math.sqrt((g * g / v_hat.clamp(min=EPS**2)).mean().item())
            self.rms_seen.append(rms)
            lr_t = lr / max(1.0, rms)
            if p.ndim > 1:
                p.mul_(1 - (lr_t / self.max_lr) * self.wd)
            p.sub_(lr_t * m_hat / (v_hat.sqrt() + EPS))


def test_update_matches_reference(world_of_one):
    from rexbert.train.optim import OptimizerConfig, build_optimizer

    model = _model()
    cfg = OptimizerConfig(lr=1e-3, weight_decay=0.1)  # large decay: visible above 1e-6
    opt = build_optimizer(cfg, [model])
    ref = ReferenceStableAdamW(dict(model.named_parameters()), cfg.lr, cfg.weight_decay)
    for k, lr_scale in enumerate((1.0, 0.5, 0.25, 1.0)):
        _backward(model, seed=k, scale=4.0**k)
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_scale
        opt.step()
        ref.step(grads, cfg.lr * lr_scale)
        for n, p in model.named_parameters():
            assert not torch.equal(p, before[n]), f"step {k}: {n} did not move"
            diff = (p.detach().double() - ref.params[n]).abs().max().item()
            assert diff <= 1e-6, f"step {k}: {n} differs from the reference by {diff:.2e}"
    assert max(ref.rms_seen) > 1.5 and min(ref.rms_seen) < 1.0, "update clipping was not exercised"


def _groups_by_param(opt) -> dict[int, dict]:
    return {id(p): g for g in opt.param_groups for p in g["params"]}


@pytest.mark.parametrize("no_decay_on", [("norm", "bias"), ("norm", "bias", "embedding"), ()])
def test_weight_decay_skips_configured_params(world_of_one, no_decay_on):
    """With zero gradients StableAdamW's update is 0 and only the decay acts: decayed params
    shrink by exactly 1 - (lr/max_lr)·wd, the others stay bitwise."""
    from rexbert.train.optim import OptimizerConfig, build_optimizer

    model = _model()
    cfg = OptimizerConfig(lr=1e-3, weight_decay=0.01, no_decay_on=no_decay_on)
    opt = build_optimizer(cfg, [model])
    groups = _groups_by_param(opt)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        skip = (("bias" in no_decay_on and n.endswith(".bias"))
                or ("norm" in no_decay_on and p.ndim == 1 and not n.endswith(".bias"))
                or ("embedding" in no_decay_on and n == "embedding.word_embeddings.weight"))
        assert groups[id(p)]["weight_decay"] == (0.0 if skip else cfg.weight_decay), n
        expected = before[n] if skip else before[n] * (1 - cfg.weight_decay)
        assert torch.allclose(p.detach(), expected, rtol=0, atol=1e-7), n
        assert torch.equal(p.detach(), before[n]) == skip, n


def test_same_as_optimi_at_one_rank():
    """Without a TP group the re-stated step is optimi's foreach step, bitwise."""
    from optimi import StableAdamW

    from rexbert.train.optim import TPStableAdamW

    gen = torch.Generator().manual_seed(0)
    shapes = [(64, 32), (96,), (7, 5, 3)]
    a = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]

    def groups(ps):
        return [{"params": ps[:2], "weight_decay": 0.1, "max_lr": 1e-2},
                {"params": ps[2:], "weight_decay": 0.0, "max_lr": 1e-2}]

    ours = TPStableAdamW(groups(a), lr=5e-3, betas=BETAS, eps=EPS, weight_decay=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = StableAdamW(groups(b), lr=5e-3, betas=BETAS, eps=EPS, weight_decay=0.1, decouple_lr=True, foreach=True)
    for k in range(4):
        for pa, pb in zip(a, b):
            pa.grad = torch.randn(pa.shape, generator=gen) * 3.0**k
            pb.grad = pa.grad.clone()
        ours.step()
        theirs.step()
        for pa, pb in zip(a, b):
            assert torch.equal(pa, pb)


@pytest.mark.parametrize("chunk", [1 << 18, 1000])
def test_chunked_step_is_bitwise_the_foreach_step(chunk):
    """The CPU default walks the state in cache-sized pieces (several views of one tensor,
    several small tensors in one block); every element sees the same ops, and each tensor's
    RMS mean is still taken whole, so the update is bitwise optimi's foreach order — here on
    tensors large enough to be split across threads and pieces, with odd sizes."""
    from rexbert.train.optim import TPStableAdamW

    gen = torch.Generator().manual_seed(1)
    shapes = [(50_368, 33), (1_000_003,), (96,), (7, 5, 3), (300, 257)]
    a = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]

    def groups(ps):
        return [{"params": ps[:2] + ps[3:4], "weight_decay": 0.1, "max_lr": 1e-2},
                {"params": ps[2:3] + ps[4:], "weight_decay": 0.0, "max_lr": 1e-2}]

    chunked = TPStableAdamW(groups(a), lr=5e-3, betas=BETAS, eps=EPS, weight_decay=0.1, chunk_elems=chunk)
    whole = TPStableAdamW(groups(b), lr=5e-3, betas=BETAS, eps=EPS, weight_decay=0.1, chunk_elems=0)
    for k in range(3):
        for pa, pb in zip(a, b):
            pa.grad = torch.randn(pa.shape, generator=gen) * 3.0**k
            pa.grad[..., :3] = 0.0  # v can stay below eps² (the max with eps_sq)
            pb.grad = pa.grad.clone()
        chunked.step()
        whole.step()
        for pa, pb in zip(a, b):
            assert torch.equal(pa, pb)
            assert torch.equal(chunked.state[pa]["exp_avg_sq"], whole.state[pb]["exp_avg_sq"])


def test_build_optimizer_chunks_on_cpu(world_of_one):
    from rexbert.train.optim import CPU_STEP_CHUNK, OptimizerConfig, build_optimizer

    assert build_optimizer(OptimizerConfig(), [_model()]).optimizer.chunk_elems == CPU_STEP_CHUNK
    assert build_optimizer(OptimizerConfig(step_chunk=0), [_model()]).optimizer.chunk_elems == 0


def _trained(name: str, steps: int = 2):
    from rexbert.train.optim import OptimizerConfig, build_optimizer

    model = _model(seed=3)
    opt = build_optimizer(OptimizerConfig(name=name, lr=1e-3, weight_decay=0.01), [model])
    for k in range(steps):
        _backward(model, seed=10 + k, scale=2.0**k)
        opt.step()
    return model, opt


def _fresh_like(model, name: str):
    from rexbert.train.optim import OptimizerConfig, build_optimizer

    other = _model(seed=99)
    other.load_state_dict(model.state_dict())
    return other, build_optimizer(OptimizerConfig(name=name, lr=1e-3, weight_decay=0.01), [other])


def _assert_next_step_equal(model_a, opt_a, model_b, opt_b) -> None:
    for model, opt in ((model_a, opt_a), (model_b, opt_b)):
        _backward(model, seed=50, scale=4.0)
        opt.step()
    for (n, pa), pb in zip(model_a.named_parameters(), model_b.parameters()):
        assert torch.equal(pa, pb), f"{n} differs after the step that follows the load"


@pytest.mark.parametrize("name", ["stable_adamw", "adamw"])
def test_state_dict_round_trip_is_bitwise(world_of_one, name):
    model_a, opt_a = _trained(name)
    buffer = io.BytesIO()
    torch.save(opt_a.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    assert all(set(s) == {"exp_avg", "exp_avg_sq"} for s in saved["state"].values()), "derived entries were saved"

    model_b, opt_b = _fresh_like(model_a, name)
    opt_b.load_state_dict(saved)
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
        assert sorted(sa) == sorted(sb)  # eps_sq / kahan_comp rebuilt
    assert [g["step"].item() for g in opt_b.param_groups] == [2] * len(opt_b.param_groups)
    _assert_next_step_equal(model_a, opt_a, model_b, opt_b)


def test_plain_optimi_load_resets_moments_the_trap(world_of_one):
    """Why the load hook exists: optimi itself, given state without kahan_comp, zeroes the
    moments on its next step, and the step differs."""
    from optimi import StableAdamW

    from rexbert.train.optim import optimizer_state_for_checkpoint

    model_a, opt_a = _trained("stable_adamw")
    model_b, opt_b = _fresh_like(model_a, "stable_adamw")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        plain = StableAdamW([dict(g) for g in opt_b.param_groups], lr=1e-3, betas=BETAS, eps=EPS,
                            weight_decay=0.01, decouple_lr=True, foreach=True)
    plain.load_state_dict(optimizer_state_for_checkpoint(opt_a.optimizer.state_dict()))
    _backward(model_b, seed=50, scale=4.0)
    plain.step()
    _backward(model_a, seed=50, scale=4.0)
    opt_a.step()
    assert any(not torch.equal(pa, pb) for pa, pb in zip(model_a.parameters(), model_b.parameters()))


def test_dist_checkpoint_round_trip_is_bitwise(world_of_one, tmp_path):
    """megatron's sharded optimizer state (which cannot hold optimi's 0-dim eps_sq or a None
    kahan_comp) through dist_checkpointing save/load, then the same next step."""
    from megatron.core import dist_checkpointing

    model_a, opt_a = _trained("stable_adamw")
    model_sd = model_a.sharded_state_dict()
    dist_checkpointing.save({"model": model_sd, "optimizer": opt_a.sharded_state_dict(model_sd)}, str(tmp_path))

    model_b, opt_b = _fresh_like(_model(seed=5), "stable_adamw")  # different weights, no state
    model_sd_b = model_b.sharded_state_dict()
    template = {"model": model_sd_b, "optimizer": opt_b.sharded_state_dict(model_sd_b, is_loading=True)}
    loaded = dist_checkpointing.load(template, str(tmp_path))
    model_b.load_state_dict(loaded["model"])
    opt_b.load_state_dict(loaded["optimizer"])
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(pa, pb)
        assert torch.equal(opt_a.state[pa]["exp_avg_sq"], opt_b.state[pb]["exp_avg_sq"])
    _assert_next_step_equal(model_a, opt_a, model_b, opt_b)


def test_load_refuses_state_without_moments(world_of_one):
    from rexbert.train.optim import restore_optimizer_state

    model, opt = _trained("stable_adamw", steps=1)
    first = next(iter(opt.optimizer.state.values()))
    del first["exp_avg"]
    with pytest.raises(ValueError, match="exp_avg"):
        restore_optimizer_state(opt.optimizer)


@pytest.mark.parametrize(
    "overrides, key",
    [({"name": "sgd"}, "optimizer.name"), ({"lr": 0.0}, "optimizer.lr"), ({"min_lr": 1.0}, "optimizer.min_lr"),
     ({"betas": (0.9, 1.0)}, "optimizer.betas"), ({"eps": 0.0}, "optimizer.eps"),
     ({"weight_decay": -1.0}, "optimizer.weight_decay"), ({"no_decay_on": ("norms",)}, "optimizer.no_decay_on"),
     ({"clip_grad": -1.0}, "optimizer.clip_grad"), ({"step_chunk": -1}, "optimizer.step_chunk")],
)
def test_bad_config_names_the_key(overrides, key):
    from rexbert.train.optim import OptimizerConfig

    with pytest.raises(ValueError, match=key):
        OptimizerConfig(**overrides)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the bf16 wrapper is the GPU path")
def test_bf16_on_cpu_is_refused(world_of_one):
    from rexbert.train.optim import OptimizerConfig, build_optimizer

    model = _model()
    model.to(torch.bfloat16)
    with pytest.raises(ValueError, match="model.params_dtype"):
        build_optimizer(OptimizerConfig(), [model])


def test_grad_clipping_is_megatrons(world_of_one):
    from rexbert.train.optim import OptimizerConfig, build_optimizer

    model = _model()
    opt = build_optimizer(OptimizerConfig(clip_grad=1e-3), [model])
    _backward(model, seed=1)
    norm = math.sqrt(sum(p.grad.double().pow(2).sum().item() for p in model.parameters()))
    _, grad_norm, _ = opt.step()
    assert grad_norm == pytest.approx(norm, rel=1e-5)
