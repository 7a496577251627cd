"""Masked-token recovery, the full protocol (RexBERT §6.1): product texts truncated to each block
size, span-aware masking of 15% (``rexbert.eval.mlm_masking``), top-1/3/5 recovery over the
masked positions (token mode) or whole words (word mode), and optionally the unigram baseline
on the same positions.

Result metrics (``write_result``)::

    {"128": {"top1": 0.41, "top3": 0.55, "top5": 0.61, "positions": 5120, "masked_tokens": 5120,
             "documents": 1000, "mean_tokens": 96.3, "baseline_top1": 0.04, ...}, "256": {...}}

``positions`` counts the scored units: masked tokens in token mode, masked words in word mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from rexbert.eval.common import EvalError, load_masked_lm, read_table, set_seed, write_result
from rexbert.eval.masked_tokens import count_unit_hits, unigram_ranking
from rexbert.eval.mlm_masking import MODES, MaskedExample, mask_document

# (input_ids [b, s], attention_mask [b, s], selected [b, s]) → {name: ranked ids [n_selected, K]}
Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict]


@dataclass
class MaskedTokensConfig:
    model: str = ""  # Hugging Face MLM folder
    data_path: str = ""  # .jsonl / .csv / .tsv / .parquet of texts
    output: str = "results/masked_tokens.json"
    text_columns: list[str] = field(default_factory=lambda: ["title", "description"])
    join_with: str = " "  # between the text columns of a row
    block_sizes: list[int] = field(default_factory=lambda: [128, 256, 512])  # tokens, special ones included
    mode: str = "token"  # token | word (see rexbert.eval.mlm_masking)
    mask_ratio: float = 0.15
    top_k: list[int] = field(default_factory=lambda: [1, 3, 5])
    limit: Optional[int] = 1000  # documents (the first ones of the file); None: all
    batch_size: int = 16
    baseline: bool = True  # unigram baseline on the same masked positions
    baseline_path: Optional[str] = None  # texts to count unigrams on (same columns); None: the evaluated texts
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_masking_fields(self.mode, self.mask_ratio, self.text_columns, self.batch_size)
        if not self.block_sizes or any(b < 3 for b in self.block_sizes):
            raise EvalError(f"masked_tokens.block_sizes={self.block_sizes}: give block sizes of at least 3 tokens")
        if not self.top_k or any(k < 1 for k in self.top_k):
            raise EvalError(f"masked_tokens.top_k={self.top_k}: give positive integers")


def check_masking_fields(mode: str, mask_ratio: float, text_columns: Sequence[str], batch_size: int) -> None:
    if mode not in MODES:
        raise EvalError(f"mode={mode!r}: choose one of {MODES}")
    if not 0 < mask_ratio < 1:
        raise EvalError(f"mask_ratio={mask_ratio}: must be in (0, 1)")
    if not text_columns:
        raise EvalError("text_columns is empty: name the column(s) holding the text")
    if batch_size < 1:
        raise EvalError(f"batch_size={batch_size}: must be >= 1")


def load_texts(path: str, columns: Sequence[str], join_with: str = " ", limit: Optional[int] = None) -> list[str]:
    """The non-empty texts of a table, each row's ``columns`` joined (missing values skipped)."""
    if not path:
        raise EvalError("data_path is empty: give a .jsonl / .csv / .tsv / .parquet file of texts")
    rows = read_table(path, columns)
    texts = []
    for row in rows:
        text = join_with.join(str(row[c]).strip() for c in columns if row[c] is not None and str(row[c]).strip())
        if text:
            texts.append(text)
            if limit and len(texts) >= limit:
                break
    if not texts:
        raise EvalError(f"data file {path} has no non-empty text in columns {list(columns)}")
    return texts


def build_examples(tokenizer, texts: Sequence[str], block_size: int, mode: str, ratio: float,
                   seed: int) -> list[MaskedExample]:
    if tokenizer.mask_token_id is None:
        raise EvalError("the tokenizer has no mask token: masked-token recovery needs an MLM tokenizer")
    return [mask_document(tokenizer, text, block_size, mode, ratio, seed) for text in texts]


def collate(examples: Sequence[MaskedExample], pad_id: int):
    """Padded input_ids, attention_mask and the masked positions, all [b, s]."""
    length = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    selected = torch.zeros_like(input_ids, dtype=torch.bool)
    for row, example in enumerate(examples):
        input_ids[row, :len(example.input_ids)] = torch.tensor(example.input_ids)
        attention_mask[row, :len(example.input_ids)] = 1
        selected[row, list(example.targets)] = True
    return input_ids, attention_mask, selected


def score_examples(examples: Sequence[MaskedExample], predict: Predictor, pad_id: int, batch_size: int,
                   ks: Sequence[int], desc: str = "masked tokens") -> dict[str, dict]:
    """Top-k recovery per predictor name: {"top1": rate, ..., "positions": scored units,
    "masked_tokens": masked positions}."""
    hits: dict[str, dict[int, int]] = {}
    units_total = tokens_total = 0
    batches = [examples[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    for batch in tqdm(batches, desc=desc, leave=False):
        batch = [e for e in batch if e.targets]
        if not batch:
            continue
        input_ids, attention_mask, selected = collate(batch, pad_id)
        # the rows of `selected` in row-major order: (example, position) → row of the predictions
        rows = {(b, p): r for r, (b, p) in enumerate(selected.nonzero().tolist())}
        targets = torch.tensor([batch[b].targets[p] for b, p in rows])
        units = [[rows[b, p] for p in unit] for b, e in enumerate(batch) for unit in e.units]
        for name, topk_ids in predict(input_ids, attention_mask, selected).items():
            counts = count_unit_hits(topk_ids, targets, units, ks)
            total = hits.setdefault(name, dict.fromkeys(ks, 0))
            for k in ks:
                total[k] += counts[k]
        units_total += len(units)
        tokens_total += len(targets)
    n = max(units_total, 1)
    return {name: {**{f"top{k}": counts[k] / n for k in ks}, "positions": units_total,
                   "masked_tokens": tokens_total} for name, counts in hits.items()}


def mlm_predictor(model, max_k: int, device: str = "cpu", name: str = "model") -> Predictor:
    """Ranked ids of a Hugging Face MLM at the masked positions. Models with a sparse head
    (ModernBERT's ``sparse_prediction``) run the head only there; others compute full logits."""
    sparse = hasattr(model, "sparse_prediction")
    if sparse:
        model.sparse_prediction = True

    @torch.no_grad()
    def predict(input_ids, attention_mask, selected):
        inputs = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
        if sparse:  # labels only mark the positions; their values do not matter here
            labels = torch.where(selected, 0, -100).to(device)
            logits = model(**inputs, labels=labels).logits
        else:
            logits = model(**inputs).logits[selected.to(device)]
        return {name: logits.float().topk(max_k, dim=-1).indices.cpu()}

    return predict


def unigram_predictor(ranking: Sequence[int], name: str = "baseline") -> Predictor:
    ranked = torch.tensor(list(ranking), dtype=torch.long)

    def predict(input_ids, attention_mask, selected):
        return {name: ranked.expand(int(selected.sum()), -1)}

    return predict


def unigram_counts(tokenizer, texts: Sequence[str]) -> np.ndarray:
    counts = np.zeros(len(tokenizer), dtype=np.int64)
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        counts += np.bincount(np.asarray(ids, dtype=np.int64), minlength=len(tokenizer))[:len(tokenizer)]
    return counts


def run_masked_tokens(config: MaskedTokensConfig) -> dict:
    import time

    started = time.perf_counter()
    set_seed(config.seed)
    model, tokenizer = load_masked_lm(config.model, config.device)
    texts = load_texts(config.data_path, config.text_columns, config.join_with, config.limit)
    max_k = max(config.top_k)
    predictors = [mlm_predictor(model, max_k, config.device)]
    if config.baseline:
        source = texts if config.baseline_path is None else load_texts(
            config.baseline_path, config.text_columns, config.join_with)
        ranking = unigram_ranking(unigram_counts(tokenizer, source), tokenizer.all_special_ids, max_k)
        predictors.append(unigram_predictor(ranking))

    def predict(*batch):
        return {name: ids for p in predictors for name, ids in p(*batch).items()}

    metrics = {}
    for block in config.block_sizes:
        examples = build_examples(tokenizer, texts, block, config.mode, config.mask_ratio, config.seed)
        scores = score_examples(examples, predict, tokenizer.pad_token_id, config.batch_size, config.top_k,
                                desc=f"block {block}")
        if not scores:
            raise EvalError(f"nothing was masked in {config.data_path}: the texts are too short")
        entry = dict(scores["model"])
        entry["documents"] = len(examples)
        entry["mean_tokens"] = float(np.mean([len(e.input_ids) for e in examples]))
        if config.baseline:
            entry.update({f"baseline_top{k}": scores["baseline"][f"top{k}"] for k in config.top_k})
        metrics[str(block)] = entry
    details = {"mode": config.mode, "unit": "word" if config.mode == "word" else "token",
               "documents": len(texts), "masking": "whole-word spans, see rexbert.eval.mlm_masking"}
    return write_result(config.output, "masked_tokens", config.model, config.data_path, config.seed, metrics,
                        config, details, started)
