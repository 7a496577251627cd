"""Shared fixtures. Every test runs offline; tests that need no real tokenizer use a
512-id vocabulary."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def world_of_one():
    """torch.distributed + megatron parallel_state as one CPU process (gloo)."""
    from megatron_ext.parallel import init_parallel

    init_parallel(1, 1)
    yield


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory):
    """One tiny random Hugging Face MLM folder (real ModernBERT tokenizer) for every evaluation test."""
    from eval_helpers import tiny_mlm_folder

    return tiny_mlm_folder(tmp_path_factory.mktemp("tiny_mlm") / "model")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread; on a shared 2-core VM more threads crawl (10x, measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
