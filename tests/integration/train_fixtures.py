"""Shared pieces of the trainer's integration tests: the sample corpus as indexed data, the
one training config they all use, and ways to run, kill and read a training run.

Every run is a separate process (or torchrun group) with one CPU thread per rank, so the
losses are reproducible bit for bit on one machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
STEPS = 60  # straight runs; the kill/resume runs stop at KILL_STEP first
KILL_STEP = 30


def build_sample_data(out: Path) -> dict[str, str]:
    """The shipped sample corpus (general text + products) → ``out/{general,products}.bin/.idx``
    with the ModernBERT tokenizer (the trainer's masking uses its special ids)."""
    from data_tools.preprocess.cli import main as preprocess
    from rexbert.sample_data import load_sample

    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in ("general", "products"):
        with open(raw / f"{name}.jsonl", "w") as f:
            for record in load_sample(name):
                f.write(json.dumps({"id": record["id"], "text": record["text"]}) + "\n")
    code = preprocess([str(raw / "general.jsonl"), str(raw / "products.jsonl"), "-o", str(out / "data"),
                       "--fields", "text", "--workers", "1", "--no-progress"])
    assert code == 0, f"preprocessing failed ({code})"
    return {name: str(out / "data" / name) for name in ("general", "products")}


def train_overrides(data: dict[str, str], run_dir: Path, *extra: str, save_interval: int = KILL_STEP) -> list[str]:
    """The tiny MLM run every test shares: 60 steps of 8 × 64 tokens (micro-batch 4), warmup
    then a 1−sqrt decay over the last 20 steps, a loss logged every step, a checkpoint every
    ``save_interval`` steps, one thread."""
    return [
        "phase=phase1", "model=tiny", f"trainer.run_dir={run_dir}",
        f"data.blend=[0.5,{data['general']},0.5,{data['products']}]", "data.eval_blend=null",
        "data.seq_length=64", "trainer.micro_batch_size=4", "trainer.global_batch_size=8",
        f"trainer.max_steps={STEPS}", "trainer.log_interval=1", f"trainer.save_interval={save_interval}",
        "trainer.num_threads=1", "trainer.export_hf=false", "trainer.plot=false", "logging.wandb=false",
        "optimizer.lr=3e-3", "schedule.warmup=10", "schedule.decay_style=1-sqrt", "schedule.decay=20",
        *extra,
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def env() -> dict[str, str]:
    """This environment minus any process-group variables (a test process may be a world
    of one itself), with the repository importable and one thread per process."""
    inherited = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS}
    return {**inherited, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "offline"}


def launcher(nproc: int) -> list[str]:
    """``python`` (one process) or ``python -m torch.distributed.run`` (nproc ranks, gloo)."""
    if nproc == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_port", str(free_port())]


def train_command(nproc: int, overrides: Sequence[str], script: Optional[Path] = None) -> list[str]:
    entry = [str(script)] if script else ["-m", "rexbert.train"]
    return [*launcher(nproc), *entry, *overrides]


def run(cmd: Sequence[str], log: Path, timeout: float = 300) -> str:
    """Run to the end; the output goes to a file (never a pipe: orphans of a killed run may
    still hold it). Returns the output; fails the test on a non-zero exit."""
    with open(log, "w") as out:
        proc = subprocess.run(list(cmd), cwd=log.parent, env=env(), stdout=out, stderr=subprocess.STDOUT,
                              timeout=timeout)
    text = log.read_text()
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-6000:]}"
    return text


def run_until_then_kill(cmd: Sequence[str], log: Path, ready: Callable[[], bool], timeout: float = 300,
                        extra_env: Optional[dict[str, str]] = None) -> None:
    """Start ``cmd`` in its own session, wait until ``ready()``, then SIGKILL every process of
    the run: the launcher's group and the group of each descendant (torchrun starts each
    rank in a session of its own; a rank's checkpoint-writer helpers share its group)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(list(cmd), cwd=log.parent, env={**env(), **(extra_env or {})}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"the run ended ({proc.returncode}) before it could be killed:\n"
                                     f"{log.read_text()[-6000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting to kill the run:\n{log.read_text()[-6000:]}")
            time.sleep(0.02)
    finally:
        kill_tree(proc.pid)
        proc.wait()


def kill_tree(pid: int) -> None:
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return
    groups = set()
    for p in procs:
        try:
            groups.add(os.getpgid(p.pid))
        except ProcessLookupError:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    psutil.wait_procs(procs, timeout=30)


def losses(run_dir: Path) -> dict[int, float]:
    """step → training loss from ``metrics.jsonl`` (after a resume a step may appear twice:
    the last record wins)."""
    out: dict[int, float] = {}
    with open(Path(run_dir) / "metrics.jsonl") as f:
        for line in f:
            record = json.loads(line)
            if "loss" in record:
                out[record["step"]] = record["loss"]
    return out


def checkpoint_done(run_dir: Path, step: int) -> Callable[[], bool]:
    marker = Path(run_dir) / "checkpoints" / f"iter_{step:07d}" / "COMPLETE"
    return marker.is_file
