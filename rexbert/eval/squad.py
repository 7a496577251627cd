"""SQuAD v1.1 files and the official metrics.

A file is ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}, ...]}]}]}]}``; every answer must sit at its
``answer_start`` in the context (else an EvalError naming the question id). Unanswerable
(SQuAD v2) questions are refused.

Exact match and F1 follow the official v1.1 ``evaluate-v1.1.py``: answers are normalised
(lower case, punctuation and the articles a/an/the removed, whitespace collapsed), F1 is over
bag-of-tokens overlap, and each question takes its best score over the gold answers. Scores
here are fractions (×100 for SQuAD's usual percentages).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from rexbert.eval.common import EvalError

_PUNCTUATION = frozenset(string.punctuation)


@dataclass
class QaExample:
    id: str
    question: str
    context: str
    answers: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # character offsets in context
    title: str = ""


def read_squad(path: str | Path) -> list[QaExample]:
    p = Path(path)
    if not p.is_file():
        raise EvalError(f"QA data file {p} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise EvalError(f"{p}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise EvalError(f"{p}: not SQuAD format (needs a top-level 'data' list of articles)")
    examples: list[QaExample] = []
    seen: set[str] = set()
    for a, article in enumerate(data["data"]):
        title = str(article.get("title", "")) if isinstance(article, dict) else ""
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise EvalError(f"{p}: article {a} ({title!r}) has no 'paragraphs' list")
        for g, paragraph in enumerate(article["paragraphs"]):
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str) \
                    or not isinstance(paragraph.get("qas"), list):
                raise EvalError(f"{p}: article {a} ({title!r}) paragraph {g} needs a 'context' string "
                                f"and a 'qas' list")
            for q in paragraph["qas"]:
                example = _question(p, q, paragraph["context"], title)
                if example.id in seen:
                    raise EvalError(f"{p}: question id {example.id!r} occurs twice")
                seen.add(example.id)
                examples.append(example)
    if not examples:
        raise EvalError(f"QA data file {p} holds no questions")
    return examples


def _question(p: Path, q: object, context: str, title: str) -> QaExample:
    if not isinstance(q, dict) or "id" not in q:
        raise EvalError(f"{p}: a question in {title!r} has no 'id'")
    qid = str(q["id"])
    if not isinstance(q.get("question"), str):
        raise EvalError(f"{p}: question {qid}: no 'question' string")
    answers = q.get("answers")
    if q.get("is_impossible") or not isinstance(answers, list) or not answers:
        raise EvalError(f"{p}: question {qid}: no answers (SQuAD v2 unanswerable questions are not supported)")
    example = QaExample(qid, q["question"], context, title=title)
    for answer in answers:
        text, start = (answer.get("text"), answer.get("answer_start")) if isinstance(answer, dict) else (None, None)
        if not isinstance(text, str) or not text or not isinstance(start, int) or isinstance(start, bool):
            raise EvalError(f"{p}: question {qid}: every answer needs a non-empty 'text' and an integer "
                            f"'answer_start', got {answer!r}")
        if context[start:start + len(text)] != text:
            raise EvalError(f"{p}: question {qid}: answer {text!r} is not at answer_start {start} of its context "
                            f"(the context has {context[start:start + len(text)]!r} there)")
        example.answers.append(text)
        example.starts.append(start)
    return example


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD v1.1)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truths: Sequence[str]) -> float:
    return max(float(normalize_answer(prediction) == normalize_answer(t)) for t in truths)


def token_f1(prediction: str, truths: Sequence[str]) -> float:
    return max(_f1(normalize_answer(prediction).split(), normalize_answer(t).split()) for t in truths)


def _f1(predicted: list[str], truth: list[str]) -> float:
    same = sum((Counter(predicted) & Counter(truth)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Mapping[str, str], examples: Sequence[QaExample]) -> dict[str, float]:
    """Mean exact match and F1 over ``examples`` (a missing prediction scores 0, as officially)."""
    em = f1 = 0.0
    for ex in examples:
        if ex.id in predictions:
            em += exact_match(predictions[ex.id], ex.answers)
            f1 += token_f1(predictions[ex.id], ex.answers)
    n = max(len(examples), 1)
    return {"exact_match": em / n, "f1": f1 / n}
