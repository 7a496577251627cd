"""Acceptance (issue #5): deterministic resume and a crash during a save.

- 60 steps straight vs 30 steps, SIGKILL, rerun of the same command to 60: every step's loss
  is identical bit for bit (CPU fp32, one thread per rank), with DP=1 and with DP=2 (gloo,
  torchrun); DP=2 equals DP=1 at the same global batch.
- A SIGKILL while ``iter_N.tmp`` is being written leaves the previous checkpoint in charge:
  it stays ``latest``, auto-resume picks it, and the run still ends bit-identical.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from train_fixtures import KILL_STEP, STEPS, losses, run, run_until_then_kill, train_command, train_overrides

SLOW_SAVE = Path(__file__).resolve().parent / "slow_save_worker.py"


def _assert_identical(got: dict[int, float], want: dict[int, float]) -> None:
    assert sorted(want) == list(range(1, STEPS + 1))
    assert sorted(got) == sorted(want)
    differ = [(s, got[s], want[s]) for s in want if got[s] != want[s]]
    assert not differ, f"{len(differ)} steps differ, first: {differ[:3]}"


@pytest.mark.parametrize("dp", [1, 2])
def test_resume_after_sigkill_is_bitwise_identical(request, dp):
    straight, _ = request.getfixturevalue(f"straight_dp{dp}")
    resumed, output = request.getfixturevalue(f"resumed_dp{dp}")
    killed_log = (resumed / "killed.log").read_text()
    assert "done at step" not in killed_log and "fresh start" in killed_log
    checkpoint = resumed / "checkpoints" / f"iter_{KILL_STEP:07d}"
    assert f"resumed from {checkpoint}; step {KILL_STEP} of {STEPS}" in output
    assert f"done at step {STEPS}" in output
    _assert_identical(losses(resumed), losses(straight))
    # The final checkpoints agree too: step, samples, schedule, the spike guard's running mean.
    assert _final_common(resumed) == _final_common(straight)


def _final_common(run_dir: Path) -> dict:
    from megatron.core import dist_checkpointing

    common = dist_checkpointing.load_common_state_dict(str(run_dir / "checkpoints" / f"iter_{STEPS:07d}"))["common"]
    assert common["step"] == STEPS and common["loss_ema"] is not None
    return common


def test_dp2_equals_dp1(straight_dp1, straight_dp2):
    one, two = losses(straight_dp1[0]), losses(straight_dp2[0])
    assert sorted(one) == sorted(two) == list(range(1, STEPS + 1))
    worst = max(abs(one[s] - two[s]) for s in one)
    assert worst <= 1e-6, worst


def test_sigkill_during_save_keeps_previous_checkpoint(tmp_path, sample_data, straight_dp1):
    from rexbert.train.checkpoint import COMPLETE, complete_checkpoints, find_checkpoint, load_checkpoint

    run_dir = tmp_path / "crash"
    run_dir.mkdir()
    root = run_dir / "checkpoints"
    overrides = train_overrides(sample_data, run_dir, save_interval=20)
    partial = root / "iter_0000040.tmp"
    run_until_then_kill(train_command(1, overrides, script=SLOW_SAVE), run_dir / "killed.log",
                        (partial / "SAVE_WRITTEN").is_file, extra_env={"REXBERT_TEST_HANG_AT_STEP": "40"})

    # Every shard and the metadata of iter_40 are on disk, yet it is not a checkpoint.
    assert (partial / "metadata.json").is_file() and not (partial / COMPLETE).exists()
    assert not (root / "iter_0000040").exists()
    assert (root / "latest").read_text().strip() == "iter_0000020"
    assert find_checkpoint(run_dir) == root / "iter_0000020"
    assert find_checkpoint(partial) is None
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        load_checkpoint(partial, model=None)

    output = run(train_command(1, overrides), run_dir / "train.log")
    assert f"resumed from {root / 'iter_0000020'}; step 20 of {STEPS}" in output
    assert not partial.exists()  # the resumed run saved step 40 again, atomically
    assert [p.name for p in complete_checkpoints(root)] == ["iter_0000040", "iter_0000060"]
    assert (root / "latest").read_text().strip() == "iter_0000060"
    _assert_identical(losses(run_dir), losses(straight_dp1[0]))
