"""The packaged samples are present, well-formed, small and licensed."""

from __future__ import annotations

import pytest

from rexbert.sample_data import SAMPLES, load_sample, sample_path

FIELDS = {
    "products": {"id", "text"},
    "general": {"id", "text"},
    "queries": {"id", "text", "query_class"},
}
MIN_COUNT = {"products": 1000, "general": 200, "queries": 400}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_records_well_formed(name: str) -> None:
    rows = load_sample(name)
    assert len(rows) >= MIN_COUNT[name]
    for row in rows:
        assert set(row) == FIELDS[name]
        assert isinstance(row["text"], str) and row["text"].strip() == row["text"] != ""
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == len(ids)
    texts = [row["text"] for row in rows]
    assert len(set(texts)) == len(texts)


def test_products_join_title_and_description() -> None:
    first = load_sample("products")[0]
    assert first["text"].startswith("Linksys EtherFast 8-Port 10/100 Switch - EZXS88W. ")


def test_queries_have_classes() -> None:
    rows = load_sample("queries")
    assert all(row["query_class"] for row in rows[:50])
    assert rows[0] == {"id": "wands-0", "text": "salon chair", "query_class": "Massage Chairs"}


def test_general_is_hamlet_without_boilerplate() -> None:
    text = "\n".join(row["text"] for row in load_sample("general"))
    assert "Hamlet: To be, or not to be: that is the question:" in text
    for junk in ("Gutenberg", "Shakespeare homepage", "Entire play"):
        assert junk not in text


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="general, products, queries"):
        load_sample("wikipedia")
    with pytest.raises(ValueError, match="unknown sample"):
        sample_path("")


def test_folder_small_and_licensed() -> None:
    folder = sample_path("products").parent
    assert sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) < 1_500_000
    for name in ("NOTICE.md", "LICENSE.abt_products", "LICENSE.wands_queries"):
        assert (folder / name).is_file()
    notice = (folder / "NOTICE.md").read_text()
    for name in SAMPLES.values():
        assert name in notice
