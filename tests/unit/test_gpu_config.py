"""The GPU switches of the model config (attention backend, FP8 recipe, compile): validated
when the config is made, with the key named, and a GPU backend chosen on a CPU machine fails
at build time with the guard's message."""

from __future__ import annotations

import pytest
import torch

from rexbert.config import load_model_config
from rexbert.model.config import RexBertConfig, to_transformer_config


def test_defaults_keep_the_cpu_path():
    cfg = RexBertConfig()
    assert (cfg.attention_backend, cfg.fp8, cfg.fp8_recipe, cfg.compile) == ("sdpa", None, "delayed", "none")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"attention_backend": "xformers"}, r"model\.attention_backend='xformers': choose one of"),
        ({"fp8_recipe": "mxfp8"}, r"model\.fp8_recipe='mxfp8': choose one of \('delayed', 'current'\)"),
        ({"compile": "full"}, r"model\.compile='full': choose one of \('none', 'layers', 'model'\)"),
        ({"attention_backend": "flash_attn"}, r"flash_attn runs in bf16/fp16 only: set model\.params_dtype"),
        ({"attention_backend": "flash_attn", "params_dtype": "bfloat16",
          "transformer_impl": "transformer_engine"},
         r"model\.transformer_impl=transformer_engine uses TE's fused/flash attention"),
        ({"attention_backend": "flex", "attention_dropout": 0.1},
         r"model\.attention_backend=flex has no attention dropout"),
    ],
    ids=["backend", "fp8_recipe", "compile", "flash_fp32", "flash_with_te", "flex_dropout"],
)
def test_invalid_values_name_the_key(fields, message):
    with pytest.raises(ValueError, match=message):
        RexBertConfig(**fields)


def test_valid_combinations():
    RexBertConfig(attention_backend="flash_attn", params_dtype="bfloat16")
    RexBertConfig(attention_backend="flex")
    RexBertConfig(compile="layers")
    RexBertConfig(transformer_impl="transformer_engine", fp8="e4m3", fp8_recipe="current")


def test_hydra_overrides_reach_the_new_keys():
    cfg = load_model_config("tiny", ["model.attention_backend=flash_attn", "model.params_dtype=bfloat16",
                                     "model.compile=layers"])
    assert (cfg.attention_backend, cfg.params_dtype, cfg.compile) == ("flash_attn", "bfloat16", "layers")
    with pytest.raises(Exception, match="model.fp8_recipe"):
        load_model_config("tiny", ["model.fp8_recipe=sometimes"])


@pytest.mark.parametrize(("recipe", "megatron_recipe"), [("delayed", "delayed"), ("current", "tensorwise")])
def test_fp8_recipe_maps_to_megatron(recipe, megatron_recipe):
    """megatron-core turns fp8_recipe into TE's DelayedScaling / Float8CurrentScaling
    (megatron/core/fp8_utils.py get_fp8_recipe) and wraps the block in fp8_autocast."""
    tc = to_transformer_config(RexBertConfig(transformer_impl="transformer_engine", fp8="hybrid",
                                             fp8_recipe=recipe, params_dtype="bfloat16"))
    assert (tc.fp8, tc.fp8_recipe, tc.params_dtype) == ("hybrid", megatron_recipe, torch.bfloat16)
    assert to_transformer_config(RexBertConfig()).fp8 is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-machine error")
def test_flash_attn_backend_fails_at_build_on_cpu():
    from helpers import small_config
    from rexbert.model.specs import get_rexbert_layer_specs

    cfg = small_config(attention_backend="flash_attn", params_dtype="bfloat16")
    # Without flash-attn: the guard's ImportError; with it but no GPU: a RuntimeError. Both name the key.
    with pytest.raises((ImportError, RuntimeError), match=r"model\.attention_backend=flash_attn") as err:
        get_rexbert_layer_specs(cfg)
    if isinstance(err.value, ImportError):
        message = str(err.value)
        assert "needs flash-attn" in message and "docker/Dockerfile" in message
