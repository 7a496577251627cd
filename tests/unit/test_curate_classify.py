"""curate distill + filter: real fastText on real text (product descriptions relevant,
Hamlet not relevant, as a deterministic stand-in labeller), held-out accuracy on items the
distill stage never saw, threshold calibration, the filter step's routing, the pooled
fallback, bad label rows and bad config values."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_tools.curate.classify import DistillConfig, FilterConfig, distill, make_filter_step
from data_tools.curate.classify.distill import main as distill_main
from data_tools.curate.classify.filter import main as filter_main
from data_tools.curate.classify.metrics import calibrate_threshold, roc_auc
from data_tools.curate.classify.text import normalise
from data_tools.curate.shards import CurationError

ROOT = Path(__file__).resolve().parents[2]
PRODUCTS = ROOT / "rexbert" / "sample_data" / "products.jsonl"
GENERAL = ROOT / "rexbert" / "sample_data" / "general.jsonl"
# small models for speed: ~1 MB each instead of ~50 MB
FAST = dict(dim=16, bucket=20_000, min_items_per_domain=100)

# Rows the labeller might write that distill must count and skip (reason, line).
BAD_ROWS = [
    ("invalid_json", '{"id": "b1", "domain": "electronics", "text": "x", '),
    ("not_an_object", '["b2", "electronics", "x", "relevant"]'),
    ("no_text", '{"id": "b3", "domain": "electronics", "label": "relevant"}'),
    ("no_text", '{"id": "b4", "domain": "electronics", "text": 7, "label": "relevant"}'),
    ("unknown_label", '{"id": "b5", "domain": "electronics", "text": "a tv", "label": "maybe"}'),
    ("no_domain", '{"id": "b6", "text": "a tv", "label": "relevant"}'),
    ("empty_text", '{"id": "b7", "domain": "electronics", "text": " \\n ", "label": "relevant"}'),
]


def labelled_items() -> list[dict]:
    """The stand-in labeller: every product description relevant, every 3-line passage of
    Hamlet not relevant."""
    items = [{"id": d["id"], "text": d["text"], "label": "relevant"}
             for d in map(json.loads, PRODUCTS.read_text().splitlines())]
    for d in map(json.loads, GENERAL.read_text().splitlines()):
        lines = d["text"].split("\n")
        items += [{"id": f"{d['id']}-{i}", "text": "\n".join(lines[i:i + 3]), "label": "not_relevant"}
                  for i in range(0, len(lines), 3)]
    return items


def held_out(item: dict) -> bool:
    return int(hashlib.sha256(item["id"].encode()).hexdigest(), 16) % 5 == 0  # 20%


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """labels.jsonl: 80% of the items in domain ``electronics``, 12 in domain ``tiny`` (too
    few for a model of its own), the bad rows; the other 20% held out, never written."""
    tmp = tmp_path_factory.mktemp("classify")
    items = labelled_items()
    train = [dict(it, domain="electronics") for it in items if not held_out(it)]
    test = [dict(it, domain="electronics") for it in items if held_out(it)]
    tiny = [dict(it, domain="tiny", id="tiny-" + it["id"]) for it in train[:6] + train[-6:]]
    rows = train + tiny + [line for _, line in BAD_ROWS] + [train[0]]  # the last: a repeated id
    labels = write_jsonl(tmp / "labels.jsonl", rows)
    out = tmp / "models"
    metrics = distill(labels, out, DistillConfig(**FAST))
    return {"labels": labels, "out": out, "metrics": metrics, "train": train, "test": test, "tiny": tiny}


def load(path: Path):
    import fasttext

    return fasttext.load_model(str(path))


def p_relevant(model, text: str) -> float:
    """fastText's own score (p + 1e-5), straight from the library."""
    labels, probs = model.predict(normalise(text), k=-1)
    return float(dict(zip(labels, probs))["__label__relevant"])


def score_of(model, text: str) -> float:
    """The score the filter compares with the threshold."""
    from data_tools.curate.classify.model import p_relevant_one

    return p_relevant_one(model, normalise(text))


def test_held_out_accuracy_and_calibrated_precision(data):
    """Acceptance 5: >= 0.9 accuracy on items distill never saw; the calibrated threshold
    meets the target precision on the validation part."""
    metrics, test = data["metrics"], data["test"]
    assert len(test) > 400 and {t["label"] for t in test} == {"relevant", "not_relevant"}
    assert not {t["id"] for t in test} & {t["id"] for t in data["train"]}
    model = load(data["out"] / "electronics.bin")
    truth = np.array([t["label"] == "relevant" for t in test])
    p = np.array([p_relevant(model, t["text"]) for t in test])
    assert np.mean((p >= 0.5) == truth) >= 0.9  # the classifier's own decision
    threshold = metrics["domains"]["electronics"]["threshold"]
    scores = np.array([score_of(model, t["text"]) for t in test])
    assert np.mean((scores >= threshold) == truth) >= 0.9  # the filter's decision

    entry = metrics["models"]["electronics"]
    assert entry["threshold"]["target_met"] and entry["threshold"]["precision"] >= 0.9
    assert entry["validation"]["accuracy"] >= 0.9 and entry["validation"]["roc_auc"] >= 0.95
    # recompute the validation precision from the saved model, not from distill's report
    texts = {t["id"]: t["text"] for t in data["train"]}
    val = [json.loads(line) for line in (data["out"] / "electronics.validation.jsonl").read_text().splitlines()]
    assert len(val) == entry["counts"]["validation"] and {v["label"] for v in val} == {"relevant", "not_relevant"}
    raw = np.array([p_relevant(model, texts[v["id"]]) for v in val])
    np.testing.assert_allclose(raw - 1e-5, [v["p_relevant"] for v in val], atol=1e-6)
    p_val = np.array([score_of(model, texts[v["id"]]) for v in val])
    assert p_val.tolist() == [v["p_relevant"] for v in val]
    kept = p_val >= threshold
    labels_val = np.array([v["label"] == "relevant" for v in val])
    assert kept.any() and labels_val[kept].mean() >= 0.9
    # no threshold at the target keeps more relevant items, and none keeps as many with fewer others
    for t in np.unique(p_val):
        if labels_val[p_val >= t].mean() >= 0.9:
            assert labels_val[p_val >= t].sum() <= labels_val[kept].sum()
            if labels_val[p_val >= t].sum() == labels_val[kept].sum():
                assert (~labels_val[p_val >= t]).sum() >= (~labels_val[kept]).sum()

    cv = entry["cv"]
    assert len(cv["folds"]) == 5 and cv["f1"]["mean"] >= 0.9 and cv["f1"]["std"] >= 0
    assert entry["counts"]["train"] + entry["counts"]["validation"] == entry["counts"]["items"]
    assert abs(entry["counts"]["validation"] / entry["counts"]["items"] - 0.2) < 0.01
    assert "| electronics |" in (data["out"] / "metrics.md").read_text()


def test_bad_rows_counted_and_reported(data):
    rows = data["metrics"]["labels"]
    expected: dict[str, int] = {}
    for reason, _ in BAD_ROWS:
        expected[reason] = expected.get(reason, 0) + 1
    assert rows["bad_by_reason"] == expected and rows["bad"] == len(BAD_ROWS)
    assert rows["duplicates"].get("duplicate_id") == 1
    assert rows["usable"] == len(data["train"]) + len(data["tiny"]) - rows["duplicates"].get("duplicate_text", 0)
    first_bad_line = len(data["train"]) + len(data["tiny"]) + 1
    where = [e.split("labels.jsonl:")[1] for e in rows["examples"]]  # "<line>: <reason>[: detail]"
    assert [w.split(": ")[:2] for w in where if "duplicate" not in w] == \
        [[str(first_bad_line + i), reason] for i, (reason, _) in enumerate(BAD_ROWS)]
    assert f"{first_bad_line + len(BAD_ROWS)}: duplicate_id: {data['train'][0]['id']}" in where
    assert "unknown_label" in (data["out"] / "metrics.md").read_text()


def test_small_domain_falls_back_to_pooled_model(data):
    metrics = data["metrics"]
    tiny = metrics["domains"]["tiny"]
    assert tiny["model"] == "_pooled" and "min_items_per_domain=100" in tiny["fallback_reason"]
    pooled = metrics["models"]["_pooled"]
    assert tiny["file"] == "_pooled.bin" and tiny["threshold"] == pooled["threshold"]["value"]
    assert pooled["counts"]["items"] == metrics["domains"]["electronics"]["items"] + len(data["tiny"])
    assert "| tiny | 12 (6) | _pooled |" in (data["out"] / "metrics.md").read_text()
    # the filter scores a tiny-domain document with the pooled model
    step = make_filter_step(FilterConfig(models_dir=str(data["out"]), domains_filter=["tiny"]))
    doc = step({"id": "x", "domain": "tiny", "text": data["test"][0]["text"]})
    got = doc["scores"]["relevance"] if isinstance(doc, dict) else None
    assert got == score_of(load(data["out"] / "_pooled.bin"), data["test"][0]["text"])


def test_filter_keeps_drops_and_passes_through(data):
    product = next(t for t in data["test"] if t["label"] == "relevant")
    verse = next(t for t in data["test"] if t["label"] == "not_relevant")
    config = FilterConfig(models_dir=str(data["out"]), domains_direct=["books"], domains_filter=["electronics"])
    step = make_filter_step(config)
    kept = step({"id": "p", "domain": "Electronics", "text": product["text"]})
    threshold = data["metrics"]["domains"]["electronics"]["threshold"]
    assert isinstance(kept, dict) and kept["scores"]["relevance"] >= threshold
    assert step({"id": "v", "domain": "electronics", "text": verse["text"]}) == "below_threshold:electronics"
    book = {"id": "b", "domain": "books", "text": verse["text"]}
    assert step(dict(book)) == book  # direct: unscored, unchanged
    assert step({"id": "s", "domain": "sports", "text": product["text"]}) == "domain_not_selected"
    assert step({"id": "n", "text": product["text"]}) == "no_domain"
    keep = make_filter_step(FilterConfig(models_dir=str(data["out"]), domains_filter=["electronics"],
                                         unknown_domain="keep"))
    sports = {"id": "s", "domain": "sports", "text": product["text"]}
    assert keep(dict(sports)) == sports


def test_thresholds_come_from_metrics_json(data, tmp_path):
    """The filter applies the threshold written in metrics.json (or the override), p >= t."""
    models = tmp_path / "models"
    shutil.copytree(data["out"], models)
    doc = {"id": "d", "domain": "electronics", "text": data["test"][0]["text"]}
    p = score_of(load(models / "electronics.bin"), doc["text"])
    metrics = json.loads((models / "metrics.json").read_text())
    for threshold, expected_kept in ((p, True), (float(np.nextafter(p, 2.0)), False)):
        metrics["domains"]["electronics"]["threshold"] = threshold
        (models / "metrics.json").write_text(json.dumps(metrics))
        step = make_filter_step(FilterConfig(models_dir=str(models), domains_filter=["electronics"]))
        assert isinstance(step(dict(doc)), dict) is expected_kept
    # an override wins over metrics.json
    step = make_filter_step(FilterConfig(models_dir=str(models), domains_filter=["electronics"],
                                         threshold_override={"electronics": 0.0}))
    assert isinstance(step(dict(doc)), dict)


def test_filter_cli_runs_the_stage(data, tmp_path):
    shard = write_jsonl(tmp_path / "part-0.jsonl",
                        [dict(t, domain="electronics") for t in data["test"]] + ["not json"])
    out = tmp_path / "filtered"
    assert filter_main([str(shard), "-o", str(out), "--models-dir", str(data["out"]),
                        "--domains-filter", "electronics", "--no-progress"]) == 0
    stats = json.loads((out / "filter.stats.json").read_text())
    kept = [json.loads(line) for line in (out / "part-0.jsonl").read_text().splitlines()]
    threshold = data["metrics"]["domains"]["electronics"]["threshold"]
    assert stats["documents_in"] == len(data["test"]) and stats["bad_lines"] == 1
    assert stats["kept"] == len(kept)
    assert stats["kept"] + stats["dropped"]["below_threshold:electronics"] == len(data["test"])
    assert all(d["scores"]["relevance"] >= threshold for d in kept)
    assert filter_main([str(shard), "-o", str(tmp_path / "all"), "--models-dir", str(data["out"]),
                        "--threshold-override", "Electronics=0", "--no-progress"]) == 0
    assert json.loads((tmp_path / "all" / "filter.stats.json").read_text())["kept"] == len(data["test"])
    precision = np.mean([d["label"] == "relevant" for d in kept])
    recall = sum(d["label"] == "relevant" for d in kept) / sum(t["label"] == "relevant" for t in data["test"])
    assert precision >= 0.85 and recall >= 0.9  # held-out: near the validation operating point


def test_per_domain_off_deterministic_and_too_few(data, tmp_path):
    config = DistillConfig(**dict(FAST, per_domain=False))
    a = distill(data["labels"], tmp_path / "a", config)
    b = distill(data["labels"], tmp_path / "b", config)
    assert set(a["models"]) == {"_pooled"} and a["domains"]["electronics"]["model"] == "_pooled"
    assert a["domains"]["electronics"]["fallback_reason"] == "distill.per_domain=false"
    assert a["models"] == b["models"]  # seeded split, folds and single-thread fastText
    assert (tmp_path / "a" / "_pooled.validation.jsonl").read_bytes() == \
        (tmp_path / "b" / "_pooled.validation.jsonl").read_bytes()
    small = write_jsonl(tmp_path / "small.jsonl", data["tiny"])
    with pytest.raises(CurationError, match=r"too few .*distill.min_items_per_domain=100"):
        distill(small, tmp_path / "c", DistillConfig(**FAST))


def test_filter_domain_without_labels_is_a_config_error(data, tmp_path):
    labels = write_jsonl(tmp_path / "labels.jsonl", data["train"] + [dict(data["tiny"][0], domain="one")])
    out = tmp_path / "models"
    metrics = distill(labels, out, DistillConfig(**dict(FAST, k_folds=2)))
    assert metrics["domains"]["one"]["model"] == "_pooled"  # pooled covers it ...
    with pytest.raises(CurationError, match="filter.domains_filter: 'garden' has no labelled items"):
        make_filter_step(FilterConfig(models_dir=str(out), domains_filter=["garden"]))
    with pytest.raises(CurationError, match="filter.models_dir"):
        make_filter_step(FilterConfig(models_dir=str(tmp_path / "nowhere"), domains_filter=["one"]))


@pytest.mark.parametrize("kwargs, key", [
    ({"k_folds": 1}, "distill.k_folds"), ({"validation_fraction": 1.5}, "distill.validation_fraction"),
    ({"target_precision": 0}, "distill.target_precision"), ({"loss": "hinge"}, "distill.loss"),
    ({"bucket": 0}, "distill.bucket"), ({"minn": 3, "maxn": 2}, "distill.minn"),
])
def test_bad_distill_config_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        DistillConfig(**kwargs)


@pytest.mark.parametrize("kwargs, key", [
    ({"unknown_domain": "maybe"}, "filter.unknown_domain"),
    ({"domains_filter": ["a"], "threshold_override": {"a": 1.5}}, "filter.threshold_override.a"),
    ({"domains_filter": ["a"], "threshold_override": {"b": 0.5}}, "filter.threshold_override.b"),
    ({"domains_direct": ["a"], "domains_filter": ["a"]}, "filter.domains_direct"),
])
def test_bad_filter_config_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        FilterConfig(**kwargs)


def test_cli_bad_value_fails_naming_the_key(data, tmp_path, capsys):
    assert distill_main([str(data["labels"]), "-o", str(tmp_path), "--target-precision", "1.5"]) == 2
    assert "distill.target_precision=1.5" in capsys.readouterr().err
    assert distill_main([str(tmp_path / "none.jsonl"), "-o", str(tmp_path)]) == 2
    assert "no such labels file" in capsys.readouterr().err


def test_calibration_and_auc_against_brute_force():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.4
    p = np.round(np.clip(0.25 * y + rng.random(300) * 0.75, 0, 1), 2)  # overlapping, with ties
    pairs = [(a > b) + 0.5 * (a == b) for a in p[y] for b in p[~y]]
    assert roc_auc(y, p) == pytest.approx(np.mean(pairs))
    for target in (0.6, 0.8, 0.95, 1.0):
        got = calibrate_threshold(y, p, target)
        ok = [t for t in np.unique(p) if y[p >= t].mean() >= target]
        if ok:
            # the most relevant items kept at the target precision, with the fewest others
            best = max(ok, key=lambda t: (y[p >= t].sum(), -(~y[p >= t]).sum()))
            assert got["target_met"] and got["precision"] >= target
            assert np.array_equal(p >= got["value"], p >= best)  # the same decisions, ...
            below = p[p < best]
            assert got["value"] == (best + below.max()) / 2 if len(below) else best  # ... halfway down the gap
            assert got["smallest_threshold_at_target"] == min(ok) <= best == got["lowest_relevant_score_kept"]
            assert got["recall"] == pytest.approx(y[p >= min(ok)].sum() / y.sum())
        else:
            assert not got["target_met"] and got["method"].startswith("max F1")
    unreachable = calibrate_threshold(np.array([True, False, True, False]), np.array([0.9, 0.9, 0.1, 0.1]), 0.99)
    assert not unreachable["target_met"] and unreachable["precision"] == 0.5


def test_normalise_is_one_line_and_defuses_labels():
    text = normalise("Sony  TV,\n55-inch\t__label__relevant\r\nBRAVIA")
    assert text == "sony tv , 55-inch label relevant bravia"
    assert "\n" not in text and "__label__" not in text


def test_training_ignores_heap_garbage(tmp_path):
    """fasttext-numpy2 leaves most of its input matrix uninitialised (NaN, or the weights of
    the model before): with zeroed allocations, unigram models train and the same seed gives
    the same model whatever was trained or freed before."""
    from data_tools.curate.classify import model as ft

    items = labelled_items()[::10]
    texts, relevant = [normalise(t["text"]) for t in items], np.array([t["label"] == "relevant" for t in items])
    config = DistillConfig(word_ngrams=1, dim=16, epoch=5)  # unigrams: fastText sets bucket=0, a small matrix
    first = ft.train(texts, relevant, config, tmp_path, seed=3).get_input_matrix()
    ft.train(texts[::-1], relevant[::-1], DistillConfig(dim=16, bucket=2000), tmp_path, seed=4)
    junk = [np.full((300, 300), np.nan) for _ in range(20)]  # freed NaN-filled heap memory
    del junk
    again = ft.train(texts, relevant, config, tmp_path, seed=3).get_input_matrix()
    assert np.isfinite(first).all() and np.array_equal(first, again)


def test_quantized_model_is_the_one_calibrated(data, tmp_path):
    metrics = distill(data["labels"], tmp_path, DistillConfig(**dict(FAST, quantize=True, k_folds=2)))
    model = load(tmp_path / "electronics.bin")
    assert model.f.isQuant() and (tmp_path / "electronics.bin").stat().st_size < \
        (data["out"] / "electronics.bin").stat().st_size / 3
    texts = {t["id"]: t["text"] for t in data["train"]}
    val = [json.loads(line) for line in (tmp_path / "electronics.validation.jsonl").read_text().splitlines()]
    assert [score_of(model, texts[v["id"]]) for v in val] == [v["p_relevant"] for v in val]
    assert metrics["models"]["electronics"]["threshold"]["target_met"]
