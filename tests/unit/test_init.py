"""ModernBERT's initialisation: truncated normals (cut at 2σ), std 0.02 for inputs and the
embedding, 0.02/sqrt(2·layers) for output projections and the head's dense, norms at 1,
decoder bias at 0."""

from __future__ import annotations

import math

import pytest
import torch

from rexbert.config import load_model_config
from rexbert.model.build import build_model


@pytest.fixture(scope="module")
def micro(world_of_one):
    torch.manual_seed(0)
    return build_model(load_model_config("micro")), load_model_config("micro")


@pytest.mark.parametrize(
    "suffix, kind",
    [("embedding.word_embeddings.weight", "in"), ("linear_qkv.weight", "in"), ("linear_fc1.weight", "in"),
     ("linear_proj.weight", "out"), ("linear_fc2.weight", "out"), ("head.dense.weight", "out")],
)
def test_truncated_normal_stds(micro, suffix, kind):
    model, config = micro
    std = 0.02 if kind == "in" else 0.02 / math.sqrt(2 * config.num_layers)
    weights = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if n.endswith(suffix)])
    assert weights.abs().max() <= 2 * std + 1e-9  # cut-off factor 2
    # A normal truncated at ±2σ has std 0.8796σ.
    assert abs(weights.std().item() / (0.8796 * std) - 1) < 0.05


def test_norms_and_bias(micro):
    model, _ = micro
    for name, p in model.named_parameters():
        if "norm" in name:
            assert torch.equal(p, torch.ones_like(p)), name
    assert torch.equal(model.output_layer.bias, torch.zeros_like(model.output_layer.bias))
