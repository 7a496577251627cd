"""Parameter names and layouts between RexBERT (megatron-core, TP=1 layout) and Hugging Face
``ModernBertForMaskedLM``. Pure tensor functions: no I/O, no process groups."""

from __future__ import annotations

import re

import torch

from rexbert.model.config import RexBertConfig

_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.+)$")
_HF_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")

# Per-layer names: ours (after "encoder.layers.{i}.") → HF's (after "model.layers.{i}.").
LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attention.linear_qkv.weight": "attn.Wqkv.weight",
    "self_attention.linear_proj.weight": "attn.Wo.weight",
    "pre_mlp_layernorm.weight": "mlp_norm.weight",
    "mlp.linear_fc1.weight": "mlp.Wi.weight",
    "mlp.linear_fc2.weight": "mlp.Wo.weight",
}
TOP_NAMES = {
    "embedding.word_embeddings.weight": "model.embeddings.tok_embeddings.weight",
    "embedding.norm.weight": "model.embeddings.norm.weight",
    "encoder.final_layernorm.weight": "model.final_norm.weight",
    "head.dense.weight": "head.dense.weight",
    "head.norm.weight": "head.norm.weight",
    "output_layer.bias": "decoder.bias",
}
_HF_LAYER_NAMES = {v: k for k, v in LAYER_NAMES.items()}
_HF_TOP_NAMES = {v: k for k, v in TOP_NAMES.items()}


def qkv_megatron_to_hf(weight: torch.Tensor, config: RexBertConfig) -> torch.Tensor:
    """megatron interleaves q/k/v per head ([h0: q k v][h1: q k v]…); HF stacks them
    ([all q | all k | all v])."""
    nh, hd, hidden = config.num_attention_heads, config.head_dim, weight.shape[1]
    return weight.view(nh, 3, hd, hidden).transpose(0, 1).reshape(3 * nh * hd, hidden)


def qkv_hf_to_megatron(weight: torch.Tensor, config: RexBertConfig) -> torch.Tensor:
    nh, hd, hidden = config.num_attention_heads, config.head_dim, weight.shape[1]
    return weight.view(3, nh, hd, hidden).transpose(0, 1).reshape(3 * nh * hd, hidden)


def megatron_to_hf(state: dict[str, torch.Tensor], config: RexBertConfig) -> dict[str, torch.Tensor]:
    """A full (TP=1 layout, all layers) RexBERT state dict → ModernBertForMaskedLM's, tied
    decoder weight included. Every key must map; leftovers raise."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name.endswith("._extra_state") or name == "output_layer.weight":
            continue  # TE metadata; the decoder weight is the embedding (tied)
        layer = _LAYER.match(name)
        if layer:
            index, rest = layer.groups()
            if rest not in LAYER_NAMES:
                raise KeyError(f"no Hugging Face name for parameter {name!r}")
            if rest == "self_attention.linear_qkv.weight":
                tensor = qkv_megatron_to_hf(tensor, config)
            out[f"model.layers.{index}.{LAYER_NAMES[rest]}"] = tensor
        elif name in TOP_NAMES:
            out[TOP_NAMES[name]] = tensor
        else:
            raise KeyError(f"no Hugging Face name for parameter {name!r}")
    out["decoder.weight"] = out["model.embeddings.tok_embeddings.weight"]
    return out


def hf_to_megatron(state: dict[str, torch.Tensor], config: RexBertConfig) -> dict[str, torch.Tensor]:
    """ModernBertForMaskedLM's state dict → a full (TP=1 layout) RexBERT state dict.
    Every key must map; leftovers raise. A decoder weight that differs from the embedding
    is an untied checkpoint, which RexBERT cannot represent."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name == "decoder.weight":
            emb = state.get("model.embeddings.tok_embeddings.weight")
            if emb is not None and not torch.equal(emb, tensor):
                raise ValueError("decoder.weight differs from the token embedding: untied "
                                 "checkpoints (tie_word_embeddings=false) are not supported")
            continue
        layer = _HF_LAYER.match(name)
        if layer:
            index, rest = layer.groups()
            if rest not in _HF_LAYER_NAMES:
                raise KeyError(f"unsupported Hugging Face parameter {name!r}")
            if rest == "attn.Wqkv.weight":
                tensor = qkv_hf_to_megatron(tensor, config)
            out[f"encoder.layers.{index}.{_HF_LAYER_NAMES[rest]}"] = tensor
        elif name in _HF_TOP_NAMES:
            out[_HF_TOP_NAMES[name]] = tensor
        else:
            raise KeyError(f"unsupported Hugging Face parameter {name!r}")
    return out


def glu_fc1_shard(full: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Tensor-parallel shard of a GLU fc1 [2F, H] = [input | gate]: each rank holds
    its rows of both halves (plain row chunks would pair the wrong halves)."""
    first, second = full.chunk(2, dim=0)
    return torch.cat([first.chunk(world, 0)[rank], second.chunk(world, 0)[rank]], dim=0)


def glu_fc1_unshard(shards: list[torch.Tensor]) -> torch.Tensor:
    halves = [s.chunk(2, dim=0) for s in shards]
    return torch.cat([h[0] for h in halves] + [h[1] for h in halves], dim=0)
