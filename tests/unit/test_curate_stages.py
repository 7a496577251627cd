"""Curation stages that need no model: shard streaming (atomic outputs, resume, bad lines),
domain selection, the stratified sample, span mining and the corpus report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_tools.curate.mine import MineConfig, find_spans, make_mine_step
from data_tools.curate.sample import SampleConfig, sample
from data_tools.curate.select import SelectConfig, make_select_step
from data_tools.curate.shards import expand_inputs, output_shards, run_stage


def write(path: Path, rows: list, raw_lines: tuple[str, ...] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(raw_lines))
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_stage_counts_bad_lines_and_resumes_without_redoing_finished_shards(tmp_path):
    a = write(tmp_path / "in" / "a.jsonl", [{"id": "1", "text": "keep me"}, {"id": "2", "text": "drop me"}],
              ("{not json\n", '{"id": "3"}\n', "[1, 2]\n"))
    b = write(tmp_path / "in" / "b.jsonl", [{"text": "keep this too"}])
    calls = []

    def step(doc):
        calls.append(doc["id"])
        return doc if "keep" in doc["text"] else "no_keep"

    stats = run_stage("t", [a, b], tmp_path / "out", step, progress=False)
    assert [s["kept"] for s in stats] == [1, 1] and stats[0]["dropped"] == {"no_keep": 1}
    assert stats[0]["bad_lines"] == 3
    rejects = read(tmp_path / "out" / "a.jsonl.rejects.jsonl")
    assert [r["line"] for r in rejects] == [3, 4, 5] and "invalid json" in rejects[0]["error"]
    assert read(tmp_path / "out" / "b.jsonl")[0]["id"] == "b.jsonl:1"  # a stable id where none was given
    assert output_shards(tmp_path / "out") == [tmp_path / "out" / "a.jsonl", tmp_path / "out" / "b.jsonl"]
    calls.clear()
    (tmp_path / "out" / "b.jsonl.done.json").unlink()  # as if the run died before finishing b
    run_stage("t", [a, b], tmp_path / "out", step, progress=False)
    assert calls == ["b.jsonl:1"]


def test_a_crash_mid_shard_leaves_no_output_and_the_rerun_completes(tmp_path):
    a = write(tmp_path / "in" / "a.jsonl", [{"id": str(i), "text": "x"} for i in range(5)])

    def boom(doc):
        if doc["id"] == "3":
            raise RuntimeError("killed")
        return doc

    with pytest.raises(RuntimeError):
        run_stage("t", [a], tmp_path / "out", boom, progress=False)
    assert not (tmp_path / "out" / "a.jsonl").exists() and not list((tmp_path / "out").glob(".*partial"))
    run_stage("t", [a], tmp_path / "out", lambda d: d, progress=False)
    assert len(read(tmp_path / "out" / "a.jsonl")) == 5


def test_inputs_with_the_same_name_are_refused(tmp_path):
    a = write(tmp_path / "x" / "part.jsonl", [])
    b = write(tmp_path / "y" / "part.jsonl", [])
    with pytest.raises(Exception, match="same file name"):
        expand_inputs([a, b])


def test_select_takes_the_domain_from_the_field_or_the_folder(tmp_path):
    config = SelectConfig(domains_direct=["Fashion"], domains_filter=["hobby", "Music and Dance"])
    step = make_select_step(config, tmp_path / "hobby" / "hobby_000.jsonl")
    assert step({"text": "t"})["route"] == "filter"
    assert step({"text": "t", "domain": "fashion"}) == {"text": "t", "domain": "fashion", "route": "direct"}
    assert step({"text": "t", "domain": "music-and-dance"})["domain"] == "music_and_dance"
    assert step({"text": "t", "domain": "physics"}) == "domain_not_selected"
    no_folder = make_select_step(SelectConfig(domains_direct=["a"], domain_from_folder=False), tmp_path / "a" / "x.jsonl")
    assert no_folder({"text": "t"}) == "no_domain"
    with pytest.raises(ValueError, match="both"):
        SelectConfig(domains_direct=["a"], domains_filter=["A"])


def test_the_sample_is_stratified_seeded_and_independent_of_shard_order(tmp_path):
    rows = [{"id": f"{d}-{i}", "text": "t", "domain": d, "route": "filter"} for d in ("a", "b") for i in range(50)]
    rows += [{"id": f"c-{i}", "text": "t", "domain": "c", "route": "direct"} for i in range(50)]
    one = write(tmp_path / "one.jsonl", rows[::2])
    two = write(tmp_path / "two.jsonl", rows[1::2])
    stats = sample([one, two], tmp_path / "s1.jsonl", SampleConfig(per_domain=10, seed=7))
    sample([two, one], tmp_path / "s2.jsonl", SampleConfig(per_domain=10, seed=7))
    sample([one, two], tmp_path / "s3.jsonl", SampleConfig(per_domain=10, seed=8))
    first = [r["id"] for r in read(tmp_path / "s1.jsonl")]
    assert stats["sampled"] == {"a": 10, "b": 10} and stats["seen"] == {"a": 50, "b": 50}
    assert first == [r["id"] for r in read(tmp_path / "s2.jsonl")]
    assert first != [r["id"] for r in read(tmp_path / "s3.jsonl")]
    assert len(set(first)) == 20


@pytest.mark.parametrize("text, expected", [
    ("Sony Bravia 46 in 1080p 120Hz LCD TV KDL-46V5100 in glossy black",
     [("46 in", "measurement"), ("1080p", "measurement"), ("120Hz", "measurement"),
      ("KDL-46V5100", "model_number"), ("glossy black", "colour")]),
    ("Linksys EtherFast 8-Port 10/100 Switch - EZXS88W", [("8-Port", "measurement"), ("EZXS88W", "model_number")]),
    ("Color: Navy, Size: XL. Weighs 2.5 lbs, 12 x 8 x 3 in",
     [("Color: Navy", "attribute"), ("Size: XL", "attribute"), ("2.5 lbs", "measurement"),
      ("12 x 8 x 3 in", "measurement")]),
    ("To be, or not to be: that is the question", []),  # prose: nothing to mine
])
def test_spans_in_real_product_text(text, expected):
    found = [(text[s:e], k) for s, e, k in find_spans(text, MineConfig())]
    assert found == expected


def test_brand_lexicon_and_the_span_fields(tmp_path):
    lexicon = tmp_path / "brands.txt"
    lexicon.write_text("Sony\nBose\n")
    step = make_mine_step(MineConfig(kinds=["brand", "model_number"], brand_lexicon=str(lexicon)))
    doc = step({"id": "1", "text": "Bose QuietComfort 35 II and a Sony WH1000XM4"})
    assert [doc["text"][s:e] for s, e in doc["spans"]] == ["Bose", "Sony", "WH1000XM4"]
    assert doc["span_types"] == ["brand", "brand", "model_number"]
    with pytest.raises(ValueError, match="mine.kinds"):
        MineConfig(kinds=["brands"])


def test_mined_spans_feed_the_preprocessor_unchanged(tmp_path):
    from data_tools.preprocess.cli import main as preprocess
    from rexbert.sample_data import load_sample

    step = make_mine_step(MineConfig())
    docs = [step({"id": r["id"], "text": r["text"]}) for r in load_sample("products")[:50]]
    shard = write(tmp_path / "mined.jsonl", docs)
    assert sum(len(d["spans"]) for d in docs) > 100
    assert preprocess([str(shard), "-o", str(tmp_path / "data"), "--spans-field", "spans", "--workers", "1",
                       "--no-progress"]) == 0
    assert (tmp_path / "data" / "mined_spans.idx").is_file()
    assert json.loads((tmp_path / "data" / "mined.stats.json").read_text())["documents"] == 50
