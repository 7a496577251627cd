"""Layer specs: which module fills each slot of each layer. The one place that decides
local (pure torch, CPU) vs Transformer Engine (GPU), the local spec's core attention
(SDPA, flash-attn varlen or FlexAttention), and local vs global attention."""

from __future__ import annotations

import copy
import functools

from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.identity_op import IdentityOp
from megatron.core.transformer.mlp import MLP, MLPSubmodules
from megatron.core.transformer.attention import SelfAttentionSubmodules
from megatron.core.transformer.spec_utils import ModuleSpec
from megatron.core.transformer.transformer_block import (
    TransformerBlockSubmodules,
    get_num_layers_to_build,
)
from megatron.core.transformer.transformer_layer import (
    TransformerLayer,
    TransformerLayerSubmodules,
    get_transformer_layer_offset,
)
from megatron.core.fusions.fused_bias_dropout import get_bias_dropout_add

from rexbert.model.attention import GLOBAL_ROPE, LOCAL_ROPE, RexBertSelfAttention, SdpaCoreAttention
from rexbert.model.config import RexBertConfig
from rexbert.model.flash_attention import VarlenCoreAttention, varlen_kernel
from rexbert.model.layers import BiasFreeLayerNorm


def _te_modules():
    """megatron's TE wrappers, imported only when the TE spec is chosen."""
    from megatron_ext.compat import require_te

    require_te("the Transformer Engine layer spec (model.transformer_impl=transformer_engine)")
    from megatron.core.extensions import transformer_engine as mte

    return mte


def _te_core_attention(half_window: int | None):
    mte = _te_modules()

    class TELocalOrGlobalAttention(mte.TEDotProductAttention):
        """TE fused/flash attention; a local layer gets a bidirectional (w, w) window."""

        def __init__(self, config, *args, **kwargs):
            config = copy.copy(config)
            config.window_size = None if half_window is None else (half_window, half_window)
            config.window_attn_skip_freq = None
            super().__init__(config, *args, **kwargs)

    return TELocalOrGlobalAttention


def _local_core_attention(backend: str, half_window: int | None):
    """``model.attention_backend``: torch SDPA (anywhere), flash-attn varlen or FlexAttention.
    A backend that cannot run here fails now, with the guard's message, not at first forward."""
    if backend == "sdpa":
        return functools.partial(SdpaCoreAttention, half_window=half_window)
    return functools.partial(VarlenCoreAttention, half_window=half_window, kernel=varlen_kernel(backend))


def get_rexbert_layer_spec(config: RexBertConfig, layer_index: int) -> ModuleSpec:
    """The spec of layer ``layer_index`` (0-based, whole model)."""
    is_global = config.is_global_layer(layer_index)
    half_window = None if is_global else config.window_half_width
    if config.transformer_impl == "transformer_engine":
        mte = _te_modules()
        column, row = mte.TEColumnParallelLinear, mte.TERowParallelLinear
        core_attention = _te_core_attention(half_window)
    else:
        column, row = ColumnParallelLinear, RowParallelLinear
        core_attention = _local_core_attention(config.attention_backend, half_window)

    return ModuleSpec(
        module=TransformerLayer,
        submodules=TransformerLayerSubmodules(
            # ModernBERT's first layer has no attention norm: the embedding norm precedes it.
            input_layernorm=IdentityOp if layer_index == 0 else BiasFreeLayerNorm,
            self_attention=ModuleSpec(
                module=RexBertSelfAttention,
                params={
                    "attn_mask_type": AttnMaskType.padding,
                    "rope_index": GLOBAL_ROPE if is_global else LOCAL_ROPE,
                },
                submodules=SelfAttentionSubmodules(
                    linear_qkv=column,
                    core_attention=core_attention,
                    linear_proj=row,
                    q_layernorm=IdentityOp,
                    k_layernorm=IdentityOp,
                ),
            ),
            self_attn_bda=get_bias_dropout_add,
            pre_mlp_layernorm=BiasFreeLayerNorm,
            mlp=ModuleSpec(module=MLP, submodules=MLPSubmodules(linear_fc1=column, linear_fc2=row)),
            mlp_bda=get_bias_dropout_add,
        ),
    )


def get_rexbert_layer_specs(config: RexBertConfig) -> list[ModuleSpec]:
    """One spec per layer of the whole model."""
    return [get_rexbert_layer_spec(config, i) for i in range(config.num_layers)]


def get_rexbert_block_spec(
    config: RexBertConfig, transformer_config, pp_rank: int | None = None, vp_stage: int | None = None
) -> TransformerBlockSubmodules:
    """The block spec for one pipeline stage: the slice of per-layer specs this stage
    builds (megatron takes a layer_specs list as given, per stage), plus the final norm."""
    offset = get_transformer_layer_offset(transformer_config, vp_stage, pp_rank)
    count = get_num_layers_to_build(transformer_config, vp_stage, pp_rank)
    specs = get_rexbert_layer_specs(config)[offset : offset + count]
    return TransformerBlockSubmodules(layer_specs=specs, layer_norm=BiasFreeLayerNorm)
