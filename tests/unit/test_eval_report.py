"""The evaluation report: result JSONs of two models → markdown tables side by side and PNGs."""

from __future__ import annotations

import pytest

from rexbert.eval.common import EvalError, write_result
from rexbert.eval.report import build_report, flatten


def write_two_models(folder):
    for name, shift in (("rexbert-micro", 0.0), ("modernbert-base", 0.05)):
        model = f"/models/{name}"
        write_result(folder / name / "masked_tokens.json", "masked_tokens", model, "abt", 0,
                     {str(b): {"top1": 0.3 + shift + b / 5120, "top3": 0.4, "top5": 0.5 + shift, "positions": 100}
                      for b in (128, 256, 512)})
        write_result(folder / name / "glue_sst2.json", "glue", model, "sst2", 0,
                     {"accuracy": {"mean": 0.8 + shift, "ci95": 0.01, "n": 3}})
        write_result(folder / name / "matryoshka.json", "matryoshka", model, "abt", 0,
                     {"grid": {f"L{l}_d{d}": l * d / 1000 + shift for l in (2, 4) for d in (16, 64)},
                      "layers": [2, 4], "dims": [16, 64]})


def test_two_models_side_by_side_with_plots(tmp_path):
    write_two_models(tmp_path / "results")
    md = build_report([tmp_path / "results"], tmp_path / "report")
    text = md.read_text()
    assert "## masked_tokens — abt" in text and "## glue — sst2" in text and "## matryoshka — abt" in text
    glue_rows = [line for line in text.splitlines() if line.startswith("| `") and "±" in line]
    assert len(glue_rows) == 2 and "0.850 ± 0.010" in text
    for png in ("masked_tokens_abt.png", "glue_sst2.png", "matryoshka_abt.png"):
        assert (tmp_path / "report" / png).stat().st_size > 5000, png
        assert f"]({png})" in text


def test_flatten_keeps_mean_and_ci_together():
    flat = flatten({"128": {"top1": 0.5}, "accuracy": {"mean": 0.9, "ci95": 0.02, "n": 3}, "name": "x"})
    assert flat == {"128/top1": 0.5, "accuracy": {"mean": 0.9, "ci95": 0.02, "n": 3}}


def test_no_results_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="no evaluation results"):
        build_report([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(EvalError, match="does not exist"):
        build_report([tmp_path / "missing"], tmp_path / "out")
