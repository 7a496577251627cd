"""Small real-text samples shipped with the package, so demos and tests need no downloads.

Each sample is a JSONL file of {"id", "text", ...} records; sources and licences are in
NOTICE.md beside this file. Rebuild with scripts/make_sample_data.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["SAMPLES", "load_sample", "sample_path"]

_DIR = Path(__file__).resolve().parent
SAMPLES: dict[str, str] = {
    "products": "products.jsonl",  # Abt-Buy product title + description (MIT)
    "general": "general.jsonl",  # Hamlet, speeches grouped per scene (public domain)
    "queries": "queries.jsonl",  # WANDS shopping queries with query_class (MIT)
}


def sample_path(name: str) -> Path:
    """Path of the JSONL file for sample `name` ("products", "general" or "queries")."""
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; valid names: {', '.join(sorted(SAMPLES))}")
    return _DIR / SAMPLES[name]


def load_sample(name: str) -> list[dict[str, Any]]:
    """All records of sample `name`, in file order."""
    with open(sample_path(name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
