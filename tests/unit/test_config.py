"""Model config: typed, strict, composed by Hydra from conf/."""

from __future__ import annotations

import shutil

import pytest
from omegaconf.errors import ConfigKeyError, ValidationError

from rexbert import config as rexbert_config
from rexbert.config import load_model_config, model_config_from_dict
from rexbert.model.config import RexBertConfig


def test_named_sizes_load():
    micro = load_model_config("micro")
    assert (micro.num_layers, micro.hidden_size, micro.ffn_hidden_size, micro.num_attention_heads) == (7, 256, 384, 4)
    large = load_model_config("large", ["model.transformer_impl=transformer_engine"])
    assert (large.num_layers, large.hidden_size, large.ffn_hidden_size) == (28, 1024, 2624)
    assert large.transformer_impl == "transformer_engine"


def test_unknown_key_in_yaml_fails_naming_it(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    shutil.copytree(rexbert_config.CONF_DIR, conf)
    (conf / "model" / "typo.yaml").write_text("defaults:\n  - rexbert_model_schema\nnum_layerz: 3\n")
    monkeypatch.setattr(rexbert_config, "CONF_DIR", conf)
    with pytest.raises(Exception, match="num_layerz"):
        load_model_config("typo")


def test_unknown_key_in_dict_fails_naming_it():
    with pytest.raises(ConfigKeyError, match="hiden_size"):
        model_config_from_dict({"hiden_size": 64})


def test_wrong_type_fails_naming_key():
    with pytest.raises(ValidationError, match="num_layers"):
        model_config_from_dict({"num_layers": "many"})


def test_invalid_values_name_the_key():
    with pytest.raises(ValueError, match="model.transformer_impl"):
        RexBertConfig(transformer_impl="cuda")
    with pytest.raises(ValueError, match="model.num_attention_heads"):
        RexBertConfig(hidden_size=100, num_attention_heads=3)


def test_global_layers_are_every_third_from_zero():
    cfg = RexBertConfig(num_layers=7)
    assert [i for i in range(7) if cfg.is_global_layer(i)] == [0, 3, 6]


def test_data_config_is_typed_and_strict():
    from rexbert.config import data_config_from_dict

    cfg = data_config_from_dict({"blend": ["0.5", "a", "0.5", "b"], "masking": {"strategy": "uniform"}})
    assert cfg.masking.strategy == "uniform" and cfg.blend[1] == "a"
    with pytest.raises(ConfigKeyError, match="mask_rato"):
        data_config_from_dict({"masking": {"mask_rato": 0.2}})
    with pytest.raises(ValueError, match="data.masking.strategy"):
        data_config_from_dict({"masking": {"strategy": "nope"}})


def test_fp8_needs_the_transformer_engine_spec():
    with pytest.raises(ValueError, match="model.fp8 needs model.transformer_impl"):
        RexBertConfig(fp8="hybrid")
    with pytest.raises(ValueError, match="model.fp8="):
        RexBertConfig(fp8="e5m2", transformer_impl="transformer_engine")
    assert RexBertConfig(fp8="hybrid", transformer_impl="transformer_engine").fp8 == "hybrid"
