"""Tiny Hugging Face MLM folders for the evaluation tests: a real ModernBertForMaskedLM (random
weights, 2 layers × 32 wide) with the real ModernBERT tokenizer, saved like an export."""

from __future__ import annotations

import os
from pathlib import Path

# Real product text for the evaluation tests (tests may read ../shared; the user path never does).
# REXBERT_SHARED_DIR points elsewhere when the checkout does not sit beside shared/.
SHARED = Path(os.environ.get("REXBERT_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
ABT = SHARED / "data" / "ecommerce" / "abt_products.csv"


def abt_path() -> Path:
    """The Abt-Buy products CSV, or skip the test where this checkout has no ../shared."""
    import pytest

    if not ABT.is_file():
        pytest.skip(f"{ABT} not available")
    return ABT


def tiny_mlm_folder(path: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    import torch
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    from rexbert.tokenizer import load_tokenizer

    tok = load_tokenizer(None)
    torch.manual_seed(seed)
    config = ModernBertConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                              num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=1024,
                              pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id,
                              eos_token_id=tok.sep_token_id, cls_token_id=tok.cls_token_id,
                              sep_token_id=tok.sep_token_id, global_attn_every_n_layers=2, local_attention=16)
    model = ModernBertForMaskedLM(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
