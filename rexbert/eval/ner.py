"""Named-entity recognition: fine-tune ``AutoModelForTokenClassification`` from an MLM folder
on CoNLL-format files and report entity-level precision/recall/F1 (``conll.entity_scores``).

Protocol (as in the MLM-vs-CLM comparison): every learning rate of ``lrs`` × every seed of
``seeds`` is fine-tuned from the same checkpoint; the learning rate with the best mean dev F1
is picked, and the test scores of its seeds are reported as mean ± 95% CI. Without a dev file,
``dev_fraction`` of the training sentences (a fixed, seed-0 draw) is held out as dev.

Words are joined with single spaces and tokenised as running text (so a byte-level BPE sees
``Ġword`` as in pre-training); the first sub-token of each word carries its label, the others
-100. Words cut off by ``max_length`` are predicted ``O``.

Result metrics: ``f1``, ``precision``, ``recall`` (test, {mean, ci95, n} over seeds at the
picked learning rate) and ``dev_f1``; details: ``best_lr``, ``labels``, ``per_type`` (test F1
per entity type, mean over seeds) and ``runs`` (every lr × seed with dev and test scores).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from rexbert.eval.common import EvalError, check_model_folder, load_tokenizer, mean_ci95, set_seed, write_result
from rexbert.eval.conll import SCHEMES, Sentence, check_labels, entity_scores, label_list, read_conll


@dataclass
class FinetuneConfig:
    """What the fine-tuning evaluations share: data paths, the lr × seed grid, training settings."""
    model: str = ""  # HF MLM folder
    train_file: str = ""
    dev_file: Optional[str] = None  # None: hold out dev_fraction of the training examples
    test_file: str = ""
    output: str = "results/finetune.json"
    dataset: Optional[str] = None  # name in the result; None: the train file's folder name
    lrs: list[float] = field(default_factory=lambda: [3e-5, 5e-5, 8e-5, 1e-4])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: float = 3.0
    batch_size: int = 16
    eval_batch_size: int = 64
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    dev_fraction: float = 0.1
    max_train_examples: Optional[int] = None  # the first N training examples (quick runs)
    bf16: bool = False
    use_cpu: bool = False

    def check(self, task: str) -> None:
        """EvalError naming the first bad key."""
        for key in ("model", "train_file", "test_file", "output"):
            if not getattr(self, key):
                raise EvalError(f"{task}.{key} is empty: give it, e.g. {key}=path")
        if not self.lrs or any(lr <= 0 for lr in self.lrs):
            raise EvalError(f"{task}.lrs={self.lrs} must be a non-empty list of positive learning rates")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise EvalError(f"{task}.seeds={self.seeds} must be a non-empty list of distinct seeds")
        for key in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, key) <= 0:
                raise EvalError(f"{task}.{key}={getattr(self, key)} must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise EvalError(f"{task}.warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if self.dev_file is None and not 0 < self.dev_fraction < 1:
            raise EvalError(f"{task}.dev_fraction={self.dev_fraction} must be in (0, 1) when dev_file is not given")
        if self.max_train_examples is not None and self.max_train_examples <= 0:
            raise EvalError(f"{task}.max_train_examples={self.max_train_examples} must be > 0")

    def dataset_name(self) -> str:
        return self.dataset or Path(self.train_file).resolve().parent.name


@dataclass
class NerConfig(FinetuneConfig):
    output: str = "results/ner.json"
    label_column: int = -1  # column of the BIO label (CoNLL-2003: the last)
    token_column: int = 0
    tag_scheme: str = "iob2"  # "iob1" for the original CoNLL-2003 files (converted to IOB2)
    max_length: int = 512

    def check(self, task: str = "ner") -> None:
        super().check(task)
        if self.tag_scheme not in SCHEMES:
            raise EvalError(f"{task}.tag_scheme={self.tag_scheme!r}: choose one of {SCHEMES}")
        if self.max_length < 8:
            raise EvalError(f"{task}.max_length={self.max_length} must be >= 8")


def load_with_head(auto_class, folder: Path, **kwargs):
    """``auto_class`` (e.g. AutoModelForTokenClassification) from an MLM folder: the new head is
    expected to be missing (its load report is silenced); a missing encoder weight is an error."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = auto_class.from_pretrained(folder, local_files_only=True, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    encoder = sorted(k for k in info["missing_keys"] if k.startswith(f"{model.base_model_prefix}."))
    if encoder:
        raise EvalError(f"model folder {folder}: {type(model).__name__} found no encoder weights for "
                        f"{encoder[:3]}{' ...' if len(encoder) > 3 else ''} (not an MLM export of this architecture?)")
    return model


def fine_tune(model, features: Sequence[dict], collator, lr: float, seed: int, config: FinetuneConfig,
              desc: str):
    """A short AdamW loop (transformers' Trainer needs accelerate, which the project does not
    ship): linear warmup and decay, grad-norm clip 1.0, no weight decay on norms and biases,
    batches shuffled from ``seed``. Returns the model in eval mode on its device."""
    import math

    import torch
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    device = torch.device("cuda" if torch.cuda.is_available() and not config.use_cpu else "cpu")
    model.to(device).train()
    loader = DataLoader(list(features), batch_size=config.batch_size, shuffle=True, collate_fn=collator,
                        generator=torch.Generator().manual_seed(seed))
    steps = max(1, math.ceil(len(loader) * config.epochs))
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "norm" not in n.lower()]
    rest = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "norm" not in n.lower())]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=lr)
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * steps), steps)
    step = 0
    with tqdm(total=steps, desc=desc, unit="step", leave=False) as bar:
        while step < steps:
            for batch in loader:
                batch = {k: v.to(device) for k, v in batch.items()}
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                    loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.4f}")
                if step >= steps:
                    break
    return model.eval()


def predict(model, features: Sequence[dict], collator, batch_size: int, outputs: Sequence[str],
            bf16: bool = False, desc: str = "predict") -> list[tuple]:
    """Per feature, the named model outputs (numpy, float32) cut to its own length (right padding)."""
    import torch

    device = next(model.parameters()).device
    results: list[tuple] = []
    with torch.no_grad():
        for start in tqdm(range(0, len(features), batch_size), desc=desc, unit="batch", leave=False):
            chunk = [{k: f[k] for k in ("input_ids", "attention_mask")} for f in features[start:start + batch_size]]
            batch = {k: v.to(device) for k, v in collator(chunk).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(**batch)
            arrays = [getattr(out, name).float().cpu().numpy() for name in outputs]
            for i, f in enumerate(features[start:start + batch_size]):
                results.append(tuple(a[i, :len(f["input_ids"])] for a in arrays))
    return results


def lr_seed_grid(lrs: Sequence[float], seeds: Sequence[int], run_one: Callable[[float, int], tuple[dict, dict]],
                 key: str, report: Sequence[str], task: str) -> dict[str, Any]:
    """Run every (lr, seed) (``run_one`` → dev scores, test scores); pick the lr with the best
    mean dev ``key`` (ties: the first lr); its test ``report`` scores as {mean, ci95, n}."""
    runs = []
    for lr, seed in tqdm([(lr, s) for lr in lrs for s in seeds], desc=f"{task} lr×seed", unit="run"):
        dev, test = run_one(lr, seed)
        runs.append({"lr": lr, "seed": seed, "dev": dev, "test": test})
    best = max(lrs, key=lambda lr: float(np.mean([r["dev"][key] for r in runs if r["lr"] == lr])))
    chosen = [r for r in runs if r["lr"] == best]
    metrics = {name: mean_ci95(r["test"][name] for r in chosen) for name in report}
    metrics[f"dev_{key}"] = mean_ci95(r["dev"][key] for r in chosen)
    return {"best_lr": best, "metrics": metrics, "chosen": chosen, "runs": runs}


def holdout(n: int, fraction: float) -> tuple[list[int], list[int]]:
    """(train, dev) indices: a fixed seed-0 draw of ``fraction`` of ``n`` as dev."""
    order = np.random.default_rng(0).permutation(n)
    n_dev = max(1, int(round(n * fraction)))
    if n_dev >= n:
        raise EvalError(f"cannot hold out {fraction:.0%} of {n} training examples as dev: give a dev_file")
    return sorted(order[n_dev:].tolist()), sorted(order[:n_dev].tolist())


def encode_words(tokenizer, words: Sequence[str], max_length: int) -> tuple[dict, list[int]]:
    """Token ids of the words joined by spaces, and each word's first token index (-1: cut off)."""
    text = " ".join(words)
    char_word = np.full(len(text), -1, dtype=np.int64)
    pos = 0
    for i, word in enumerate(words):
        char_word[pos:pos + len(word)] = i
        pos += len(word) + 1
    enc = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True)
    first = [-1] * len(words)
    for t, (start, end) in enumerate(enc["offset_mapping"]):
        word = int(char_word[end - 1]) if end > start else -1  # a token's last char is inside its word
        if word >= 0 and first[word] < 0:
            first[word] = t
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, first


def features(tokenizer, sentences: Sequence[Sentence], label_ids: dict[str, int], max_length: int,
             with_labels: bool) -> tuple[list[dict], list[list[int]]]:
    feats, firsts = [], []
    for s in sentences:
        feat, first = encode_words(tokenizer, s.words, max_length)
        if with_labels:
            labels = [-100] * len(feat["input_ids"])
            for tag, t in zip(s.tags, first):
                if t >= 0:
                    labels[t] = label_ids[tag]
            feat["labels"] = labels
        feats.append(feat)
        firsts.append(first)
    return feats, firsts


def word_tags(logits: np.ndarray, first: Sequence[int], labels: Sequence[str]) -> list[str]:
    """Each word's tag: the argmax at its first token; ``O`` for words cut off."""
    return [labels[int(np.argmax(logits[t]))] if t >= 0 else "O" for t in first]


def run_ner(config: NerConfig) -> dict[str, Any]:
    started = time.perf_counter()
    config.check()
    folder = check_model_folder(config.model)
    read = dict(label_column=config.label_column, token_column=config.token_column, scheme=config.tag_scheme)
    train = read_conll(config.train_file, **read)
    test = read_conll(config.test_file, **read)
    if config.dev_file:
        dev = read_conll(config.dev_file, **read)
    else:
        train_idx, dev_idx = holdout(len(train), config.dev_fraction)
        train, dev = [train[i] for i in train_idx], [train[i] for i in dev_idx]
    train = train[:config.max_train_examples] if config.max_train_examples else train
    labels = label_list(train)
    check_labels(dev, labels, config.dev_file or config.train_file)
    check_labels(test, labels, config.test_file)
    label_ids = {tag: i for i, tag in enumerate(labels)}

    tokenizer = load_tokenizer(folder)
    tokenizer.padding_side = "right"  # predict() cuts each output to its feature's length
    train_feats, _ = features(tokenizer, train, label_ids, config.max_length, with_labels=True)
    evals = {name: (sents, *features(tokenizer, sents, label_ids, config.max_length, with_labels=False))
             for name, sents in (("dev", dev), ("test", test))}
    truncated = sum(min(f) < 0 for _, _, firsts in evals.values() for f in firsts)

    from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

    collator = DataCollatorForTokenClassification(tokenizer)

    def run_one(lr: float, seed: int) -> tuple[dict, dict]:
        set_seed(seed)  # the new head's initialisation
        model = load_with_head(AutoModelForTokenClassification, folder, num_labels=len(labels),
                               id2label=dict(enumerate(labels)), label2id=label_ids)
        fine_tune(model, train_feats, collator, lr, seed, config, f"ner lr={lr:g} seed={seed}")
        scores = []
        for name, (sents, feats, firsts) in evals.items():
            logits = predict(model, feats, collator, config.eval_batch_size, ("logits",), config.bf16, f"ner {name}")
            predicted = [word_tags(out[0], first, labels) for out, first in zip(logits, firsts)]
            scores.append(entity_scores([s.tags for s in sents], predicted))
        return scores[0], scores[1]

    grid = lr_seed_grid(config.lrs, config.seeds, run_one, "f1", ("f1", "precision", "recall"), "ner")
    per_type = grid["chosen"][0]["test"]["per_type"]
    types = [k for k in per_type if per_type[k]["support"]]  # the gold types: the same in every run
    details = {"best_lr": grid["best_lr"], "labels": labels,
               "per_type": {k: mean_ci95(r["test"]["per_type"][k]["f1"] for r in grid["chosen"]) for k in types},
               "sentences": {"train": len(train), "dev": len(dev), "test": len(test)},
               "truncated_eval_sentences": truncated,
               "runs": [{"lr": r["lr"], "seed": r["seed"], "dev_f1": r["dev"]["f1"], "test_f1": r["test"]["f1"],
                         "test_precision": r["test"]["precision"], "test_recall": r["test"]["recall"]}
                        for r in grid["runs"]]}
    return write_result(config.output, "ner", folder, config.dataset_name(), config.seeds[0], grid["metrics"],
                        config, details, started)
