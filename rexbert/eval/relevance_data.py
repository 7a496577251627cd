"""Graded query–product pairs for the relevance evaluation, from three sources:

* ESCI (Amazon Shopping Queries) parquet: the examples file joined with the products file on
  (product_id, product_locale); one locale (``us`` = English), the small or large version, the
  official ``split`` column. Grades E=1.0, S=0.66, C=0.33, I=0.0 (``ESCI_GRADES``).
* WANDS (Wayfair) folder in its released layout: ``query.csv``, ``product.csv``, ``label.csv``,
  tab-separated despite the name. Grades Exact=1.0, Partial=0.5, Irrelevant=0.0
  (``WANDS_GRADES``: WANDS' own gains 2/1/0 scaled to [0, 1]). WANDS has no split: queries are
  split (``split_by_query``).
* A plain TSV (``.csv``: comma-separated) with columns ``query``, ``product_text``, ``grade``:
  ``grade`` is a label mapped by a given label set, or a number when no label set is given.

Product text is ``title + " " + description`` with HTML tags removed; the model's tokenizer
truncates it to the context. A grade outside the label set raises ``EvalError`` naming the
file, the line (the example_id for parquet) and the value.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

import numpy as np

from rexbert.eval.common import EvalError

ESCI_GRADES = {"E": 1.0, "S": 0.66, "C": 0.33, "I": 0.0}
WANDS_GRADES = {"Exact": 1.0, "Partial": 0.5, "Irrelevant": 0.0}
ESCI_EXAMPLES = "shopping_queries_dataset_examples.parquet"
ESCI_PRODUCTS = "shopping_queries_dataset_products.parquet"
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class GradedPair:
    query: str
    text: str
    grade: float


def product_text(title: Optional[str], description: Optional[str]) -> str:
    parts = [_TAG.sub(" ", s or "").strip() for s in (title, description)]
    return " ".join(" ".join(p.split()) for p in parts if p)


def grade_of(value: object, labels: Optional[Mapping[str, float]], where: str) -> float:
    """The grade of a label (``labels`` given) or of a numeric value; ``where`` is "file:line"."""
    if labels:
        key = str(value).strip()
        if key not in labels:
            raise EvalError(f"{where}: grade {value!r} is not in the label set {sorted(labels)}")
        return float(labels[key])
    try:
        grade = float(str(value).strip())
    except ValueError:
        grade = float("nan")
    if math.isnan(grade):
        raise EvalError(f"{where}: grade {value!r} is not a number (give a label set to map labels)")
    return grade


def read_delimited(path: Path, columns: Sequence[str], delimiter: str = "\t") -> Iterator[tuple[int, dict]]:
    """(line number, row) of a delimited file with a header; missing columns raise EvalError."""
    if not path.is_file():
        raise EvalError(f"data file {path} does not exist")
    csv.field_size_limit(sys.maxsize)  # WANDS product descriptions exceed csv's default 128 KiB
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise EvalError(f"data file {path} has no column(s) {missing}; it has {reader.fieldnames}")
        for row in reader:
            yield reader.line_num, row


def load_graded_tsv(path: str | Path, labels: Optional[Mapping[str, float]] = None) -> list[GradedPair]:
    p = Path(path)
    delimiter = "," if p.suffix.lower() == ".csv" else "\t"
    pairs = []
    for line, row in read_delimited(p, ("query", "product_text", "grade"), delimiter):
        pairs.append(GradedPair(row["query"], row["product_text"], grade_of(row["grade"], labels, f"{p}:{line}")))
    if not pairs:
        raise EvalError(f"data file {p} has no rows")
    return pairs


def load_wands(folder: str | Path, labels: Mapping[str, float] = WANDS_GRADES) -> list[GradedPair]:
    root = Path(folder)
    if not root.is_dir():
        raise EvalError(f"WANDS folder {root} does not exist (expected query.csv, product.csv, label.csv)")
    # The released repository keeps the files under dataset/.
    if not (root / "label.csv").is_file() and (root / "dataset" / "label.csv").is_file():
        root = root / "dataset"
    queries = {r["query_id"]: r["query"] for _, r in read_delimited(root / "query.csv", ("query_id", "query"))}
    products = {r["product_id"]: product_text(r["product_name"], r.get("product_description"))
                for _, r in read_delimited(root / "product.csv", ("product_id", "product_name"))}
    pairs = []
    label_file = root / "label.csv"
    for line, row in read_delimited(label_file, ("query_id", "product_id", "label")):
        where = f"{label_file}:{line}"
        grade = grade_of(row["label"], labels, where)
        if row["query_id"] not in queries or row["product_id"] not in products:
            raise EvalError(f"{where}: query_id {row['query_id']!r} or product_id {row['product_id']!r} "
                            "is not in query.csv / product.csv")
        pairs.append(GradedPair(queries[row["query_id"]], products[row["product_id"]], grade))
    return pairs


def load_esci(examples: str | Path, products: Optional[str | Path] = None, split: str = "train",
              locale: str = "us", version: str = "small",
              labels: Mapping[str, float] = ESCI_GRADES) -> list[GradedPair]:
    """One split of ESCI; ``examples`` is the examples parquet or the folder holding both files."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ex_path = Path(examples)
    if ex_path.is_dir():
        ex_path = ex_path / ESCI_EXAMPLES
    prod_path = Path(products) if products else ex_path.parent / ESCI_PRODUCTS
    if version not in ("small", "large"):
        raise EvalError(f"ESCI version must be 'small' or 'large', got {version!r}")
    version_column = f"{version}_version"
    ex_columns = ["example_id", "query", "product_id", "product_locale", "esci_label", version_column, "split"]
    table = pq.read_table(_parquet(ex_path, ex_columns), columns=ex_columns)
    keep = pc.and_(pc.and_(pc.equal(table["product_locale"], locale), pc.equal(table[version_column], 1)),
                   pc.equal(table["split"], split))
    table = table.filter(keep)
    rows = table.to_pylist()
    if not rows:
        raise EvalError(f"{ex_path}: no rows with product_locale={locale!r}, {version_column}=1, split={split!r}")
    prod_columns = ["product_id", "product_title", "product_description", "product_locale"]
    ptable = pq.read_table(_parquet(prod_path, prod_columns), columns=prod_columns)
    wanted = pc.is_in(ptable["product_id"], value_set=table["product_id"].unique())
    ptable = ptable.filter(pc.and_(pc.equal(ptable["product_locale"], locale), wanted))
    texts = {r["product_id"]: product_text(r["product_title"], r["product_description"]) for r in ptable.to_pylist()}
    pairs = []
    for r in rows:
        grade = grade_of(r["esci_label"], labels, f"{ex_path}: example_id {r['example_id']}")
        if r["product_id"] not in texts:
            raise EvalError(f"{ex_path}: example_id {r['example_id']}: product {r['product_id']!r} "
                            f"(locale {locale}) is not in {prod_path}")
        pairs.append(GradedPair(r["query"], texts[r["product_id"]], grade))
    return pairs


def _parquet(path: Path, columns: Sequence[str]) -> Path:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise EvalError(f"data file {path} does not exist")
    have = pq.read_schema(path).names
    missing = [c for c in columns if c not in have]
    if missing:
        raise EvalError(f"data file {path} has no column(s) {missing}; it has {have}")
    return path


def split_by_query(pairs: Sequence[GradedPair], test_fraction: float, seed: int
                   ) -> tuple[list[GradedPair], list[GradedPair]]:
    """(train, test) with every query's pairs on one side: a seeded permutation of the distinct
    queries (in first-seen order), the first ``round(test_fraction * n)`` of it going to test."""
    queries = list(dict.fromkeys(p.query for p in pairs))
    if len(queries) < 2:
        raise EvalError(f"need at least 2 distinct queries to split, got {len(queries)}")
    order = np.random.default_rng(seed).permutation(len(queries))
    num_test = min(max(1, round(test_fraction * len(queries))), len(queries) - 1)
    test_queries = {queries[i] for i in order[:num_test]}
    return [p for p in pairs if p.query not in test_queries], [p for p in pairs if p.query in test_queries]


def subsample(pairs: Sequence[GradedPair], limit: Optional[int], seed: int) -> list[GradedPair]:
    """At most ``limit`` pairs, a seeded choice kept in file order."""
    if not limit or len(pairs) <= limit:
        return list(pairs)
    chosen = np.sort(np.random.default_rng(seed).choice(len(pairs), size=limit, replace=False))
    return [pairs[i] for i in chosen]
