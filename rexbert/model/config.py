"""The encoder's typed configuration, and its translation to megatron-core's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

TRANSFORMER_IMPLS = ("local", "transformer_engine")
ATTENTION_BACKENDS = ("sdpa", "flash_attn", "flex")
FP8_RECIPES = {"delayed": "delayed", "current": "tensorwise"}  # ours -> megatron's Fp8Recipe
COMPILE_MODES = ("none", "layers", "model")


@dataclass
class RexBertConfig:
    """Architecture and numerics of one ModernBERT-style encoder.

    Defaults are ModernBERT's; the named sizes live in ``conf/model/*.yaml``.
    """

    num_layers: int = 22
    hidden_size: int = 768
    num_attention_heads: int = 12
    ffn_hidden_size: int = 1152
    vocab_size: int = 50368
    # Layers 0, n, 2n, ... (counted from 0) attend globally; the rest use the local window.
    global_attn_every_n_layers: int = 3
    # Total width of the local window, ModernBERT's ``local_attention``: |i - j| <= 64.
    local_attention_window: int = 128
    global_rope_theta: float = 160_000.0
    local_rope_theta: float = 10_000.0
    max_position_embeddings: int = 8192
    norm_eps: float = 1e-5
    initializer_range: float = 0.02
    initializer_cutoff_factor: float = 2.0
    embedding_dropout: float = 0.0
    attention_dropout: float = 0.0
    mlp_dropout: float = 0.0
    pad_token_id: int = 50283
    # "local": pure torch, runs anywhere (CPU tests). "transformer_engine": TE linears and
    # fused attention on GPU (FP8-capable); needs transformer-engine.
    transformer_impl: str = "local"
    params_dtype: str = "float32"
    # Core attention of the local spec (docs/gpu.md): "sdpa" (torch, runs anywhere), "flash_attn"
    # (flash-attn varlen kernels; CUDA, bf16/fp16) or "flex" (torch FlexAttention). The TE spec
    # always uses TE's own attention, so it takes the default only.
    attention_backend: str = "sdpa"
    # FP8 matmuls through Transformer Engine: null | "e4m3" | "hybrid" (needs transformer_impl=
    # transformer_engine and a GPU with FP8, e.g. H100). Everything else runs in params_dtype.
    fp8: Optional[str] = None
    # How FP8 scales are chosen: "delayed" (amax history, TE DelayedScaling) or "current"
    # (per-tensor scale of the tensor being cast, TE Float8CurrentScaling; TE >= 2.2).
    fp8_recipe: str = "delayed"
    # torch.compile after build: "none", "layers" (each transformer layer) or "model" (the whole
    # module), applied by rexbert.model.compile.maybe_compile.
    compile: str = "none"
    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    # "none" | "full" (recompute every layer in backward) | "selective" (core attention only)
    recompute: str = "none"
    seed: int = 1234

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"model.hidden_size={self.hidden_size} must be divisible by "
                f"model.num_attention_heads={self.num_attention_heads}"
            )
        if self.transformer_impl not in TRANSFORMER_IMPLS:
            raise ValueError(
                f"model.transformer_impl={self.transformer_impl!r}: choose one of {TRANSFORMER_IMPLS}"
            )
        if self.local_attention_window % 2:
            raise ValueError(
                f"model.local_attention_window={self.local_attention_window} must be even "
                "(it is the total width of a symmetric window)"
            )
        if self.global_attn_every_n_layers < 1:
            raise ValueError("model.global_attn_every_n_layers must be >= 1")
        if self.recompute not in ("none", "full", "selective"):
            raise ValueError(f"model.recompute={self.recompute!r}: choose none, full or selective")
        if self.fp8 is not None:
            if self.fp8 not in ("e4m3", "hybrid"):
                raise ValueError(f"model.fp8={self.fp8!r}: choose e4m3, hybrid or null")
            if self.transformer_impl != "transformer_engine":
                raise ValueError("model.fp8 needs model.transformer_impl=transformer_engine")
        if self.params_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"model.params_dtype={self.params_dtype!r}: float32, bfloat16 or float16")
        if self.fp8_recipe not in FP8_RECIPES:
            raise ValueError(f"model.fp8_recipe={self.fp8_recipe!r}: choose one of {tuple(FP8_RECIPES)}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"model.compile={self.compile!r}: choose one of {COMPILE_MODES}")
        self._check_attention_backend()

    def _check_attention_backend(self) -> None:
        backend = self.attention_backend
        if backend not in ATTENTION_BACKENDS:
            raise ValueError(f"model.attention_backend={backend!r}: choose one of {ATTENTION_BACKENDS}")
        if backend == "sdpa":
            return
        if self.transformer_impl == "transformer_engine":
            raise ValueError(
                f"model.attention_backend={backend} selects the local spec's core attention; "
                "model.transformer_impl=transformer_engine uses TE's fused/flash attention (choose its "
                "kernel with NVTE_FLASH_ATTN / NVTE_FUSED_ATTN): leave model.attention_backend=sdpa"
            )
        if backend == "flash_attn" and self.params_dtype == "float32":
            raise ValueError(
                "model.attention_backend=flash_attn runs in bf16/fp16 only: set "
                "model.params_dtype=bfloat16 (or use model.attention_backend=sdpa for float32)"
            )
        if backend == "flex" and self.attention_dropout > 0:
            raise ValueError(
                "model.attention_backend=flex has no attention dropout: set model.attention_dropout=0 "
                "or use sdpa / flash_attn"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def window_half_width(self) -> int:
        return self.local_attention_window // 2

    def is_global_layer(self, layer_index: int) -> bool:
        """``layer_index`` counted from 0 over the whole model (not per pipeline stage)."""
        return layer_index % self.global_attn_every_n_layers == 0

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.params_dtype)


def _trunc_normal_init(std: float, cutoff: float):
    def init_(tensor: torch.Tensor) -> torch.Tensor:
        return torch.nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-cutoff * std, b=cutoff * std)

    return init_


def init_stds(config: RexBertConfig) -> dict[str, float]:
    """ModernBERT's initialisation: truncated normals, "out" projections scaled by depth."""
    return {
        "in": config.initializer_range,
        "out": config.initializer_range / math.sqrt(2.0 * config.num_layers),
        "embedding": config.initializer_range,
    }


def to_transformer_config(config: RexBertConfig, sequence_parallel: bool = False):
    """megatron-core's ``TransformerConfig`` for this encoder.

    Exact GELU (not megatron's tanh-approximated fused GeGLU), no biases, no fusions that
    change numerics; ModernBERT's truncated-normal init through megatron's init methods.
    """
    import torch.nn.functional as F
    from megatron.core.transformer.enums import AttnBackend
    from megatron.core.transformer.transformer_config import TransformerConfig

    stds = init_stds(config)
    cutoff = config.initializer_cutoff_factor
    use_te = config.transformer_impl == "transformer_engine"
    dtype = config.torch_dtype
    return TransformerConfig(
        num_layers=config.num_layers,
        hidden_size=config.hidden_size,
        num_attention_heads=config.num_attention_heads,
        ffn_hidden_size=config.ffn_hidden_size,
        kv_channels=config.head_dim,
        add_bias_linear=False,
        add_qkv_bias=False,
        gated_linear_unit=True,
        activation_func=F.gelu,
        bias_activation_fusion=False,
        bias_dropout_fusion=False,
        masked_softmax_fusion=False,
        apply_rope_fusion=False,
        rotary_interleaved=False,
        persist_layer_norm=False,
        normalization="LayerNorm",
        layernorm_epsilon=config.norm_eps,
        hidden_dropout=config.mlp_dropout,
        attention_dropout=config.attention_dropout,
        init_method=_trunc_normal_init(stds["in"], cutoff),
        output_layer_init_method=_trunc_normal_init(stds["out"], cutoff),
        embedding_init_method=_trunc_normal_init(stds["embedding"], cutoff),
        init_method_std=config.initializer_range,
        use_cpu_initialization=not torch.cuda.is_available(),
        params_dtype=dtype,
        pipeline_dtype=dtype,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        tensor_model_parallel_size=config.tensor_model_parallel_size,
        pipeline_model_parallel_size=config.pipeline_model_parallel_size,
        sequence_parallel=sequence_parallel,
        attention_backend=AttnBackend.auto if use_te else AttnBackend.local,
        recompute_granularity=None if config.recompute == "none" else config.recompute,
        recompute_method="uniform" if config.recompute == "full" else None,
        recompute_num_layers=1 if config.recompute == "full" else None,
        recompute_modules=["core_attn"] if config.recompute == "selective" else None,
        deallocate_pipeline_outputs=False,
        fp8=config.fp8,
        fp8_recipe=FP8_RECIPES[config.fp8_recipe],
        # Layer 0 has no attention norm, so layers are not homogeneous: checkpoint each
        # layer under its own key instead of stacking them (megatron's spelling).
        hetereogenous_dist_checkpoint=True,
    )
