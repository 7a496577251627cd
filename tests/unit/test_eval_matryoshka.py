"""The Matryoshka grid (rexbert.eval.matryoshka): the sliced head equals the training objective's
formula, the (last layer, full width) cell equals the plain model, grids on real Abt text
(masked tokens; title → description retrieval) and the heat map."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from eval_helpers import abt_path, tiny_mlm_folder
from rexbert.eval.common import EvalError, load_masked_lm, read_table
from rexbert.eval.matryoshka import (MatryoshkaConfig, grid_predictor, layer_states, plot_matryoshka_grid,
                                     run_matryoshka, sliced_head_logits)
from rexbert.eval.mlm_protocol import build_examples, collate, mlm_predictor
from rexbert.eval.retrieval import RetrievalConfig, run_retrieval



@pytest.fixture(scope="module")
def tiny(tiny_mlm):
    return tiny_mlm


@pytest.fixture(scope="module")
def loaded(tiny):
    return load_masked_lm(tiny)


@pytest.fixture(scope="module")
def abt_batch(loaded):
    _, tok = loaded
    texts = [f"{r['title']} {r['description']}" for r in read_table(abt_path(), ["title", "description"], limit=6)]
    return collate(build_examples(tok, texts, 64, "token", 0.15, 0), tok.pad_token_id)


def test_sliced_head_is_the_objectives_formula(loaded, abt_batch):
    model, _ = loaded
    input_ids, attention_mask, selected = abt_batch
    with torch.no_grad():
        reference = model.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        with layer_states(model, [1, 2]) as states:
            model.model(input_ids=input_ids, attention_mask=attention_mask)
        # intermediate layers: the raw layer output; the last: the final-normed output
        assert torch.equal(states[1], reference.hidden_states[1])
        assert torch.equal(states[2], reference.last_hidden_state)
        head, d = model.head, 16
        hidden = states[1][selected]
        # rexbert/train/objectives.py MatryoshkaLoss, written out
        x = F.gelu(F.linear(hidden[:, :d], head.dense.weight[:d, :d]))
        x = F.layer_norm(x, (d,), head.norm.weight[:d], None, head.norm.eps)
        expected = F.linear(x, model.decoder.weight[:, :d], model.decoder.bias)
        torch.testing.assert_close(sliced_head_logits(model, hidden, d), expected)


def test_last_layer_full_width_cell_is_the_model(tiny, abt_batch):
    model, _ = load_masked_lm(tiny)
    torch.manual_seed(0)
    with torch.no_grad():  # larger random weights: the 0.02-init model ranks the same ids everywhere
        for p in model.parameters():
            p.normal_(0, 1)
    grid = grid_predictor(model, [1, 2], [32, 8], 5, "cpu")(*abt_batch)
    plain = mlm_predictor(model, 5)(*abt_batch)["model"]
    assert len(set(map(tuple, plain.tolist()))) > 10  # the rankings differ between positions
    assert set(grid) == {"L1_d32", "L1_d8", "L2_d32", "L2_d8"}
    assert torch.equal(grid["L2_d32"], plain)
    assert not torch.equal(grid["L1_d32"], plain) and not torch.equal(grid["L2_d8"], plain)


def test_masked_token_grid_on_abt(tmp_path, tiny):
    out = tmp_path / "grid.json"
    run_matryoshka(MatryoshkaConfig(model=str(tiny), data_path=abt_path(), output=str(out), layers=[1, 2], dims=[32, 16],
                                    metric="mlm_top5", limit=20, block_size=64))
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    assert metrics["layers"] == [1, 2] and metrics["dims"] == [32, 16] and metrics["metric"] == "mlm_top5"
    assert set(metrics["grid"]) == {"L1_d32", "L1_d16", "L2_d32", "L2_d16"}
    assert all(0 <= v <= 1 for v in metrics["grid"].values()) and result["details"]["positions"] > 0
    png = plot_matryoshka_grid(result, tmp_path / "grid.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_retrieval_grid_full_cell_equals_the_retrieval_task(tmp_path, tiny):
    rows = read_table(abt_path(), ["title", "description"], limit=30)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": r["title"], "document": r["description"]}) + "\n" for r in rows))
    grid = run_matryoshka(MatryoshkaConfig(model=str(tiny), test_path=str(pairs), output=str(tmp_path / "g.json"),
                                           metric="ndcg@10", max_seq_length=64))["metrics"]
    assert grid["layers"] == [1, 2] and grid["dims"] == [32, 16, 8, 4]  # the defaults
    task = run_retrieval(RetrievalConfig(model=str(tiny), test_path=str(pairs), output=str(tmp_path / "r.json"),
                                         max_seq_length=64))["metrics"]
    assert grid["grid"]["L2_d32"] == pytest.approx(task["ndcg@10"], abs=1e-6)
    assert grid["grid"]["L2_d4"] != grid["grid"]["L2_d32"]


def test_clear_errors(tmp_path, tiny):
    with pytest.raises(EvalError, match="matryoshka.layers: 3 is not a layer in 1..2"):
        run_matryoshka(MatryoshkaConfig(model=str(tiny), data_path=abt_path(), layers=[3], output=str(tmp_path / "x.json")))
    with pytest.raises(EvalError, match="matryoshka.dims: 64 is not in 1..32"):
        run_matryoshka(MatryoshkaConfig(model=str(tiny), data_path=abt_path(), dims=[64], output=str(tmp_path / "x.json")))
    with pytest.raises(EvalError, match="matryoshka.metric"):
        MatryoshkaConfig(metric="accuracy")
    with pytest.raises(EvalError, match="does not exist"):
        run_matryoshka(MatryoshkaConfig(model=str(tmp_path / "none"), data_path=abt_path()))
