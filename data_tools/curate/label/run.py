"""The labelling stage: every document of the input shards gets one relevance label.

Labels come from the cache when stored (same text, prompt version and model), else from the
configured labeller, and are committed to the cache one by one: a rerun after a crash asks
only for what is missing. Writes into the output directory (atomically):

- ``labels.jsonl``: one line per labelled document, in input order: id, domain (when the
  document has one), text, label, model, prompt_version;
- ``labels.unlabelled.jsonl``: documents still without a label after retries (id, error);
- ``labels.rejects.jsonl``: unreadable input lines (file, line, error);
- ``labels.stats.json``: counts per label and per domain, unlabelled, requests sent, cache hits.

The documents of one run are held in memory (a labelling set is a sample: thousands to a few
hundred thousand documents).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional, Sequence

from ..shards import AtomicJsonlWriter, BadLine, CurationError, expand_inputs, read_documents, write_json_atomic
from .backends import build_labeller, model_name
from .cache import LabelCache, text_sha256
from .cli_args import add_labeller_args, labeller_config
from .config import LabelConfig
from .engine import ensure_labels
from .prompt import load_prompt

CACHE_NAME = "label_cache.sqlite"


def cache_path(config: LabelConfig, out_dir: Path) -> Path:
    return Path(config.cache_path) if config.cache_path else out_dir / CACHE_NAME


def label_documents(inputs: Sequence[Path], out_dir: Path, config: LabelConfig) -> dict[str, Any]:
    """Label every document of ``inputs`` (jsonl shards, directories or globs); returns the
    stats also written to ``labels.stats.json``."""
    started = time.monotonic()
    prompt = load_prompt(config.prompt)
    model = model_name(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    bad: list[BadLine] = []
    docs: list[tuple[Any, Optional[str], str, str]] = []  # id, domain, text, text sha256
    texts: dict[str, str] = {}
    for path in expand_inputs(inputs):
        for doc in read_documents(path, config.text_field, config.id_field, bad):
            text = doc[config.text_field]
            sent = text[:config.max_chars]
            sha = text_sha256(sent)  # the key is what the model saw
            texts.setdefault(sha, sent)
            domain = doc.get(config.domain_field) if config.domain_field else None
            docs.append((doc[config.id_field], domain, text, sha))

    with LabelCache(cache_path(config, out_dir)) as cache:
        cache.check_prompt(prompt.version, prompt.content_sha256, prompt.source)
        outcome = ensure_labels(texts, cache, prompt, model, lambda: build_labeller(config, prompt),
                                progress=config.progress, desc=f"label ({model})")

    per_label: Counter = Counter()
    per_domain: dict[str, Counter] = defaultdict(Counter)
    labelled = AtomicJsonlWriter(out_dir / "labels.jsonl")
    unlabelled = AtomicJsonlWriter(out_dir / "labels.unlabelled.jsonl")
    rejects = AtomicJsonlWriter(out_dir / "labels.rejects.jsonl")
    try:
        for doc_id, domain, text, sha in docs:
            label = outcome.labels.get(sha)
            row: dict[str, Any] = {"id": doc_id}
            if domain is not None:
                row["domain"] = domain
            if label is None:
                unlabelled.write({**row, "error": outcome.errors.get(sha, "no label")})
                continue
            labelled.write({**row, "text": text, "label": label, "model": model,
                            "prompt_version": prompt.version})
            per_label[label] += 1
            per_domain[str(domain) if domain is not None else "(none)"][label] += 1
        for b in bad:
            rejects.write({"file": b.file, "line": b.line, "error": b.error})
    except BaseException:
        for w in (labelled, unlabelled, rejects):
            w.abort()
        raise
    for w in (labelled, unlabelled, rejects):
        w.commit()

    stats = {
        "documents": len(docs), "unique_texts": len(texts), "labelled": labelled.count,
        "unlabelled": unlabelled.count, "unlabelled_texts": len(outcome.errors),
        "per_label": {k: per_label.get(k, 0) for k in prompt.labels},
        "per_domain": {d: dict(sorted(c.items())) for d, c in sorted(per_domain.items())},
        "requests_sent": outcome.requests_sent, "cache_hits": outcome.cache_hits,
        "labelled_now": outcome.labelled_now, "bad_lines": len(bad),
        "model": model, "prompt_version": prompt.version, "prompt_file": prompt.source,
        "seconds": round(time.monotonic() - started, 3),
        "config": asdict(config),  # names the key's environment variable, never the key
    }
    write_json_atomic(out_dir / "labels.stats.json", stats)
    return stats


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_tools.curate label",
        description="Label each document of jsonl shards with the prompt's label set (default: "
        "relevant / not_relevant to e-commerce) through an OpenAI-compatible API, a local model "
        "or the keyword stand-in; labels are cached, a rerun asks only for missing ones.")
    p.add_argument("inputs", nargs="+", help="jsonl / jsonl.gz shards, directories or quoted globs")
    p.add_argument("-o", "--output-dir", required=True, type=Path)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true", help="log every retry")
    add_labeller_args(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="[label] %(levelname)s %(name)s: %(message)s")
    try:
        config = labeller_config(args)
        if args.no_progress:
            config.progress = False
        stats = label_documents(args.inputs, args.output_dir, config)
    except (ValueError, CurationError) as e:
        print(f"label: error: {e}", file=sys.stderr)
        return 2
    print(f"label: {stats['labelled']}/{stats['documents']} documents labelled {stats['per_label']} "
          f"({stats['cache_hits']} texts from the cache, {stats['requests_sent']} requests) "
          f"-> {args.output_dir / 'labels.jsonl'}", file=sys.stderr)
    if stats["unlabelled"]:
        share = stats["unlabelled"] / max(1, stats["documents"])
        print(f"label: {stats['unlabelled']} document(s) unlabelled after retries, listed in "
              f"{args.output_dir / 'labels.unlabelled.jsonl'}; a rerun retries only them",
              file=sys.stderr)
        if share > config.max_unlabelled_fraction:
            return 1
    return 0
