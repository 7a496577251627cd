"""Hugging Face round-trip: export a (possibly parallel) RexBERT model to a folder that
``AutoModelForMaskedLM``, ``AutoTokenizer`` and sentence-transformers load offline, and
import such a folder (ModernBERT / Ettin checkpoints on disk) back."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

from rexbert.model.config import RexBertConfig
from rexbert.model.hf_mapping import hf_to_megatron, megatron_to_hf

WEIGHTS_NAME = "model.safetensors"


def to_hf_config(config: RexBertConfig):
    """``ModernBertConfig`` equal to ``config``; both RoPE thetas written explicitly."""
    from transformers import ModernBertConfig

    layer_types = [
        "full_attention" if config.is_global_layer(i) else "sliding_attention" for i in range(config.num_layers)
    ]
    hf = ModernBertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.ffn_hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_attention_heads,
        hidden_activation="gelu",
        max_position_embeddings=config.max_position_embeddings,
        initializer_range=config.initializer_range,
        initializer_cutoff_factor=config.initializer_cutoff_factor,
        norm_eps=config.norm_eps,
        norm_bias=False,
        pad_token_id=config.pad_token_id,
        attention_dropout=config.attention_dropout,
        embedding_dropout=config.embedding_dropout,
        mlp_dropout=config.mlp_dropout,
        layer_types=layer_types,
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": config.global_rope_theta},
            "sliding_attention": {"rope_type": "default", "rope_theta": config.local_rope_theta},
        },
        local_attention=config.local_attention_window,
        decoder_bias=True,
        tie_word_embeddings=True,
    )
    hf.architectures = ["ModernBertForMaskedLM"]
    return hf


def _reject(flag: str, value, why: str) -> None:
    raise ValueError(f"cannot import this checkpoint: config.json has {flag}={value!r}; {why}")


def from_hf_config(hf) -> RexBertConfig:
    """``RexBertConfig`` for a ``ModernBertConfig``; anything RexBERT cannot represent is
    rejected with the flag named."""
    for flag in ("hidden_activation", "classifier_activation"):
        if getattr(hf, flag, "gelu") != "gelu":
            _reject(flag, getattr(hf, flag), "RexBERT uses exact GELU")
    for flag in ("norm_bias", "attention_bias", "mlp_bias", "classifier_bias"):
        if getattr(hf, flag, False):
            _reject(flag, True, "RexBERT has no biases outside the decoder")
    if not getattr(hf, "decoder_bias", True):
        _reject("decoder_bias", False, "RexBERT's decoder has a bias")
    if not getattr(hf, "tie_word_embeddings", True):
        _reject("tie_word_embeddings", False, "RexBERT ties the decoder to the embedding")
    if getattr(hf, "num_key_value_heads", hf.num_attention_heads) not in (None, hf.num_attention_heads):
        _reject("num_key_value_heads", hf.num_key_value_heads, "RexBERT uses full multi-head attention")
    layer_types = list(hf.layer_types)
    every_n = next((i for i, t in enumerate(layer_types[1:], 1) if t == "full_attention"), len(layer_types))
    expected = ["full_attention" if i % every_n == 0 else "sliding_attention" for i in range(len(layer_types))]
    if layer_types != expected:
        _reject("layer_types", layer_types, "RexBERT needs global attention on every n-th layer from layer 0")
    rope = hf.rope_parameters
    for kind in ("full_attention", "sliding_attention"):
        if rope[kind].get("rope_type", "default") != "default":
            _reject(f"rope_parameters.{kind}.rope_type", rope[kind]["rope_type"], "only default RoPE is supported")
    return RexBertConfig(
        num_layers=hf.num_hidden_layers,
        hidden_size=hf.hidden_size,
        num_attention_heads=hf.num_attention_heads,
        ffn_hidden_size=hf.intermediate_size,
        vocab_size=hf.vocab_size,
        global_attn_every_n_layers=every_n,
        local_attention_window=hf.local_attention,
        global_rope_theta=float(rope["full_attention"]["rope_theta"]),
        local_rope_theta=float(rope["sliding_attention"]["rope_theta"]),
        max_position_embeddings=hf.max_position_embeddings,
        norm_eps=hf.norm_eps,
        initializer_range=hf.initializer_range,
        initializer_cutoff_factor=hf.initializer_cutoff_factor or 2.0,
        embedding_dropout=float(hf.embedding_dropout),
        attention_dropout=float(hf.attention_dropout),
        mlp_dropout=float(hf.mlp_dropout),
        pad_token_id=hf.pad_token_id if hf.pad_token_id is not None else 50283,
    )


def _write_sentence_transformers_files(out: Path, hidden_size: int) -> None:
    """Mean pooling, as ModernBERT's embedding models use. The legacy key names load in
    sentence-transformers 2.x through 6.x."""
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ], indent=2))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8192, "do_lower_case": False}))
    pooling = out / "1_Pooling"
    pooling.mkdir()
    (pooling / "config.json").write_text(json.dumps({"word_embedding_dimension": hidden_size, "pooling_mode_mean_tokens": True}))


def _write_folder(tmp: Path, full_state: dict[str, torch.Tensor], config: RexBertConfig, tokenizer) -> None:
    from safetensors.torch import save_file

    hf_state = megatron_to_hf(full_state, config)
    hf_state.pop("decoder.weight")  # tied: transformers re-ties it on load
    save_file({k: v.contiguous() for k, v in hf_state.items()}, tmp / WEIGHTS_NAME, metadata={"format": "pt"})
    hf_config = to_hf_config(config)
    hf_config.save_pretrained(tmp)
    # Older transformers read these flat keys instead of rope_parameters.
    cfg_path = tmp / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(global_rope_theta=config.global_rope_theta, local_rope_theta=config.local_rope_theta,
               global_attn_every_n_layers=config.global_attn_every_n_layers)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))
    if tokenizer is None:
        from rexbert.tokenizer import load_tokenizer

        tokenizer = load_tokenizer()
    tokenizer.save_pretrained(tmp)
    _write_sentence_transformers_files(tmp, config.hidden_size)


def save_hf_folder(full_state: dict[str, torch.Tensor], config: RexBertConfig, out_dir: str | os.PathLike,
                   tokenizer=None) -> Path:
    """Write a full (TP=1) state dict as a Hugging Face folder, atomically: everything goes
    to a temporary sibling that replaces ``out_dir`` only when complete."""
    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write_folder(tmp, full_state, config, tokenizer)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written export behind
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return out


def export_hf(model, out_dir: str | os.PathLike, tokenizer=None) -> Optional[Path]:
    """Collective over the model's TP/PP groups: gathers the full weights; global rank 0
    writes the folder. Returns the path on rank 0, else None."""
    from rexbert.model.parallel_state_dict import gather_full_state_dict

    full = gather_full_state_dict(model)
    config = replace(model.rexbert_config, tensor_model_parallel_size=1, pipeline_model_parallel_size=1)
    path = None
    if not dist.is_initialized() or dist.get_rank() == 0:
        path = save_hf_folder(full, config, out_dir, tokenizer)
    if dist.is_initialized():
        dist.barrier()
    return path


def read_hf_folder(path: str | os.PathLike) -> tuple[RexBertConfig, dict[str, torch.Tensor]]:
    """(config, full RexBERT state dict) from a ModernBertForMaskedLM folder on disk."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no config.json (expected a Hugging Face model folder)")
    hf_config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if hf_config.model_type != "modernbert":
        raise ValueError(f"{folder}/config.json: model_type={hf_config.model_type!r}, expected 'modernbert'")
    config = from_hf_config(hf_config)
    files = sorted(folder.glob("*.safetensors"))
    if files:
        state: dict[str, torch.Tensor] = {}
        for f in files:
            state.update(load_file(f))
    elif (folder / "pytorch_model.bin").is_file():
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"{folder}: no *.safetensors or pytorch_model.bin")
    if not any(k.startswith("head.") for k in state):
        raise ValueError(f"{folder}: no MLM head (head.*) — a ModernBertModel without head cannot be imported")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return config, hf_to_megatron(state, config)


def import_hf(path: str | os.PathLike, **config_overrides):
    """Build a RexBERT model for this rank from a Hugging Face folder. Call after
    ``megatron_ext.parallel.init_parallel``; ``config_overrides`` set parallel sizes,
    ``transformer_impl``, dtype, …"""
    from rexbert.model.build import build_model
    from rexbert.model.parallel_state_dict import load_full_state_dict

    config, full = read_hf_folder(path)
    config = replace(config, **config_overrides)
    model = build_model(config)
    load_full_state_dict(model, full)
    return model
