"""megatron_ext.cpu: each CUDA assumption of megatron-core, made CPU-safe. (p2p, DDP
buffers, the last-dim gather, tied-embedding sync at PP=2 and the 1F1B schedule are
exercised by tests/distributed.)"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import padded_batch, randomize_, small_config
from megatron_ext import cpu as cpu_shims
from rexbert.model.build import build_model


def test_shims_only_apply_without_cuda(monkeypatch):
    monkeypatch.setattr(cpu_shims, "_applied", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cpu_shims.apply_cpu_shims() is False


def test_proxied_modules_allocate_on_cpu(world_of_one):
    from megatron.core import utils
    from megatron.core.transformer import utils as transformer_utils

    buf = utils.GlobalMemoryBuffer().get_tensor((4, 3), torch.float32, "scratch")
    assert buf.device.type == "cpu" and buf.shape == (4, 3)
    mask = transformer_utils.get_default_causal_mask(5)
    assert mask.device.type == "cpu" and mask[0, 1] and not mask[1, 0]
    window = transformer_utils.get_sliding_window_causal_mask(6, 6, (2, 0))
    assert window.device.type == "cpu"


def test_rotary_table_stays_on_cpu(world_of_one):
    from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding

    rope = RotaryEmbedding(16, 1.0, rotary_base=10_000, use_cpu_initialization=True)
    emb = rope.get_emb(8)
    assert emb.device.type == "cpu" and emb.shape == (8, 1, 1, 16)


def test_rng_tracker_forks_cpu_streams(world_of_one):
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    tracker = get_cuda_rng_tracker()
    before = torch.get_rng_state()
    with tracker.fork():
        a = torch.rand(3)
    with tracker.fork():
        b = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)  # default stream untouched
    assert not torch.equal(a, b)  # the forked stream advances between forks
    cpu_shims.model_parallel_manual_seed(1234)
    with tracker.fork():
        assert torch.equal(torch.rand(3), a)  # reseeding replays the stream


def _loss_and_grads(model, ids, padding):
    labels = torch.where(~padding, ids, torch.full_like(ids, -100))
    model.zero_grad()
    loss = model.train()(ids, padding_mask=padding, labels=labels).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_full_recompute_matches_plain_backward(world_of_one):
    """Full activation recompute goes through megatron's CheckpointFunction, which saves
    and restores RNG states (CUDA-only in megatron; CPU here)."""
    config = small_config()
    plain = build_model(config)
    randomize_(plain, seed=31)
    recompute = build_model(dataclasses.replace(config, recompute="full"))
    recompute.load_state_dict(plain.state_dict())
    ids, padding = padded_batch([90, 64], seed=32)
    loss_a, grads_a = _loss_and_grads(plain, ids, padding)
    loss_b, grads_b = _loss_and_grads(recompute, ids, padding)
    assert torch.equal(loss_a, loss_b)
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-6), name


def test_no_pipelining_schedule_runs(world_of_one):
    """The schedules keep a token counter on "cuda"; with the shim they run on CPU."""
    from megatron.core.pipeline_parallel import get_forward_backward_func

    model = build_model(small_config())
    ids, padding = padded_batch([40, 33], seed=33)
    labels = torch.where(~padding, ids, torch.full_like(ids, -100))

    def step(data_iterator, module):
        next(data_iterator)
        out = module(ids, padding_mask=padding, labels=labels)
        return out, lambda losses: (losses.mean(), {"loss": losses.mean().detach()})

    result = get_forward_backward_func()(
        forward_step_func=step, data_iterator=iter([None]), model=[model], num_microbatches=1,
        seq_length=ids.shape[1], micro_batch_size=2, forward_only=False,
    )
    assert torch.isfinite(result[0]["loss"])
    assert model.embedding.word_embeddings.weight.grad is not None


def test_dist_checkpointing_round_trip(world_of_one, tmp_path):
    """dist_checkpointing's saver calls torch.cuda.synchronize / current_device."""
    from megatron.core import dist_checkpointing

    model = build_model(small_config())
    randomize_(model, seed=34)
    dist_checkpointing.save(model.sharded_state_dict(), str(tmp_path))
    other = build_model(small_config())
    other.load_state_dict(dist_checkpointing.load(other.sharded_state_dict(), str(tmp_path)))
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name


def test_megatron_optimizer_clips_gradients_on_cpu(world_of_one):
    """get_megatron_optimizer's fp32 path clips by total norm (megatron asserts CUDA tensors
    there); the clipped update equals plain SGD on gradients scaled to the max norm."""
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

    model = build_model(small_config())
    ddp = DistributedDataParallel(config=model.config, ddp_config=DistributedDataParallelConfig(), module=model)
    opt = get_megatron_optimizer(OptimizerConfig(optimizer="sgd", lr=1.0, clip_grad=1e-3, weight_decay=0.0), [ddp])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids, padding = padded_batch([40, 33], seed=35)
    labels = torch.where(~padding, ids, torch.full_like(ids, -100))
    ddp.zero_grad_buffer()
    ddp(ids, padding_mask=padding, labels=labels).mean().backward()
    ddp.finish_grad_sync()
    grads = {n: p.main_grad.detach().clone() for n, p in model.named_parameters()}
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values())).item()
    ok, grad_norm, _ = opt.step()
    assert ok and abs(grad_norm - total) / total < 1e-5
    scale = 1e-3 / (total + 1e-6)
    for n, p in model.named_parameters():
        assert torch.allclose(before[n] - p.detach(), grads[n] * scale, atol=1e-7, rtol=1e-4), n
