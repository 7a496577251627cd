"""Extractive QA evaluation: SQuAD reading and validation, the official EM/F1 against
hand-computed cases, windowing and answer labels, span selection on hand-made logits, and a
tiny end-to-end fine-tuning run.

The SQuAD files are built from real Abt products (abt_products.csv) by a fixed rule: the
context is the product description, the question "What is the model number of <title
without its ' - CODE' suffix>?", the answer the code after the title's last " - ", at its
first occurrence in the description (every Abt description contains it verbatim); articles
group products by brand (the title's first word).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from eval_helpers import abt_path, tiny_mlm_folder
from rexbert.eval.common import EvalError, load_tokenizer
from rexbert.eval.qa import QaConfig, Window, best_answers, run_qa, windows
from rexbert.eval.squad import QaExample, exact_match, normalize_answer, read_squad, squad_scores, token_f1



pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def abt_rows() -> list[dict]:
    with open(abt_path(), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def squad_json(rows: list[dict]) -> dict:
    articles: dict[str, list] = {}
    for i, row in enumerate(rows):  # ids by row: abt_products.csv repeats some unique_ids
        name, code = row["title"].rsplit(" - ", 1)
        context = row["description"]
        qa = {"id": f"abt-{i}", "question": f"What is the model number of {name}?",
              "answers": [{"text": code, "answer_start": context.index(code)}]}
        articles.setdefault(name.split()[0], []).append({"context": context, "qas": [qa]})
    return {"version": "1.1", "data": [{"title": t, "paragraphs": p} for t, p in articles.items()]}


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- metrics: hand-computed ------------------------------------------------------------------

def test_normalize_answer():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert normalize_answer(" 10/100 ") == "10100"


def test_exact_match_and_f1_hand_computed():
    assert exact_match("The Eiffel tower.", ["eiffel tower"]) == 1.0
    assert exact_match("Eiffel", ["eiffel tower", "Paris"]) == 0.0
    assert token_f1("the cat sat", ["a cat sat on the mat"]) == pytest.approx(2 * 1 * 0.5 / 1.5)  # P 1, R 2/4
    assert token_f1("cat cat", ["cat"]) == pytest.approx(2 / 3)  # P 1/2, R 1 (overlap counts once)
    assert token_f1("dog", ["cat"]) == 0.0
    assert token_f1("", ["cat"]) == 0.0
    assert token_f1("mat sat", ["cat sat on mat", "mat"]) == pytest.approx(2 / 3)  # max(F1 2/3, F1 2/3)
    assert token_f1("on the mat", ["cat sat on mat", "mat"]) == pytest.approx(max(2 * 1 * 0.5 / 1.5, 2 * 0.5 / 1.5))
    examples = [QaExample("a", "q", "c", ["EZXS88W"]), QaExample("b", "q", "c", ["red car", "car"]),
                QaExample("c", "q", "c", ["x"])]
    scores = squad_scores({"a": "ezxs88w", "b": "a red car door"}, examples)  # "c" missing: scores 0
    # a: EM 1, F1 1; b: EM 0, F1 vs "red car" = P 2/3, R 1 → 0.8; c: 0
    assert scores == {"exact_match": pytest.approx(1 / 3), "f1": pytest.approx(1.8 / 3)}


# --- reading and validation ---------------------------------------------------------------------

def test_read_squad_abt(tmp_path, abt_rows):
    examples = read_squad(write_json(tmp_path / "s.json", squad_json(abt_rows[:30])))
    assert len(examples) == 30 and examples[0].id == "abt-0"
    assert examples[0].answers == ["EZXS88W"] and examples[0].question.startswith("What is the model number of Linksys")
    for ex in examples:
        assert ex.context[ex.starts[0]:ex.starts[0] + len(ex.answers[0])] == ex.answers[0]


def _one(qa: dict, context: str = "Linksys switch - EZXS88W") -> dict:
    return {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [qa]}]}]}


@pytest.mark.parametrize("data, message", [
    (_one({"id": "q1", "question": "?", "answers": [{"text": "EZXS88W", "answer_start": 3}]}),
     r"question q1: answer 'EZXS88W' is not at answer_start 3 .* has 'ksys sw'"),
    (_one({"id": "q2", "question": "?", "answers": [], "is_impossible": True}), r"question q2: no answers"),
    (_one({"id": "q3", "question": "?", "answers": [{"text": "EZXS88W"}]}), r"question q3: every answer needs"),
    (_one({"question": "?", "answers": []}), r"a question in 't' has no 'id'"),
    ({"data": [{"title": "t", "paragraphs": [{"qas": []}]}]}, r"article 0 \('t'\) paragraph 0 needs a 'context'"),
    ({"version": "1.1"}, r"needs a top-level 'data' list"),
    ({"data": []}, r"holds no questions"),
])
def test_read_squad_errors(tmp_path, data, message):
    with pytest.raises(EvalError, match=message):
        read_squad(write_json(tmp_path / "bad.json", data))


def test_read_squad_duplicate_id_bad_json_missing_file(tmp_path):
    qa = {"id": "q1", "question": "?", "answers": [{"text": "EZXS88W", "answer_start": 17}]}
    data = _one(qa)
    data["data"][0]["paragraphs"].append(data["data"][0]["paragraphs"][0])
    with pytest.raises(EvalError, match="question id 'q1' occurs twice"):
        read_squad(write_json(tmp_path / "dup.json", data))
    (tmp_path / "broken.json").write_text('{"data": [', encoding="utf-8")
    with pytest.raises(EvalError, match="broken.json: not valid JSON"):
        read_squad(tmp_path / "broken.json")
    with pytest.raises(EvalError, match="does not exist"):
        read_squad(tmp_path / "nope.json")


# --- windows, labels and span choice -------------------------------------------------------------

def test_windows_label_the_answer_tokens(tmp_path, abt_rows):
    tok = load_tokenizer(tiny_mlm_folder(tmp_path / "mlm"))
    examples = read_squad(write_json(tmp_path / "s.json", squad_json(abt_rows[:60])))
    config = QaConfig(max_length=64, doc_stride=16, max_question_length=24)
    wins = windows(tok, examples, config)
    assert len(wins) > len(examples)  # long descriptions take several windows
    assert all(len(w.input_ids) <= 64 for w in wins)
    exact = 0
    for w in wins:
        ex = examples[w.example]
        assert all(w.offsets[t] is None for t in range(w.input_ids.index(tok.sep_token_id) + 1))  # question side
        if w.start_position == 0:
            assert w.end_position == 0
            continue
        text = ex.context[w.offsets[w.start_position][0]:w.offsets[w.end_position][1]].strip()
        assert ex.answers[0] in text
        exact += text == ex.answers[0]
    labelled = sum(w.start_position > 0 for w in wins)
    assert labelled >= len(examples) and exact >= 0.9 * labelled
    # consecutive windows of one context share doc_stride tokens
    a, b = next((a, b) for a, b in zip(wins, wins[1:]) if a.example == b.example)
    ctx_a = [o for o in a.offsets if o is not None]
    ctx_b = [o for o in b.offsets if o is not None]
    assert ctx_a[-16:] == ctx_b[:16]


def test_best_answers_hand_made_logits():
    ex = QaExample("q", "?", "Sony Bravia - KDL40", ["KDL40"], [14])
    # tokens: 0 [CLS], 1 question, 2 [SEP], 3 'Sony', 4 ' Bravia', 5 ' -', 6 ' KDL40', 7 [SEP]
    offsets = [None, None, None, (0, 4), (4, 11), (11, 13), (13, 19), None]
    win = Window(0, [0] * 8, [1] * 8, offsets)
    start = [9.0, 9.0, 0, 1.0, 0, 0, 5.0, 0]  # best starts at [CLS]/question: not valid
    end = [9.0, 0, 0, 4.0, 0, 0, 3.0, 0]
    assert best_answers([ex], [win], [(start, end)], n_best=20, max_answer_length=30) == {"q": "KDL40"}
    # start 6 + end 3 is invalid (end < start); the best valid pair is then start 3 .. end 3 (1 + 4)
    end_before = [0, 0, 0, 4.0, 0, 0, -9.0, 0]
    assert best_answers([ex], [win], [(start, end_before)], 20, 30) == {"q": "Sony"}
    # Sony..KDL40 (4 tokens, 5 + 5) wins at max_answer_length 4; at 2 the best left is KDL40 (2 + 5)
    wide = [0, 0, 0, 5.0, 0, 0, 2.0, 0], [0, 0, 0, 1.0, 0, 0, 5.0, 0]
    assert best_answers([ex], [win], [wide], 20, 4) == {"q": "Sony Bravia - KDL40"}
    assert best_answers([ex], [win], [wide], 20, 2) == {"q": "KDL40"}
    # n_best 1 leaves only the invalid [CLS]/question pairs: no answer
    assert best_answers([ex], [win], [(start, end)], n_best=1, max_answer_length=30) == {"q": ""}
    # two windows of one question: the higher-scoring span wins
    win2 = Window(0, [0] * 8, [1] * 8, offsets)
    low, high = ([0, 0, 0, 2.0, 0, 0, 0, 0], [0, 0, 0, 2.0, 0, 0, 0, 0]), ([0] * 6 + [3.0, 0], [0] * 6 + [3.0, 0])
    assert best_answers([ex], [win, win2], [low, high], 20, 30) == {"q": "KDL40"}


# --- end to end ------------------------------------------------------------------------------------

def test_run_qa_abt_end_to_end(tmp_path, abt_rows):
    model = tiny_mlm_folder(tmp_path / "mlm")
    train = write_json(tmp_path / "train.json", squad_json(abt_rows[:240]))
    test = write_json(tmp_path / "test.json", squad_json(abt_rows[300:360]))
    out = tmp_path / "qa.json"
    config = QaConfig(model=str(model), train_file=str(train), test_file=str(test), output=str(out),
                      dataset="abt", lrs=[5e-3], seeds=[0, 1], epochs=1, batch_size=16, max_length=96,
                      doc_stride=32, max_question_length=32, warmup_ratio=0.0, dev_fraction=0.2, use_cpu=True)
    result = run_qa(config)
    saved = json.loads(out.read_text())
    assert saved["task"] == "qa" and saved["dataset"] == "abt" and saved["metrics"] == result["metrics"]
    assert set(saved["metrics"]) == {"exact_match", "f1", "dev_f1"}
    runs = saved["details"]["runs"]
    assert [(r["lr"], r["seed"]) for r in runs] == [(5e-3, 0), (5e-3, 1)]
    assert saved["metrics"]["f1"]["mean"] == pytest.approx(sum(r["test_f1"] for r in runs) / 2)
    assert all(0 <= r["test_exact_match"] <= r["test_f1"] <= 1 for r in runs)
    q = saved["details"]["questions"]
    assert q["test"] == 60 and q["train"] + q["dev"] == 240 and 40 <= q["dev"] <= 56  # 20% of the contexts
    assert saved["details"]["windows"]["train"] >= q["train"]


def test_run_qa_config_errors(tmp_path, abt_rows):
    data = write_json(tmp_path / "s.json", squad_json(abt_rows[:5]))
    base = dict(model=str(tmp_path), train_file=str(data), test_file=str(data))
    with pytest.raises(EvalError, match=r"qa.doc_stride=317 must be in \[0, 317\)"):
        run_qa(QaConfig(**base, doc_stride=317))
    with pytest.raises(EvalError, match="qa.seeds=\\[0, 0\\] must be"):
        run_qa(QaConfig(**base, seeds=[0, 0]))
    with pytest.raises(EvalError, match="qa.test_file is empty"):
        run_qa(QaConfig(model=str(tmp_path), train_file=str(data)))
    with pytest.raises(EvalError, match="missing: config.json"):
        run_qa(QaConfig(**base))
