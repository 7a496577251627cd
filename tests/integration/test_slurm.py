"""launch/ on a real single-node Slurm cluster (scripts/slurm_local_cluster.sh): the
curriculum chain, preemption → checkpoint → requeue → bitwise resume, a failed phase
cancelling its dependents, and the preprocessing array job. Skipped with the reason where
the cluster cannot start (not root, no Debian packages); the cluster is stopped at the end
of the module whatever happens."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train_fixtures import ROOT, env, losses, train_overrides

CLUSTER = ROOT / "scripts" / "slurm_local_cluster.sh"
# Two ranks per job (gloo on CPU) on the cluster's fake GPUs, one CPU each.
SBATCH_ARGS = "--ntasks-per-node=2 --gpus-per-node=2 --cpus-per-task=1"
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED"}


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("the local Slurm cluster needs root (Debian packages and daemons)")
    if not shutil.which("apt-get") and not Path("/usr/sbin/slurmctld").exists():
        pytest.skip("the local Slurm cluster needs Debian's slurm packages (apt-get)")
    up = subprocess.run([str(CLUSTER), "up"], capture_output=True, text=True, timeout=300)
    try:
        if up.returncode != 0:
            pytest.skip(f"the local Slurm cluster did not start: {up.stderr[-2000:]}")
        yield
    finally:
        subprocess.run([str(CLUSTER), "down"], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory) -> dict[str, str]:
    """What a user's shell would hold: the project's python, the repository importable."""
    return {**env(), "REXBERT_PYTHON": sys.executable, "REXBERT_SBATCH_ARGS": SBATCH_ARGS}


def job_state(job: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def wait_for_job(job: str, timeout: float) -> dict[str, str]:
    """Poll until the job is in a final state (a requeued job passes through PENDING again)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = job_state(job)
        if state.get("JobState") in FINAL_STATES:
            return state
        time.sleep(1)
    subprocess.run(["scancel", job])
    raise AssertionError(f"job {job} not finished after {timeout} s: {job_state(job)}")


def sbatch(script: str, args: list[str], environ: dict[str, str]) -> str:
    cmd = ["sbatch", "--parsable", *SBATCH_ARGS.split(), script, *args]
    return subprocess.run(cmd, cwd=ROOT, env=environ, check=True, capture_output=True, text=True).stdout.strip()


def tiny_overrides(data: dict[str, str], run_dir: Path, *extra: str) -> list[str]:
    return [a for a in train_overrides(data, run_dir, *extra) if not a.startswith("phase=")]


def lint_tool(name: str) -> str | None:
    """A lint binary from the venv (requirements/cpu.txt installs them), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def test_launch_scripts_are_shellcheck_clean():
    scripts = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("launch/*.sh"), *ROOT.glob("scripts/*.sh")])
    shellcheck = lint_tool("shellcheck")
    if shellcheck:
        result = subprocess.run([shellcheck, "-x", *scripts], cwd=ROOT, capture_output=True, text=True)
    else:  # syntax only
        result = subprocess.run(["bash", "-c", 'for f; do bash -n "$f" || exit 1; done', "-", *scripts], cwd=ROOT,
                                capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_hadolint_clean():
    hadolint = lint_tool("hadolint")
    if not hadolint:
        pytest.skip("hadolint is not installed (requirements/cpu.txt brings it)")
    result = subprocess.run([hadolint, "docker/Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def curriculum_overrides(data: dict[str, str]) -> list[str]:
    """For every phase of a tiny curriculum; the run directories come from REXBERT_RUN_ROOT."""
    return ["model=tiny", f"data.blend=[0.5,{data['general']},0.5,{data['products']}]", "data.eval_blend=null",
            "data.seq_length=64", "trainer.micro_batch_size=4", "trainer.global_batch_size=8",
            "trainer.num_threads=1", "trainer.plot=false", "logging.wandb=false", "optimizer.lr=3e-3",
            "schedule.warmup=2"]


def test_curriculum_chains_three_phases(cluster, slurm_env, sample_data, tmp_path):
    root = tmp_path / "curriculum"
    submitted = subprocess.run(
        ["launch/curriculum.sh", *curriculum_overrides(sample_data), "phase1:trainer.max_steps=12", "phase2:trainer.max_steps=6",
         "phase2:data.seq_length=96", "phase3:trainer.max_steps=6", "phase3:schedule.warmup=0",
         "phase3:data.masking.guided_fraction=0"],  # the shared sample data has no span side-files
        cwd=ROOT, env={**slurm_env, "REXBERT_RUN_ROOT": str(root)}, check=True, capture_output=True, text=True)
    jobs = [line.split() for line in submitted.stdout.splitlines()]
    assert [j[0] for j in jobs] == ["phase1", "phase2", "phase3"], submitted.stdout
    for phase, job, _ in jobs:
        state = wait_for_job(job, timeout=400)
        logs = "\n".join(p.read_text() for p in sorted((root / phase / "logs").glob("*.log")))
        assert state["JobState"] == "COMPLETED", f"{phase}: {state.get('JobState')}\n{logs[-3000:]}"
    # Each phase started from the previous phase's final checkpoint, and says so.
    for phase, previous, steps in (("phase2", "phase1", 12), ("phase3", "phase2", 6)):
        log = (root / phase / "logs" / f"{phase}-{dict((j[0], j[1]) for j in jobs)[phase]}-attempt0.log").read_text()
        start = root / previous / "checkpoints" / f"iter_{steps:07d}"
        assert f"started from checkpoint {start}" in log, log[-2000:]
        assert start.is_dir()
    assert (root / "phase3" / "hf" / "config.json").is_file()
    assert json.loads((root / "phase3" / "hf" / "config.json").read_text())["model_type"] == "modernbert"


def test_preemption_requeues_and_resumes_bitwise(cluster, slurm_env, sample_data, straight_dp2, tmp_path):
    """USR1 to the batch shell mid-run → the trainer checkpoints and leaves its marker → the
    script requeues → the next attempt resumes → every step's loss equals the uninterrupted
    2-rank torchrun run of the same config (#4's reference)."""
    run_dir = tmp_path / "preempted"
    job = sbatch("launch/phase1.sh", tiny_overrides(sample_data, run_dir), slurm_env)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 5):
        assert time.monotonic() < deadline, job_state(job)
        assert job_state(job).get("JobState") not in FINAL_STATES, job_state(job)
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True)
    state = wait_for_job(job, timeout=400)
    assert state["JobState"] == "COMPLETED", state
    assert int(state["Restarts"]) == 1, state
    second = (run_dir / "logs" / f"phase1-{job}-attempt1.log").read_text()
    assert "resumed from" in second, second[-2000:]
    batch_log = (ROOT / "logs" / f"rexbert-phase1-{job}.out").read_text()
    assert "requeueing job" in batch_log, batch_log
    straight, _ = straight_dp2
    assert losses(run_dir) == losses(straight)


def test_failed_phase_cancels_the_phases_after_it(cluster, slurm_env, sample_data, tmp_path):
    root = tmp_path / "failing"
    missing = tmp_path / "no_such_dataset"
    submitted = subprocess.run(
        ["launch/curriculum.sh", *curriculum_overrides(sample_data), f"phase1:data.blend=[{missing}]"],
        cwd=ROOT, env={**slurm_env, "REXBERT_RUN_ROOT": str(root)}, check=True, capture_output=True, text=True)
    jobs = dict(line.split()[:2] for line in submitted.stdout.splitlines())
    assert wait_for_job(jobs["phase1"], timeout=200)["JobState"] == "FAILED"
    for phase in ("phase2", "phase3"):
        state = wait_for_job(jobs[phase], timeout=60)
        assert state["JobState"] == "CANCELLED", (phase, state)
    log = next((root / "phase1" / "logs").glob("*.log")).read_text()
    assert str(missing) in log  # the trainer named the missing path


def test_preprocess_array_then_merge_equals_one_process(cluster, slurm_env, tmp_path):
    from data_tools.preprocess.cli import main as preprocess
    from rexbert.sample_data import load_sample

    lines = [json.dumps({"id": r["id"], "text": r["text"], "spans": [[0, 4]]}) for r in load_sample("products")]
    whole = tmp_path / "products.jsonl"
    whole.write_text("\n".join(lines) + "\n")
    shards = []
    (tmp_path / "shards").mkdir()
    for i in range(4):  # contiguous quarters, in order
        shard = tmp_path / "shards" / f"products.part{i}.jsonl"
        shard.write_text("".join(line + "\n" for line in lines[i * len(lines) // 4:(i + 1) * len(lines) // 4]))
        shards.append(str(shard))
    options = ["--fields", "text", "--spans-field", "spans"]
    submitted = subprocess.run(["launch/preprocess.sh", "-o", str(tmp_path / "array"), "-n", "products", *shards,
                                "--", *options], cwd=ROOT, env=slurm_env, check=True, capture_output=True, text=True)
    array, merge = submitted.stdout.split()
    state = wait_for_job(merge, timeout=300)
    assert state["JobState"] == "COMPLETED", (state, job_state(f"{array}_0"))
    assert preprocess([str(whole), "-o", str(tmp_path / "single"), "--workers", "1", "--no-progress", *options]) == 0
    for name in ("products.bin", "products.idx", "products_spans.bin", "products_spans.idx"):
        assert filecmp.cmp(tmp_path / "single" / name, tmp_path / "array" / name, shallow=False), name


def test_curation_chain_on_slurm_equals_one_process(cluster, slurm_env, tmp_path):
    """launch/curate.sh: array tasks for the shard-parallel stages, single jobs for the
    rest, chained afterok — the same final corpus as one process running every stage."""
    from data_tools.curate.config import load_curate_config
    from data_tools.curate.example import build_example_corpus
    from data_tools.curate.pipeline import run as run_pipeline

    for name in ("slurm", "local"):
        build_example_corpus(tmp_path / name)
    run_pipeline(load_curate_config([f"output={tmp_path / 'local'}", "progress=false"], preset="example"),
                 log=lambda line: None)
    submitted = subprocess.run(["launch/curate.sh", f"output={tmp_path / 'slurm'}"], cwd=ROOT, check=True,
                               env={**slurm_env, "REXBERT_CURATE_PRESET": "example", "REXBERT_CURATE_TASKS": "2",
                                    "REXBERT_SBATCH_ARGS": "--cpus-per-task=1"}, capture_output=True, text=True)
    jobs = [line.split() for line in submitted.stdout.splitlines()]
    assert [j[0] for j in jobs] == ["select", "sample,label,audit,distill", "filter,clean", "dedup",
                                    "decontam,mine", "report"], submitted.stdout
    state = wait_for_job(jobs[-1][1], timeout=600)
    assert state["JobState"] == "COMPLETED", (state, [job_state(j[1]).get("JobState") for j in jobs])
    final = sorted(p.name for p in (tmp_path / "local" / "10_mine").glob("*.jsonl") if p.name.count(".") == 1)
    assert final
    for name in final:
        assert filecmp.cmp(tmp_path / "local" / "10_mine" / name, tmp_path / "slurm" / "10_mine" / name,
                           shallow=False), name
    assert (tmp_path / "slurm" / "report" / "domains.png").is_file()
