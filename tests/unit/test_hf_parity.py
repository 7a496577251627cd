"""Acceptance 1: our encoder and Hugging Face's ModernBertForMaskedLM give the same MLM
logits for the same weights, in both directions, with a strict one-to-one key mapping."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import hf_model, padded_batch, randomize_, small_config, weights
from rexbert.model.build import build_model
from rexbert.model.hf_mapping import hf_to_megatron, megatron_to_hf
from rexbert.model.parallel_state_dict import load_full_state_dict

LENGTHS = [420, 300]  # unequal, both >= 300; 120 padding tokens > the ±64 window
THETAS = {"160k/10k": (160_000.0, 10_000.0), "10k/10k": (10_000.0, 10_000.0)}


def _logits(ours, hf, ids, padding):
    with torch.no_grad():
        a = ours.eval()(ids, padding_mask=padding)
        b = hf(input_ids=ids, attention_mask=(~padding).long()).logits
    return a, b


@pytest.mark.parametrize("thetas", THETAS.values(), ids=THETAS.keys())
def test_ours_to_hf(world_of_one, thetas):
    config = small_config(global_rope_theta=thetas[0], local_rope_theta=thetas[1])
    assert sum(config.is_global_layer(i) for i in range(config.num_layers)) >= 2
    ours = build_model(config)
    randomize_(ours, seed=1)
    hf = hf_model(config)
    hf_state = megatron_to_hf(ours.state_dict(), config)
    # Strict both ways: no HF key missing, none left over.
    assert set(hf_state) == set(hf.state_dict())
    hf.load_state_dict(hf_state, strict=True)
    ids, padding = padded_batch(LENGTHS)
    a, b = _logits(ours, hf, ids, padding)
    assert (a - b)[~padding].abs().max().item() <= 1e-4


@pytest.mark.parametrize("thetas", THETAS.values(), ids=THETAS.keys())
def test_hf_to_ours(world_of_one, thetas):
    config = small_config(global_rope_theta=thetas[0], local_rope_theta=thetas[1])
    hf = hf_model(config)
    randomize_(hf, seed=2)
    ours = build_model(config)
    full = hf_to_megatron(hf.state_dict(), config)
    ours_keys = set(weights(ours))
    assert set(full) == ours_keys
    load_full_state_dict(ours, full)
    ids, padding = padded_batch(LENGTHS, seed=3)
    a, b = _logits(ours, hf, ids, padding)
    assert (a - b)[~padding].abs().max().item() <= 1e-4


def test_every_parameter_is_distinct_after_randomize(world_of_one):
    ours = build_model(small_config())
    randomize_(ours)
    values = [p.detach().flatten() for p in ours.parameters()]
    # fp32 draws collide now and then (birthday bound): near-all distinct is the point.
    assert all(v.unique().numel() >= 0.99 * v.numel() for v in values)


@pytest.mark.parametrize(
    "mistake",
    ["swapped_thetas", "no_window", "window_62"],
)
def test_parity_check_catches_mistakes(world_of_one, mistake):
    """The 1e-4 bound is meaningful: each deliberate architecture mistake breaks it."""
    config = small_config()
    ours = build_model(config)
    randomize_(ours, seed=4)
    wrong = {
        "swapped_thetas": dataclasses.replace(config, global_rope_theta=10_000.0, local_rope_theta=160_000.0),
        "no_window": dataclasses.replace(config, local_attention_window=4096),
        "window_62": dataclasses.replace(config, local_attention_window=124),
    }[mistake]
    hf = hf_model(wrong)
    hf.load_state_dict(megatron_to_hf(ours.state_dict(), config), strict=True)
    ids, padding = padded_batch(LENGTHS)
    a, b = _logits(ours, hf, ids, padding)
    assert (a - b)[~padding].abs().max().item() > 1e-3


def test_unmapped_key_raises(world_of_one):
    config = small_config()
    state = dict(build_model(config).state_dict())
    state["encoder.layers.0.mystery.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="mystery"):
        megatron_to_hf(state, config)
