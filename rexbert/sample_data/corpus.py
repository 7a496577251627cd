"""The shipped samples as a training corpus: general text (Hamlet) and product text (Abt-Buy,
every 10th product held out), preprocessed to Megatron .bin/.idx with brand/model-number spans
for Guided MLM. Used by the main job (``rexbert.demo``) and the experiments
(``rexbert experiment``), so both train and evaluate on the same split.

Layout under ``out``::

    raw/{general,products,products_heldout}.jsonl   # {"id", "text", "spans"}
    data/{general,products,products_heldout}.{bin,idx}
    products_heldout_pairs.tsv                      # title → rest of the product text
    corpus.complete.json                            # written last: the corpus is whole
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

HELDOUT_EVERY = 10  # product i is held out when i % HELDOUT_EVERY == 0
COMPLETE = "corpus.complete.json"


@dataclass(frozen=True)
class SampleCorpus:
    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def general(self) -> Path:  # Megatron dataset prefix
        return self.data_dir / "general"

    @property
    def products(self) -> Path:
        return self.data_dir / "products"

    @property
    def heldout(self) -> Path:
        return self.data_dir / "products_heldout"

    @property
    def heldout_texts(self) -> Path:  # JSONL with a "text" field
        return self.root / "raw" / "products_heldout.jsonl"

    @property
    def heldout_pairs(self) -> Path:  # TSV: query (title), document (the rest)
        return self.root / "products_heldout_pairs.tsv"


def brand_and_model_spans(title: str) -> list[list[int]]:
    """Cheap stand-in for the span miner (#7): the brand (first word) and the model code
    after the last " - " of a product title, as character offsets."""
    spans = []
    first = re.match(r"\S+", title)
    if first:
        spans.append([first.start(), first.end()])
    code = re.search(r" - ([A-Za-z0-9][\w/.-]*)\s*$", title)
    if code and code.start(1) > (first.end() if first else 0):
        spans.append([code.start(1), code.end(1)])
    return spans


def title_and_rest(text: str) -> tuple[str, str]:
    """An Abt product's "TITLE. DESCRIPTION", where the description often repeats the title:
    the title, and the description without that repetition."""
    title, _, rest = text.partition(". ")
    rest = rest[len(title):].lstrip(" /.-") if rest.startswith(title) else rest
    return title.strip(), rest.strip()


def write_raw_corpus(raw: Path) -> list[str]:
    """The three raw JSONL files; returns the held-out product texts."""
    from rexbert.sample_data import load_sample

    raw.mkdir(parents=True, exist_ok=True)
    heldout_texts = []
    with open(raw / "products.jsonl", "w") as train, open(raw / "products_heldout.jsonl", "w") as held:
        for i, record in enumerate(load_sample("products")):
            title = record["text"].split(". ")[0]
            row = {"id": record["id"], "text": record["text"], "spans": brand_and_model_spans(title)}
            (held if i % HELDOUT_EVERY == 0 else train).write(json.dumps(row) + "\n")
            if i % HELDOUT_EVERY == 0:
                heldout_texts.append(record["text"])
    with open(raw / "general.jsonl", "w") as f:
        for record in load_sample("general"):
            f.write(json.dumps({"id": record["id"], "text": record["text"], "spans": []}) + "\n")
    return heldout_texts


def write_pairs(texts: list[str], path: Path) -> Path:
    """Query–document pairs for retrieval: each held-out product's title → the rest of its text."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["query", "document"])
        for text in texts:
            title, rest = title_and_rest(text)
            if title and len(rest.split()) >= 3:
                writer.writerow([title, rest])
    tmp.replace(path)
    return path


def prepare_sample_corpus(out: Path, workers: int = 2, force: bool = False) -> SampleCorpus:
    """Write and preprocess the corpus under ``out`` (skipped when already complete)."""
    corpus = SampleCorpus(Path(out).resolve())
    marker = corpus.root / COMPLETE
    if marker.is_file() and not force:
        return corpus
    marker.unlink(missing_ok=True)
    heldout = write_raw_corpus(corpus.root / "raw")
    from data_tools.preprocess.cli import main as preprocess

    code = preprocess([str(p) for p in sorted((corpus.root / "raw").glob("*.jsonl"))]
                      + ["-o", str(corpus.data_dir), "--fields", "text", "--spans-field", "spans",
                         "--workers", str(workers), "--no-progress", "--overwrite"])
    if code:
        raise SystemExit(f"preprocessing the sample corpus into {corpus.data_dir} failed with exit code {code}")
    write_pairs(heldout, corpus.heldout_pairs)
    marker.write_text(json.dumps({"heldout_every": HELDOUT_EVERY, "heldout_documents": len(heldout)}) + "\n")
    return corpus
