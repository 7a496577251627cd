"""Session-scoped training runs shared by test_resume.py and test_golden.py: each expensive
run happens once per session, however many tests read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from train_fixtures import (KILL_STEP, build_sample_data, checkpoint_done, run, run_until_then_kill,
                            train_command, train_overrides)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> dict[str, str]:
    return build_sample_data(tmp_path_factory.mktemp("sample_data"))


@pytest.fixture(scope="session")
def train_runs(tmp_path_factory, sample_data):
    """Run factory: ``train_runs(name, nproc, kill_at=None)`` → the run directory, after
    training straight to the end, or (``kill_at``) after a SIGKILL once ``iter_<kill_at>`` is
    complete and a rerun of the same command. Memoised for the session."""
    base = tmp_path_factory.mktemp("train_runs")
    done: dict[tuple, tuple[Path, str]] = {}

    def get(name: str, nproc: int, kill_at: int | None = None) -> tuple[Path, str]:
        key = (name, nproc, kill_at)
        if key not in done:
            run_dir = base / name
            run_dir.mkdir()
            cmd = train_command(nproc, train_overrides(sample_data, run_dir))
            if kill_at is not None:
                run_until_then_kill(cmd, run_dir / "killed.log", checkpoint_done(run_dir, kill_at))
            done[key] = run_dir, run(cmd, run_dir / "train.log")
        return done[key]

    return get


@pytest.fixture(scope="session")
def straight_dp1(train_runs):
    return train_runs("straight_dp1", 1)


@pytest.fixture(scope="session")
def straight_dp2(train_runs):
    return train_runs("straight_dp2", 2)


@pytest.fixture(scope="session")
def resumed_dp1(train_runs):
    return train_runs("resumed_dp1", 1, kill_at=KILL_STEP)


@pytest.fixture(scope="session")
def resumed_dp2(train_runs):
    return train_runs("resumed_dp2", 2, kill_at=KILL_STEP)
