"""GPU tier: the Transformer Engine spec gives the local spec's logits (run inside the GPU
container on a machine with CUDA; skipped elsewhere)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from megatron_ext.compat import HAVE_TE

pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and HAVE_TE),
                                reason="needs CUDA and transformer-engine (GPU container)")


def test_te_spec_matches_local_spec(world_of_one):
    from helpers import padded_batch, randomize_, small_config, weights
    from rexbert.model.build import build_model
    from rexbert.model.parallel_state_dict import load_full_state_dict

    config = small_config(params_dtype="bfloat16")
    local = build_model(config).cuda().eval()
    randomize_(local, seed=41)
    te = build_model(dataclasses.replace(config, transformer_impl="transformer_engine")).cuda().eval()
    load_full_state_dict(te, weights(local))
    ids, padding = padded_batch([300, 211], seed=42)
    ids, padding = ids.cuda(), padding.cuda()
    with torch.no_grad():
        a = local(ids, padding_mask=padding).float()
        b = te(ids, padding_mask=padding).float()
    # bf16 kernels differ in accumulation order; the bound is loose but catches a wrong window/mask.
    assert (a - b)[~padding].abs().max().item() < 5e-2
