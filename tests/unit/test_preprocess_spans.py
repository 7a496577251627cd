"""Span side file: character spans → merged token spans aligned with the documents."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from megatron.core.datasets.indexed_dataset import IndexedDataset

from data_tools.preprocess import main
from data_tools.preprocess.spans import BadSpans, parse_char_spans, token_spans


@pytest.fixture(scope="module")
def tokenizer():
    from rexbert.tokenizer import load_tokenizer

    return load_tokenizer(None)


def reference_token_spans(offsets, spans) -> list[tuple[int, int]]:
    """The documented rule, written plainly: overlap, then merge overlapping/adjacent runs."""
    covered = sorted({t for s, e in spans for t, (a, b) in enumerate(offsets) if a < e and b > s})
    runs: list[list[int]] = []
    for t in covered:
        if runs and runs[-1][1] == t:
            runs[-1][1] = t + 1
        else:
            runs.append([t, t + 1])
    return [tuple(r) for r in runs]


def test_token_spans_rule():
    offsets = [(0, 3), (3, 8), (8, 9), (9, 15), (15, 20)]
    assert token_spans(offsets, [(4, 5)]).tolist() == [1, 2]  # inside one token
    assert token_spans(offsets, [(3, 8)]).tolist() == [1, 2]  # exact token boundaries
    assert token_spans(offsets, [(2, 4)]).tolist() == [0, 2]  # straddles two tokens
    assert token_spans(offsets, [(16, 17), (0, 1)]).tolist() == [0, 1, 4, 5]  # sorted
    assert token_spans(offsets, [(0, 2), (4, 5)]).tolist() == [0, 2]  # adjacent: merged
    assert token_spans(offsets, [(0, 9), (5, 12)]).tolist() == [0, 4]  # overlapping: merged
    assert token_spans(offsets, []).dtype == np.int32


@pytest.mark.parametrize(
    "value",
    [[[1]], [[1, 2, 3]], [["a", 2]], [[3, 3]], [[4, 2]], [[-1, 2]], [[0, 99]], {"a": 1},
     [[True, 2]], "not json"],
)
def test_bad_spans_are_rejected(value):
    with pytest.raises(BadSpans):
        parse_char_spans(value, text_len=10)


def test_spans_round_trip(tmp_path, tokenizer):
    rng = np.random.default_rng(0)
    docs = [
        {"title": "Stainless steel water bottle", "body": "Keeps drinks cold for 24 hours.",
         "spans": [[0, 9], [10, 15], [29, 40]]},
        {"title": "Café crème mug", "body": "日本製 ceramic, 350 ml", "spans": []},
        {"title": "No spans here", "body": "plain text"},
        {"title": "Bad", "body": "spans", "spans": [[5, 2]]},
        {"title": "Wool socks", "body": "Merino, size 42", "spans": [[11, 17], [0, 4], [2, 8]]},
    ]
    for i in range(40):  # random spans over real-ish text
        text = f"Product {i}: cotton t-shirt, colour {i % 7}, ünïcode size {i * 3}"
        title, body = text[:12], text[12:]
        n = len(title) + 1 + len(body)
        spans = [sorted(rng.choice(n + 1, size=2, replace=False).tolist()) for _ in range(3)]
        docs.append({"title": title, "body": body, "spans": spans})
    path = tmp_path / "spans.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    out = tmp_path / "out"
    argv = [str(path), "-o", str(out), "--fields", "title", "body", "--spans-field", "spans",
            "--no-progress", "--workers", "2"]
    assert main(argv) == 0
    ids, spans = IndexedDataset(str(out / "spans")), IndexedDataset(str(out / "spans_spans"))
    kept = [d for d in docs if d["title"] != "Bad"]
    assert len(ids) == len(spans) == len(kept)
    assert spans.index.dtype == np.int32
    for i, d in enumerate(kept):
        text = d["title"] + "\n" + d["body"]
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        assert ids[i].tolist() == enc["input_ids"]
        want = reference_token_spans(enc["offset_mapping"], d.get("spans", []))
        got = spans[i].tolist()
        assert list(zip(got[::2], got[1::2])) == want, text
    assert spans[2].size == 0  # "No spans here": empty entry
    # "Wool socks": [0,4) ∪ [2,8) ∪ [11,17) → the words "Wool", "socks", "Merino"
    wool = spans[3].tolist()
    pieces = [tokenizer.decode(ids[3][s:e]) for s, e in zip(wool[::2], wool[1::2])]
    assert [p.strip() for p in pieces] == ["Wool socks", "Merino"]
    rejects = [json.loads(x) for x in (out / "spans.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(4, "bad_spans")]
