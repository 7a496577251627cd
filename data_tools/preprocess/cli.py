"""Command line: `python -m data_tools.preprocess INPUT... -o DIR --fields F...` and `... merge`."""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from .errors import UserError
from .inputs import InputFile, check_columns, resolve_inputs
from .outputs import FORMAT_VERSION, ShardPaths, read_done, shard_state, write_json_atomic
from .stats import ShardStats

_ESCAPES = {"\\n": "\n", "\\t": "\t", "\\r": "\r"}

EPILOG = """\
merge:  python -m data_tools.preprocess merge --output OUT_PREFIX PREFIX [PREFIX ...]
        concatenates shard prefixes (and their _spans side files) into OUT_PREFIX.{bin,idx}.

Outputs per input <stem>.<ext> in --output-dir: <stem>.bin/.idx (token ids, no special
tokens, one document per entry), <stem>_spans.bin/.idx (with --spans-field), <stem>.rejects.jsonl,
<stem>.stats.json and, written last, <stem>.done.json; plus stats.json over all inputs.
"""


def _join_arg(value: str) -> str:
    # Let `--join '\\n'` mean a newline, as most users expect; other text is taken literally.
    for esc, char in _ESCAPES.items():
        value = value.replace(esc, char)
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_tools.preprocess",
        description="Tokenise jsonl / jsonl.gz / parquet / csv files into megatron indexed "
        "datasets (.bin/.idx), one output prefix per input file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files or quoted globs")
    p.add_argument("-o", "--output-dir", required=True, type=Path)
    p.add_argument("--fields", nargs="+", default=["text"],
                   help="fields whose text is joined into the document (default: text)")
    p.add_argument("--join", type=_join_arg, default="\n",
                   help="separator between fields (default: newline; '\\n' and '\\t' understood)")
    p.add_argument("--spans-field", default=None,
                   help="field holding [[char_start, char_end], ...] into the joined text; "
                   "writes <stem>_spans.bin/.idx")
    p.add_argument("--tokenizer", default=None,
                   help="local Hugging Face tokenizer folder (default: ModernBERT's, built in)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that have no matching done marker")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def build_merge_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_tools.preprocess merge",
        description="Concatenate indexed datasets (and their _spans side files) into one prefix.",
    )
    p.add_argument("prefixes", nargs="+", metavar="PREFIX", help="dataset prefixes (x, x.idx or x.bin)")
    p.add_argument("-o", "--output", required=True, help="output prefix")
    p.add_argument("--overwrite", action="store_true")
    return p


def _tokenizer_identity(name: str | None, tokenizer_json: str, vocab: int) -> dict[str, Any]:
    return {
        "name": name or "rexbert.tokenizer (ModernBERT, built in)",
        "sha256": hashlib.sha256(tokenizer_json.encode("utf-8")).hexdigest(),
        "vocab_size": vocab,
    }


def _provenance(f: InputFile, args: argparse.Namespace, tok_id: dict, dtype: str) -> dict[str, Any]:
    st = f.path.stat()
    return {
        "format_version": FORMAT_VERSION,
        "input": {"path": str(f.path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns},
        "fields": list(args.fields),
        "join": args.join,
        "spans_field": args.spans_field,
        "tokenizer": tok_id,
        "dtype": dtype,
    }


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    files = resolve_inputs(args.inputs)  # missing paths fail here, before any output
    for f in files:
        check_columns(f, list(args.fields), args.spans_field)

    from rexbert.tokenizer import load_tokenizer

    try:
        tokenizer = load_tokenizer(args.tokenizer)
    except Exception as exc:  # noqa: BLE001 - HF raises many types for a bad folder
        raise UserError(f"--tokenizer {args.tokenizer}: cannot load ({exc})") from None
    if not hasattr(tokenizer, "backend_tokenizer"):
        raise UserError(f"--tokenizer {args.tokenizer}: not a fast (Rust) tokenizer")
    import numpy as np

    with warnings.catch_warnings():  # megatron-core warns about absent GPU libraries on import
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import DType

    from .shard import process_shard
    from .worker import WorkerConfig, init_worker

    vocab = len(tokenizer)
    dtype = np.dtype(DType.optimal_dtype(vocab)).name
    tok_json = tokenizer.backend_tokenizer.to_str()
    tok_id = _tokenizer_identity(args.tokenizer, tok_json, vocab)
    config = WorkerConfig(tok_json, tuple(args.fields), args.join, args.spans_field, dtype)

    args.output_dir.mkdir(parents=True, exist_ok=True)
    plan = []
    for f in files:  # check every shard before writing any
        paths = ShardPaths(args.output_dir, f.stem, args.spans_field is not None)
        prov = _provenance(f, args, tok_id, dtype)
        plan.append((f, paths, prov, shard_state(paths, prov, args.overwrite)))

    pool = None
    if args.workers > 1 and any(state == "todo" for *_, state in plan):
        # fork: workers inherit the config without pickling a multi-MB tokenizer per task
        pool = multiprocessing.get_context("fork").Pool(args.workers, init_worker, (config,))
    else:
        init_worker(config)
    run_total = ShardStats()
    try:
        for f, paths, prov, state in plan:
            if state == "done":
                print(f"[preprocess] {f.path}: already done ({paths.done}), skipped", file=sys.stderr)
                stats = ShardStats.from_json(read_done(paths)["stats"])
            else:
                stats = process_shard(f, paths, config, pool, 2 * args.workers + 2, prov,
                                      progress=not args.no_progress)
            run_total.merge(stats)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    write_aggregate(args.output_dir)
    print(f"[preprocess] {run_total.documents} documents, {run_total.tokens} tokens, "
          f"{sum(run_total.rejects.values())} rejected lines → {args.output_dir}", file=sys.stderr)
    return 0


def write_aggregate(out_dir: Path) -> None:
    """`stats.json`: every finished shard in the directory (this run's or earlier runs')."""
    total = ShardStats()
    per_shard: dict[str, Any] = {}
    for done in sorted(out_dir.glob("*.done.json")):
        stem = done.name[: -len(".done.json")]
        marker = read_done(ShardPaths(out_dir, stem, False))
        if marker is None or "stats" not in marker:
            continue
        stats = ShardStats.from_json(marker["stats"])
        per_shard[stem] = stats.to_json()
        total.merge(stats)
    write_json_atomic(out_dir / "stats.json", {"total": total.to_json(), "shards": per_shard})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # parallelism comes from processes
    try:
        if argv[:1] == ["merge"]:
            margs = build_merge_parser().parse_args(argv[1:])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from .merge import merge

            n = merge(margs.prefixes, margs.output, margs.overwrite)
            print(f"[preprocess] merged {n} documents → {margs.output}", file=sys.stderr)
            return 0
        return run(build_parser().parse_args(argv))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
