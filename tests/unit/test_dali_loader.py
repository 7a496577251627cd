"""data.loader_backend (torch | dali): chosen by config and validated with the key named;
the DALI path fails with the guard's message naming nvidia-dali when the package is absent;
where DALI is installed, its pipeline (CPU here) yields exactly the torch backend's batches."""

from __future__ import annotations

import pytest
import torch

from helpers import random_documents, small_special_tokens, write_corpus
from rexbert.data.dataset import DataConfig, PretrainingDataset


def _without_dali(monkeypatch):
    from megatron_ext import compat

    monkeypatch.setattr(compat, "probe", lambda key: compat.Probe(None, "ModuleNotFoundError: No module named "
                                                                        "'nvidia'"))


def test_backend_is_a_validated_config_choice():
    from rexbert.config import load_run_config

    assert DataConfig().loader_backend == "torch"
    assert DataConfig(loader_backend="dali").loader_backend == "dali"
    with pytest.raises(ValueError, match=r"data\.loader_backend='ffcv': choose one of \('torch', 'dali'\)"):
        DataConfig(loader_backend="ffcv")
    assert load_run_config(["data.loader_backend=dali"]).data.loader_backend == "dali"
    with pytest.raises(Exception, match="loader_backend"):
        load_run_config(["data.loader_backend=ffcv"])


def test_dali_without_the_package_names_it(monkeypatch):
    from rexbert.data.dali_loader import DaliMicroBatches

    _without_dali(monkeypatch)
    with pytest.raises(ImportError, match=r"data\.loader_backend=dali\) needs nvidia-dali.*nvidia-dali-cuda120"):
        DaliMicroBatches(lambda first: 4, lambda first, gb: [], 0, device_id=None)


def test_trainer_refuses_dali_before_any_work(monkeypatch, tmp_path):
    """The trainer checks the package first: the missing corpus is not even looked at."""
    from rexbert.config import load_run_config
    from rexbert.train.trainer import Trainer

    _without_dali(monkeypatch)
    cfg = load_run_config(["model=tiny", f"data.blend=[{tmp_path}/missing]", "data.loader_backend=dali",
                           f"trainer.run_dir={tmp_path}/run"])
    with pytest.raises(ImportError, match="needs nvidia-dali"):
        Trainer(cfg)


def test_dali_pipeline_yields_the_torch_batches(tmp_path):
    """On CPU (device_id=None) the DALI pipeline hands back what ``collate_packed`` made, step
    after step across a changing global batch, and refuses a step it does not hold."""
    from megatron_ext import compat

    if not compat.HAVE_DALI:
        pytest.skip(f"nvidia-dali not installed ({compat.probe('dali').reason})")
    from rexbert.data.collate import collate_packed
    from rexbert.data.dali_loader import DaliMicroBatches

    prefix = write_corpus(tmp_path / "docs", random_documents(200, 5, 120, seed=3))
    data = PretrainingDataset(DataConfig(blend=[prefix], seq_length=128), small_special_tokens())

    def plan(first: int) -> int:  # a batch ramp: 2, 2, 4, 4, ...
        return 2 if first < 4 else 4

    def collate_step(first: int, global_batch: int) -> list[dict]:
        return [collate_packed([data[i] for i in range(s, s + 2)], pad_to_multiple=16, pad_id=3)
                for s in range(first, first + global_batch, 2)]

    loader = DaliMicroBatches(plan, collate_step, 0, device_id=None)
    first = 0
    for _ in range(4):
        got, want = loader.step(first, plan(first)), collate_step(first, plan(first))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.keys() == w.keys()
            for key in ("input_ids", "labels", "cu_seqlens"):
                assert torch.equal(g[key], w[key]), key
            assert g["max_seqlen"] == w["max_seqlen"] and g.get("num_padding") == w.get("num_padding")
        first += plan(first)
    with pytest.raises(RuntimeError, match="out of step"):
        loader.step(first + 1, 4)
