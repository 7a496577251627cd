"""CoNLL-format NER files and conlleval-style entity scores.

A file holds one token per line, whitespace-separated columns, the label in ``label_column``
(default: the last), a blank line between sentences; ``-DOCSTART-`` lines are skipped. Labels
are BIO: ``O``, ``B-TYPE`` or ``I-TYPE``. With ``scheme="iob2"`` an ``I-TYPE`` must continue a
``TYPE`` entity; ``scheme="iob1"`` (the original CoNLL-2003 files, where ``I-`` may open an
entity) is converted to IOB2 on reading.

Entities are scored like the CoNLL ``conlleval`` script: an entity is (type, first token,
end); it starts at ``B-X``, or at ``I-X`` after ``O`` or another type (so a model's invalid
``I-`` still counts as a start), and it is correct only if type and both boundaries match.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rexbert.eval.common import EvalError

SCHEMES = ("iob2", "iob1")
_TAG = re.compile(r"^(?:O|[BI]-\S+)$")


@dataclass
class Sentence:
    words: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # 1-based line of each word, for errors


def read_conll(path: str | Path, label_column: int = -1, token_column: int = 0,
               scheme: str = "iob2") -> list[Sentence]:
    """Sentences of a CoNLL file; a malformed line or tag is an EvalError naming file and line."""
    p = Path(path)
    if not p.is_file():
        raise EvalError(f"NER data file {p} does not exist")
    if scheme not in SCHEMES:
        raise EvalError(f"tag scheme {scheme!r}: choose one of {SCHEMES}")
    sentences: list[Sentence] = []
    current = Sentence()
    with open(p, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if current.words:
                    sentences.append(current)
                current = Sentence()
                continue
            try:
                word, tag = parts[token_column], parts[label_column]
            except IndexError:
                raise EvalError(f"{p}:{number}: has {len(parts)} column(s), needs token column {token_column} "
                                f"and label column {label_column}: {line.rstrip()!r}") from None
            if len(parts) < 2:
                raise EvalError(f"{p}:{number}: expected a token and a label, got {line.rstrip()!r}")
            if not _TAG.match(tag):
                raise EvalError(f"{p}:{number}: tag {tag!r} is not BIO (O, B-TYPE or I-TYPE)")
            current.words.append(word)
            current.tags.append(_to_iob2(current.tags, tag, scheme, p, number))
            current.lines.append(number)
    if current.words:
        sentences.append(current)
    if not sentences:
        raise EvalError(f"NER data file {p} holds no sentences")
    return sentences


def _to_iob2(previous: list[str], tag: str, scheme: str, path: Path, number: int) -> str:
    if not tag.startswith("I-"):
        return tag
    kind = tag[2:]
    if previous and previous[-1] in (f"B-{kind}", f"I-{kind}"):
        return tag
    if scheme == "iob1":
        return f"B-{kind}"
    after = previous[-1] if previous else "the sentence start"
    raise EvalError(f"{path}:{number}: tag {tag} follows {after}, which is not IOB2 "
                    f"(an I- tag must continue its entity; original CoNLL-2003 files need tag_scheme=iob1)")


def label_list(sentences: Sequence[Sentence]) -> list[str]:
    """The label set of a training file: O first, then B-/I- of each type, types sorted."""
    tags = {t for s in sentences for t in s.tags}
    return ["O"] + sorted(tags - {"O"}, key=lambda t: (t[2:], t[0]))


def check_labels(sentences: Sequence[Sentence], labels: Sequence[str], path: str | Path) -> None:
    """Every tag of a dev/test file must be in the training label set."""
    known = set(labels)
    for s in sentences:
        for tag, number in zip(s.tags, s.lines):
            if tag not in known:
                raise EvalError(f"{path}:{number}: tag {tag!r} is not in the training label set {list(labels)}")


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) of every entity of one sentence, conlleval-style (end exclusive)."""
    spans: list[tuple[str, int, int]] = []
    start, kind = None, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, name = tag.partition("-")
        if start is not None and (prefix != "I" or name != kind):
            spans.append((kind, start, i))
            start = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, kind = i, name
    return spans


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Micro precision/recall/F1 over exact entity matches, and the same per type."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    found: Counter = Counter()
    true: Counter = Counter()
    correct: Counter = Counter()
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        gold_spans, pred_spans = set(entities(g)), set(entities(p))
        true.update(s[0] for s in gold_spans)
        found.update(s[0] for s in pred_spans)
        correct.update(s[0] for s in gold_spans & pred_spans)
    scores = _prf(sum(correct.values()), sum(found.values()), sum(true.values()))
    scores["per_type"] = {k: {**_prf(correct[k], found[k], true[k]), "support": true[k]}
                          for k in sorted(set(true) | set(found))}
    scores.update(n_gold=sum(true.values()), n_predicted=sum(found.values()), n_correct=sum(correct.values()))
    return scores


def _prf(correct: int, found: int, true: int) -> dict[str, float]:
    precision = correct / found if found else 0.0
    recall = correct / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
