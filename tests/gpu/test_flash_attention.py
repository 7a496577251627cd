"""GPU tier: the flash-attn varlen core attention (``model.attention_backend=flash_attn``) gives
the local SDPA spec's logits on the same bf16 weights — packed and padded, with the ±64 local
window (documents of 300 tokens), bidirectional (MLM) and causal (CLM), forward and backward.

Skipped without CUDA or flash-attn; ``pytest -rs`` prints which one is missing.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from gpu_parity import LENGTHS, logits_parity, missing, packed_params


SKIP_REASON = missing("flash_attn", "flash-attn")
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


@pytest.fixture(scope="module")
def models(world_of_one):
    """(sdpa, flash_attn): the local spec in bf16 with each core attention, same weights."""
    from helpers import randomize_, small_config
    from rexbert.model.build import build_model

    config = small_config(params_dtype="bfloat16")
    sdpa = build_model(config).cuda().eval()
    randomize_(sdpa, seed=41)
    flash = build_model(dataclasses.replace(config, attention_backend="flash_attn")).cuda().eval()
    flash.load_state_dict(sdpa.state_dict())
    yield sdpa, flash
    for model in (sdpa, flash):
        model.set_causal(False)


def _both(models, causal: bool, *args, **kwargs):
    out = []
    for model in models:
        model.set_causal(causal)
        with torch.no_grad():
            out.append(model(*args, **kwargs).float())
    return out


@pytest.mark.parametrize("causal", [False, True], ids=["mlm", "clm"])
def test_packed_matches_sdpa(models, causal):
    from helpers import padded_batch

    ids, padding = padded_batch(LENGTHS, seed=42)
    flat = ids[~padding][None, :].cuda()
    sdpa, flash = _both(models, causal, flat, packed_seq_params=packed_params(LENGTHS))
    logits_parity(sdpa[0], flash[0]).check()


@pytest.mark.parametrize("causal", [False, True], ids=["mlm", "clm"])
def test_padded_is_unpadded_and_matches_sdpa(models, causal):
    from helpers import padded_batch

    ids, padding = padded_batch([300, 211], seed=43)
    ids, padding = ids.cuda(), padding.cuda()
    sdpa, flash = _both(models, causal, ids, padding_mask=padding)
    logits_parity(sdpa[~padding], flash[~padding]).check()


def test_packed_does_not_cross_documents(models):
    from helpers import padded_batch

    flash = models[1]
    flash.set_causal(False)
    ids, padding = padded_batch(LENGTHS, seed=44)
    flat = ids[~padding][None, :].cuda()
    changed = flat.clone()
    changed[0, LENGTHS[0]:] = torch.randint(4, 500, (sum(LENGTHS[1:]),), device="cuda")
    params = packed_params(LENGTHS)
    with torch.no_grad():
        a = flash(flat, packed_seq_params=params)[0, : LENGTHS[0]].float()
        b = flash(changed, packed_seq_params=params)[0, : LENGTHS[0]].float()
    # Same rows through the same kernels: only documents 2 and 3 changed.
    assert (a - b).abs().max().item() <= 1e-3


def test_backward_matches_sdpa(models):
    """Gradients of the MLM loss on a pack agree parameter by parameter (bf16 rounding only)."""
    from helpers import padded_batch

    ids, padding = padded_batch(LENGTHS, seed=45)
    flat = ids[~padding][None, :].cuda()
    labels = torch.full_like(flat, -100)
    labels[0, ::7] = flat[0, ::7]
    grads = []
    for model in models:
        model.set_causal(False)
        model.train()
        model.zero_grad(set_to_none=True)
        model(flat, packed_seq_params=packed_params(LENGTHS), labels=labels).float().mean().backward()
        grads.append({n: p.grad.float().flatten() for n, p in model.named_parameters() if p.grad is not None})
        model.eval()
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, g in grads[0].items():
        cos = F.cosine_similarity(g, grads[1][name], dim=0).item()
        assert cos >= 0.99, (name, cos)
