"""The constant-memory builder writes megatron's exact bytes; `merge` = concatenation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder

from data_tools.preprocess import main
from data_tools.preprocess.builder import SpooledIndexedDatasetBuilder

GENERAL = Path(__file__).resolve().parents[2] / "rexbert" / "sample_data" / "general.jsonl"


def random_docs(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 50000, size=rng.integers(0, 300)).astype(np.uint16) for _ in range(n)]


def build_stock(prefix: Path, docs: list[np.ndarray]) -> None:
    b = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.uint16)
    for d in docs:
        b.add_document(torch.from_numpy(d.astype(np.int64)), [len(d)])
    b.finalize(f"{prefix}.idx")


def test_spooled_builder_bytes_equal_stock(tmp_path):
    docs = random_docs(0, 500)
    build_stock(tmp_path / "stock", docs)
    ours = SpooledIndexedDatasetBuilder(str(tmp_path / "ours.bin"), dtype=np.uint16)
    ours.add_documents(np.concatenate(docs[:200]), np.array([len(d) for d in docs[:200]]))
    for d in docs[200:]:
        ours.add_document(d, [len(d)])
    ours.finalize(str(tmp_path / "ours.idx"))
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"ours{ext}").read_bytes() == (tmp_path / f"stock{ext}").read_bytes()
    assert {p.name for p in tmp_path.iterdir()} == {"ours.bin", "ours.idx", "stock.bin", "stock.idx"}


def test_merge_is_concatenation(tmp_path):
    parts = [random_docs(seed, 50) for seed in (1, 2, 3)]
    for i, docs in enumerate(parts):
        build_stock(tmp_path / f"p{i}", docs)
    out = tmp_path / "merged" / "all"
    assert main(["merge", "-o", str(out), *(str(tmp_path / f"p{i}.idx") for i in range(3))]) == 0
    merged = IndexedDataset(str(out))
    flat = [d for docs in parts for d in docs]
    assert len(merged) == len(flat) and len(merged.document_indices) == len(flat) + 1
    assert all(np.array_equal(merged[i], d) for i, d in enumerate(flat))
    # Same bytes as megatron's own add_index.
    stock = IndexedDatasetBuilder(str(tmp_path / "stock.bin"), dtype=np.uint16)
    for i in range(3):
        stock.add_index(str(tmp_path / f"p{i}"))
    stock.finalize(str(tmp_path / "stock.idx"))
    assert Path(f"{out}.idx").read_bytes() == (tmp_path / "stock.idx").read_bytes()
    assert Path(f"{out}.bin").read_bytes() == (tmp_path / "stock.bin").read_bytes()
    # Refuses to clobber, and refuses an input that is the output.
    assert main(["merge", "-o", str(out), str(tmp_path / "p0")]) != 0
    assert main(["merge", "-o", str(out), str(out), "--overwrite"]) != 0


def test_merge_spans_side_files(tmp_path):
    lines = GENERAL.read_text(encoding="utf-8").splitlines()
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_text("\n".join(lines[:30]) + "\n")
    (src / "b.jsonl").write_text("\n".join(lines[30:60]) + "\n")
    out = tmp_path / "out"
    argv = [str(src / "*.jsonl"), "-o", str(out), "--spans-field", "spans", "--no-progress"]
    assert main(argv + ["--workers", "1"]) == 0
    assert main(["merge", "-o", str(out / "ab"), str(out / "a"), str(out / "b")]) == 0
    spans = IndexedDataset(str(out / "ab_spans"), mmap=False)  # all-empty: 0-byte .bin
    assert len(spans) == len(IndexedDataset(str(out / "ab"))) == 60
    assert all(len(spans[i]) == 0 for i in range(60))  # no spans field: empty entries
    # Merging the whole directory by glob takes a_spans/b_spans as side files, not datasets.
    assert main(["merge", "-o", str(tmp_path / "all"),
                 *sorted(str(p) for p in out.glob("*.idx") if not p.stem.startswith("ab"))]) == 0
    assert Path(f"{tmp_path}/all_spans.bin").read_bytes() == (out / "ab_spans.bin").read_bytes()
