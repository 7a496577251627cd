"""data_tools.curate.label and .audit: reply parsing, prompt files, the cache key, the keyword
stand-in, Cohen's kappa, the audit report, config errors, no key in logs, and the local
transformers backend on a tiny random model."""

from __future__ import annotations

import json
import logging
import random
import socket
from pathlib import Path

import pytest

from data_tools.curate.audit import AuditConfig, audit_labels, cohen_kappa, confusion_matrix
from data_tools.curate.audit import main as audit_main
from data_tools.curate.label import (HttpConfig, KeywordConfig, LabelCache, LabelConfig, TransformersConfig,
                                     label_documents, load_prompt, main, model_name, parse_reply,
                                     text_sha256)
from data_tools.curate.label.backends import KeywordLabeller, shopping_cues
from data_tools.curate.label.http_backend import HttpLabeller
from data_tools.curate.shards import CurationError

ROOT = Path(__file__).resolve().parents[2]
PRODUCTS = ROOT / "rexbert" / "sample_data" / "products.jsonl"
GENERAL = ROOT / "rexbert" / "sample_data" / "general.jsonl"
PROMPT = ROOT / "data_tools" / "curate" / "prompts" / "ecommerce_relevance_v1.yaml"
LABELS = ("relevant", "not_relevant")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def small_shard(tmp_path: Path, n_products: int = 20, n_general: int = 10) -> Path:
    rows = ([dict(r, domain="shop") for r in read_jsonl(PRODUCTS)[:n_products]]
            + [dict(r, domain="books") for r in read_jsonl(GENERAL)[:n_general]])
    return write_jsonl(tmp_path / "docs.jsonl", rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- replies and prompt files ------------------------------------------------------------

@pytest.mark.parametrize("reply, expected", [
    ("relevant", "relevant"),
    ("not_relevant", "not_relevant"),
    ("  Not Relevant.", "not_relevant"),
    ("not-relevant", "not_relevant"),
    ("Label: RELEVANT\n", "relevant"),
    ('{"label": "not_relevant"}', "not_relevant"),
    ('```json\n{"label": "Relevant", "why": "a product page"}\n```', "relevant"),
    ("<think>it could be not_relevant... no</think> relevant", "relevant"),
    ("The document is relevant, not not_relevant", "relevant"),  # the first label word
    ("irrelevant", None),                                        # whole words only
    ("relevantly", None),
    ('{"label": "maybe"}', None),
    ("I cannot tell.", None),
    ("", None),
])
def test_parse_reply(reply, expected):
    assert parse_reply(reply, LABELS) == expected


def test_prompt_file_loads_and_splices_text_verbatim():
    prompt = load_prompt("ecommerce_relevance_v1")
    assert prompt.version == "ecommerce_relevance_v1" and prompt.labels == LABELS
    assert prompt.positive_label == "relevant"
    text = "Price {0} {text} $9.99 – ünïcode"
    system, user = prompt.messages(text)
    assert system["role"] == "system" and "RELEVANT when" in system["content"]
    assert "relevant or not_relevant" in system["content"]
    assert user["content"] == "Document:\n<<<\n" + text + "\n>>>\nLabel:\n"
    assert load_prompt(str(PROMPT)).content_sha256 == prompt.content_sha256


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace("{text}", "{body}"), "'user' must contain {text}"),
    (lambda s: s.replace("labels: [relevant, not_relevant]", "labels: [relevant]"), "'labels'"),
    (lambda s: s + "temperature: 0\n", "unknown key(s) temperature"),
    (lambda s: s.replace("version: ecommerce_relevance_v1\n", ""), "missing key(s) version"),
])
def test_bad_prompt_file_names_file_and_key(tmp_path, edit, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit(PROMPT.read_text()))
    with pytest.raises(CurationError) as e:
        load_prompt(str(bad))
    assert str(bad) in str(e.value) and message in str(e.value)


# --- the cache -----------------------------------------------------------------------------

def test_cache_key_is_text_prompt_version_and_model(tmp_path):
    sha = text_sha256("Sony 4K TV, $499")
    with LabelCache(tmp_path / "c.sqlite") as cache:
        cache.put(sha, "v1", "model-a", "relevant")
        cache.put(sha, "v1", "model-a", "not_relevant")  # the first stored label stays
        assert cache.get_many([sha], "v1", "model-a") == {sha: "relevant"}
        assert cache.get_many([sha], "v2", "model-a") == {}
        assert cache.get_many([sha], "v1", "model-b") == {}
        assert cache.get_many([text_sha256("Sony 4K TV, $499 ")], "v1", "model-a") == {}
        assert cache.count("v1", "model-a") == 1
    with LabelCache(tmp_path / "c.sqlite") as cache:  # persisted
        assert cache.get_many([sha], "v1", "model-a") == {sha: "relevant"}


def test_rerun_asks_nothing_and_prompt_or_model_change_relabels(tmp_path):
    shard = small_shard(tmp_path)
    out = tmp_path / "out"
    config = LabelConfig(backend="keyword", progress=False)
    first = label_documents([shard], out, config)
    assert first["documents"] == 30 and first["labelled"] == 30 and first["unlabelled"] == 0
    assert first["requests_sent"] == first["unique_texts"] == first["labelled_now"]
    assert first["cache_hits"] == 0
    labels_bytes = (out / "labels.jsonl").read_bytes()

    again = label_documents([shard], out, config)
    assert again["requests_sent"] == 0 and again["labelled_now"] == 0
    assert again["cache_hits"] == first["unique_texts"]
    assert (out / "labels.jsonl").read_bytes() == labels_bytes

    v2 = tmp_path / "v2.yaml"
    v2.write_text(PROMPT.read_text().replace("version: ecommerce_relevance_v1", "version: ecommerce_relevance_v2"))
    bumped = label_documents([shard], out, LabelConfig(backend="keyword", prompt=str(v2), progress=False))
    assert bumped["cache_hits"] == 0 and bumped["labelled_now"] == first["unique_texts"]
    assert {r["prompt_version"] for r in read_jsonl(out / "labels.jsonl")} == {"ecommerce_relevance_v2"}

    other_model = LabelConfig(backend="keyword", keyword=KeywordConfig(min_cues=3), progress=False)
    changed = label_documents([shard], out, other_model)
    assert changed["cache_hits"] == 0 and changed["labelled_now"] == first["unique_texts"]
    assert {r["model"] for r in read_jsonl(out / "labels.jsonl")} == {"keyword-v1:min_cues=3"}

    # Editing a prompt without a new version would silently reuse stale labels: refused.
    edited = tmp_path / "edited.yaml"
    edited.write_text(PROMPT.read_text().replace("when in doubt", "if unsure"))
    with pytest.raises(CurationError, match="new version"):
        label_documents([shard], out, LabelConfig(backend="keyword", prompt=str(edited), progress=False))


def test_outputs_stats_and_bad_lines(tmp_path):
    shard = small_shard(tmp_path, 6, 4)
    with shard.open("a") as f:
        f.write("{not json\n" + json.dumps({"id": "x", "text": 5}) + "\n")
    out = tmp_path / "out"
    stats = label_documents([shard], out, LabelConfig(backend="keyword", progress=False))
    rows = read_jsonl(out / "labels.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in read_jsonl(PRODUCTS)[:6] + read_jsonl(GENERAL)[:4]]
    assert set(rows[0]) == {"id", "domain", "text", "label", "model", "prompt_version"}
    assert stats["per_domain"] == {"books": {"not_relevant": 4}, "shop": {"relevant": 6}}
    assert stats["per_label"] == {"relevant": 6, "not_relevant": 4}
    assert stats["bad_lines"] == 2
    assert [r["line"] for r in read_jsonl(out / "labels.rejects.jsonl")] == [11, 12]
    assert json.loads((out / "labels.stats.json").read_text())["per_label"] == stats["per_label"]
    assert not list(out.glob(".*partial"))


# --- the keyword stand-in -------------------------------------------------------------------

def test_keyword_labeller_on_real_text():
    labeller = KeywordLabeller(load_prompt("ecommerce_relevance_v1"), min_cues=2)
    products = [r["text"] for r in read_jsonl(PRODUCTS)]
    hamlet = [r["text"] for r in read_jsonl(GENERAL)]
    got_products = [r.label for _, r in labeller.label(products)]
    got_hamlet = [r.label for _, r in labeller.label(hamlet)]
    assert got_products.count("relevant") / len(products) > 0.95
    assert got_hamlet.count("relevant") == 0
    assert labeller.requests_sent == len(products) + len(hamlet)
    assert shopping_cues("Buy the Sony KDL-55 55\" TV for $499 with free shipping") == [
        "caps", "model_number", "price", "shopping", "unit"]
    assert shopping_cues("To be, or not to be, that is the question") == []


def test_keyword_labeller_needs_two_labels(tmp_path):
    three = tmp_path / "three.yaml"
    three.write_text(PROMPT.read_text().replace("[relevant, not_relevant]", "[relevant, partly, not_relevant]"))
    with pytest.raises(CurationError, match="exactly two labels"):
        KeywordLabeller(load_prompt(str(three)))


# --- kappa and the audit --------------------------------------------------------------------

def fixed_example() -> tuple[list[str], list[str]]:
    """50 items: both say relevant 20, labeller relevant / judge not 5, labeller not / judge
    relevant 10, both not 15. By hand: p_o = 35/50 = 0.7; the labeller says relevant 25/50,
    the judge 30/50, so p_e = 0.5*0.6 + 0.5*0.4 = 0.5 and kappa = (0.7-0.5)/(1-0.5) = 0.4."""
    pairs = ([("relevant", "relevant")] * 20 + [("relevant", "not_relevant")] * 5
             + [("not_relevant", "relevant")] * 10 + [("not_relevant", "not_relevant")] * 15)
    return [a for a, _ in pairs], [b for _, b in pairs]


def test_cohen_kappa_hand_computed_and_against_sklearn():
    a, b = fixed_example()
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert confusion_matrix(a, b, LABELS) == {"relevant": {"relevant": 20, "not_relevant": 5},
                                              "not_relevant": {"relevant": 10, "not_relevant": 15}}
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa(["relevant"] * 5, ["relevant"] * 5) is None  # undefined
    assert cohen_kappa(["x", "y"], ["y", "x"]) == pytest.approx(-1.0)
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = random.Random(1)
    for _ in range(5):
        x = [rng.choice("abc") for _ in range(40)]
        y = [v if rng.random() < 0.6 else rng.choice("abc") for v in x]
        assert cohen_kappa(x, y) == pytest.approx(sklearn.cohen_kappa_score(x, y))


def audit_fixture(tmp_path: Path) -> tuple[Path, AuditConfig]:
    """labels.jsonl of the fixed example, with the judge's labels already in the cache and a
    judge endpoint where nothing listens: the audit must work from the cache alone."""
    mine, theirs = fixed_example()
    prompt = load_prompt("ecommerce_relevance_v1")
    rows = [{"id": f"d{i:02d}", "text": f"document number {i}", "label": label, "model": "small-labeller",
             "prompt_version": prompt.version} for i, label in enumerate(mine)]
    labels = write_jsonl(tmp_path / "labels.jsonl", rows)
    cache_file = tmp_path / "cache.sqlite"
    with LabelCache(cache_file) as cache:
        cache.check_prompt(prompt.version, prompt.content_sha256, prompt.source)
        for row, judge_label in zip(rows, theirs):
            cache.put(text_sha256(row["text"]), prompt.version, "big-judge", judge_label)
    judge = LabelConfig(backend="http", model="big-judge", cache_path=str(cache_file), progress=False,
                        http=HttpConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0))
    return labels, AuditConfig(sample_size=1000, max_examples=4, judge=judge)


def test_audit_report_on_fixed_example(tmp_path):
    labels, config = audit_fixture(tmp_path)
    report = audit_labels(labels, tmp_path / "audit", config)
    assert report["requests_sent"] == 0 and report["cache_hits"] == 50
    assert report["judged"] == 50 and report["judge_unlabelled"] == 0
    assert report["agreement"] == 0.7 and report["kappa"] == pytest.approx(0.4)
    assert report["needs_refinement"] is True  # 0.4 < 0.6
    assert report["confusion"] == {"relevant": {"relevant": 20, "not_relevant": 5},
                                   "not_relevant": {"relevant": 10, "not_relevant": 15}}
    assert report["per_label"]["relevant"] == {"labeller": 25, "judge": 30, "precision": 0.8,
                                               "recall": round(20 / 30, 4)}
    assert len(report["disagreements"]) == 4 and report["disagreements_total"] == 15
    assert all(d["label"] != d["judge_label"] for d in report["disagreements"])
    assert json.loads((tmp_path / "audit" / "audit.json").read_text())["kappa"] == report["kappa"]
    md = (tmp_path / "audit" / "audit.md").read_text()
    assert "Cohen's kappa: 0.400" in md and "agreement: 70.0%" in md and "Refine the prompt" in md
    assert "| relevant | 20 | 5 |" in md and "| not_relevant | 10 | 15 |" in md
    assert len(read_jsonl(tmp_path / "audit" / "audit.sample.jsonl")) == 50

    config.kappa_threshold = 0.3
    assert audit_labels(labels, tmp_path / "audit", config)["needs_refinement"] is False


def test_audit_sample_is_seeded(tmp_path):
    labels, config = audit_fixture(tmp_path)
    ids = []
    for seed in (0, 0, 1):
        config.sample_size, config.seed = 10, seed
        audit_labels(labels, tmp_path / "audit", config)
        ids.append([r["id"] for r in read_jsonl(tmp_path / "audit" / "audit.sample.jsonl")])
    assert len(ids[0]) == 10 and ids[0] == ids[1] and ids[0] != ids[2]


def test_audit_refuses_self_audit_and_gates(tmp_path, capsys):
    shard = small_shard(tmp_path)
    label_documents([shard], tmp_path / "out", LabelConfig(backend="keyword", progress=False))
    labels = str(tmp_path / "out" / "labels.jsonl")
    assert audit_main([labels, "-o", str(tmp_path / "a"), "--backend", "keyword", "--no-progress"]) == 2
    assert "is the labeller itself" in capsys.readouterr().err
    # min_cues=3 as a stricter stand-in judge; kappa threshold 1.0 cannot be met unless identical
    args = [labels, "-o", str(tmp_path / "a"), "--backend", "keyword", "--min-cues", "3", "--no-progress",
            "--kappa-threshold", "1.0"]
    report_rc = audit_main(args)
    report = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert report_rc == 0 and report["judged"] == 30
    assert audit_main(args + ["--fail-below-threshold"]) == (1 if report["needs_refinement"] else 0)


# --- config errors and the API key -------------------------------------------------------------

@pytest.mark.parametrize("build, key", [
    (lambda: LabelConfig(backend="gpt"), "label.backend='gpt'"),
    (lambda: model_name(LabelConfig(backend="http", model="")), "label.model must be set"),
    (lambda: LabelConfig(backend="keyword", concurrency=0), "label.concurrency=0"),
    (lambda: LabelConfig(backend="keyword", max_unlabelled_fraction=2.0), "label.max_unlabelled_fraction"),
    (lambda: HttpConfig(timeout_s=0), "label.http.timeout_s=0"),
    (lambda: HttpConfig(base_url="localhost:8000"), "label.http.base_url"),
    (lambda: HttpConfig(backoff_initial_s=5, backoff_max_s=1), "label.http.backoff_max_s"),
    (lambda: TransformersConfig(batch_size=0), "label.transformers.batch_size"),
    (lambda: KeywordConfig(min_cues=0), "label.keyword.min_cues"),
    (lambda: AuditConfig(kappa_threshold=1.5), "audit.kappa_threshold=1.5"),
    (lambda: AuditConfig(sample_size=0), "audit.sample_size"),
])
def test_bad_config_names_the_key(build, key):
    with pytest.raises(ValueError) as e:
        build()
    assert key in str(e.value)


def test_cli_bad_value_and_missing_prompt(tmp_path, capsys):
    shard = small_shard(tmp_path, 2, 1)
    assert main([str(shard), "-o", str(tmp_path / "o"), "--backend", "keyword", "--concurrency", "0"]) == 2
    assert "label.concurrency=0" in capsys.readouterr().err
    assert main([str(shard), "-o", str(tmp_path / "o"), "--backend", "keyword", "--prompt", "nope_v9"]) == 2
    assert "label.prompt='nope_v9'" in capsys.readouterr().err
    assert main([str(shard), "-o", str(tmp_path / "o"), "--backend", "transformers",
                 "--model", str(tmp_path / "no-model")]) == 2
    assert "not a local model directory" in capsys.readouterr().err


def test_api_key_not_in_logs_or_outputs(tmp_path, monkeypatch, caplog):
    secret = "sk-test-DO-NOT-LEAK-4f9c2e"
    monkeypatch.setenv("REXBERT_TEST_KEY", secret)
    http = HttpConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key_env="REXBERT_TEST_KEY",
                      max_retries=2, backoff_initial_s=0.01, backoff_max_s=0.02, timeout_s=0.5)
    config = LabelConfig(backend="http", model="m", http=http, progress=False, max_unlabelled_fraction=1.0)
    labeller = HttpLabeller(config, load_prompt(config.prompt))
    assert labeller._session().headers["Authorization"] == f"Bearer {secret}"  # it is used...
    caplog.set_level(logging.DEBUG)
    shard = small_shard(tmp_path, 3, 0)
    out = tmp_path / "out"
    stats = label_documents([shard], out, config)
    assert stats["unlabelled"] == 3 and stats["requests_sent"] == 9  # 1 + 2 retries each
    errors = [r["error"] for r in read_jsonl(out / "labels.unlabelled.jsonl")]
    assert len(errors) == 3 and all(e.startswith("connection error: ") and "refused" in e for e in errors)
    assert "retry" in caplog.text
    written = b"".join(p.read_bytes() for p in out.iterdir() if p.is_file())
    assert secret not in caplog.text and secret.encode() not in written  # ...and never written
    assert b"REXBERT_TEST_KEY" in (out / "labels.stats.json").read_bytes()  # only its name


# --- the transformers backend -----------------------------------------------------------------

def tiny_causal_lm(path: Path, force_word: str | None, seed: int = 0) -> Path:
    """A randomly initialised 1-layer GPT-2 with a word-level tokenizer over the prompt's words,
    saved to ``path``. With ``force_word`` its final norm is rigged so that every generated
    token is that word (an end-to-end check that needs no trained model)."""
    import re

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    words = set(re.findall(r"\w+|[^\w\s]", PROMPT.read_text() + PRODUCTS.read_text()[:5000]))
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[EOS]"] + sorted(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                        eos_token="[EOS]")
    config = GPT2Config(vocab_size=len(vocab), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=2, eos_token_id=2, pad_token_id=0)
    model = GPT2LMHeadModel(config)
    if force_word is not None:
        with torch.no_grad():  # hidden state = ln_f.bias for every position; logits = wte @ bias
            bias = torch.randn(32)
            model.transformer.ln_f.weight.zero_()
            model.transformer.ln_f.bias.copy_(bias)
            model.transformer.wte.weight[vocab[force_word]] = 10 * bias  # tied with lm_head
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    return path


def test_transformers_backend_end_to_end(tmp_path):
    pytest.importorskip("transformers")
    shard = small_shard(tmp_path, 5, 3)
    forced = tiny_causal_lm(tmp_path / "forced", force_word="not_relevant")
    config = LabelConfig(backend="transformers", model=str(forced), max_chars=300, progress=False,
                         transformers=TransformersConfig(batch_size=4, max_new_tokens=3))
    stats = label_documents([shard], tmp_path / "out", config)
    assert stats["per_label"] == {"relevant": 0, "not_relevant": 8} and stats["requests_sent"] == 8
    assert {r["model"] for r in read_jsonl(tmp_path / "out" / "labels.jsonl")} == {str(forced)}
    assert label_documents([shard], tmp_path / "out", config)["requests_sent"] == 0  # cached

    # An untrained model answers noise: each answer parses into the label set or is marked.
    noisy = tiny_causal_lm(tmp_path / "noisy", force_word=None, seed=3)
    config.model = str(noisy)
    stats = label_documents([shard], tmp_path / "out2", config)
    assert stats["labelled"] + stats["unlabelled"] == 8 and stats["requests_sent"] == 8
    assert stats["unlabelled"] > 0  # this seed's model babbles punctuation: the marked path runs
    for row in read_jsonl(tmp_path / "out2" / "labels.unlabelled.jsonl"):
        assert row["error"].startswith("unparseable reply")
    for row in read_jsonl(tmp_path / "out2" / "labels.jsonl"):
        assert row["label"] in LABELS
