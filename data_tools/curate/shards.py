"""Streaming jsonl shards through a curation stage: one output shard per input shard (same
file name), written atomically, with a done marker that makes a rerun skip finished shards
(resume after a crash), and per-shard stats of what was kept, dropped (by reason) and which
input lines were unreadable.

A document is one json object per line with at least ``id`` and ``text`` (the field names
are configurable); stages add fields (``domain``, ``scores``, ``spans`` ...) and never
rename them. Inputs may be ``.jsonl`` or ``.jsonl.gz``; outputs keep the input's suffix.

Per input ``<name>`` the stage writes into its output directory:
``<name>`` (kept documents), ``<name>.dropped.jsonl`` (dropped documents with their reason,
for inspection), ``<name>.rejects.jsonl`` (unreadable lines: file, line number, error),
``<name>.stats.json`` and last ``<name>.done.json``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

Document = dict[str, Any]
# A stage's per-document function: the (possibly annotated) document to keep, or a string
# naming why it is dropped.
Step = Callable[[Document], "Document | str"]

SUFFIXES = (".jsonl.gz", ".jsonl")


class CurationError(Exception):
    """A user-facing error (bad path, bad config); the CLI prints it without a traceback."""


def shard_name(path: Path) -> str:
    if not path.name.endswith(SUFFIXES):
        raise CurationError(f"{path}: expected a .jsonl or .jsonl.gz shard")
    return path.name


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files, directories (every shard inside, sorted) or globs → shard paths, in order,
    with unique names (outputs are named after the inputs)."""
    import glob

    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.is_file() and q.name.endswith(SUFFIXES))
        elif p.is_file():
            found.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            if not matches:
                raise CurationError(f"{item}: no such file, directory or matching shard")
            found += [m for m in matches if m.is_file()]
    names: dict[str, Path] = {}
    for p in found:
        name = shard_name(p)
        if name in names and names[name] != p:
            raise CurationError(f"{names[name]} and {p} have the same file name; outputs would collide")
        names[name] = p
    return list(dict.fromkeys(found))


def open_text(path: Path, mode: str = "rt"):
    if path.name.endswith(".gz"):
        return gzip.open(path, mode, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


@dataclass
class BadLine:
    file: str
    line: int
    error: str


def read_documents(path: Path, text_field: str = "text", id_field: str = "id",
                   bad_lines: Optional[list[BadLine]] = None) -> Iterator[Document]:
    """Documents of one shard. A line that is not a json object with a string text field is
    recorded in ``bad_lines`` (file, 1-based line number, what was wrong) and skipped; a
    missing id becomes ``<file name>:<line>`` so every document has a stable id."""
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as e:
                _bad(bad_lines, path, number, f"invalid json: {e.msg}")
                continue
            if not isinstance(doc, dict):
                _bad(bad_lines, path, number, "not a json object")
                continue
            if not isinstance(doc.get(text_field), str):
                _bad(bad_lines, path, number, f"no string field '{text_field}'")
                continue
            if id_field not in doc:
                doc[id_field] = f"{path.name}:{number}"
            yield doc


def _bad(sink: Optional[list[BadLine]], path: Path, line: int, error: str) -> None:
    if sink is not None:
        sink.append(BadLine(str(path), line, error))


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


class AtomicJsonlWriter:
    """Writes ``.<name>.partial`` and renames it to ``name`` on ``commit()``; a crash leaves
    only the partial, which the next run overwrites. gzip when the name ends in .gz."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.partial")
        self.count = 0
        raw = open(self.tmp, "wb")
        self._f = io.TextIOWrapper(gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.name.endswith(".gz")
                                   else raw, encoding="utf-8")
        self._raw = raw

    def write(self, doc: Document) -> None:
        self._f.write(json.dumps(doc, ensure_ascii=False) + "\n")
        self.count += 1

    def commit(self) -> None:
        self._f.close()
        self._raw.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._f.close()
        self._raw.close()
        self.tmp.unlink(missing_ok=True)


@dataclass
class ShardStats:
    shard: str
    documents_in: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    bad_lines: int = 0
    chars_in: int = 0
    chars_kept: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"shard": self.shard, "documents_in": self.documents_in, "kept": self.kept,
                "dropped": dict(sorted(self.dropped.items())), "bad_lines": self.bad_lines,
                "chars_in": self.chars_in, "chars_kept": self.chars_kept}


def done_marker(out_dir: Path, name: str) -> Path:
    return out_dir / f"{name}.done.json"


def run_stage(stage: str, inputs: Sequence[Path], out_dir: Path, step: "Step | Callable[[Path], Step]", *,
              text_field: str = "text", id_field: str = "id", keep_dropped: bool = True, progress: bool = True,
              per_shard_step: bool = False, write_summary: bool = True,
              finish: Optional[Callable[[], None]] = None) -> list[dict[str, Any]]:
    """Apply ``step`` to every document of every shard (in order), writing each shard's
    outputs atomically; shards with a done marker are skipped. With ``per_shard_step``,
    ``step(shard_path)`` makes the shard's step. Returns every shard's stats (read back from
    disk for skipped shards) and, with ``write_summary``, writes ``<out_dir>/<stage>.stats.json``
    (off for one task of a Slurm array, which sees only its own shards)."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    all_stats = []
    for path in tqdm(list(inputs), desc=stage, unit="shard", disable=not progress or len(inputs) < 2):
        name = shard_name(path)
        marker = done_marker(out_dir, name)
        if marker.is_file():
            all_stats.append(json.loads(marker.read_text())["stats"])
            continue
        shard_step = step(path) if per_shard_step else step
        stats = process_shard(path, out_dir, shard_step, text_field=text_field, id_field=id_field,
                              keep_dropped=keep_dropped, progress=progress)
        write_json_atomic(out_dir / f"{name}.stats.json", stats.to_json())
        write_json_atomic(marker, {"stage": stage, "input": str(path), "stats": stats.to_json()})
        all_stats.append(stats.to_json())
    if finish is not None:
        finish()
    if write_summary:
        write_json_atomic(out_dir / f"{stage}.stats.json", summarize(all_stats))
    return all_stats


def stage_summary(out_dir: Path) -> dict[str, Any]:
    """The summary over every finished shard of a stage directory (from the done markers)."""
    markers = sorted(out_dir.glob("*.done.json")) if out_dir.is_dir() else []
    return summarize(json.loads(m.read_text())["stats"] for m in markers)


def process_shard(path: Path, out_dir: Path, step: Step, *, text_field: str = "text", id_field: str = "id",
                  keep_dropped: bool = True, progress: bool = False) -> ShardStats:
    from tqdm import tqdm

    name = shard_name(path)
    stats = ShardStats(name)
    bad: list[BadLine] = []
    kept = AtomicJsonlWriter(out_dir / name)
    dropped = AtomicJsonlWriter(out_dir / f"{name}.dropped.jsonl") if keep_dropped else None
    try:
        docs = read_documents(path, text_field, id_field, bad)
        for doc in tqdm(docs, desc=name, unit="doc", disable=not progress, leave=False, mininterval=1.0):
            stats.documents_in += 1
            n = len(doc[text_field])
            stats.chars_in += n
            result = step(doc)
            if isinstance(result, str):
                stats.dropped[result] += 1
                if dropped is not None:
                    dropped.write({id_field: doc[id_field], "reason": result, text_field: doc[text_field][:500]})
            else:
                stats.kept += 1
                stats.chars_kept += len(result[text_field])
                kept.write(result)
        stats.bad_lines = len(bad)
        rejects = AtomicJsonlWriter(out_dir / f"{name}.rejects.jsonl")
        for b in bad:
            rejects.write({"file": b.file, "line": b.line, "error": b.error})
        rejects.commit()
        if bad:
            print(f"[curate] {path}: {len(bad)} unreadable line(s) skipped (first: line {bad[0].line}, "
                  f"{bad[0].error}); see {out_dir / (name + '.rejects.jsonl')}", file=sys.stderr)
    except BaseException:
        kept.abort()
        if dropped is not None:
            dropped.abort()
        raise
    kept.commit()
    if dropped is not None:
        dropped.commit()
    return stats


def summarize(all_stats: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"shards": 0, "documents_in": 0, "kept": 0, "dropped": Counter(), "bad_lines": 0,
                             "chars_in": 0, "chars_kept": 0}
    for s in all_stats:
        total["shards"] += 1
        for key in ("documents_in", "kept", "bad_lines", "chars_in", "chars_kept"):
            total[key] += s[key]
        total["dropped"].update(s["dropped"])
    total["dropped"] = dict(sorted(total["dropped"].items()))
    return total


def output_shards(out_dir: Path) -> list[Path]:
    """The kept-document shards a stage finished (those with a done marker): its next
    stage's inputs. Side files (dropped/rejects, a stage's own jsonl reports) are not shards."""
    return sorted(m.with_name(m.name[: -len(".done.json")]) for m in out_dir.glob("*.done.json")
                  if m.name[: -len(".done.json")].endswith(SUFFIXES))
