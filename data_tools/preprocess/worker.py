"""Worker side: turn a chunk of raw lines/rows into token ids (and token spans) plus rejects.

Imported by the pool processes; deliberately free of megatron/transformers imports. The
tokenizer travels as its JSON string and is rebuilt once per process.
"""

from __future__ import annotations

import json
from itertools import chain
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from .inputs import Chunk, LineChunk, Rejected
from .spans import BadSpans, parse_char_spans, token_spans

_DETAIL_CHARS = 200  # keep rejects files readable


@dataclass(frozen=True)
class WorkerConfig:
    tokenizer_json: str
    fields: tuple[str, ...]
    join: str
    spans_field: str | None
    dtype: str  # numpy dtype name of the stored ids


@dataclass
class ChunkResult:
    tokens: np.ndarray  # all documents' ids, concatenated
    lengths: np.ndarray  # int64, one per document
    span_tokens: np.ndarray | None  # int32 flat token spans, concatenated
    span_lengths: np.ndarray | None  # int64, one per document (even numbers)
    rejects: list[tuple[int, str, str]]  # (line, reason, detail), in line order
    lines: int
    blank_lines: int


_state: tuple[WorkerConfig, Tokenizer] | None = None


def init_worker(config: WorkerConfig) -> None:
    """Pool initializer (also called in-process when workers == 1)."""
    global _state
    tok = Tokenizer.from_str(config.tokenizer_json)
    tok.no_truncation()  # stored documents are whole; packing cuts them later
    tok.no_padding()
    _state = (config, tok)


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail[:_DETAIL_CHARS]


def _record_from_line(raw: bytes) -> dict[str, Any]:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Reject("invalid_utf8", f"byte {exc.start}: {exc.reason}") from None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _Reject("invalid_json", f"{exc.msg} at column {exc.colno}") from None
    if not isinstance(record, dict):
        raise _Reject("invalid_json", f"a JSON {type(record).__name__}, not an object")
    return record


def _text_of(record: dict[str, Any], config: WorkerConfig) -> str:
    parts = []
    for name in config.fields:
        value = record.get(name)
        if value is None:
            raise _Reject("missing_field", f"no field '{name}'")
        if isinstance(value, bytes):  # parquet binary columns
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _Reject("invalid_utf8", f"field '{name}' byte {exc.start}") from None
        if not isinstance(value, str):
            raise _Reject("missing_field", f"field '{name}' is {type(value).__name__}, not text")
        parts.append(value)
    text = config.join.join(parts)
    if not text.strip():
        raise _Reject("empty_text", "text is empty or whitespace")
    if not text.isascii():
        try:
            text.encode("utf-8")  # lone surrogates: "\ud800" escapes, csv's undecodable bytes
        except UnicodeEncodeError as exc:
            raise _Reject("invalid_utf8", f"character {exc.start} is not valid Unicode") from None
    return text


def process_chunk(chunk: Chunk) -> ChunkResult:
    assert _state is not None, "init_worker was not called"
    config, tok = _state
    texts: list[str] = []
    char_spans: list[list[tuple[int, int]]] = []
    rejects: list[tuple[int, str, str]] = []
    blank = 0
    if isinstance(chunk, LineChunk):
        items = enumerate(chunk.lines, start=chunk.first_line)
    else:
        items = iter(chunk.records)
    n_items = 0
    for line_no, item in items:
        n_items += 1
        try:
            if isinstance(item, bytes):
                if not item.strip():
                    blank += 1
                    continue
                item = _record_from_line(item)
            if isinstance(item, Rejected):
                raise _Reject(item.reason, item.detail)
            text = _text_of(item, config)
            if config.spans_field is not None:
                try:
                    char_spans.append(parse_char_spans(item.get(config.spans_field), len(text)))
                except BadSpans as exc:
                    raise _Reject("bad_spans", str(exc)) from None
            texts.append(text)
        except _Reject as rej:
            rejects.append((line_no, rej.reason, rej.detail))
    # encode_batch_fast skips character offsets (~30% faster); spans need them.
    fast = config.spans_field is None and hasattr(tok, "encode_batch_fast")
    encode = tok.encode_batch_fast if fast else tok.encode_batch
    encodings = encode(texts, add_special_tokens=False)
    ids = [e.ids for e in encodings]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    tokens = np.fromiter(chain.from_iterable(ids), dtype=config.dtype, count=int(lengths.sum()))
    span_tokens = span_lengths = None
    if config.spans_field is not None:
        per_doc = [token_spans(e.offsets, s) for e, s in zip(encodings, char_spans)]
        span_lengths = np.fromiter(map(len, per_doc), dtype=np.int64, count=len(per_doc))
        span_tokens = np.concatenate(per_doc) if per_doc else np.zeros(0, dtype=np.int32)
    return ChunkResult(tokens, lengths, span_tokens, span_lengths, rejects, n_items, blank)
