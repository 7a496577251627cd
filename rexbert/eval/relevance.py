"""Graded query–product relevance (RexBERT §6.2): a bi-encoder (the MLM folder's encoder + mean
pooling, as sentence-transformers modules) is fine-tuned with CoSENT on graded (query, product)
pairs; the score is the Spearman correlation between cosine(query, product) and the grade on the
test pairs, before and after fine-tuning.

Fine-tuning uses sentence-transformers' DataLoader ``old_fit`` loop (AdamW, linear warmup/decay,
gradient clipping): its Trainer-based ``fit`` needs the ``datasets`` package, which rexbert does
not depend on. Data sources and grade mappings: ``rexbert.eval.relevance_data``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional, Sequence

from rexbert.eval.common import EvalError, check_model_folder, set_seed, write_result
from rexbert.eval.glue import resolve_device, torch_threads  # shared helpers; candidates for common.py
from rexbert.eval.metrics_cls import pearson, spearman
from rexbert.eval import relevance_data as rd

DATASETS = ("esci", "wands", "tsv")


@dataclass
class RelevanceConfig:
    model: str = ""  # Hugging Face MLM folder (its encoder is used)
    dataset: str = "esci"  # esci | wands | tsv
    data_path: str = ""  # esci: examples parquet or its folder; wands: folder; tsv: (train) file
    products_path: Optional[str] = None  # esci products parquet; default: next to the examples file
    test_path: Optional[str] = None  # tsv only: a test file; without it the queries are split
    esci_version: str = "small"  # small | large
    locale: str = "us"  # esci product_locale (us = English)
    labels: dict[str, float] = field(default_factory=dict)  # label -> grade; empty: the dataset's own (tsv: numeric)
    test_fraction: float = 0.2  # wands / tsv without test_path: share of queries held out
    split_seed: int = 0
    max_length: int = 256  # tokens; product text is truncated to it
    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_train_pairs: Optional[int] = None  # seeded subsample (None: all)
    max_test_pairs: Optional[int] = None
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda[:i]
    num_threads: int = 0  # torch CPU threads; 0 leaves torch's default
    output: str = "results/eval/relevance.json"

    def __post_init__(self) -> None:
        if not self.model:
            raise EvalError("relevance config: `model` (a Hugging Face model folder) is required")
        if self.dataset not in DATASETS:
            raise EvalError(f"relevance config: `dataset` must be one of {DATASETS}, got {self.dataset!r}")
        if not self.data_path:
            raise EvalError("relevance config: `data_path` is required")
        if self.esci_version not in ("small", "large"):
            raise EvalError(f"relevance config: `esci_version` must be small or large, got {self.esci_version!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise EvalError(f"relevance config: `test_fraction` must be in (0, 1), got {self.test_fraction}")
        for key in ("max_length", "batch_size"):
            if getattr(self, key) < 1:
                raise EvalError(f"relevance config: `{key}` must be >= 1, got {getattr(self, key)}")
        if self.epochs < 0 or self.lr <= 0:
            raise EvalError(f"relevance config: `epochs` must be >= 0 and `lr` > 0, got {self.epochs}, {self.lr}")


def load_pairs(config: RelevanceConfig) -> tuple[list[rd.GradedPair], list[rd.GradedPair], str]:
    """(train, test, how the split was made)."""
    labels = dict(config.labels) or None
    if config.dataset == "esci":
        kw = dict(products=config.products_path, locale=config.locale, version=config.esci_version,
                  labels=labels or rd.ESCI_GRADES)
        return (rd.load_esci(config.data_path, split="train", **kw), rd.load_esci(config.data_path, split="test", **kw),
                f"ESCI official split, {config.esci_version} version, locale {config.locale}")
    if config.dataset == "wands":
        pairs = rd.load_wands(config.data_path, labels or rd.WANDS_GRADES)
    else:
        pairs = rd.load_graded_tsv(config.data_path, labels)
        if config.test_path:
            return pairs, rd.load_graded_tsv(config.test_path, labels), f"test file {config.test_path}"
    train, test = rd.split_by_query(pairs, config.test_fraction, config.split_seed)
    fraction = config.test_fraction
    return train, test, f"queries split {1 - fraction:.2f}/{fraction:.2f} train/test (seed {config.split_seed})"


def build_bi_encoder(model_dir: str, max_length: int, device: str):
    """SentenceTransformer = the folder's encoder (AutoModel) + mean pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    folder = str(check_model_folder(model_dir))
    offline = {"local_files_only": True}
    encoder = Transformer(folder, max_seq_length=max_length, model_kwargs=offline, processor_kwargs=offline,
                          config_kwargs=offline)
    return SentenceTransformer(modules=[encoder, Pooling(encoder.get_embedding_dimension(), "mean")], device=device)


def cosine_scores(model, pairs: Sequence[rd.GradedPair], batch_size: int) -> list[float]:
    """cosine(query, product) per pair; each distinct text is encoded once."""
    import torch

    queries = list(dict.fromkeys(p.query for p in pairs))
    texts = list(dict.fromkeys(p.text for p in pairs))
    q = model.encode(queries, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True,
                     show_progress_bar=True)
    t = model.encode(texts, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True,
                     show_progress_bar=True)
    q_index = {s: i for i, s in enumerate(queries)}
    t_index = {s: i for i, s in enumerate(texts)}
    qi = torch.tensor([q_index[p.query] for p in pairs], device=q.device)
    ti = torch.tensor([t_index[p.text] for p in pairs], device=t.device)
    return (q[qi] * t[ti]).sum(-1).float().cpu().tolist()


def fine_tune(model, pairs: Sequence[rd.GradedPair], config: RelevanceConfig) -> None:
    import torch
    from sentence_transformers import InputExample
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    examples = [InputExample(texts=[p.query, p.text], label=p.grade) for p in pairs]
    loader = torch.utils.data.DataLoader(examples, batch_size=config.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(config.seed))
    steps = len(loader) * config.epochs
    model.old_fit(train_objectives=[(loader, CoSENTLoss(model))], epochs=config.epochs,
                  warmup_steps=math.ceil(config.warmup_ratio * steps), optimizer_params={"lr": config.lr},
                  weight_decay=config.weight_decay, show_progress_bar=True)


def run_relevance(config: RelevanceConfig) -> dict:
    with torch_threads(config.num_threads):
        return _run_relevance(config)


def _run_relevance(config: RelevanceConfig) -> dict:
    started = time.perf_counter()
    check_model_folder(config.model)
    train, test, split = load_pairs(config)
    train = rd.subsample(train, config.max_train_pairs, config.seed)
    test = rd.subsample(test, config.max_test_pairs, config.seed)
    if not train or not test:
        raise EvalError(f"relevance: empty split ({len(train)} train / {len(test)} test pairs)")
    grades = [p.grade for p in test]
    if len(set(grades)) < 2:
        raise EvalError(f"relevance: the test pairs all have grade {grades[0]}; Spearman needs two grades or more")
    device = resolve_device(config.device)
    set_seed(config.seed)
    model = build_bi_encoder(config.model, config.max_length, device)
    before = cosine_scores(model, test, config.batch_size)
    if config.epochs:
        fine_tune(model, train, config)
    after = cosine_scores(model, test, config.batch_size)
    metrics = {"spearman": spearman(after, grades), "spearman_before": spearman(before, grades),
               "pearson": pearson(after, grades), "pearson_before": pearson(before, grades)}
    details = {"split": split, "num_train_pairs": len(train), "num_test_pairs": len(test),
               "num_train_queries": len({p.query for p in train}), "num_test_queries": len({p.query for p in test}),
               "test_grade_counts": {str(g): n for g, n in sorted(Counter(grades).items())},
               "loss": "CoSENTLoss", "pooling": "mean", "device": device}
    dataset = config.dataset if config.dataset != "tsv" else f"tsv:{config.data_path}"
    return write_result(config.output, "relevance", config.model, dataset, config.seed, metrics, config, details,
                        started)
