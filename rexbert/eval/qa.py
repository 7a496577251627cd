"""Extractive question answering: fine-tune ``AutoModelForQuestionAnswering`` from an MLM
folder on SQuAD v1.1-format files and report exact match and F1 (``squad.squad_scores``).

Each (question, context) pair becomes windows of ``max_length`` tokens — question first, the
context cut into pieces that overlap by ``doc_stride`` tokens (questions longer than
``max_question_length`` tokens are cut). Training labels are the answer's first and last
token in every window that holds the whole answer, else the [CLS] position (0). A prediction
is the best span over all windows of the question: among the ``n_best`` top start and end
logits, a span is valid when both ends lie in the context, end ≥ start and it has at most
``max_answer_length`` tokens; its score is start + end logit; its text is the context
between the characters of its ends.

Protocol as in ``ner``: lr grid × seeds, the lr picked on mean dev F1, test scores as mean ±
95% CI; without a dev file, ``dev_fraction`` of the training contexts is held out (whole
contexts, so no passage is in both). For SQuAD itself pass the official dev set as
``test_file``.

Result metrics: ``exact_match``, ``f1`` (test, fractions, {mean, ci95, n}) and ``dev_f1``;
details: ``best_lr``, ``questions``, ``windows`` and ``runs``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from rexbert.eval.common import EvalError, check_model_folder, load_tokenizer, set_seed, write_result
from rexbert.eval.ner import FinetuneConfig, fine_tune, holdout, load_with_head, lr_seed_grid, predict
from rexbert.eval.squad import QaExample, read_squad, squad_scores


@dataclass
class QaConfig(FinetuneConfig):
    output: str = "results/qa.json"
    epochs: float = 2.0
    max_length: int = 384
    doc_stride: int = 128  # tokens shared by consecutive windows of a long context
    max_question_length: int = 64
    max_answer_length: int = 30  # tokens
    n_best: int = 20

    def check(self, task: str = "qa") -> None:
        super().check(task)
        for key in ("max_question_length", "max_answer_length", "n_best"):
            if getattr(self, key) <= 0:
                raise EvalError(f"{task}.{key}={getattr(self, key)} must be > 0")
        room = self.max_length - self.max_question_length - 3  # [CLS] q [SEP] context [SEP]
        if room <= 0:
            raise EvalError(f"{task}.max_length={self.max_length} leaves no room for the context after "
                            f"max_question_length={self.max_question_length}")
        if not 0 <= self.doc_stride < room:
            raise EvalError(f"{task}.doc_stride={self.doc_stride} must be in [0, {room}) "
                            f"(max_length - max_question_length - 3)")


@dataclass
class Window:
    """One window of one question: model inputs, and per token its context characters (None outside)."""
    example: int
    input_ids: list[int]
    attention_mask: list[int]
    offsets: list[Optional[tuple[int, int]]]
    start_position: int = 0
    end_position: int = 0


def windows(tokenizer, examples: Sequence[QaExample], config: QaConfig, batch: int = 256) -> list[Window]:
    """Every window of every question, answer-labelled (tokenised ``batch`` questions at a time)."""
    out: list[Window] = []
    for first in range(0, len(examples), batch):
        chunk = examples[first:first + batch]
        questions = _cut_questions(tokenizer, [ex.question for ex in chunk], config.max_question_length)
        enc = tokenizer(questions, [ex.context for ex in chunk], truncation="only_second",
                        max_length=config.max_length, stride=config.doc_stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True)
        for i, sample in enumerate(enc["overflow_to_sample_mapping"]):
            sequence = enc.sequence_ids(i)
            offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], sequence)]
            w = Window(first + sample, enc["input_ids"][i], enc["attention_mask"][i], offsets)
            w.start_position, w.end_position = _answer_tokens(offsets, chunk[sample])
            out.append(w)
    return out


def _cut_questions(tokenizer, questions: list[str], max_tokens: int) -> list[str]:
    questions = [q.lstrip() for q in questions]  # leading spaces only waste window room
    offsets = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [q[:o[max_tokens - 1][1]] if len(o) > max_tokens else q for q, o in zip(questions, offsets)]


def _answer_tokens(offsets: Sequence[Optional[tuple[int, int]]], example: QaExample) -> tuple[int, int]:
    """First and last token of the (first) answer, or (0, 0) when the window does not hold it all."""
    start_char = example.starts[0]
    end_char = start_char + len(example.answers[0])
    context = [t for t, o in enumerate(offsets) if o is not None]
    if not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return 0, 0
    start = max(t for t in context if offsets[t][0] <= start_char)
    end = min(t for t in context if offsets[t][1] >= end_char)
    return start, end


def best_answers(examples: Sequence[QaExample], wins: Sequence[Window], logits: Sequence[tuple],
                 n_best: int, max_answer_length: int) -> dict[str, str]:
    """Question id → text of the best valid span over its windows ('' when none is valid)."""
    best: dict[int, tuple[float, str]] = {}
    for w, (start_logits, end_logits) in zip(wins, logits):
        starts = np.argsort(start_logits)[::-1][:n_best]
        ends = np.argsort(end_logits)[::-1][:n_best]
        for s in starts:
            if w.offsets[s] is None:
                continue
            for e in ends:
                if w.offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start_logits[s] + end_logits[e])
                if w.example not in best or score > best[w.example][0]:
                    text = examples[w.example].context[w.offsets[s][0]:w.offsets[e][1]].strip()
                    best[w.example] = (score, text)
    return {ex.id: best[i][1] if i in best else "" for i, ex in enumerate(examples)}


def run_qa(config: QaConfig) -> dict[str, Any]:
    started = time.perf_counter()
    config.check()
    folder = check_model_folder(config.model)
    train = read_squad(config.train_file)
    test = read_squad(config.test_file)
    if config.dev_file:
        dev = read_squad(config.dev_file)
    else:
        contexts = list(dict.fromkeys(ex.context for ex in train))
        _, dev_idx = holdout(len(contexts), config.dev_fraction)
        held = {contexts[i] for i in dev_idx}
        train, dev = [ex for ex in train if ex.context not in held], [ex for ex in train if ex.context in held]
    train = train[:config.max_train_examples] if config.max_train_examples else train

    tokenizer = load_tokenizer(folder)
    tokenizer.padding_side = "right"  # predict() cuts each output to its window's length
    train_feats = [{"input_ids": w.input_ids, "attention_mask": w.attention_mask,
                    "start_positions": w.start_position, "end_positions": w.end_position}
                   for w in windows(tokenizer, train, config)]
    evals = {"dev": (dev, windows(tokenizer, dev, config)), "test": (test, windows(tokenizer, test, config))}

    from transformers import AutoModelForQuestionAnswering, DataCollatorWithPadding

    collator = DataCollatorWithPadding(tokenizer)

    def run_one(lr: float, seed: int) -> tuple[dict, dict]:
        set_seed(seed)  # the new head's initialisation
        model = load_with_head(AutoModelForQuestionAnswering, folder)
        fine_tune(model, train_feats, collator, lr, seed, config, f"qa lr={lr:g} seed={seed}")
        scores = []
        for name, (examples, wins) in evals.items():
            feats = [{"input_ids": w.input_ids, "attention_mask": w.attention_mask} for w in wins]
            logits = predict(model, feats, collator, config.eval_batch_size, ("start_logits", "end_logits"),
                             config.bf16, f"qa {name}")
            answers = best_answers(examples, wins, logits, config.n_best, config.max_answer_length)
            scores.append(squad_scores(answers, examples))
        return scores[0], scores[1]

    grid = lr_seed_grid(config.lrs, config.seeds, run_one, "f1", ("exact_match", "f1"), "qa")
    details = {"best_lr": grid["best_lr"],
               "questions": {"train": len(train), "dev": len(dev), "test": len(test)},
               "windows": {"train": len(train_feats), **{k: len(v[1]) for k, v in evals.items()}},
               "runs": [{"lr": r["lr"], "seed": r["seed"], "dev_f1": r["dev"]["f1"], "test_f1": r["test"]["f1"],
                         "test_exact_match": r["test"]["exact_match"]} for r in grid["runs"]]}
    return write_result(config.output, "qa", folder, config.dataset_name(), config.seeds[0], grid["metrics"],
                        config, details, started)
