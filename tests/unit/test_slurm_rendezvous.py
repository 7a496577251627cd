"""Ranks started as srun tasks (launch/phase*.sh) find their rank, world size and meeting
point from Slurm's variables; outside an srun step nothing is taken from Slurm."""

from __future__ import annotations

import pytest

from megatron_ext.parallel import slurm_rendezvous

STEP = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
        "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4", "MASTER_ADDR": "node017", "MASTER_PORT": "29123"}


def _set(monkeypatch, env: dict[str, str]) -> None:
    for key in (*STEP, "RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_an_srun_task_gets_its_rank_and_the_jobs_address(monkeypatch):
    _set(monkeypatch, STEP)
    assert slurm_rendezvous() == {"rank": 3, "world_size": 4, "local_rank": 1,
                                  "init_method": "tcp://node017:29123"}


def test_the_port_defaults_to_one_derived_from_the_job_id(monkeypatch):
    _set(monkeypatch, {k: v for k, v in STEP.items() if k != "MASTER_PORT"})
    assert slurm_rendezvous()["init_method"] == "tcp://node017:24242"


def test_the_batch_script_itself_is_not_a_rank(monkeypatch):
    _set(monkeypatch, {k: v for k, v in STEP.items() if k != "SLURM_STEP_ID"})  # the batch shell has no step id
    assert slurm_rendezvous() is None


def test_several_tasks_without_an_address_fail_saying_what_to_set(monkeypatch):
    _set(monkeypatch, {k: v for k, v in STEP.items() if k != "MASTER_ADDR"})
    with pytest.raises(RuntimeError, match="MASTER_ADDR"):
        slurm_rendezvous()
