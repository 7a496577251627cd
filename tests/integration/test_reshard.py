"""Acceptance (issue #5, reshard): a checkpoint saved at TP=2 (and one at PP=2) by 2 gloo
ranks loads into one process (TP=1, PP=1) as a new run with nothing reset: every gathered
model tensor and optimizer moment (exp_avg, exp_avg_sq) equals the saved one bit for bit,
and the next two steps' losses are within 1e-5 of continuing at the saved layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from train_fixtures import launcher, run, train_overrides

WORKER = Path(__file__).resolve().parent / "reshard_worker.py"
SAVE_STEP = 5
LAYOUTS = ["tp2", "pp2"]


@pytest.fixture(scope="module")
def resharded(tmp_path_factory, sample_data):
    out = tmp_path_factory.mktemp("reshard")
    common = [o for o in train_overrides(sample_data, out) if not o.startswith("trainer.run_dir=")]
    args = ["--out", str(out), "--steps", str(SAVE_STEP), *common]
    run([*launcher(2), str(WORKER), "save", *args], out / "save.log")
    run([*launcher(1), str(WORKER), "load", *args], out / "load.log")
    return out, torch.load(out / "save.pt", weights_only=False), torch.load(out / "load.pt", weights_only=False)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("part", ["model", "exp_avg", "exp_avg_sq"])
def test_gathered_tensors_equal_bitwise(resharded, layout, part):
    _, saved, loaded = resharded
    want, got = saved[layout][part], loaded[layout][part]
    assert len(want) > 20 and set(got) == set(want)
    for name, tensor in want.items():
        assert got[name].shape == tensor.shape, name
        assert torch.equal(got[name], tensor), f"{layout} {part} {name}: max |Δ| {(got[name] - tensor).abs().max()}"
        if part != "model":
            assert tensor.abs().sum() > 0, f"{layout} {part} {name} is all zeros: no optimizer state was saved"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_next_steps_continue_the_saved_run(resharded, layout):
    _, saved, loaded = resharded
    for want, got in zip(saved[layout]["next"], loaded[layout]["next"], strict=True):
        assert abs(got["loss"] - want["loss"]) <= 1e-5, (got["loss"], want["loss"])
        assert got["lr"] == want["lr"]
        assert got["consumed_samples"] == want["consumed_samples"]
