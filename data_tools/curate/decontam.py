"""Decontamination against evaluation sets: a document sharing any word n-gram (n = 13 by
default, as in GPT-3's contamination analysis, Brown et al. 2020, App. C) with an evaluation
item is dropped as ``contaminated``. Words are lower-cased runs of letters and digits, so
case, punctuation and whitespace differences do not hide a match.

Evaluation sets are files given by path: ``.jsonl``/``.jsonl.gz`` (the string — or list of
strings — under each of ``eval_fields``), ``.tsv`` (a header row; the columns named in
``eval_fields``) or ``.txt`` (one item per line). An item shorter than n words cannot match and
is counted as ``short_items``; an unreadable line is counted and reported, never fatal.

    python -m data_tools.curate decontaminate SHARDS... -o OUT_DIR --set eval_paths=[heldout.jsonl]
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from .shards import BadLine, CurationError, Document, open_text, write_json_atomic

_WORD = re.compile(r"[^\W_]+")


@dataclass
class DecontamConfig:
    eval_paths: list[str] = field(default_factory=list)
    ngram: int = 13
    # jsonl keys or tsv column names whose text is an evaluation item (txt: the whole line).
    eval_fields: list[str] = field(default_factory=lambda: ["text"])
    text_field: str = "text"
    id_field: str = "id"

    def __post_init__(self) -> None:
        if self.ngram < 1:
            raise ValueError(f"decontam.ngram={self.ngram} must be >= 1")
        if not self.eval_fields:
            raise ValueError("decontam.eval_fields is empty")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> Iterator[str]:
    w = words(text)
    for i in range(len(w) - n + 1):
        yield " ".join(w[i:i + n])


def read_eval_items(path: Path, fields: list[str], bad: list[BadLine]) -> Iterator[str]:
    """The evaluation items of one file (see the module docstring for formats)."""
    name = path.name.lower()
    if not path.is_file():
        raise CurationError(f"decontam.eval_paths: {path}: no such file")
    if name.endswith(".txt"):
        with open(path, encoding="utf-8", errors="replace") as f:
            yield from (line.strip() for line in f if line.strip())
    elif name.endswith(".tsv"):
        yield from _tsv_items(path, fields, bad)
    elif name.endswith((".jsonl", ".jsonl.gz")):
        yield from _jsonl_items(path, fields, bad)
    else:
        raise CurationError(f"decontam.eval_paths: {path}: expected .jsonl, .jsonl.gz, .tsv or .txt")


def _jsonl_items(path: Path, fields: list[str], bad: list[BadLine]) -> Iterator[str]:
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                bad.append(BadLine(str(path), number, f"invalid json: {e.msg}"))
                continue
            values = [row.get(k) for k in fields] if isinstance(row, dict) else []
            texts = [t for v in values for t in (v if isinstance(v, list) else [v]) if isinstance(t, str)]
            if not texts:
                bad.append(BadLine(str(path), number, f"no string field among {fields}"))
            yield from texts


def _tsv_items(path: Path, fields: list[str], bad: list[BadLine]) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, [])
        columns = [header.index(k) for k in fields if k in header]
        if not columns:
            raise CurationError(f"{path}: header {header} has none of decontam.eval_fields={fields}")
        for number, row in enumerate(reader, 2):
            if len(row) != len(header):
                bad.append(BadLine(str(path), number, f"{len(row)} columns, header has {len(header)}"))
                continue
            yield from (row[c] for c in columns if row[c].strip())


class DecontamStep:
    """The n-grams of every evaluation item; ``step(doc)`` → doc or ``"contaminated"``.
    ``index_stats``: files, items, n-grams, short and bad lines."""

    def __init__(self, config: DecontamConfig) -> None:
        if not config.eval_paths:
            raise CurationError("decontam.eval_paths is empty: give the evaluation sets to decontaminate against")
        self.config = config
        self.ngrams: set[str] = set()
        self.bad: list[BadLine] = []
        items = short = 0
        for p in config.eval_paths:
            for item in read_eval_items(Path(p), config.eval_fields, self.bad):
                items += 1
                grams = list(ngrams(item, config.ngram))
                short += not grams
                self.ngrams.update(grams)
        for b in self.bad[:5]:
            print(f"[decontam] {b.file}:{b.line}: {b.error} (skipped)", file=sys.stderr)
        self.index_stats: dict[str, Any] = {
            "eval_paths": list(config.eval_paths), "ngram": config.ngram, "items": items, "short_items": short,
            "ngrams": len(self.ngrams), "bad_lines": len(self.bad),
            "bad_line_examples": [vars(b) for b in self.bad[:20]]}

    def __call__(self, doc: Document) -> "Document | str":
        grams = self.ngrams
        for gram in ngrams(doc[self.config.text_field], self.config.ngram):
            if gram in grams:
                return "contaminated"
        return doc


def make_decontam_step(config: DecontamConfig) -> DecontamStep:
    return DecontamStep(config)


def main(argv: Optional[list[str]] = None) -> int:
    """``decontaminate SHARDS... -o OUT_DIR --set eval_paths=[A,B] [ngram=13 eval_fields=[text]]``."""
    import argparse

    from .clean.config import apply_overrides
    from .shards import expand_inputs, run_stage

    parser = argparse.ArgumentParser(prog="python -m data_tools.curate decontaminate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="jsonl shards, directories or globs")
    parser.add_argument("-o", "--out-dir", type=Path, required=True)
    parser.add_argument("--eval", dest="eval_paths", nargs="*", default=[], help="evaluation files (added to "
                        "eval_paths)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="DecontamConfig overrides, e.g. ngram=8 eval_fields=[query,text]")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = apply_overrides(DecontamConfig(), args.overrides, prefix="decontam.")
        config.eval_paths = [*config.eval_paths, *args.eval_paths]
    except ValueError as e:
        print(f"[decontaminate] error: {e}", file=sys.stderr)
        return 2
    try:
        step = make_decontam_step(config)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out_dir / "decontaminate.index.json", step.index_stats)
        stats = run_stage("decontaminate", expand_inputs(args.inputs), args.out_dir, step,
                          text_field=config.text_field, id_field=config.id_field, progress=not args.no_progress)
    except CurationError as e:
        print(f"[decontaminate] error: {e}", file=sys.stderr)
        return 2
    dropped = sum(s["dropped"].get("contaminated", 0) for s in stats)
    print(f"[decontaminate] {dropped} contaminated of {sum(s['documents_in'] for s in stats)} documents "
          f"({step.index_stats['items']} eval items, {step.index_stats['ngrams']} {config.ngram}-grams) "
          f"→ {args.out_dir}", file=sys.stderr)
    return 0
