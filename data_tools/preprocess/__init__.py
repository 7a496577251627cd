"""Tokenise text corpora into megatron-core indexed datasets (.bin/.idx).

    python -m data_tools.preprocess INPUT... -o OUT_DIR [--fields title description]
        [--join '\\n'] [--spans-field spans] [--tokenizer PATH] [--workers N] [--overwrite]
    python -m data_tools.preprocess merge -o OUT_PREFIX PREFIX...

Inputs: .jsonl, .jsonl.gz, .parquet, .csv files or globs. A document's text is its `--fields`
joined verbatim by `--join`. Token ids are stored WITHOUT special tokens — exactly
`tokenizer(text, add_special_tokens=False)["input_ids"]`; the packer adds [CLS]/[SEP].

Per input `<stem>.<ext>`, in OUT_DIR:
  <stem>.bin / .idx        megatron IndexedDataset, one document (one sequence) per entry,
                           dtype `DType.optimal_dtype(vocab)` (uint16 for ModernBERT)
  <stem>_spans.bin / .idx  with --spans-field: int32 IndexedDataset aligned 1:1 with the
                           documents (schema below)
  <stem>.rejects.jsonl     {"file", "line", "reason", "detail"} per rejected line; reasons:
                           invalid_utf8, invalid_json, missing_field, empty_text, bad_spans,
                           invalid_csv
  <stem>.stats.json        documents, tokens, power-of-two length histogram, rejects by reason
  <stem>.done.json         written last: provenance (input path/size/mtime, fields, join,
                           spans field, tokenizer name/sha256/vocab, dtype) + stats
  stats.json               the stats of every input of the run, and their total

Span side file schema: the spans field holds `[[char_start, char_end], ...]` — half-open
character offsets into the joined text (a JSON string of that list in csv cells; missing,
null or [] = no spans). Entry i of `<stem>_spans` is a flat int32 array
`[s0, e0, s1, e1, ...]` of token indices into document i's stored ids (0-based, end
exclusive), sorted, overlapping or adjacent ranges merged. Token t belongs to a span when its
character range overlaps it: `tok_start < span_end and tok_end > span_start` (the tokenizer's
offsets). A document without spans has an empty entry. Invalid spans (not int pairs,
end <= start, outside the text) reject the line as `bad_spans`.

Restartability: every file is written as `.<name>.partial` and renamed when complete, the done
marker last; a rerun skips inputs whose marker matches and redoes the rest, giving the same
bytes. Outputs without a matching marker are never replaced unless --overwrite.
Output bytes do not depend on --workers.
"""

from .cli import main

__all__ = ["main"]
