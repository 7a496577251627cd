"""Finding input files and reading them in chunks for the workers.

The main process only splits the input (raw jsonl lines; parsed csv/parquet rows); decoding,
JSON parsing and tokenising happen in the workers. `line` numbers are 1-based physical lines
(csv: the line a row starts on, the header being line 1; parquet: the 1-based row number).
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError

SUFFIXES = (".jsonl.gz", ".jsonl", ".parquet", ".csv")
CHUNK_DOCS = 1000  # documents per worker task: amortises IPC, keeps tasks small
CHUNK_BYTES = 4 << 20  # ... or fewer when documents are long

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # product descriptions can exceed 128 KiB


@dataclass(frozen=True)
class Rejected:
    """A row the reader itself could not parse (malformed csv); the worker records it."""

    reason: str
    detail: str


@dataclass(frozen=True)
class LineChunk:
    """Consecutive raw jsonl lines starting at `first_line`."""

    first_line: int
    lines: list[bytes]


@dataclass(frozen=True)
class RecordChunk:
    """Already-split rows: (line, {column: value}) or (line, Rejected)."""

    records: list[tuple[int, dict[str, Any] | Rejected]]


Chunk = LineChunk | RecordChunk


@dataclass(frozen=True)
class InputFile:
    path: Path
    fmt: str  # one of SUFFIXES

    @property
    def stem(self) -> str:
        return self.path.name[: -len(self.fmt)]


def _format_of(path: Path) -> str:
    for suffix in SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return suffix
    raise UserError(f"{path}: unknown input format (expected one of {', '.join(SUFFIXES)})")


def resolve_inputs(patterns: list[str]) -> list[InputFile]:
    """Expand globs; every literal path must exist and every glob must match something."""
    files: list[InputFile] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise UserError(f"{pattern}: no input file matches this pattern")
        else:
            if not Path(pattern).exists():
                raise UserError(f"{pattern}: input file does not exist")
            matches = [pattern]
        for match in matches:
            path = Path(match)
            if not path.is_file():
                raise UserError(f"{path}: not a regular file")
            files.append(InputFile(path, _format_of(path)))
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise UserError(
                f"{seen[f.stem]} and {f.path} both map to output prefix '{f.stem}'; "
                "process them in separate runs or rename one"
            )
        seen[f.stem] = f.path
    return files


def check_columns(f: InputFile, fields: list[str], spans_field: str | None) -> None:
    """csv/parquet: every named field must be a column (jsonl is checked line by line)."""
    wanted = fields + ([spans_field] if spans_field else [])
    if f.fmt == ".csv":
        with open(f.path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
            columns = next(csv.reader(fh), [])
    elif f.fmt == ".parquet":
        import pyarrow.parquet as pq

        columns = pq.ParquetFile(f.path).schema_arrow.names
    else:
        return
    for name in wanted:
        if name not in columns:
            raise UserError(f"{f.path}: no column '{name}' (columns: {', '.join(columns)})")


def progress_total(f: InputFile) -> tuple[int, str]:
    """(total, unit) for the progress bar: bytes of the file, rows for parquet."""
    if f.fmt == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(f.path).metadata.num_rows, "rows"
    return f.path.stat().st_size, "B"


def read_chunks(f: InputFile, columns: list[str]) -> Iterator[tuple[Chunk, int]]:
    """Yield (chunk, progress position after it) in file order."""
    if f.fmt in (".jsonl", ".jsonl.gz"):
        yield from _jsonl_chunks(f)
    elif f.fmt == ".csv":
        yield from _csv_chunks(f, columns)
    else:
        yield from _parquet_chunks(f, columns)


def _jsonl_chunks(f: InputFile) -> Iterator[tuple[Chunk, int]]:
    with open(f.path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if f.fmt == ".jsonl.gz" else raw
        first, lines, size = 1, [], 0
        for line in stream:
            lines.append(line)
            size += len(line)
            if len(lines) >= CHUNK_DOCS or size >= CHUNK_BYTES:
                yield LineChunk(first, lines), raw.tell()
                first, lines, size = first + len(lines), [], 0
        if lines:
            yield LineChunk(first, lines), raw.tell()


def _csv_chunks(f: InputFile, columns: list[str]) -> Iterator[tuple[Chunk, int]]:
    with open(f.path, "rb") as raw:
        # surrogateescape keeps invalid UTF-8 bytes as lone surrogates; workers reject them.
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.reader(text)
        header = next(reader, [])
        index = {name: header.index(name) for name in columns}
        records: list[tuple[int, dict[str, Any] | Rejected]] = []
        size, start = 0, reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                records.append((start, Rejected("invalid_csv", str(exc))))
                start = reader.line_num + 1
                continue
            if row:  # csv yields [] for a blank line
                records.append((start, {k: row[i] for k, i in index.items() if i < len(row)}))
                size += sum(map(len, row))
            start = reader.line_num + 1
            if len(records) >= CHUNK_DOCS or size >= CHUNK_BYTES:
                yield RecordChunk(records), raw.tell()
                records, size = [], 0
        if records:
            yield RecordChunk(records), raw.tell()


def _parquet_chunks(f: InputFile, columns: list[str]) -> Iterator[tuple[Chunk, int]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(f.path).iter_batches(batch_size=CHUNK_DOCS, columns=columns):
        records = [(row + i + 1, rec) for i, rec in enumerate(batch.to_pylist())]
        row += len(records)
        yield RecordChunk(records), row
