"""Issue #8 acceptance 5 end to end: ``rexbert eval suite`` runs tasks over two models (tiny,
different seeds) on shipped product text, and the report renders side by side with PNGs."""

from __future__ import annotations

import json

from eval_helpers import tiny_mlm_folder


def test_suite_over_two_models_renders_the_report(tmp_path):
    from rexbert.eval.cli import main
    from rexbert.sample_data import sample_path

    models = [tiny_mlm_folder(tmp_path / name, seed=seed) for name, seed in (("tiny-a", 0), ("tiny-b", 1))]
    tasks = ("{masked_tokens: [data_path=%s, 'text_columns=[text]', 'block_sizes=[32,64]', limit=40], "
             "matryoshka: [data_path=%s, 'text_columns=[text]', block_size=32, limit=20, 'layers=[1,2]', "
             "'dims=[16,32]', metric=mlm_top1]}") % (sample_path("products"), sample_path("products"))
    code = main(["suite", f"models=[{models[0]},{models[1]}]", f"output={tmp_path / 'eval'}", f"tasks={tasks}"])
    assert code == 0
    for name in ("tiny-a", "tiny-b"):
        result = json.loads((tmp_path / "eval" / name / "masked_tokens.json").read_text())
        assert set(result["metrics"]) >= {"32", "64"} and result["model_name"] == name
    report = (tmp_path / "eval" / "report" / "report.md").read_text()
    assert "`tiny-a`" in report and "`tiny-b`" in report
    for png in ("masked_tokens_products_jsonl.png", "matryoshka_products_jsonl.png"):
        assert f"]({png})" in report and (tmp_path / "eval" / "report" / png).stat().st_size > 5000
