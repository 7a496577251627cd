"""Relevance-filter throughput and memory: `python bench/curate_filter.py [--docs 50000]`.

Distils a classifier (production `DistillConfig` defaults: dim 64, word bigrams, 200k hash
buckets) from real text — product descriptions (rexbert/sample_data/products.jsonl)
relevant, 3-line Hamlet passages (general.jsonl) not relevant — in a child process, then in
this process runs the filter stage (`shards.run_stage` + `make_filter_step`, one process,
one thread) over a synthetic shard of N documents, each 1-8 of those texts joined (seeded).

Reports documents/s per core (wall and CPU time), the same for `run_stage` with a
pass-through step (the stage's own json read/write cost), the step alone on in-memory
documents, and peak RSS (getrusage) before the model is loaded, after, and after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "rexbert" / "sample_data"


def snippets() -> tuple[list[str], list[str]]:
    products = [json.loads(line)["text"] for line in (SAMPLE / "products.jsonl").read_text().splitlines()]
    verses = []
    for line in (SAMPLE / "general.jsonl").read_text().splitlines():
        lines = json.loads(line)["text"].split("\n")
        verses += ["\n".join(lines[i:i + 3]) for i in range(0, len(lines), 3)]
    return products, verses


def write_labels(path: Path, products: list[str], verses: list[str]) -> None:
    with open(path, "w") as f:
        for i, t in enumerate(products):
            f.write(json.dumps({"id": f"p{i}", "domain": "electronics", "text": t, "label": "relevant"}) + "\n")
        for i, t in enumerate(verses):
            f.write(json.dumps({"id": f"v{i}", "domain": "electronics", "text": t, "label": "not_relevant"}) + "\n")


def write_shard(path: Path, n: int, products: list[str], verses: list[str], seed: int = 0) -> int:
    """N documents of 1-8 snippets, each document mostly product text or mostly verse."""
    rng = random.Random(seed)
    chars = 0
    with open(path, "w") as f:
        for i in range(n):
            pool = products if rng.random() < 0.5 else verses
            text = "\n".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
            chars += len(text)
            f.write(json.dumps({"id": f"d{i}", "domain": "electronics", "text": text}) + "\n")
    return chars


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn):
    w0, c0 = time.perf_counter(), cpu_s()
    out = fn()
    return out, time.perf_counter() - w0, cpu_s() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=50_000)
    ap.add_argument("--report", type=Path, default=None, help="also write the results as markdown here")
    args = ap.parse_args()

    from data_tools.curate.classify import FilterConfig, make_filter_step
    from data_tools.curate.shards import read_documents, run_stage

    products, verses = snippets()
    with tempfile.TemporaryDirectory(prefix="bench_filter_") as tmp_name:
        tmp = Path(tmp_name)
        write_labels(tmp / "labels.jsonl", products, verses)
        code = ("import sys; from pathlib import Path; from data_tools.curate.classify.distill import main; "
                f"sys.exit(main([{str(tmp / 'labels.jsonl')!r}, '-o', {str(tmp / 'models')!r}]))")
        (_, distill_wall, _) = timed(lambda: subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                                                            env={**os.environ, "PYTHONPATH": str(ROOT)}))
        chars = write_shard(tmp / "shard.jsonl", args.docs, products, verses)
        rss_start = peak_rss_mb()

        step, load_wall, _ = timed(lambda: make_filter_step(FilterConfig(models_dir=str(tmp / "models"))))
        rss_loaded = peak_rss_mb()
        _, pass_wall, pass_cpu = timed(lambda: run_stage("pass", [tmp / "shard.jsonl"], tmp / "pass", lambda d: d,
                                                         progress=False))
        stats, wall, cpu = timed(lambda: run_stage("filter", [tmp / "shard.jsonl"], tmp / "filtered", step,
                                                   progress=False))
        rss_end = peak_rss_mb()
        docs = list(read_documents(tmp / "shard.jsonl"))
        _, step_wall, step_cpu = timed(lambda: [step(d) for d in docs])
        model_mb = sum(p.stat().st_size for p in (tmp / "models").glob("*.bin")) / 1e6
        threshold = json.loads((tmp / "models" / "metrics.json").read_text())["domains"]["electronics"]["threshold"]

    n = args.docs
    rows = [
        ("filter stage (run_stage + classifier step)", n / wall, n / cpu),
        ("pass-through stage (run_stage, json read/write only)", n / pass_wall, n / pass_cpu),
        ("classifier step alone (normalise + fastText predict)", n / step_wall, n / step_cpu),
    ]
    lines = [
        f"# Relevance filter benchmark (`bench/curate_filter.py --docs {n}`)", "",
        f"Machine: {os.cpu_count()}-core CPU VM ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}; one process, one thread.",
        f"Shard: {n} documents, {chars / n:.0f} characters on average ({chars / 1e6:.1f} MB of text); "
        f"model {model_mb:.1f} MB (dim 64, bigrams, 200k buckets; distilled in {distill_wall:.1f} s wall in a child "
        f"process); threshold {threshold:.4f}; kept {stats[0]['kept']} of {n}.", "",
        "| what | docs/s (wall) | docs/s per core (CPU time) |", "|---|---|---|",
        *[f"| {name} | {w:,.0f} | {c:,.0f} |" for name, w, c in rows], "",
        f"Model load: {load_wall:.2f} s. Peak RSS: {rss_start:.0f} MB before loading the model, {rss_loaded:.0f} MB "
        f"after, {rss_end:.0f} MB after the filter run (getrusage ru_maxrss of this process).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        args.report.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
