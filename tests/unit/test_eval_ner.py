"""NER evaluation: CoNLL reading and validation, conlleval-style entity scores against
hand-computed cases, first-subword labelling, and a tiny end-to-end fine-tuning run.

The NER files are built from real Abt product titles (abt_products.csv) by a fixed rule:
words are the title split on whitespace; the brand is the first word (the first two for the
two-word brands of that file: Altec Lansing, Polk Audio, Tech Craft) → B-BRAND (I-BRAND);
the model number is the code after the last " - " (always one word there) → B-MODEL;
every other word is O.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from eval_helpers import abt_path, tiny_mlm_folder
from rexbert.eval.common import EvalError
from rexbert.eval.conll import entities, entity_scores, label_list, read_conll
from rexbert.eval.ner import NerConfig, encode_words, load_with_head, run_ner, word_tags

TWO_WORD_BRANDS = {("Altec", "Lansing"), ("Polk", "Audio"), ("Tech", "Craft")}


def tag_title(title: str) -> list[tuple[str, str]]:
    words = title.split()
    tags = ["O"] * len(words)
    tags[0] = "B-BRAND"
    if tuple(words[:2]) in TWO_WORD_BRANDS:
        tags[1] = "I-BRAND"
    if " - " in title and len(words) > 2:
        tags[-1] = "B-MODEL"  # the code after the last " - " is the last word
    return list(zip(words, tags))


def write_conll(path: Path, titles: list[str]) -> Path:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for title in titles:
        lines += [f"{w} NNP {t}" for w, t in tag_title(title)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def abt_titles() -> list[str]:
    with open(abt_path(), newline="", encoding="utf-8") as f:
        return [row["title"] for row in csv.DictReader(f)]


# --- entity scores: hand-computed cases ----------------------------------------------------

@pytest.mark.parametrize("tags, spans", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["B-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),            # B right after B: two entities
    (["B-PER", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 2)]),            # type change closes the entity
    (["I-PER", "I-PER", "O"], [("PER", 0, 2)]),                      # a stray I- opens one (conlleval)
    (["B-PER", "I-PER", "O", "I-PER"], [("PER", 0, 2), ("PER", 3, 4)]),
    (["O", "O"], []),
    (["B-ORG", "I-ORG", "I-ORG"], [("ORG", 0, 3)]),                  # entity running to the end
])
def test_entities(tags, spans):
    assert entities(tags) == spans


def test_entity_scores_hand_computed():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    # sentence 1: PER right, LOC predicted one token too long (wrong boundary);
    # sentence 2: ORG missed, PER right, one spurious LOC.
    pred = [["B-PER", "I-PER", "B-LOC", "I-LOC"], ["O", "B-LOC", "B-PER"]]
    s = entity_scores(gold, pred)
    # gold 4 entities (PER, LOC, ORG, PER); predicted 4 (PER, LOC[2:4], LOC, PER); correct 2
    assert (s["n_gold"], s["n_predicted"], s["n_correct"]) == (4, 4, 2)
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(0.5)
    assert s["f1"] == pytest.approx(0.5)
    assert s["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert s["per_type"]["ORG"]["recall"] == 0.0 and s["per_type"]["ORG"]["support"] == 1


def test_entity_scores_boundary_split_and_unequal_counts():
    # gold one 3-token entity; predicted split into B B-I: both wrong → P 0/2, R 0/1
    s = entity_scores([["B-X", "I-X", "I-X"]], [["B-X", "B-X", "I-X"]])
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 0.0, 0.0)
    # 3 gold, 1 predicted and right: P 1, R 1/3, F1 = 2·1·(1/3)/(4/3) = 0.5
    s = entity_scores([["B-X", "O", "B-Y", "B-X"]], [["B-X", "O", "O", "O"]])
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, pytest.approx(1 / 3), pytest.approx(0.5))
    with pytest.raises(ValueError, match="sentence 0"):
        entity_scores([["O", "O"]], [["O"]])


# --- CoNLL reading -------------------------------------------------------------------------

def test_read_conll_columns_docstart_and_iob1(tmp_path):
    p = tmp_path / "a.conll"
    p.write_text("-DOCSTART- -X- O O\n\nEU NNP B-ORG x\nrejects VBZ O x\n\n\nPeter NNP B-PER x\n", encoding="utf-8")
    sents = read_conll(p, label_column=2)
    assert [s.words for s in sents] == [["EU", "rejects"], ["Peter"]]
    assert [s.tags for s in sents] == [["B-ORG", "O"], ["B-PER"]]
    assert sents[0].lines == [3, 4]
    iob1 = tmp_path / "iob1.conll"
    iob1.write_text("EU I-ORG\nrejects O\nGerman I-MISC\nBritish B-MISC\nlamb I-MISC\n", encoding="utf-8")
    assert read_conll(iob1, scheme="iob1")[0].tags == ["B-ORG", "O", "B-MISC", "B-MISC", "I-MISC"]
    assert label_list(read_conll(iob1, scheme="iob1")) == ["O", "B-MISC", "I-MISC", "B-ORG"]


@pytest.mark.parametrize("text, message", [
    ("EU B-ORG\nrejects X-ORG\n", r"a.conll:2: tag 'X-ORG' is not BIO"),
    ("EU B-ORG\nrejects B-\n", r"a.conll:2: tag 'B-' is not BIO"),
    ("EU O\nGerman I-MISC\n", r"a.conll:2: tag I-MISC follows O, which is not IOB2"),
    ("EU B-ORG\nGerman I-MISC\n", r"a.conll:2: tag I-MISC follows B-ORG"),
    ("EU\n", r"a.conll:1: expected a token and a label"),
    ("\n\n", r"holds no sentences"),
])
def test_read_conll_errors_name_file_and_line(tmp_path, text, message):
    p = tmp_path / "a.conll"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(EvalError, match=message):
        read_conll(p)


def test_read_conll_missing_file_and_column(tmp_path):
    with pytest.raises(EvalError, match="does not exist"):
        read_conll(tmp_path / "nope.conll")
    p = tmp_path / "a.conll"
    p.write_text("EU NNP B-ORG\n", encoding="utf-8")
    with pytest.raises(EvalError, match=r"a.conll:1: has 3 column\(s\), needs token column 0 and label column 5"):
        read_conll(p, label_column=5)


# --- first-subword labelling ---------------------------------------------------------------

def test_encode_words_first_subword(tmp_path_factory, abt_titles):
    from rexbert.eval.common import load_tokenizer

    tok = load_tokenizer(tiny_mlm_folder(tmp_path_factory.mktemp("ner_tok")))
    words = abt_titles[0].split()  # Linksys EtherFast 8-Port 10/100 Switch - EZXS88W
    feat, first = encode_words(tok, words, max_length=64)
    tokens = tok.convert_ids_to_tokens(feat["input_ids"])
    assert first == sorted(first) and len(set(first)) == len(words) and min(first) > 0
    for word, t in zip(words, first):  # each word's first token spells the word's beginning
        assert word.startswith(tokens[t].lstrip("Ġ")), (word, tokens[t])
    _, cut = encode_words(tok, words, max_length=4)  # [CLS] + 2 tokens + [SEP]: most words cut off
    assert cut[0] == 1 and cut[-1] == -1
    assert word_tags([[0.0, 1.0], [2.0, 0.0]], [1, 0, -1], ["O", "B-X"]) == ["O", "B-X", "O"]


# --- end to end ----------------------------------------------------------------------------

def test_run_ner_abt_end_to_end(tmp_path, abt_titles):
    model = tiny_mlm_folder(tmp_path / "mlm")
    train = write_conll(tmp_path / "train.txt", abt_titles[:240])
    dev = write_conll(tmp_path / "dev.txt", abt_titles[240:300])
    test = write_conll(tmp_path / "test.txt", abt_titles[300:360])
    out = tmp_path / "ner.json"
    config = NerConfig(model=str(model), train_file=str(train), dev_file=str(dev), test_file=str(test),
                       output=str(out), dataset="abt", lrs=[5e-3], seeds=[0, 1], epochs=1, batch_size=16,
                       max_length=64, warmup_ratio=0.0, use_cpu=True)
    result = run_ner(config)
    saved = json.loads(out.read_text())
    assert saved["task"] == "ner" and saved["dataset"] == "abt" and saved["metrics"] == result["metrics"]
    assert set(saved["metrics"]) == {"f1", "precision", "recall", "dev_f1"}
    assert saved["metrics"]["f1"]["n"] == 2
    runs = saved["details"]["runs"]
    assert [(r["lr"], r["seed"]) for r in runs] == [(5e-3, 0), (5e-3, 1)]
    assert saved["metrics"]["f1"]["mean"] == pytest.approx(sum(r["test_f1"] for r in runs) / 2)
    assert saved["details"]["labels"] == ["O", "B-BRAND", "I-BRAND", "B-MODEL"]
    assert set(saved["details"]["per_type"]) == {"BRAND", "MODEL"}
    assert saved["details"]["sentences"] == {"train": 240, "dev": 60, "test": 60}
    assert all(r["test_f1"] > 0.3 for r in runs)  # one epoch already finds entities (an untrained head: ~0)


def test_run_ner_grid_picks_lr_on_dev_and_is_deterministic(tmp_path, abt_titles):
    model = tiny_mlm_folder(tmp_path / "mlm")
    train = write_conll(tmp_path / "train.txt", abt_titles[:240])
    test = write_conll(tmp_path / "test.txt", abt_titles[300:360])
    common = dict(model=str(model), train_file=str(train), test_file=str(test), dataset="abt", epochs=1,
                  max_length=64, warmup_ratio=0.0, dev_fraction=0.25, use_cpu=True)
    grid = run_ner(NerConfig(**common, output=str(tmp_path / "a.json"), lrs=[1e-9, 5e-3], seeds=[0]))
    runs = grid["details"]["runs"]
    assert runs[0]["dev_f1"] < runs[1]["dev_f1"] and grid["details"]["best_lr"] == 5e-3
    assert grid["metrics"]["f1"]["mean"] == runs[1]["test_f1"] and grid["metrics"]["f1"]["n"] == 1
    assert grid["details"]["sentences"] == {"train": 180, "dev": 60, "test": 60}  # 25% held out as dev
    again = run_ner(NerConfig(**common, output=str(tmp_path / "b.json"), lrs=[5e-3], seeds=[0]))
    assert again["details"]["runs"][0] == runs[1]  # same seed, same data → same numbers


def test_run_ner_rejects_unknown_test_tag_and_bad_config(tmp_path, abt_titles):
    model = tiny_mlm_folder(tmp_path / "mlm")
    train = write_conll(tmp_path / "train.txt", abt_titles[:20])
    test = tmp_path / "test.txt"
    test.write_text("Sony B-BRAND\nBravia B-LINE\n", encoding="utf-8")
    config = NerConfig(model=str(model), train_file=str(train), test_file=str(test), output=str(tmp_path / "o.json"))
    with pytest.raises(EvalError, match=r"test.txt:2: tag 'B-LINE' is not in the training label set"):
        run_ner(config)
    with pytest.raises(EvalError, match=r"ner.lrs=\[\] must be"):
        run_ner(NerConfig(model=str(model), train_file=str(train), test_file=str(test), lrs=[]))
    with pytest.raises(EvalError, match="ner.tag_scheme='bio'"):
        run_ner(NerConfig(model=str(model), train_file=str(train), test_file=str(test), tag_scheme="bio"))
    with pytest.raises(EvalError, match="missing: config.json"):
        run_ner(NerConfig(model=str(tmp_path), train_file=str(train), test_file=str(test)))


def test_load_with_head_refuses_a_folder_without_encoder_weights(tmp_path):
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForTokenClassification

    folder = tiny_mlm_folder(tmp_path / "mlm")
    assert load_with_head(AutoModelForTokenClassification, folder, num_labels=3).num_labels == 3
    save_file({"decoder.bias": torch.zeros(8)}, str(folder / "model.safetensors"))  # no encoder left
    with pytest.raises(EvalError, match=r"ModernBertForTokenClassification found no encoder weights for \['model\."):
        load_with_head(AutoModelForTokenClassification, folder, num_labels=3)
