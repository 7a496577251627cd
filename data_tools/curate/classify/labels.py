"""Reading the labeller's ``labels.jsonl`` (rows: id, domain, text, label) into usable items.

A row that cannot be used (invalid json, not an object, no string text or domain, text empty
after normalisation, a label other than ``relevant``/``not_relevant``) is counted by reason,
with its file and line, and skipped. Repeats are skipped too: a second row with an id already
seen, or with the same normalised text in the same domain (it would leak between the
training and validation parts and inflate the metrics); the first row wins.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..select import normalise_domain
from ..shards import CurationError, open_text
from .text import normalise

LABELS = ("relevant", "not_relevant")
MAX_EXAMPLES = 10


@dataclass
class Item:
    id: str
    domain: str
    text: str  # normalised
    relevant: bool


@dataclass
class RowReport:
    file: str
    rows: int = 0
    usable: int = 0
    bad: Counter = field(default_factory=Counter)
    duplicates: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def skip(self, counter: Counter, line: int, reason: str, detail: str = "") -> None:
        counter[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{self.file}:{line}: {reason}{': ' + detail if detail else ''}")

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "usable": self.usable, "bad": sum(self.bad.values()),
                "bad_by_reason": dict(sorted(self.bad.items())), "duplicates": dict(sorted(self.duplicates.items())),
                "examples": self.examples}


def read_labels(path: Path) -> tuple[list[Item], RowReport]:
    if not path.is_file():
        raise CurationError(f"{path}: no such labels file")
    report = RowReport(str(path))
    items: list[Item] = []
    ids: set[str] = set()
    texts: set[tuple[str, str]] = set()
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            report.rows += 1
            item = _parse(line, number, report)
            if item is None:
                continue
            if item.id in ids:
                report.skip(report.duplicates, number, "duplicate_id", item.id)
                continue
            if (item.domain, item.text) in texts:
                report.skip(report.duplicates, number, "duplicate_text", f"id {item.id}")
                continue
            ids.add(item.id)
            texts.add((item.domain, item.text))
            items.append(item)
    report.usable = len(items)
    return items, report


def _parse(line: str, number: int, report: RowReport) -> Item | None:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        report.skip(report.bad, number, "invalid_json", e.msg)
        return None
    if not isinstance(row, dict):
        report.skip(report.bad, number, "not_an_object")
        return None
    for key in ("text", "domain"):
        if not isinstance(row.get(key), str):
            report.skip(report.bad, number, f"no_{key}", f"field '{key}' missing or not a string")
            return None
    label = row.get("label")
    if label not in LABELS:
        report.skip(report.bad, number, "unknown_label", f"{label!r} is not one of {LABELS}")
        return None
    text = normalise(row["text"])
    domain = normalise_domain(row["domain"])
    if not text or not domain:
        report.skip(report.bad, number, "empty_text" if not text else "no_domain")
        return None
    doc_id = row.get("id")
    return Item(str(doc_id) if doc_id is not None else f"{Path(report.file).name}:{number}", domain, text,
                label == "relevant")
