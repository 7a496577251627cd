"""ModernBERT's tokenizer, built offline from the OLMo BPE file shipped in this package.

ModernBERT = OLMo's GPT-NeoX BPE (ids 0..50279) plus five BERT special tokens and 83
unused slots, so the vocabulary (50,368) divides by 64 for tensor-parallel embedding
splits. Building it here, rather than downloading `answerdotai/ModernBERT-base`, keeps
tests and the demo offline; on a cluster `load_tokenizer(path)` takes any HF tokenizer.
"""

from __future__ import annotations

import os
from pathlib import Path

from tokenizers import AddedToken, Tokenizer
from tokenizers.processors import TemplateProcessing
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

__all__ = [
    "BPE_FILE",
    "BPE_SIZE",
    "CLS_ID",
    "MASK_ID",
    "MAX_LENGTH",
    "NUM_UNUSED",
    "PAD_ID",
    "SEP_ID",
    "UNK_ID",
    "VOCAB_SIZE",
    "build_modernbert_tokenizer",
    "load_tokenizer",
]

BPE_FILE = Path(__file__).with_name("allenai_gpt-neox-olmo-dolma-v1_5.json")
BPE_SIZE = 50280  # ids of the OLMo BPE file, its own added tokens included
UNK_ID, CLS_ID, SEP_ID, PAD_ID, MASK_ID = range(BPE_SIZE, BPE_SIZE + 5)
NUM_UNUSED = 83
VOCAB_SIZE = BPE_SIZE + 5 + NUM_UNUSED  # 50368
MAX_LENGTH = 8192

# Order matters: ids are assigned in this order after the BPE ids.
_SPECIALS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")


def _special(content: str) -> AddedToken:
    # ModernBERT's [MASK] eats the space to its left, so "is [MASK]." puts the mask where
    # " Paris" would be (one token) instead of leaving a stray " " token before it.
    return AddedToken(
        content, lstrip=content == "[MASK]", rstrip=False, normalized=False, special=True
    )


def build_modernbert_tokenizer() -> PreTrainedTokenizerFast:
    """Return ModernBERT's tokenizer (vocab 50,368), built from the packaged BPE file."""
    tok = Tokenizer.from_file(str(BPE_FILE))
    if tok.get_vocab_size(with_added_tokens=True) != BPE_SIZE:
        raise RuntimeError(f"{BPE_FILE} has an unexpected vocabulary size")
    tok.add_special_tokens([_special(t) for t in _SPECIALS])
    tok.add_tokens(
        [AddedToken(f"[unused{i}]", normalized=True, special=False) for i in range(NUM_UNUSED)]
    )
    tok.post_processor = TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)],
    )
    if (
        tok.get_vocab_size(with_added_tokens=True) != VOCAB_SIZE
        or tok.token_to_id("[MASK]") != MASK_ID
    ):
        raise RuntimeError("special tokens did not land on ModernBERT's ids")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=_special("[UNK]"),
        cls_token=_special("[CLS]"),
        sep_token=_special("[SEP]"),
        pad_token=_special("[PAD]"),
        mask_token=_special("[MASK]"),
        model_max_length=MAX_LENGTH,
        padding_side="right",
        truncation_side="right",
        model_input_names=["input_ids", "attention_mask"],
        # Lossless decode: the BPE is byte-level, so "cleanup" would only damage
        # text such as "10 ." in product titles.
        clean_up_tokenization_spaces=False,
    )


def load_tokenizer(path: str | os.PathLike[str] | None = None) -> PreTrainedTokenizerBase:
    """ModernBERT's tokenizer when `path` is None, else the HF tokenizer saved at `path`.

    Never downloads: a hub id or missing directory fails with the path in the message.
    """
    if path is None:
        return build_modernbert_tokenizer()
    if not Path(path).exists():
        raise FileNotFoundError(
            f"tokenizer path {os.fspath(path)!r} does not exist; pass a directory written by "
            "save_pretrained(), or None for the built-in ModernBERT tokenizer"
        )
    try:
        return AutoTokenizer.from_pretrained(os.fspath(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise OSError(f"could not load a tokenizer from {os.fspath(path)!r}: {err}") from err
