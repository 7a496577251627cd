"""Issue #7 acceptance 1: the example corpus (real text, planted problems) goes select →
sample → label → audit → distill → filter → clean → dedup → decontaminate → mine → report
in one run, each planted problem is caught by its stage, and the output feeds
data_tools.preprocess unchanged. The same run, resumed, redoes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_tools.curate.config import load_curate_config
from data_tools.curate.example import PLANTED, build_example_corpus
from data_tools.curate.pipeline import STAGES, run, stage_dir


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    out = tmp_path_factory.mktemp("curate")
    built = build_example_corpus(out)
    config = load_curate_config([f"output={out}", "progress=false"], preset="example")
    results = run(config, log=lambda line: None)
    return out, built, config, results


def read_all(folder: Path) -> list[dict]:
    from data_tools.curate.shards import output_shards

    return [json.loads(line) for p in output_shards(folder) for line in p.read_text().splitlines()]


def test_every_stage_ran_and_wrote_its_outputs(curated):
    out, _, config, results = curated
    assert list(results) == list(STAGES)
    assert (stage_dir(config, "label") / "labels.jsonl").is_file()
    assert json.loads((stage_dir(config, "audit") / "audit.json").read_text())["kappa"] is not None
    metrics = json.loads((stage_dir(config, "distill") / "metrics.json").read_text())
    assert metrics
    for name in ("report.md", "report.json", "domains.png"):
        assert (out / "report" / name).is_file()


def test_selection_keeps_the_chosen_domains_only(curated):
    out, _, config, _ = curated
    selected = read_all(stage_dir(config, "select"))
    assert {d["domain"] for d in selected} == {"fashion", "hobby", "entertainment"}
    assert {d["route"] for d in selected if d["domain"] == "fashion"} == {"direct"}
    summary = curated[3]["select"]
    assert summary["dropped"]["domain_not_selected"] > 0 and summary["bad_lines"] == 1


def test_the_relevance_filter_removes_the_general_text(curated):
    _, _, config, _ = curated
    kept = read_all(stage_dir(config, "filter"))
    hamlet_like = [d for d in kept if d["domain"] != "fashion" and ":" in d["text"][:20] and "\n" in d["text"]]
    filtered = [d for d in kept if d["domain"] != "fashion"]
    assert filtered and len(hamlet_like) <= 0.05 * len(filtered)
    assert all("relevance" in d["scores"] for d in filtered)


def test_each_planted_problem_is_caught_by_its_stage(curated):
    _, built, config, results = curated
    final_texts = {d["text"] for d in read_all(stage_dir(config, "mine"))}
    for key in ("german", "french", "boilerplate", "profane"):
        assert PLANTED[key] not in final_texts, key
    dropped = results["clean"]["dropped"]
    assert sum(v for k, v in dropped.items() if k.startswith("lang")) >= 2
    assert results["dedup"]["dropped"].get("near_duplicate", 0) >= 0.9 * built["planted"]["near_duplicates"]
    eval_texts = {json.loads(line)["text"] for line in Path(built["eval"]).read_text().splitlines()}
    assert not (final_texts & eval_texts)
    assert results["decontam"]["dropped"].get("contaminated", 0) >= 1


def test_the_final_corpus_has_spans_and_feeds_the_preprocessor(curated, tmp_path):
    from data_tools.preprocess.cli import main as preprocess

    _, _, config, _ = curated
    final = read_all(stage_dir(config, "mine"))
    assert sum(len(d["spans"]) for d in final) > len(final)
    shards = sorted(str(p) for p in stage_dir(config, "mine").glob("*.jsonl") if ".dropped" not in p.name
                    and ".rejects" not in p.name)
    assert preprocess([*shards, "-o", str(tmp_path / "data"), "--spans-field", "spans", "--workers", "1",
                       "--no-progress"]) == 0
    documents = sum(json.loads(p.read_text())["documents"] for p in (tmp_path / "data").glob("*.stats.json")
                    if p.name != "stats.json")
    assert documents == len(final)


def test_the_report_counts_what_each_stage_removed(curated):
    out, _, _, results = curated
    report = json.loads((out / "report" / "report.json").read_text())
    by_stage = {s["stage"]: s for s in report["stages"]}
    assert by_stage["mine"]["documents"] == results["mine"]["kept"]
    assert by_stage["select"]["documents"] > by_stage["filter"]["documents"] > by_stage["mine"]["documents"]
    assert "near_duplicate" in (out / "report" / "report.md").read_text()


def test_a_rerun_resumes_without_redoing_anything(curated):
    out, _, config, _ = curated
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "report" not in p.parts}
    run(config, log=lambda line: None)
    after = {p: p.stat().st_mtime_ns for p in before}
    changed = [p for p in before if before[p] != after[p]]
    assert not changed, changed[:5]
