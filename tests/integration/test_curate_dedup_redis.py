"""Dedup on a real redis-server (Debian's package): the Redis backend keeps the same documents
as the in-memory one, in one process and with two processes indexing into one shared index."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_tools.curate.dedup import DedupConfig, dedup

from unit.test_curate_dedup import ACCEPTANCE, kept_ids, planted_corpus

ROOT = Path(__file__).resolve().parents[2]


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("redis-server is not installed (apt-get install -y redis-server needs root and apt)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0 or not shutil.which("redis-server"):
        pytest.skip(f"apt-get install redis-server failed: {done.stderr.strip()[-300:]}")
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    import redis

    binary = _redis_server_binary()
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                               "no", "--dir", str(workdir)], stdout=open(workdir / "redis.log", "w"),
                              stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if server.poll() is not None:
                    pytest.fail(f"redis-server exited: {(workdir / 'redis.log').read_text()[-500:]}")
                time.sleep(0.1)
        else:
            pytest.fail("redis-server did not answer within 10 s")
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_corpus(tmp_path_factory.mktemp("planted"))


def _redis_config(port: int, basename: str) -> DedupConfig:
    return DedupConfig(threshold=ACCEPTANCE.threshold, lsh_threshold=ACCEPTANCE.lsh_threshold, storage="redis",
                       redis_host="127.0.0.1", redis_port=port, redis_basename=basename)


def test_redis_keeps_the_same_documents(planted, redis_port, tmp_path):
    import redis

    dedup(planted.shards, tmp_path / "memory", ACCEPTANCE)
    summary = dedup(planted.shards, tmp_path / "redis", _redis_config(redis_port, "single"))
    assert kept_ids(tmp_path / "redis") == kept_ids(tmp_path / "memory")
    assert summary["dropped"] >= 0.95 * len(planted.positives)
    assert (tmp_path / "redis" / "dedup.duplicates.jsonl").read_text() == \
        (tmp_path / "memory" / "dedup.duplicates.jsonl").read_text()
    assert not list(redis.Redis(port=redis_port).scan_iter(match="single:*"))  # index cleared after use


def _cli(*args: str) -> subprocess.Popen:
    """``dedup.main`` in a process of its own (as on another node)."""
    code = "import sys; from data_tools.curate.dedup import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ok(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out


def test_two_processes_share_one_redis_index(planted, redis_port, tmp_path):
    """The multi-node recipe of dedup.py's docstring, with two concurrent index processes."""
    dedup(planted.shards, tmp_path / "memory", ACCEPTANCE)
    out = tmp_path / "shared"
    common = ["--no-progress", "--set", "storage=redis", "redis_host=127.0.0.1", f"redis_port={redis_port}",
              "redis_basename=multi", f"threshold={ACCEPTANCE.threshold}",
              f"lsh_threshold={ACCEPTANCE.lsh_threshold}"]
    halves = [[str(p) for p in planted.shards[:2]], [str(p) for p in planted.shards[2:]]]
    _ok(_cli("--phase", "clear", *common))
    indexers = [_cli("--phase", "index", *half, "-o", str(out), *common) for half in halves]
    for proc in indexers:
        _ok(proc)
    _ok(_cli("--phase", "decide", "-o", str(out), *common))
    for half in halves:
        _ok(_cli("--phase", "apply", *half, "-o", str(out), *common))
    assert kept_ids(out) == kept_ids(tmp_path / "memory")
