"""torch.compile, applied from outside the model in one place after build (``model.compile``).

``nn.Module.compile`` compiles in place: the module object, its parameters and its
``state_dict`` keys stay the same, so checkpoints, DDP wrapping and the HF export do not
change whether compile is on or off.

- ``layers``: each transformer layer on its own. The layers share code, so the compiled
  graph is reused; graph breaks (megatron's packed-sequence bookkeeping reads lengths on the
  host) stay inside one layer. The usual choice.
- ``model``: the whole module (embedding, block, head); longer first compile, and more graph
  breaks across megatron's block plumbing.
"""

from __future__ import annotations

import torch

from rexbert.model.config import RexBertConfig


def maybe_compile(model: torch.nn.Module, config: RexBertConfig) -> torch.nn.Module:
    """Compile ``model`` as ``config.compile`` says; returns the same object."""
    if config.compile == "none":
        return model
    if config.compile == "layers":
        layers = getattr(getattr(model, "encoder", None), "layers", None)
        if layers is None:
            raise ValueError("model.compile=layers needs a model with encoder.layers (a RexBertModel)")
        for layer in layers:
            layer.compile()
        return model
    if config.compile == "model":
        model.compile()
        return model
    raise ValueError(f"model.compile={config.compile!r}: choose none, layers or model")
