"""Preprocessing throughput and memory: `python bench/preprocess_throughput.py`.

Speed: tokens/s of `data_tools.preprocess --workers 2` vs a baseline measured in the same run
(one process: read a line, json.loads, `tokenizer(text, add_special_tokens=False)`, write with
megatron's IndexedDatasetBuilder), on product text replicated from rexbert/sample_data.
Memory: peak RSS of the CLI (main + workers, sampled) minus the peak of the same CLI on a
one-line input (imports, tokenizer, pool start-up), on 1x and 8x the memory base size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS = ROOT / "rexbert" / "sample_data" / "products.jsonl"


def replicate(dst: Path, mb: float) -> Path:
    """`products.jsonl` repeated to at least `mb` MB, written in big blocks."""
    block = PRODUCTS.read_bytes()
    reps = max(1, int(-(-mb * 1e6 // len(block))))
    with open(dst, "wb") as fh:
        for i in range(0, reps, 64):
            fh.write(block * min(64, reps - i))
    return dst


def baseline(path: Path, out: Path) -> tuple[int, float]:
    """One process, one document at a time: the job done naively."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

    from rexbert.tokenizer import load_tokenizer

    tok = load_tokenizer(None)
    start = time.perf_counter()
    dtype = DType.optimal_dtype(len(tok))
    builder = IndexedDatasetBuilder(f"{out}.bin", dtype=dtype)
    tokens = 0
    with open(path, "rb") as fh:
        for line in fh:
            ids = tok(json.loads(line)["text"], add_special_tokens=False)["input_ids"]
            builder.add_document(np.asarray(ids, dtype=dtype), [len(ids)])
            tokens += len(ids)
    builder.finalize(f"{out}.idx")
    return tokens, time.perf_counter() - start


def ours(path: Path, out: Path, workers: int) -> tuple[int, float]:
    from data_tools.preprocess import main

    start = time.perf_counter()
    assert main([str(path), "-o", str(out), "--workers", str(workers), "--no-progress"]) == 0
    elapsed = time.perf_counter() - start
    return json.loads((out / "stats.json").read_text())["total"]["tokens"], elapsed


def peak_rss_cli(path: Path, out: Path, workers: int) -> tuple[float, float]:
    """(peak MiB of main + workers, seconds) for the CLI as a subprocess."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_tools.preprocess", str(path), "-o", str(out),
         "--workers", str(workers), "--no-progress"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = [0]

    def sample() -> None:
        main = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                procs = [main, *main.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    rc = proc.wait()
    sampler.join()
    assert rc == 0, f"preprocess exited {rc}"
    return peak[0] / 2**20, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--speed-mb", type=float, default=32, help="input size for the speed part")
    p.add_argument("--mem-mb", type=float, default=200, help="1x input size for the memory part")
    p.add_argument("--mem-factor", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-memory", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        speed_in = replicate(tmp / "speed.jsonl", args.speed_mb)
        n_b, t_b = baseline(speed_in, tmp / "baseline")
        n_o, t_o = ours(speed_in, tmp / "ours", args.workers)
        assert n_b == n_o, (n_b, n_o)
        size = speed_in.stat().st_size / 1e6
        print(f"speed input: {size:.0f} MB, {n_b} tokens")
        print(f"| baseline (1 process, per document) | {n_b / t_b:,.0f} tok/s | {t_b:.1f} s |")
        print(f"| preprocess --workers {args.workers} | {n_o / t_o:,.0f} tok/s | {t_o:.1f} s |")
        print(f"ratio: {t_b / t_o:.2f}x")
        speed_in.unlink()
        if args.skip_memory:
            return
        tiny = tmp / "tiny.jsonl"
        tiny.write_bytes(PRODUCTS.read_bytes().split(b"\n", 1)[0] + b"\n")
        base_mib, _ = peak_rss_cli(tiny, tmp / "m0", args.workers)
        print(f"post-import level (one-line input): {base_mib:.0f} MiB")
        for factor in (1, args.mem_factor):
            src = replicate(tmp / f"mem{factor}.jsonl", args.mem_mb * factor)
            peak, secs = peak_rss_cli(src, tmp / f"m{factor}", args.workers)
            tokens = json.loads((tmp / f"m{factor}" / "stats.json").read_text())["total"]["tokens"]
            print(f"| {src.stat().st_size / 1e6:,.0f} MB ({factor}x) | {tokens:,} tokens | "
                  f"peak {peak:.0f} MiB | growth {peak - base_mib:+.0f} MiB | {secs:.0f} s |")
            src.unlink()
            for f in (tmp / f"m{factor}").iterdir():
                f.unlink()


if __name__ == "__main__":
    main()
