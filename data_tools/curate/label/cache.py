"""The label cache: one sqlite file, one row per (sha256 of the text, prompt version, model).

Each label is committed as soon as it arrives (WAL journal), so a run killed at any point
keeps every label it received, and a rerun asks only for what is missing. The primary key
makes a second label for the same key impossible; the first stored label wins.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Iterable

from ..shards import CurationError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    text_sha256 TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    model TEXT NOT NULL,
    label TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (text_sha256, prompt_version, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS prompts (
    version TEXT PRIMARY KEY,
    content_sha256 TEXT NOT NULL,
    source TEXT NOT NULL
);
"""
_CHUNK = 500  # keys per SELECT ... IN (...), well under sqlite's variable limit


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class LabelCache:
    """Used from one thread (the one collecting labels); readers in other processes are fine."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a commit survives a killed process (not necessarily a power cut).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise CurationError(f"label cache {self.path}: {e}") from None

    def check_prompt(self, version: str, content_sha256: str, source: str) -> None:
        """Record a prompt version; refuse one whose content changed since it was recorded,
        since its cached labels were answers to another prompt."""
        row = self._db.execute("SELECT content_sha256, source FROM prompts WHERE version = ?",
                               (version,)).fetchone()
        if row is None:
            with self._db:
                self._db.execute("INSERT INTO prompts VALUES (?, ?, ?)", (version, content_sha256, source))
        elif row[0] != content_sha256:
            raise CurationError(
                f"{source}: prompt version {version!r} was cached (from {row[1]}) with different "
                f"content; give the edited prompt a new version (label cache {self.path})")

    def get_many(self, shas: Iterable[str], prompt_version: str, model: str) -> dict[str, str]:
        """Stored labels of the given text hashes (missing ones are absent)."""
        found: dict[str, str] = {}
        keys = list(dict.fromkeys(shas))
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT text_sha256, label FROM labels WHERE prompt_version = ? AND model = ? "
                f"AND text_sha256 IN ({marks})", (prompt_version, model, *chunk))
            found.update(rows.fetchall())
        return found

    def put(self, sha: str, prompt_version: str, model: str, label: str) -> None:
        """Store and commit one label (ignored if the key already has one)."""
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO labels VALUES (?, ?, ?, ?, ?)",
                             (sha, prompt_version, model, label, time.time()))

    def count(self, prompt_version: str, model: str) -> int:
        return self._db.execute("SELECT COUNT(*) FROM labels WHERE prompt_version = ? AND model = ?",
                                (prompt_version, model)).fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "LabelCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
