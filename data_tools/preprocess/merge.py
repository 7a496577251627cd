"""`merge`: concatenate shard prefixes into one prefix, spans side files included."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .builder import SpooledIndexedDatasetBuilder
from .errors import UserError
from .outputs import partial

SPANS_SUFFIX = "_spans"


def _strip(arg: str) -> str:
    # Accept `out/x`, `out/x.idx` or `out/x.bin` (so `out/*.idx` globs work).
    for suffix in (".idx", ".bin"):
        if arg.endswith(suffix):
            return arg[: -len(suffix)]
    return arg


def _exists(prefix: str) -> bool:
    return Path(prefix + ".idx").is_file() and Path(prefix + ".bin").is_file()


def _dtype_of(prefix: str) -> type[np.number]:
    from megatron.core.datasets.indexed_dataset import DType

    with open(prefix + ".idx", "rb") as fh:
        header = fh.read(18)
    if len(header) < 18 or not header.startswith(b"MMIDIDX"):
        raise UserError(f"{prefix}.idx: not a megatron index file")
    return DType.dtype_from_code(header[17])


def resolve_prefixes(args: list[str]) -> list[str]:
    """Unique prefixes in the given order; `x_spans` is dropped when `x` is also listed."""
    prefixes = list(dict.fromkeys(_strip(a) for a in args))
    listed = set(prefixes)
    prefixes = [
        p for p in prefixes
        if not (p.endswith(SPANS_SUFFIX) and p[: -len(SPANS_SUFFIX)] in listed)
    ]
    for p in prefixes:
        if not _exists(p):
            raise UserError(f"{p}: no {p}.idx / {p}.bin to merge")
    return prefixes


def merge(args: list[str], output: str, overwrite: bool) -> int:
    """Merge; returns the number of documents written."""
    prefixes = resolve_prefixes(args)
    if not prefixes:
        raise UserError("merge: no input prefixes given")
    out_real = os.path.realpath(output)
    for p in prefixes:
        if os.path.realpath(p) in (out_real, out_real + SPANS_SUFFIX):
            raise UserError(f"{p}: an input is also the output prefix {output}")
    with_spans = [_exists(p + SPANS_SUFFIX) for p in prefixes]
    if any(with_spans) and not all(with_spans):
        lacking = prefixes[with_spans.index(False)]
        raise UserError(f"{lacking}: has no {SPANS_SUFFIX} side file while other inputs do")
    jobs = [(output, prefixes)]
    if all(with_spans):
        jobs.append((output + SPANS_SUFFIX, [p + SPANS_SUFFIX for p in prefixes]))
    for out, _ in jobs:
        for path in (Path(out + ".bin"), Path(out + ".idx")):
            if path.exists() and not overwrite:
                raise UserError(f"{path} exists; pass --overwrite to replace it")
    dtypes = {p: _dtype_of(p) for _, ins in jobs for p in ins}
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    for out, ins in jobs:
        dtype = dtypes[ins[0]]
        for p in ins:
            if dtypes[p] != dtype:
                raise UserError(f"{p}.idx: dtype {dtypes[p].__name__} differs from "
                                f"{ins[0]}.idx ({dtype.__name__})")
        bin_path, idx_path = Path(out + ".bin"), Path(out + ".idx")
        builder = SpooledIndexedDatasetBuilder(str(partial(bin_path)), dtype=dtype)
        for p in ins:
            builder.add_index(p)
        builder.finalize(str(partial(idx_path)))
        os.replace(partial(bin_path), bin_path)
        os.replace(partial(idx_path), idx_path)
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    n_docs = len(IndexedDataset(output, mmap=False).document_indices) - 1
    if all(with_spans):
        n_span_docs = len(IndexedDataset(output + SPANS_SUFFIX, mmap=False).document_indices) - 1
        if n_span_docs != n_docs:
            raise UserError(f"{output}{SPANS_SUFFIX}: {n_span_docs} entries for {n_docs} documents")
    return n_docs
