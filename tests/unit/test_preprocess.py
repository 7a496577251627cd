"""data_tools.preprocess: ids read back equal direct tokenisation; rejects; no-clobber; determinism."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from data_tools.preprocess import main

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
ABT_CSV = SHARED / "data" / "ecommerce" / "abt_products.csv"
GENERAL = ROOT / "rexbert" / "sample_data" / "general.jsonl"


@pytest.fixture(scope="module")
def tokenizer():
    from rexbert.tokenizer import load_tokenizer

    return load_tokenizer(None)


def read_docs(prefix: Path) -> list[list[int]]:
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    ds = IndexedDataset(str(prefix), mmap=True)
    assert len(ds.document_indices) - 1 == len(ds)  # one sequence per document
    return [ds[i].tolist() for i in range(len(ds))]


def file_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def test_jsonl_ids_equal_direct_tokenisation(tmp_path, tokenizer):
    assert main([str(GENERAL), "-o", str(tmp_path), "--workers", "2", "--no-progress"]) == 0
    texts = [json.loads(line)["text"] for line in GENERAL.open(encoding="utf-8")]
    expected = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert read_docs(tmp_path / "general") == expected
    stats = json.loads((tmp_path / "general.stats.json").read_text())
    assert stats["documents"] == len(texts)
    assert stats["tokens"] == sum(map(len, expected))
    assert sum(stats["length_histogram"].values()) == len(texts)
    agg = json.loads((tmp_path / "stats.json").read_text())
    assert agg["total"]["tokens"] == stats["tokens"]


@pytest.mark.skipif(not ABT_CSV.exists(), reason=f"{ABT_CSV} not present")
def test_csv_two_fields_ids_equal_direct_tokenisation(tmp_path, tokenizer):
    argv = [str(ABT_CSV), "-o", str(tmp_path), "--fields", "title", "description", "--no-progress"]
    assert main(argv + ["--workers", "2"]) == 0
    with ABT_CSV.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    expected = [
        tokenizer(r["title"] + "\n" + r["description"], add_special_tokens=False)["input_ids"]
        for r in rows
    ]
    docs = read_docs(tmp_path / "abt_products")
    assert docs == expected
    assert all(CLS_SEP.isdisjoint(d) for d in docs)  # no special tokens stored


CLS_SEP = {50281, 50282}


def test_workers_do_not_change_bytes(tmp_path):
    common = [str(GENERAL), "--no-progress"]
    assert main(common + ["-o", str(tmp_path / "w1"), "--workers", "1"]) == 0
    assert main(common + ["-o", str(tmp_path / "w2"), "--workers", "2"]) == 0
    a, b = file_bytes(tmp_path / "w1"), file_bytes(tmp_path / "w2")
    assert a.keys() == b.keys() and a == b


def write_bad_file(path: Path) -> dict[int, str]:
    """A jsonl file with one bad line per reason; returns {line: reason}."""
    lines = [
        b'{"text": "a fine first line"}',
        b'{"text": "unterminated',  # 2
        b'{"title": "no text field"}',  # 3
        b'{"text": "   "}',  # 4
        b'{"text": "caf\xe9 latin-1 byte"}',  # 5
        b"",  # blank: skipped, not a reject
        b'["not", "an", "object"]',  # 7
        b'{"text": "lone \\ud800 surrogate"}',  # 8
        b'{"text": null}',  # 9
        b'{"text": "a fine last line"}',
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {2: "invalid_json", 3: "missing_field", 4: "empty_text", 5: "invalid_utf8",
            7: "invalid_json", 8: "invalid_utf8", 9: "missing_field"}


def test_bad_lines_are_rejected_and_run_continues(tmp_path, tokenizer):
    bad = tmp_path / "bad.jsonl"
    expected = write_bad_file(bad)
    out = tmp_path / "out"
    assert main([str(bad), "-o", str(out), "--workers", "2", "--no-progress"]) == 0
    rejects = [json.loads(x) for x in (out / "bad.rejects.jsonl").read_text().splitlines()]
    assert {r["line"]: r["reason"] for r in rejects} == expected
    assert all(r["file"] == str(bad) and r["detail"] for r in rejects)
    stats = json.loads((out / "bad.stats.json").read_text())
    assert stats["rejects"] == {"empty_text": 1, "invalid_json": 2, "invalid_utf8": 2,
                                "missing_field": 2}
    assert stats["documents"] == 2 and stats["blank_lines"] == 1
    assert read_docs(out / "bad") == [
        tokenizer(t, add_special_tokens=False)["input_ids"]
        for t in ("a fine first line", "a fine last line")
    ]


def test_missing_input_fails_before_writing(tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "nowhere.jsonl"
    assert main([str(GENERAL), str(missing), "-o", str(out), "--no-progress"]) != 0
    assert str(missing) in capsys.readouterr().err
    assert not out.exists()
    assert main([str(tmp_path / "*.parquet"), "-o", str(out)]) != 0
    assert "*.parquet" in capsys.readouterr().err


def test_missing_csv_column_names_file_and_key(tmp_path, capsys):
    data = tmp_path / "p.csv"
    data.write_text("title,price\nA lamp,3\n")
    assert main([str(data), "-o", str(tmp_path / "o"), "--fields", "title", "description"]) != 0
    err = capsys.readouterr().err
    assert str(data) in err and "'description'" in err


def test_existing_output_untouched_without_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    foreign = out / "general.bin"
    foreign.write_bytes(b"someone else's data")
    argv = [str(GENERAL), "-o", str(out), "--workers", "1", "--no-progress"]
    assert main(argv) != 0
    assert str(foreign) in capsys.readouterr().err
    assert foreign.read_bytes() == b"someone else's data"
    assert main(argv + ["--overwrite"]) == 0
    assert foreign.read_bytes() != b"someone else's data"
    # A finished shard is skipped on rerun; changing the fields is refused without --overwrite.
    before = file_bytes(out)
    assert main(argv) == 0
    assert "skipped" in capsys.readouterr().err
    assert file_bytes(out) == before
    assert main(argv + ["--fields", "id", "text"]) != 0
    assert "fields" in capsys.readouterr().err
    assert file_bytes(out) == before


def test_jsonl_gz_and_parquet_match_jsonl(tmp_path):
    import gzip

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [json.loads(x) for x in GENERAL.open(encoding="utf-8")][:40]
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with gzip.open(src / "b.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), src / "c.parquet")
    out = tmp_path / "out"
    assert main([str(src / "*"), "-o", str(out), "--workers", "2", "--no-progress"]) == 0
    a = (out / "a.bin").read_bytes()
    assert a == (out / "b.bin").read_bytes() == (out / "c.bin").read_bytes()
    assert (out / "a.idx").read_bytes() == (out / "c.idx").read_bytes()
