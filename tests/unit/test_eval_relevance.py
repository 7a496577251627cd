"""Graded query–product relevance (CoSENT): loaders for ESCI parquet, a WANDS folder and a plain
TSV, their errors, and end-to-end runs on a tiny MLM folder.

Data built here from real text:
* Abt graded TSV: for an Abt product P (shared/data/ecommerce/abt_products.csv), the query is the
  first 4 words of P's title; P itself is Exact, another product of P's brand (the title's first
  word) is Partial, a product of another brand is Irrelevant.
* WANDS folder in the released layout (query.csv / product.csv / label.csv, tab-separated): the
  real WANDS queries (wands_queries.tsv) and one product per WANDS query class, named after the
  class; a query's own class is Exact, a class sharing a word with it Partial, another Irrelevant.
* ESCI parquet pair in the released schema, Abt products as the product texts.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from eval_helpers import tiny_mlm_folder
from rexbert.eval.common import EvalError
from rexbert.eval import relevance_data as rd
from rexbert.eval.relevance import RelevanceConfig, run_relevance

DATA = Path("/work/shared/data/ecommerce")
if not DATA.is_dir():  # the checkout's shared/ when not on the dev VM
    DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecommerce"
LABELS = {"Exact": 1.0, "Partial": 0.5, "Irrelevant": 0.0}
pytestmark = pytest.mark.skipif(not (DATA / "abt_products.csv").is_file(), reason="shared e-commerce data absent")


def _abt() -> list[dict]:
    with open(DATA / "abt_products.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_tsv(path: Path, rows: list[tuple]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)
    return path


def abt_graded_tsv(path: Path, num_queries: int = 120, seed: int = 0) -> Path:
    rows = _abt()
    brand = lambda r: r["title"].split()[0].lower()  # noqa: E731
    by_brand: dict[str, list[dict]] = {}
    for r in rows:
        by_brand.setdefault(brand(r), []).append(r)
    rng = random.Random(seed)
    chosen = [r for r in rows if len(by_brand[brand(r)]) > 1]
    rng.shuffle(chosen)
    out = [("query", "product_text", "grade")]
    for r in chosen[:num_queries]:
        query = " ".join(r["title"].split(" - ")[0].split()[:4])
        same = rng.choice([o for o in by_brand[brand(r)] if o is not r])
        other = rng.choice([o for o in rows if brand(o) != brand(r)])
        out += [(query, f"{p['title']} {p['description']}", g)
                for p, g in ((r, "Exact"), (same, "Partial"), (other, "Irrelevant"))]
    return _write_tsv(path, out)


def wands_folder(root: Path, num_queries: int = 60, seed: int = 0) -> Path:
    with open(DATA / "wands_queries.tsv", newline="", encoding="utf-8") as f:
        queries = [q for q in csv.DictReader(f, delimiter="\t") if q["query_class"]][:num_queries]
    classes = sorted({q["query_class"] for q in queries})
    pid = {c: str(i) for i, c in enumerate(classes)}
    root.mkdir(parents=True)
    _write_tsv(root / "query.csv", [("query_id", "query", "query_class")]
               + [(q["query_id"], q["query"], q["query_class"]) for q in queries])
    _write_tsv(root / "product.csv", [("product_id", "product_name", "product_class", "category hierarchy",
                                       "product_description", "product_features", "rating_count",
                                       "average_rating", "review_count")]
               + [(pid[c], c, c, f"Furniture / {c}", f"A {c.lower()} item.", "", "3", "4.5", "3") for c in classes])
    rng = random.Random(seed)
    labels = [("id", "query_id", "product_id", "label")]
    for q in queries:
        words = set(q["query_class"].lower().split())
        near = [c for c in classes if c != q["query_class"] and words & set(c.lower().split())]
        far = [c for c in classes if c != q["query_class"] and c not in near]
        picks = [(q["query_class"], "Exact"), (rng.choice(far), "Irrelevant")]
        if near:
            picks.append((rng.choice(near), "Partial"))
        for c, g in picks:
            labels.append((len(labels) - 1, q["query_id"], pid[c], g))
    _write_tsv(root / "label.csv", labels)
    return root


def esci_parquets(folder: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    products = _abt()[:8]
    folder.mkdir(parents=True)
    pq.write_table(pa.table({
        "product_id": [f"B{r['unique_id']}" for r in products] + ["B1"],
        "product_title": [r["title"] for r in products] + ["Linksys Umschalter"],
        "product_description": [f"<p>{r['description']}</p>" for r in products] + [None],
        "product_bullet_point": [None] * 9, "product_brand": [r["title"].split()[0] for r in products] + ["x"],
        "product_color": [None] * 9, "product_locale": ["us"] * 8 + ["de"]}), folder / rd.ESCI_PRODUCTS)
    # (query, product index, label, small_version, large_version, split, locale)
    spec = [("network switch", 0, "E", 1, 1, "train", "us"), ("network switch", 1, "S", 1, 1, "train", "us"),
            ("network switch", 5, "I", 1, 1, "train", "us"), ("router", 2, "C", 1, 1, "train", "us"),
            ("router", 3, "E", 0, 1, "train", "us"), ("netzwerk", 0, "E", 1, 1, "train", "de"),
            ("wireless", 4, "E", 1, 1, "test", "us"), ("wireless", 6, "I", 1, 1, "test", "us"),
            ("wireless", 7, "S", 1, 1, "test", "us")]
    pq.write_table(pa.table({
        "example_id": list(range(len(spec))), "query": [s[0] for s in spec],
        "query_id": [hash(s[0]) % 1000 for s in spec], "product_id": [f"B{products[s[1]]['unique_id']}" for s in spec],
        "product_locale": [s[6] for s in spec], "esci_label": [s[2] for s in spec],
        "small_version": [s[3] for s in spec], "large_version": [s[4] for s in spec],
        "split": [s[5] for s in spec]}), folder / rd.ESCI_EXAMPLES)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_mlm_folder(tmp_path_factory.mktemp("relevance") / "mlm")


def test_cosent_fine_tuning_raises_spearman_on_abt_graded_pairs(tmp_path, model_dir):
    data = abt_graded_tsv(tmp_path / "abt.tsv")
    out = tmp_path / "rel.json"
    result = run_relevance(RelevanceConfig(model=str(model_dir), dataset="tsv", data_path=str(data), labels=LABELS,
                                           test_fraction=0.3, epochs=2, lr=3e-3, batch_size=16, max_length=64,
                                           device="cpu", num_threads=1, output=str(out)))
    written = json.loads(out.read_text())
    assert written["metrics"] == result["metrics"] and written["task"] == "relevance"
    m, d = result["metrics"], result["details"]
    counts = d["test_grade_counts"]  # one pair of each grade per query
    assert set(counts) == {"0.0", "0.5", "1.0"} and len(set(counts.values())) == 1, counts
    assert d["num_test_pairs"] == 3 * counts["1.0"] and d["num_train_pairs"] + d["num_test_pairs"] == 360
    # Mean-pooled random embeddings already track word overlap; CoSENT on the grades must improve on that.
    assert 0.3 < m["spearman_before"] < m["spearman"] - 0.02, m
    assert -1 <= m["pearson"] <= 1


def test_wands_folder_loader_and_run(tmp_path, model_dir):
    root = wands_folder(tmp_path / "WANDS" / "dataset")
    pairs = rd.load_wands(tmp_path / "WANDS")  # the repository root: dataset/ is found
    with open(root / "label.csv", encoding="utf-8") as f:
        assert len(pairs) == sum(1 for _ in f) - 1
    first = pairs[0]
    assert first.query == "salon chair" and first.text == "Massage Chairs A massage chairs item." and first.grade == 1.0
    assert {p.grade for p in pairs} == {0.0, 0.5, 1.0}
    result = run_relevance(RelevanceConfig(model=str(model_dir), dataset="wands", data_path=str(root), epochs=1,
                                           lr=1e-3, batch_size=16, max_length=32, device="cpu", num_threads=1,
                                           output=str(tmp_path / "wands.json")))
    train_q = result["details"]["num_train_queries"]
    assert train_q + result["details"]["num_test_queries"] == len({p.query for p in pairs})
    assert json.loads((tmp_path / "wands.json").read_text())["dataset"] == "wands"


def test_esci_loader_filters_locale_version_and_split(tmp_path, model_dir):
    folder = esci_parquets(tmp_path / "esci")
    abt = _abt()
    train = rd.load_esci(folder, split="train")
    assert [(p.query, p.grade) for p in train] == [("network switch", 1.0), ("network switch", 0.66),
                                                   ("network switch", 0.0), ("router", 0.33)]
    assert train[0].text == " ".join(f"{abt[0]['title']} {abt[0]['description']}".split())  # no <p>, us product
    large = rd.load_esci(folder / rd.ESCI_EXAMPLES, split="train", version="large")
    assert len(large) == 5 and large[-1].grade == 1.0
    assert [p.grade for p in rd.load_esci(folder, split="test")] == [1.0, 0.0, 0.66]
    # No fine-tuning: the score after equals the score before.
    result = run_relevance(RelevanceConfig(model=str(model_dir), dataset="esci", data_path=str(folder), epochs=0,
                                           device="cpu", num_threads=1, output=str(tmp_path / "esci.json")))
    assert result["metrics"]["spearman"] == pytest.approx(result["metrics"]["spearman_before"])
    assert result["details"]["num_test_pairs"] == 3


def test_grade_outside_label_set_names_file_line_and_value(tmp_path):
    bad = _write_tsv(tmp_path / "bad.tsv", [("query", "product_text", "grade"), ("tv", "Sony TV", "Exact"),
                                            ("tv", "HDMI cable", "Maybe")])
    with pytest.raises(EvalError, match=r"bad\.tsv:3: grade 'Maybe' is not in the label set"):
        rd.load_graded_tsv(bad, LABELS)
    with pytest.raises(EvalError, match=r"bad\.tsv:2: grade 'Exact' is not a number"):
        rd.load_graded_tsv(bad)  # no label set: numeric grades
    numeric = _write_tsv(tmp_path / "num.tsv", [("query", "product_text", "grade"), ("tv", "Sony TV", "0.75")])
    assert rd.load_graded_tsv(numeric)[0].grade == 0.75
    root = wands_folder(tmp_path / "wands", num_queries=3)
    lines = (root / "label.csv").read_text().splitlines()
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\tExactish"
    (root / "label.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(EvalError, match=r"label\.csv:3: grade 'Exactish'"):
        rd.load_wands(root)


def test_esci_bad_label_and_missing_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = esci_parquets(tmp_path / "esci")
    table = pq.read_table(folder / rd.ESCI_EXAMPLES)
    labels = table["esci_label"].to_pylist()
    labels[1] = "X"
    pq.write_table(table.set_column(table.schema.get_field_index("esci_label"), "esci_label",
                                    pa.array(labels)), folder / rd.ESCI_EXAMPLES)
    with pytest.raises(EvalError, match=r"example_id 1: grade 'X' is not in the label set"):
        rd.load_esci(folder)
    pq.write_table(table.drop_columns(["split"]), folder / rd.ESCI_EXAMPLES)
    with pytest.raises(EvalError, match=r"has no column\(s\) \['split'\]"):
        rd.load_esci(folder)


def test_wrong_columns_and_missing_model_files(tmp_path, model_dir):
    wrong = _write_tsv(tmp_path / "wrong.tsv", [("q", "text", "grade"), ("tv", "Sony TV", "1")])
    with pytest.raises(EvalError, match=r"no column\(s\) \['query', 'product_text'\]"):
        rd.load_graded_tsv(wrong)
    with pytest.raises(EvalError, match="expected query.csv"):
        rd.load_wands(tmp_path / "nowhere")
    data = abt_graded_tsv(tmp_path / "abt.tsv", num_queries=5)
    empty = tmp_path / "empty_model"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(EvalError, match=r"missing: weights .*tokenizer"):
        run_relevance(RelevanceConfig(model=str(empty), dataset="tsv", data_path=str(data), labels=LABELS,
                                      output=str(tmp_path / "x.json")))
    with pytest.raises(EvalError, match="`dataset` must be one of"):
        RelevanceConfig(model=str(model_dir), dataset="msmarco", data_path=str(data))


def test_split_by_query_is_disjoint_and_seeded():
    pairs = [rd.GradedPair(f"q{i % 10}", f"t{i}", float(i % 3)) for i in range(40)]
    train, test = rd.split_by_query(pairs, 0.3, seed=1)
    assert len(train) + len(test) == 40 and not {p.query for p in train} & {p.query for p in test}
    assert len({p.query for p in test}) == 3
    assert rd.split_by_query(pairs, 0.3, seed=1) == (train, test)
    assert rd.split_by_query(pairs, 0.3, seed=2) != (train, test)
