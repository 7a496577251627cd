"""Decontamination: a document sharing a 13-word run with an evaluation item is dropped, one
sharing only 12 words in a row is kept; eval files in jsonl / tsv / txt; bad lines counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_tools.curate.decontam import DecontamConfig, main, make_decontam_step, words
from data_tools.curate.shards import CurationError, run_stage

SAMPLE = Path(__file__).resolve().parents[2] / "rexbert" / "sample_data"
PRODUCTS = [json.loads(line) for line in open(SAMPLE / "products.jsonl")]
HAMLET = [json.loads(line) for line in open(SAMPLE / "general.jsonl")]
# An evaluation item: a real product description (40+ words).
ITEM = next(p["text"] for p in PRODUCTS if len(p["text"].split()) >= 45)
ITEM_WORDS = words(ITEM)  # lower-cased letter/digit runs: "10/100" is two words
FILLER = "Horatio: Before my God, I might not this believe Without the sensible and true avouch Of mine own eyes."


def _run_of(n: int, start: int = 5) -> str:
    """FILLER, then ``n`` consecutive words of ITEM (upper-cased, with other punctuation),
    then FILLER again."""
    return f"{FILLER} {' - '.join(ITEM_WORDS[start:start + n]).upper()}, {FILLER}"


@pytest.fixture
def eval_jsonl(tmp_path) -> Path:
    path = tmp_path / "heldout.jsonl"
    path.write_text(json.dumps({"id": "q1", "text": ITEM}) + "\n")
    return path


def test_thirteen_word_overlap_is_dropped_twelve_is_kept(eval_jsonl):
    step = make_decontam_step(DecontamConfig(eval_paths=[str(eval_jsonl)]))
    assert len(words(_run_of(13))) == 2 * len(words(FILLER)) + 13
    assert step({"id": "a", "text": _run_of(13)}) == "contaminated"
    twelve = step({"id": "b", "text": _run_of(12)})
    assert isinstance(twelve, dict)
    # Two 12-word runs from different places are still no 13-gram.
    two_runs = f"{_run_of(12, 0)} {' '.join(ITEM_WORDS[20:32])}"
    assert isinstance(step({"id": "c", "text": two_runs}), dict)
    assert isinstance(step({"id": "d", "text": HAMLET[0]["text"]}), dict)
    assert step.index_stats["items"] == 1 and step.index_stats["ngrams"] == len(words(ITEM)) - 12


def test_eval_formats_and_fields(tmp_path):
    hamlet_line = HAMLET[7]["text"]
    (tmp_path / "queries.jsonl").write_text(json.dumps({"query": ITEM, "answer": hamlet_line}) + "\n")
    (tmp_path / "pairs.tsv").write_text(f"id\tquery\tlabel\n1\t{HAMLET[9]['text'].replace(chr(10), ' ')}\t1\n")
    (tmp_path / "lines.txt").write_text(HAMLET[11]["text"].replace("\n", " ") + "\n\n")
    config = DecontamConfig(eval_paths=[str(tmp_path / n) for n in ("queries.jsonl", "pairs.tsv", "lines.txt")],
                            eval_fields=["query"])
    step = make_decontam_step(config)
    assert step.index_stats["items"] == 3  # "answer" is not an eval field
    for doc in (ITEM, HAMLET[9]["text"], HAMLET[11]["text"]):
        assert step({"id": "x", "text": f"Intro. {doc} Outro."}) == "contaminated"
    assert isinstance(step({"id": "y", "text": hamlet_line}), dict)


def test_bad_eval_lines_are_counted_and_short_items_reported(tmp_path, capsys):
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join([json.dumps({"text": ITEM}), "{oops", json.dumps({"other": 1}),
                               json.dumps({"text": "too short to match"}), json.dumps([1])]) + "\n")
    step = make_decontam_step(DecontamConfig(eval_paths=[str(path)]))
    stats = step.index_stats
    assert stats["items"] == 2 and stats["short_items"] == 1 and stats["bad_lines"] == 3
    assert [b["line"] for b in stats["bad_line_examples"]] == [2, 3, 5]
    assert f"{path}:2: invalid json" in capsys.readouterr().err


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(CurationError, match="eval_paths is empty"):
        make_decontam_step(DecontamConfig())
    with pytest.raises(CurationError, match="no such file"):
        make_decontam_step(DecontamConfig(eval_paths=[str(tmp_path / "missing.jsonl")]))
    (tmp_path / "e.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(CurationError, match=r"header \['a', 'b'\] has none of decontam.eval_fields"):
        make_decontam_step(DecontamConfig(eval_paths=[str(tmp_path / "e.tsv")]))
    (tmp_path / "e.csv").write_text("x\n")
    with pytest.raises(CurationError, match="expected .jsonl"):
        make_decontam_step(DecontamConfig(eval_paths=[str(tmp_path / "e.csv")]))
    with pytest.raises(ValueError, match="decontam.ngram=0"):
        DecontamConfig(ngram=0)


def test_stage_and_cli(eval_jsonl, tmp_path):
    shard = tmp_path / "docs.jsonl"
    shard.write_text("\n".join([json.dumps({"id": "leak", "text": _run_of(13)}), "not json",
                                json.dumps({"id": "ok", "text": _run_of(12)}), json.dumps(HAMLET[1])]) + "\n")
    stats = run_stage("decontaminate", [shard], tmp_path / "a",
                      make_decontam_step(DecontamConfig(eval_paths=[str(eval_jsonl)])), progress=False)
    assert stats[0]["dropped"] == {"contaminated": 1} and stats[0]["kept"] == 2 and stats[0]["bad_lines"] == 1
    assert main([str(shard), "-o", str(tmp_path / "b"), "--eval", str(eval_jsonl), "--no-progress",
                 "--set", "ngram=12"]) == 0
    kept = [json.loads(line)["id"] for line in (tmp_path / "b" / "docs.jsonl").open()]
    assert kept == [HAMLET[1]["id"]]  # at n = 12 the 12-word run is a match too
    index = json.loads((tmp_path / "b" / "decontaminate.index.json").read_text())
    assert index["ngram"] == 12 and index["items"] == 1
    assert main([str(shard), "-o", str(tmp_path / "c")]) == 2  # no eval set given
