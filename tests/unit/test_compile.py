"""``model.compile`` on CPU: torch.compile of each transformer layer (inductor's C++ backend)
gives the eager logits and leaves parameter names, hence checkpoints, unchanged.

Measured on the 2-core CPU VM (shared): the first compiled forward of the 4-layer test model
takes ~27 s with a cold inductor cache and ~7 s with a warm one (/tmp/torchinductor_$USER).
"""

from __future__ import annotations

import pytest
import torch

from helpers import padded_batch, randomize_, small_config
from rexbert.model.build import build_model
from rexbert.model.compile import maybe_compile


def test_compile_layers_matches_eager(world_of_one):
    config = small_config(compile="layers")
    model = build_model(config).eval()
    randomize_(model, seed=3)
    ids, padding = padded_batch([100, 60], seed=1)
    names = list(model.state_dict())
    with torch.no_grad():
        eager = model(ids, padding_mask=padding)
    assert maybe_compile(model, config) is model
    with torch.no_grad():
        compiled = model(ids, padding_mask=padding)
    assert (compiled - eager)[~padding].abs().max().item() <= 1e-4
    assert list(model.state_dict()) == names


def test_compile_none_is_a_no_op(world_of_one):
    config = small_config()
    model = build_model(config)
    assert maybe_compile(model, config) is model
    assert all(layer._compiled_call_impl is None for layer in model.encoder.layers)


def test_compile_layers_needs_encoder_layers():
    with pytest.raises(ValueError, match="model.compile=layers"):
        maybe_compile(torch.nn.Linear(2, 2), small_config(compile="layers"))
