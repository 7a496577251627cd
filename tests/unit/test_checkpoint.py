"""rexbert.train.checkpoint: only directories marked COMPLETE count, the newest wins, a save
replaces leftovers of a crashed one, keeps the last K and moves the ``latest`` pointer; a
round trip restores the model, the common state and the RNG."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import randomize_, small_config
from rexbert.train import checkpoint as ckpt


def _fake(root: Path, name: str, complete: bool = True) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "metadata.json").write_text("{}")
    if complete:
        (path / ckpt.COMPLETE).write_text("0\n")
    return path


def test_find_checkpoint_takes_the_newest_complete_one(tmp_path):
    root = ckpt.checkpoint_root(tmp_path)
    ten = _fake(root, "iter_0000010")
    _fake(root, "iter_0000009")
    _fake(root, "iter_0000020", complete=False)  # killed before the marker: never loaded
    _fake(root, "iter_0000030.tmp", complete=False)  # a save in progress
    _fake(root, "iter_0000040.tmp")  # marked but never renamed: still not a checkpoint
    _fake(root, "iter_50")  # not our name
    (root / "latest").write_text("iter_0000020\n")  # the pointer is informative only
    (root / "iter_0000060").write_text("")  # a file, not a directory
    assert [p.name for p in ckpt.complete_checkpoints(root)] == ["iter_0000009", "iter_0000010"]
    assert ckpt.find_checkpoint(tmp_path) == ten  # a run directory
    assert ckpt.find_checkpoint(root) == ten  # its checkpoints/ folder
    assert ckpt.find_checkpoint(root / "iter_0000009") == root / "iter_0000009"  # one checkpoint
    assert ckpt.find_checkpoint(root / "iter_0000020") is None
    assert ckpt.find_checkpoint(root / "iter_0000030.tmp") is None


def test_find_checkpoint_orders_by_number(tmp_path):
    root = ckpt.checkpoint_root(tmp_path)
    for step in (99, 1000, 100):
        _fake(root, f"iter_{step:07d}")
    assert ckpt.find_checkpoint(tmp_path).name == "iter_0001000"


def test_nothing_to_find(tmp_path):
    assert ckpt.find_checkpoint(tmp_path / "missing") is None
    assert ckpt.find_checkpoint(tmp_path) is None
    assert ckpt.complete_checkpoints(tmp_path / "missing") == []
    _fake(ckpt.checkpoint_root(tmp_path), "iter_0000005", complete=False)
    assert ckpt.find_checkpoint(tmp_path) is None


def test_load_refuses_an_incomplete_checkpoint(tmp_path):
    partial = _fake(tmp_path, "iter_0000007.tmp", complete=False)
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        ckpt.load_checkpoint(partial, model=None)


def _model(seed: int):
    from rexbert.model.build import build_model

    model = build_model(small_config())
    randomize_(model, seed=seed)
    return model


def test_save_prunes_to_keep_last_and_round_trips(world_of_one, tmp_path):
    model = _model(seed=0)
    root = ckpt.checkpoint_root(tmp_path)
    # Leftovers of a crash: a half-written save of step 3, and step 2 already saved once
    # (a run resumed from step 1 saves step 2 again).
    stale = _fake(root, "iter_0000003.tmp", complete=False)
    (stale / "__0_0.distcp").write_bytes(b"garbage")
    _fake(root, "iter_0000002")
    for step in (1, 2, 3):
        common = ckpt.common_state(step, step * 8, {"step": step}, {"skipped_steps": 0})
        final = ckpt.save_checkpoint(tmp_path, step, model, None, common, keep_last=2)
        assert final == root / f"iter_{step:07d}" and (final / ckpt.COMPLETE).is_file()
        assert (root / "latest").read_text().strip() == final.name
    assert sorted(p.name for p in root.iterdir()) == ["iter_0000002", "iter_0000003", "latest"]
    assert (root / "iter_0000003" / "__0_0.distcp").read_bytes() != b"garbage"

    rng_at_save = torch.get_rng_state()
    torch.manual_seed(12345)  # the load must put the saved RNG state back
    other = _model(seed=1)
    common = ckpt.load_checkpoint(ckpt.find_checkpoint(tmp_path), other)
    assert common["step"] == 3 and common["consumed_samples"] == 24 and common["scheduler"] == {"step": 3}
    assert common["parallel"] == {"tp": 1, "pp": 1, "dp": 1}
    assert torch.equal(torch.get_rng_state(), rng_at_save)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name
