"""Dense retrieval with mean-pooled embeddings of an MLM folder (sentence-transformers:
Transformer + mean Pooling), optionally fine-tuned first with InfoNCE over in-batch negatives
(``MultipleNegativesRankingLoss``) on train pairs; NDCG@10, MRR@10 and Recall@k of the test
queries against a corpus of every test document (plus ``corpus_path``'s), by cosine similarity.

Pair files (.jsonl / .tsv / .csv / .parquet) hold a query, a document and optionally a grade
(> 0: relevant; linear gain in NDCG). Result metrics::

    {"ndcg@10": 0.71, "mrr@10": 0.66, "recall@1": 0.55, "recall@5": ..., "queries": 200}
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from rexbert.eval.common import EvalError, check_model_folder, read_table, set_seed, write_result
from rexbert.eval.metrics_ir import ranking_metrics


@dataclass
class RetrievalConfig:
    model: str = ""  # Hugging Face MLM folder
    test_path: str = ""  # query–document pairs to evaluate
    output: str = "results/retrieval.json"
    train_path: Optional[str] = None  # pairs to fine-tune on first (grade > 0 only); None: zero-shot
    corpus_path: Optional[str] = None  # more documents (column `document_column`) for the corpus
    query_column: str = "query"
    document_column: str = "document"
    grade_column: Optional[str] = None  # None: every pair has grade 1
    max_seq_length: int = 256
    batch_size: int = 32  # encoding
    ndcg_k: int = 10
    mrr_k: int = 10
    recall_ks: list[int] = field(default_factory=lambda: [1, 5, 10, 100])
    limit: Optional[int] = None  # test pairs (the first ones)
    train_limit: Optional[int] = None
    epochs: int = 1
    learning_rate: float = 2e-5
    train_batch_size: int = 32  # in-batch negatives: batch - 1 per query
    warmup_ratio: float = 0.1
    scale: float = 20.0  # InfoNCE inverse temperature (MultipleNegativesRankingLoss's scale)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for key in ("max_seq_length", "batch_size", "ndcg_k", "mrr_k", "epochs", "train_batch_size"):
            if getattr(self, key) < 1:
                raise EvalError(f"retrieval.{key}={getattr(self, key)}: must be >= 1")
        if not self.recall_ks or any(k < 1 for k in self.recall_ks):
            raise EvalError(f"retrieval.recall_ks={self.recall_ks}: give positive integers")
        if not 0 <= self.warmup_ratio < 1:
            raise EvalError(f"retrieval.warmup_ratio={self.warmup_ratio}: must be in [0, 1)")


@dataclass
class RetrievalData:
    queries: list[str]
    corpus: list[str]
    qrels: list[dict[int, float]]  # per query: corpus index → grade


def load_pairs(path: str, query_column: str, document_column: str, grade_column: Optional[str] = None,
               limit: Optional[int] = None) -> list[tuple[str, str, float]]:
    if not path:
        raise EvalError("the pairs file path is empty: give a .jsonl / .tsv / .csv / .parquet of query–document pairs")
    columns = [query_column, document_column] + ([grade_column] if grade_column else [])
    pairs = []
    for number, row in enumerate(read_table(path, columns, limit), 1):
        query, document = str(row[query_column] or "").strip(), str(row[document_column] or "").strip()
        if not query or not document:
            raise EvalError(f"{path}: row {number} has an empty {query_column!r} or {document_column!r}")
        grade = 1.0
        if grade_column:
            try:
                grade = float(row[grade_column])
            except (TypeError, ValueError):
                raise EvalError(f"{path}: row {number}: {grade_column}={row[grade_column]!r} is not a number") from None
        pairs.append((query, document, grade))
    if not pairs:
        raise EvalError(f"{path} has no pairs")
    return pairs


def build_retrieval_data(pairs: list[tuple[str, str, float]], extra_documents: list[str] = ()) -> RetrievalData:
    """Queries in order of first appearance; the corpus is every distinct document (pairs' first,
    then the extra ones); a pair given twice keeps its highest grade."""
    queries: dict[str, int] = {}
    corpus: dict[str, int] = {}
    qrels: list[dict[int, float]] = []
    for query, document, grade in pairs:
        q = queries.setdefault(query, len(queries))
        d = corpus.setdefault(document, len(corpus))
        if q == len(qrels):
            qrels.append({})
        qrels[q][d] = max(grade, qrels[q].get(d, grade))
    for document in extra_documents:
        corpus.setdefault(document, len(corpus))
    return RetrievalData(list(queries), list(corpus), qrels)


def load_retrieval_data(test_path: str, query_column: str = "query", document_column: str = "document",
                        grade_column: Optional[str] = None, limit: Optional[int] = None,
                        corpus_path: Optional[str] = None) -> RetrievalData:
    """Test pairs, and the corpus: their documents plus ``corpus_path``'s (column ``document_column``)."""
    pairs = load_pairs(test_path, query_column, document_column, grade_column, limit)
    extra = []
    if corpus_path:
        extra = [str(r[document_column]).strip() for r in read_table(corpus_path, [document_column])
                 if str(r[document_column] or "").strip()]
    return build_retrieval_data(pairs, extra)


def sentence_transformer(model_dir: str, max_seq_length: int, device: str = "cpu"):
    """Transformer (the MLM folder's encoder, its MLM head dropped) + mean Pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    folder = str(check_model_folder(model_dir))
    encoder = Transformer(folder, model_kwargs={"local_files_only": True},
                          processor_kwargs={"local_files_only": True}, max_seq_length=max_seq_length)
    pooling = Pooling(encoder.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[encoder, pooling], device=device)


def rank_corpus(query_embeddings: torch.Tensor, corpus_embeddings: torch.Tensor, depth: int,
                chunk: int = 1024) -> list[list[int]]:
    """Corpus indices by cosine similarity, best first, ``depth`` of them per query (ties: lower index)."""
    queries = torch.nn.functional.normalize(query_embeddings.float(), dim=-1)
    corpus = torch.nn.functional.normalize(corpus_embeddings.float(), dim=-1)
    depth = min(depth, corpus.shape[0])
    rankings = []
    for start in range(0, queries.shape[0], chunk):
        scores = queries[start:start + chunk] @ corpus.T
        order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[:, :depth]
        rankings.extend(order.tolist())
    return rankings


def evaluate_embeddings(query_embeddings: torch.Tensor, corpus_embeddings: torch.Tensor, data: RetrievalData,
                        ndcg_k: int = 10, mrr_k: int = 10, recall_ks=(1, 5, 10, 100)) -> dict[str, float]:
    depth = max(ndcg_k, mrr_k, *recall_ks)
    return ranking_metrics(rank_corpus(query_embeddings, corpus_embeddings, depth), data.qrels, ndcg_k, mrr_k,
                           recall_ks)


class _RecordedLoss(torch.nn.Module):
    """The loss module, recording each step's value (``old_fit`` reports none)."""

    def __init__(self, loss: torch.nn.Module) -> None:
        super().__init__()
        self.loss = loss
        self.values: list[float] = []

    def forward(self, features, labels):
        value = self.loss(features, labels)
        self.values.append(float(value.detach()))
        return value


def finetune_infonce(model, pairs: list[tuple[str, str, float]], config: RetrievalConfig) -> dict:
    """InfoNCE with in-batch negatives on the relevant pairs; batches never hold the same text twice
    (a duplicate would be a false negative). Uses ``old_fit``: the Trainer API needs ``datasets``."""
    from sentence_transformers import InputExample
    from sentence_transformers.sentence_transformer.datasets.no_duplicates_dataloader import NoDuplicatesDataLoader
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    examples = [InputExample(texts=[q, d]) for q, d, grade in pairs if grade > 0]
    distinct = min(len({q.lower() for q, _, g in pairs if g > 0}), len({d.lower() for _, d, g in pairs if g > 0}))
    batch_size = min(config.train_batch_size, distinct)  # NoDuplicatesDataLoader could not fill a larger batch
    if batch_size < 2:
        raise EvalError(f"{config.train_path}: InfoNCE needs at least 2 distinct relevant pairs")
    loader = NoDuplicatesDataLoader(examples, batch_size=batch_size)
    loss = _RecordedLoss(MultipleNegativesRankingLoss(model, scale=config.scale))
    steps = len(loader) * config.epochs
    model.old_fit([(loader, loss)], epochs=config.epochs, warmup_steps=int(config.warmup_ratio * steps),
                  optimizer_params={"lr": config.learning_rate}, show_progress_bar=True)
    values = loss.values
    return {"train_pairs": len(examples), "train_batch_size": batch_size, "train_steps": len(values),
            "first_loss": values[0] if values else None,
            "last_loss": float(np.mean(values[-max(1, len(values) // 10):])) if values else None}


def encode(model, texts: list[str], batch_size: int) -> torch.Tensor:
    return model.encode(texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=True)


def run_retrieval(config: RetrievalConfig) -> dict:
    started = time.perf_counter()
    set_seed(config.seed)  # also seeds NoDuplicatesDataLoader's shuffle (python's random)
    check_model_folder(config.model)
    data = load_retrieval_data(config.test_path, config.query_column, config.document_column, config.grade_column,
                               config.limit, config.corpus_path)
    model = sentence_transformer(config.model, config.max_seq_length, config.device)
    details = {"queries": len(data.queries), "corpus": len(data.corpus), "finetuned": config.train_path is not None}
    if config.train_path:
        train = load_pairs(config.train_path, config.query_column, config.document_column, config.grade_column,
                           config.train_limit)
        details.update(finetune_infonce(model, train, config))
    model.eval()
    with torch.no_grad():
        metrics = evaluate_embeddings(encode(model, data.queries, config.batch_size),
                                      encode(model, data.corpus, config.batch_size), data, config.ndcg_k,
                                      config.mrr_k, config.recall_ks)
    return write_result(config.output, "retrieval", config.model, config.test_path, config.seed, metrics, config,
                        details, started)
