"""SIGKILL preprocessing mid-run, run again: it completes, byte-identical to a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from data_tools.preprocess import main

ROOT = Path(__file__).resolve().parents[2]
GENERAL = ROOT / "rexbert" / "sample_data" / "general.jsonl"


def file_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def test_sigkill_then_rerun_is_byte_identical(tmp_path):
    corpus = tmp_path / "big.jsonl"
    lines = GENERAL.read_bytes()
    corpus.write_bytes(lines * 60)  # ~10 MB: several seconds of tokenising with 2 workers
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false")
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_tools.preprocess", str(corpus), "-o", str(killed),
         "--workers", "2", "--spans-field", "spans"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches the pool workers too
    )
    partial = killed / ".big.bin.partial"
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.stat().st_size > 0):
        assert proc.poll() is None, "preprocess exited before it could be killed"
        assert time.monotonic() < deadline, "preprocess never started writing"
        time.sleep(0.02)
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "big.done.json").exists() and not (killed / "big.bin").exists()

    assert main([str(corpus), "-o", str(killed), "--workers", "2", "--spans-field", "spans",
                 "--no-progress"]) == 0
    clean = tmp_path / "clean"
    assert main([str(corpus), "-o", str(clean), "--workers", "1", "--spans-field", "spans",
                 "--no-progress"]) == 0
    a, b = file_bytes(killed), file_bytes(clean)
    assert sorted(a) == sorted(b)  # no partials left behind
    assert a == b
    assert len(a["big.bin"]) > 1_000_000
