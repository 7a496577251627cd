"""Full (TP=1, all-layers) state dicts to and from a tensor/pipeline-parallel model.

Export gathers shards across tensor-parallel ranks (undoing the GLU split of fc1) and
layers across pipeline stages; import slices a full state dict for this rank. QKV needs no
special case here: megatron's TP shards are contiguous rows of its per-head layout.
"""

from __future__ import annotations

import re

import torch
import torch.distributed as dist
from megatron.core import parallel_state

from rexbert.model.hf_mapping import glu_fc1_shard, glu_fc1_unshard

_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.")
_TIED = "embedding.word_embeddings.weight"


def _layer_offset(model) -> int:
    layers = model.encoder.layers
    return layers[0].layer_number - 1 if len(layers) else 0


def _global_name(name: str, offset: int) -> str:
    return _LAYER.sub(lambda m: f"encoder.layers.{int(m.group(1)) + offset}.", name)


def _is_glu_fc1(name: str) -> bool:
    return name.endswith("mlp.linear_fc1.weight")


def _tp_info(model):
    params = dict(model.named_parameters())
    return params, parallel_state.get_tensor_model_parallel_world_size(), parallel_state.get_tensor_model_parallel_rank()


def shard_for_this_rank(model, full: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The slice of ``full`` that ``model`` (this rank's TP shard of this PP stage) holds."""
    params, tp, rank = _tp_info(model)
    offset = _layer_offset(model)
    local: dict[str, torch.Tensor] = {}
    for name, current in model.state_dict().items():
        if name.endswith("._extra_state"):
            local[name] = current  # megatron/TE module metadata, not weights
            continue
        gname = _global_name(name, offset)
        if gname == "output_layer.weight":  # last stage's copy of the tied embedding
            gname = _TIED
        if gname not in full:
            raise KeyError(f"checkpoint has no tensor for {gname!r} (model parameter {name!r})")
        tensor = full[gname]
        param = params.get(name)
        if param is not None and getattr(param, "tensor_model_parallel", False) and tp > 1:
            if _is_glu_fc1(name):
                tensor = glu_fc1_shard(tensor, rank, tp)
            else:
                tensor = tensor.chunk(tp, dim=param.partition_dim)[rank]
        local[name] = tensor
    return local


def load_full_state_dict(model, full: dict[str, torch.Tensor]) -> None:
    """Load a full state dict into a (possibly parallel) model; strict on both sides for
    this stage's parameters."""
    model.load_state_dict(shard_for_this_rank(model, full), strict=True)


def gather_full_state_dict(model, tensors: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Every rank returns the full TP=1 state dict (CPU tensors). Collective over the
    tensor- and pipeline-parallel groups of this rank. ``tensors`` (name → tensor shaped
    like that parameter, e.g. gradients) replaces the state dict as what is gathered."""
    params, tp, _ = _tp_info(model)
    offset = _layer_offset(model)
    tp_group = parallel_state.get_tensor_model_parallel_group()
    stage: dict[str, torch.Tensor] = {}
    for name, tensor in (model.state_dict() if tensors is None else tensors).items():
        if name == "output_layer.weight" or name.endswith("._extra_state"):
            continue  # tied copy (the first stage holds the embedding) / module metadata
        param = params.get(name)
        if param is not None and getattr(param, "tensor_model_parallel", False) and tp > 1:
            shards = [torch.empty_like(tensor) for _ in range(tp)]
            dist.all_gather(shards, tensor.contiguous(), group=tp_group)
            tensor = glu_fc1_unshard(shards) if _is_glu_fc1(name) else torch.cat(shards, dim=param.partition_dim)
        stage[_global_name(name, offset)] = tensor.detach().cpu()

    if parallel_state.get_pipeline_model_parallel_world_size() == 1:
        return stage
    stages: list = [None] * parallel_state.get_pipeline_model_parallel_world_size()
    dist.all_gather_object(stages, stage, group=parallel_state.get_pipeline_model_parallel_group())
    full: dict[str, torch.Tensor] = {}
    for part in stages:
        full.update(part)
    return full
