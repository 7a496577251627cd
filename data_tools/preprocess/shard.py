"""Write one input file's shard: bounded ordered pipeline → partial files → renames → done marker."""

from __future__ import annotations

import json
import os
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .builder import SpooledIndexedDatasetBuilder
from .inputs import InputFile, progress_total, read_chunks
from .outputs import ShardPaths, partial, write_json_atomic
from .pipeline import ordered_map
from .stats import ShardStats
from .worker import WorkerConfig, process_chunk


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _bin_idx(prefix: Path) -> tuple[Path, Path]:
    return prefix.with_name(prefix.name + ".bin"), prefix.with_name(prefix.name + ".idx")


def process_shard(
    f: InputFile,
    paths: ShardPaths,
    config: WorkerConfig,
    pool: Pool | None,
    in_flight: int,
    provenance: dict[str, Any],
    progress: bool,
) -> ShardStats:
    # A stale marker must not vouch for files we are about to replace.
    paths.done.unlink(missing_ok=True)
    _remove([partial(p) for p in paths.all_outputs()])

    bin_path, idx_path = _bin_idx(paths.prefix)
    sbin_path, sidx_path = _bin_idx(paths.spans_prefix)
    dtype = np.dtype(config.dtype).type
    builder = SpooledIndexedDatasetBuilder(str(partial(bin_path)), dtype=dtype)
    spans_builder = (
        SpooledIndexedDatasetBuilder(str(partial(sbin_path)), dtype=np.int32)
        if paths.with_spans
        else None
    )
    stats = ShardStats()
    columns = list(config.fields) + ([config.spans_field] if config.spans_field else [])
    total, unit = progress_total(f)
    bar = tqdm(total=total, unit=unit, unit_scale=True, desc=f.stem, disable=not progress,
               mininterval=0.5)
    with open(partial(paths.rejects), "w", encoding="utf-8") as rejects:
        chunks = read_chunks(f, columns)
        for result, pos in ordered_map(pool, process_chunk, chunks, in_flight):
            builder.add_documents(result.tokens, result.lengths)
            if spans_builder is not None:
                spans_builder.add_documents(result.span_tokens, result.span_lengths)
            for line, reason, detail in result.rejects:
                rec = {"file": str(f.path), "line": line, "reason": reason, "detail": detail}
                rejects.write(json.dumps(rec, ensure_ascii=False) + "\n")
                stats.rejects[reason] += 1
            stats.lines += result.lines
            stats.blank_lines += result.blank_lines
            stats.add_lengths(result.lengths)
            bar.update(pos - bar.n)
    bar.close()
    builder.finalize(str(partial(idx_path)))
    if spans_builder is not None:
        spans_builder.finalize(str(partial(sidx_path)))
    partial(paths.stats).write_text(json.dumps(stats.to_json(), indent=2) + "\n", encoding="utf-8")

    for path in paths.outputs():
        os.replace(partial(path), path)
    if not paths.with_spans:  # an --overwrite'n earlier run may have left a spans side file
        _remove([sbin_path, sidx_path])
    write_json_atomic(paths.done, {"provenance": provenance, "stats": stats.to_json()})
    return stats
