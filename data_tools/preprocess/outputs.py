"""Output file names for one shard, the done marker, and the never-clobber rule.

Per input `<stem>.<ext>` the outputs are `<out>/<stem>.{bin,idx}`, optionally
`<out>/<stem>_spans.{bin,idx}`, `<out>/<stem>.rejects.jsonl`, `<out>/<stem>.stats.json`, and
last `<out>/<stem>.done.json`. Everything is first written as `<out>/.<name>.partial` and renamed
when complete, so a killed run leaves only partials, which the next run discards.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ShardPaths:
    out_dir: Path
    stem: str
    with_spans: bool

    @property
    def prefix(self) -> Path:
        return self.out_dir / self.stem

    @property
    def spans_prefix(self) -> Path:
        return self.out_dir / f"{self.stem}_spans"

    @property
    def done(self) -> Path:
        return self.out_dir / f"{self.stem}.done.json"

    @property
    def stats(self) -> Path:
        return self.out_dir / f"{self.stem}.stats.json"

    @property
    def rejects(self) -> Path:
        return self.out_dir / f"{self.stem}.rejects.jsonl"

    def all_outputs(self) -> list[Path]:
        """Every file this shard may own, spans or not (for clobber checks and clean-up)."""
        spans = [self.spans_prefix.with_name(self.spans_prefix.name + s) for s in (".bin", ".idx")]
        return [*self.outputs(with_spans=False), *spans]

    def outputs(self, with_spans: bool | None = None) -> list[Path]:
        """The files a finished shard has (done marker excluded)."""
        spans = self.with_spans if with_spans is None else with_spans
        prefixes = [self.prefix] + ([self.spans_prefix] if spans else [])
        files = [p.with_name(p.name + s) for p in prefixes for s in (".bin", ".idx")]
        return files + [self.rejects, self.stats]


def partial(path: Path) -> Path:
    """The temporary name `path` is written under until it is complete."""
    return path.with_name(f".{path.name}.partial")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = partial(path)
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_done(paths: ShardPaths) -> dict[str, Any] | None:
    try:
        return json.loads(paths.done.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{paths.done}: unreadable done marker ({exc}); delete it or pass --overwrite")


def shard_state(paths: ShardPaths, provenance: dict[str, Any], overwrite: bool) -> str:
    """'done' (skip), 'todo' (safe to write) or raise UserError naming the conflicting file."""
    done = read_done(paths)
    if done is not None and done.get("provenance") == provenance:
        if all(p.exists() for p in paths.outputs()):
            return "done"
        return "todo"  # our own finished set lost a file: regenerate it
    if overwrite:
        return "todo"
    if done is not None:
        key = _first_difference(done.get("provenance") or {}, provenance)
        raise UserError(
            f"{paths.done}: outputs were made with a different {key}; "
            "pass --overwrite to replace them or use another --output-dir"
        )
    for path in paths.all_outputs():
        if path.exists():
            raise UserError(
                f"{path} exists without a done marker ({paths.done.name}); "
                "pass --overwrite to replace it or use another --output-dir"
            )
    return "todo"


def _first_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    for key in new:
        if old.get(key) != new[key]:
            return key
    return "format"
