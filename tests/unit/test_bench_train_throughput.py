"""Smoke test of bench/train_throughput.py: two steps of the tiny model, every contender,
report fields present and token counts equal to the dataset's. No timing is asserted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train_throughput", ROOT / "bench" / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def expected_counts(prefix: str, seq_length: int, samples_per_step: int, steps: int, micro_batch: int):
    """Real tokens, predicted tokens and HF's padded positions per step, from the dataset."""
    from rexbert.data.dataset import DataConfig, PretrainingDataset
    from rexbert.data.masking import MaskingConfig

    data = PretrainingDataset(DataConfig(blend=[prefix], seq_length=seq_length,
                                         masking=MaskingConfig(strategy="uniform", mask_ratio=0.15)))
    real, predicted, padded = [], [], []
    for step in range(steps):
        first = step * samples_per_step
        samples = [data[i] for i in range(first, first + samples_per_step)]
        pieces = [p for s in samples for p in s]
        real.append(float(sum(len(p.input_ids) for p in pieces)))
        predicted.append(float(sum(int((p.labels != -100).sum()) for p in pieces)))
        positions = 0.0
        for m in range(0, samples_per_step, micro_batch):
            rows = [p for s in samples[m : m + micro_batch] for p in s]
            positions += len(rows) * max(len(p.input_ids) for p in rows)
        padded.append(positions)
    return real, predicted, padded


def test_two_steps_of_tiny(world_of_one, bench, tmp_path):
    cfg = bench.BenchConfig(size="tiny", seq_length=128, micro_batch_size=2, global_batch_size=4, steps=2,
                            warmup=0, threads=0, peak_tflops=1.0, peak_name="test peak", work_dir=str(tmp_path))
    report = bench.run_benchmark(cfg)

    assert set(report["results"]) == {"ours", "hf_sparse", "hf_dense"}
    for entry in report["results"].values():
        for key in ("tokens_per_s", "step_s_median", "tflops_per_s", "mfu", "first_step_loss"):
            assert key in entry
        assert entry["tokens_per_s"] > 0 and entry["mfu"] > 0
    assert set(report["ratios"]) == {"ours_vs_hf_sparse", "ours_vs_hf_dense"}
    assert report["peak"] == {"tflops": 1.0, "name": "test peak"}
    assert report["steps"] == {"warmup": 0, "timed": 2}

    # Two micro-batches of two packed sequences per step: counts straight from the dataset.
    real, predicted, padded = expected_counts(str(tmp_path / "data" / "products"), 128, 4, 2, 2)
    assert report["real_tokens_per_step"] == real
    assert report["predicted_tokens_per_step"] == predicted
    assert report["hf_padded_tokens_per_step"] == padded
    assert report["real_tokens_timed"] == sum(real)
    assert all(r <= 4 * 128 for r in real) and all(p > 0 for p in predicted)

    # Same weights, documents and masks: the first step's losses agree (before any update).
    losses = [entry["first_step_loss"] for entry in report["results"].values()]
    assert max(losses) - min(losses) < 1e-4

    text = bench.summary(report)
    assert "HF ModernBertForMaskedLM, sparse_prediction=True" in text and "MFU" in text


def test_packed_to_padded_keeps_pieces_and_masks(bench):
    from rexbert.data.collate import collate_packed, collate_padded
    from rexbert.data.dataset import MaskedPiece

    gen = torch.Generator().manual_seed(0)
    pieces = []
    for n in (5, 9, 2):
        ids = torch.randint(10, 100, (n,), generator=gen).numpy()
        labels = torch.where(torch.rand(n, generator=gen) < 0.5, torch.from_numpy(ids), -100).numpy()
        pieces.append(MaskedPiece(None, 0, 0, ids, labels))
    samples = [pieces[:2], pieces[2:]]
    padded = bench.packed_to_padded(collate_packed(samples), pad_id=3)
    reference = collate_padded(samples, pad_id=3)
    assert torch.equal(padded["input_ids"], reference["input_ids"])
    assert torch.equal(padded["labels"], reference["labels"])
    assert torch.equal(padded["attention_mask"].bool(), ~reference["padding_mask"])


def test_gpu_precisions_refuse_cpu(bench):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        bench.check_device(bench.BenchConfig(precision="bf16"))
    with pytest.raises(ValueError, match="choose one of"):
        bench.BenchConfig(precision="fp16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (bf16: megatron's mixed-precision optimizer)")
@pytest.mark.parametrize("precision", ["bf16", "fp8"])
def test_gpu_precisions_run_two_steps(world_of_one, bench, tmp_path, precision):
    from megatron_ext.compat import HAVE_TE

    if precision == "fp8" and not (HAVE_TE and torch.cuda.get_device_capability() >= (8, 9)):
        pytest.skip("fp8 needs transformer-engine and an Ada/Hopper GPU")
    cfg = bench.BenchConfig(size="tiny", seq_length=128, micro_batch_size=2, global_batch_size=2, steps=2,
                            warmup=0, threads=0, precision=precision, hf_dense=False, work_dir=str(tmp_path))
    report = bench.run_benchmark(cfg)
    assert report["device"].startswith("cuda")
    assert set(report["results"]) == {"ours", "hf_sparse"}
    assert all(r["tokens_per_s"] > 0 for r in report["results"].values())
