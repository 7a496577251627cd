"""Clean and dedup throughput and memory: `python bench/curate_clean_dedup.py`.

Corpus: the rexbert sample's real text (Abt-Buy product listings, Hamlet passages), repeated
with every copy perturbed (about 1 word in 5 replaced by another word of the corpus, so copies
are not near-duplicates of each other: shingle Jaccard ~0.2), plus 10% planted near-duplicates
(a few words edited) and 2% exact copies; 4 shards.

Each measurement runs one stage in a fresh process (one core: everything is single-threaded)
and reports documents per CPU-second (= per core; imports and model loading not counted),
wall time of the stage (dedup: both passes, with the jsonl reads and writes), and the peak RSS
(``ru_maxrss``) next to the peak of the same process on a 10-document input (imports, models).
Dedup runs at 1x, 4x and 16x the base size to show how its cost grows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "rexbert" / "sample_data"


def build_corpus(out: Path, num_docs: int, num_shards: int = 4, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    base = [json.loads(line)["text"] for name in ("products.jsonl", "general.jsonl")
            for line in open(SAMPLE / name)]
    vocab = sorted({w for t in base for w in t.split()})

    def perturb(text: str, rate: float) -> str:
        return " ".join(rng.choice(vocab) if rng.random() < rate else w for w in text.split())

    out.mkdir(parents=True, exist_ok=True)
    shards = [out / f"part-{i:03d}.jsonl" for i in range(num_shards)]
    files = [open(s, "w") for s in shards]
    previous: list[str] = []
    for i in range(num_docs):
        r = rng.random()
        if previous and r < 0.02:
            text = rng.choice(previous)
        elif previous and r < 0.12:
            text = perturb(rng.choice(previous), 0.02)
        else:
            text = perturb(base[i % len(base)], 0.2)
        previous.append(text)
        if len(previous) > 2000:
            previous.pop(0)
        files[i % num_shards].write(json.dumps({"id": f"doc-{i:08d}", "text": text}) + "\n")
    for f in files:
        f.close()
    return shards


def worker(stage: str, inputs: list[str], out: str, overrides: list[str]) -> None:
    """Runs one stage here and prints its numbers as one json line."""
    sys.path.insert(0, str(ROOT))
    from data_tools.curate.clean.config import apply_overrides

    from data_tools.curate.shards import run_stage

    if stage == "clean":
        from data_tools.curate.clean import CleanConfig, make_clean_step

        step = make_clean_step(CleanConfig())  # model loading is not timed
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        stats = run_stage("clean", [Path(p) for p in inputs], Path(out), step, progress=False)
        docs, extra = sum(s["documents_in"] for s in stats), {"kept": sum(s["kept"] for s in stats)}
    else:
        import datasketch  # noqa: F401  (imports are not timed)

        from data_tools.curate.dedup import DedupConfig, dedup

        config = apply_overrides(DedupConfig(), overrides)
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        summary = dedup([Path(p) for p in inputs], Path(out), config)
        docs = summary["documents"]
        extra = {k: summary[k] for k in ("kept", "dropped", "candidate_pairs", "exact_links")}
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"docs": docs, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss_mib, **extra}))


def measure(stage: str, shards: list[Path], out: Path, overrides: list[str] = (), server_pid: int = 0) -> dict:
    """One stage in a fresh process; with ``server_pid``, also the peak RSS of that process
    (redis-server) while the stage ran, sampled every 50 ms."""
    import psutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, "--worker", stage, "--out", str(out), "--set", *overrides, "--inputs",
           *map(str, shards)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    server_peak = 0
    while server_pid and proc.poll() is None:
        server_peak = max(server_peak, psutil.Process(server_pid).memory_info().rss)
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(stderr[-2000:])
    return {**json.loads(stdout.strip().splitlines()[-1]), "server_peak_rss_mib": server_peak / 2 ** 20}


def start_redis(workdir: Path):
    binary = shutil.which("redis-server")
    if binary is None:
        return None, None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.exceptions.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    return None, None


def row(name: str, r: dict, tiny: dict) -> str:
    return (f"| {name} | {r['docs']:,} | {r['docs'] / r['cpu_s']:,.0f} | {r['wall_s']:.1f} | "
            f"{r['peak_rss_mib']:.0f} | {r['peak_rss_mib'] - tiny['peak_rss_mib']:.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=int, default=5000, help="documents at 1x (dedup also runs at 4x and 16x)")
    p.add_argument("--report", type=Path, default=None, help="also write the markdown table here")
    p.add_argument("--no-redis", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--inputs", nargs="*", help=argparse.SUPPRESS)
    p.add_argument("--set", nargs="*", default=[], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.inputs, args.out, args.set)

    tmp = Path(tempfile.mkdtemp(prefix="bench_curate_"))
    lines = ["| run | documents | docs/s per core (CPU time) | wall s | peak RSS MiB | RSS above 10-doc run MiB |",
             "|---|---:|---:|---:|---:|---:|"]
    try:
        tiny = build_corpus(tmp / "tiny", 10, num_shards=1)
        sizes = [args.base, 4 * args.base, 16 * args.base]
        corpora = {n: build_corpus(tmp / f"c{n}", n) for n in sizes}
        tiny_clean = measure("clean", tiny, tmp / "o")
        r = measure("clean", corpora[sizes[1]], tmp / "o")
        lines.append(row(f"clean: quality + langid + profanity ({r['kept']:,} kept)", r, tiny_clean))
        tiny_dedup = measure("dedup", tiny, tmp / "o")
        for n in sizes:
            r = measure("dedup", corpora[n], tmp / "o")
            lines.append(row(f"dedup memory {n // args.base}x ({r['dropped']:,} dropped, "
                             f"{r['candidate_pairs']:,} candidate pairs)", r, tiny_dedup))
        redis_proc, port = (None, None) if args.no_redis else start_redis(tmp)
        if redis_proc is not None:
            try:
                over = ["storage=redis", "redis_host=127.0.0.1", f"redis_port={port}"]
                tiny_redis = measure("dedup", tiny, tmp / "o", over, redis_proc.pid)
                for n in sizes[:2]:
                    r = measure("dedup", corpora[n], tmp / "o", over, redis_proc.pid)
                    lines.append(row(f"dedup redis {n // args.base}x ({r['dropped']:,} dropped; redis-server "
                                     f"peak RSS {r['server_peak_rss_mib']:.0f} MiB)", r, tiny_redis))
            finally:
                redis_proc.terminate()
                redis_proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = "\n".join(lines)
    print(table)
    if args.report:
        args.report.write_text(f"Machine: {os.cpu_count()}-CPU VM, one process per run.\n\n{table}\n")


if __name__ == "__main__":
    main()
