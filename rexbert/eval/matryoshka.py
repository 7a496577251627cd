"""The Matryoshka grid: one metric per (layer, leading dims) of an MLM folder, in one forward
pass per batch.

The hidden state of layer ℓ (1-based) is the one the matryoshka objective trained
(``rexbert/train/objectives.py``, m3BERT's recipe): the raw output of an intermediate layer, the
final-normed output of the last one (only the last layer has the final norm); its first d dims
are kept.
- ``mlm_top<k>``: masked-token recovery (``rexbert.eval.mlm_protocol``, one block size) through
  the one shared head sliced as in training: dense [:d, :d], activation, norm weight [:d],
  decoder [:, :d] with the full decoder bias.
- ``ndcg@<k>``, ``mrr@<k>``, ``recall@<k>``: retrieval (``rexbert.eval.retrieval``) with the
  layer's states mean-pooled over the attention mask (the last layer at full width is exactly
  sentence-transformers' mean pooling), truncated to d dims, by cosine similarity.

Result metrics: {"grid": {"L<l>_d<d>": value}, "layers": [...], "dims": [...], "metric": "..."}.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rexbert.eval.common import EvalError, load_masked_lm, set_seed, write_result
from rexbert.eval.mlm_protocol import build_examples, check_masking_fields, load_texts, score_examples
from rexbert.eval.retrieval import evaluate_embeddings, load_retrieval_data

METRIC = re.compile(r"^(mlm_top|ndcg@|mrr@|recall@)([1-9]\d*)$")


@dataclass
class MatryoshkaConfig:
    model: str = ""  # Hugging Face MLM folder (ModernBertForMaskedLM)
    output: str = "results/matryoshka.json"
    layers: list[int] = field(default_factory=list)  # 1-based; []: every layer
    dims: list[int] = field(default_factory=list)  # []: hidden, hidden/2, hidden/4, hidden/8
    metric: str = "mlm_top1"  # mlm_top<k> | ndcg@<k> | mrr@<k> | recall@<k>
    # masked-token metrics
    data_path: str = ""
    text_columns: list[str] = field(default_factory=lambda: ["title", "description"])
    join_with: str = " "
    block_size: int = 128
    mode: str = "token"
    mask_ratio: float = 0.15
    limit: Optional[int] = 500  # documents
    # retrieval metrics
    test_path: str = ""
    query_column: str = "query"
    document_column: str = "document"
    grade_column: Optional[str] = None
    corpus_path: Optional[str] = None
    pairs_limit: Optional[int] = None
    max_seq_length: int = 256
    batch_size: int = 16
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not METRIC.match(self.metric):
            raise EvalError(f"matryoshka.metric={self.metric!r}: use mlm_top<k>, ndcg@<k>, mrr@<k> or recall@<k>")
        check_masking_fields(self.mode, self.mask_ratio, self.text_columns, self.batch_size)

    @property
    def is_mlm(self) -> bool:
        return self.metric.startswith("mlm_top")

    @property
    def k(self) -> int:
        return int(METRIC.match(self.metric).group(2))


def encoder_parts(model):
    """(encoder, its layers) of a ModernBertForMaskedLM, or an EvalError naming what is missing."""
    encoder = getattr(model, "model", None)
    parts = {"model.layers": getattr(encoder, "layers", None), "head": getattr(model, "head", None),
             "decoder": getattr(model, "decoder", None)}
    missing = [name for name, part in parts.items() if part is None]
    if missing:
        raise EvalError(f"the Matryoshka grid needs a ModernBertForMaskedLM; {type(model).__name__} has no {missing}")
    return encoder, encoder.layers


def resolve_grid(config: MatryoshkaConfig, num_layers: int, hidden: int) -> tuple[list[int], list[int]]:
    layers = list(config.layers) or list(range(1, num_layers + 1))
    dims = list(config.dims) or sorted({hidden // f for f in (1, 2, 4, 8) if hidden // f >= 1}, reverse=True)
    for layer in layers:
        if not 1 <= layer <= num_layers:
            raise EvalError(f"matryoshka.layers: {layer} is not a layer in 1..{num_layers}")
    for d in dims:
        if not 1 <= d <= hidden:
            raise EvalError(f"matryoshka.dims: {d} is not in 1..{hidden}")
    return layers, dims


@contextmanager
def layer_states(model, layers: list[int]):
    """Fills a dict layer → hidden state [b, s, h] on each forward of the encoder."""
    encoder, blocks = encoder_parts(model)
    states: dict[int, torch.Tensor] = {}
    hooks = [blocks[k - 1].register_forward_hook(
        lambda module, args, output, k=k: states.__setitem__(k, output[0] if isinstance(output, tuple) else output))
        for k in layers if k < len(blocks)]
    final = encoder.register_forward_hook(  # the last layer's state is the final-normed output
        lambda module, args, output: states.__setitem__(len(blocks), output[0]))
    try:
        yield states
    finally:
        for hook in hooks + [final]:
            hook.remove()


def sliced_head_logits(model, hidden: torch.Tensor, d: int) -> torch.Tensor:
    """The MLM head on the first d dims of ``hidden`` [n, h], sliced as the objective slices it."""
    head, decoder = model.head, model.decoder
    x = F.linear(hidden[:, :d], head.dense.weight[:d, :d], None if head.dense.bias is None else head.dense.bias[:d])
    x = head.act(x)
    x = F.layer_norm(x, (d,), head.norm.weight[:d], None if head.norm.bias is None else head.norm.bias[:d],
                     head.norm.eps)
    return F.linear(x, decoder.weight[:, :d], decoder.bias)


def grid_predictor(model, layers: list[int], dims: list[int], k: int, device: str):
    encoder, _ = encoder_parts(model)

    @torch.no_grad()
    def predict(input_ids, attention_mask, selected):
        with layer_states(model, layers) as states:
            encoder(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
        out = {}
        for layer in layers:
            hidden = states[layer][selected.to(device)]
            for d in dims:
                out[f"L{layer}_d{d}"] = sliced_head_logits(model, hidden, d).float().topk(k, dim=-1).indices.cpu()
        return out

    return predict


@torch.no_grad()
def pooled_layer_states(model, tokenizer, texts: list[str], layers: list[int], max_length: int, batch_size: int,
                        device: str) -> dict[int, torch.Tensor]:
    """Mean over the attention mask of each layer's state: layer → [len(texts), h]."""
    encoder, _ = encoder_parts(model)
    pooled: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    for start in tqdm(range(0, len(texts), batch_size), desc="encode", leave=False):
        batch = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length, padding=True,
                          return_tensors="pt").to(device)
        with layer_states(model, layers) as states:
            encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        mask = batch["attention_mask"].unsqueeze(-1).float()
        for layer in layers:
            pooled[layer].append(((states[layer].float() * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu())
    return {layer: torch.cat(chunks) for layer, chunks in pooled.items()}


def mlm_grid(config: MatryoshkaConfig, model, tokenizer, layers, dims) -> tuple[dict, dict]:
    texts = load_texts(config.data_path, config.text_columns, config.join_with, config.limit)
    examples = build_examples(tokenizer, texts, config.block_size, config.mode, config.mask_ratio, config.seed)
    scores = score_examples(examples, grid_predictor(model, layers, dims, config.k, config.device),
                            tokenizer.pad_token_id, config.batch_size, [config.k], desc="matryoshka")
    if not scores:
        raise EvalError(f"nothing was masked in {config.data_path}: the texts are too short")
    grid = {name: s[f"top{config.k}"] for name, s in scores.items()}
    return grid, {"documents": len(texts), "positions": next(iter(scores.values()))["positions"]}


def retrieval_grid(config: MatryoshkaConfig, model, tokenizer, layers, dims) -> tuple[dict, dict]:
    data = load_retrieval_data(config.test_path, config.query_column, config.document_column, config.grade_column,
                               config.pairs_limit, config.corpus_path)
    args = (layers, config.max_seq_length, config.batch_size, config.device)
    queries = pooled_layer_states(model, tokenizer, data.queries, *args)
    corpus = pooled_layer_states(model, tokenizer, data.corpus, *args)
    kind, k = config.metric.split("@")
    k = int(k)
    grid = {}
    for layer in layers:
        for d in dims:
            scores = evaluate_embeddings(queries[layer][:, :d], corpus[layer][:, :d], data,
                                         ndcg_k=k, mrr_k=k, recall_ks=[k])
            grid[f"L{layer}_d{d}"] = scores[config.metric]
    return grid, {"queries": len(data.queries), "corpus": len(data.corpus)}


def run_matryoshka(config: MatryoshkaConfig) -> dict:
    started = time.perf_counter()
    set_seed(config.seed)
    model, tokenizer = load_masked_lm(config.model, config.device)
    encoder_parts(model)
    layers, dims = resolve_grid(config, model.config.num_hidden_layers, model.config.hidden_size)
    if config.is_mlm:
        grid, details = mlm_grid(config, model, tokenizer, layers, dims)
        dataset = config.data_path
    else:
        grid, details = retrieval_grid(config, model, tokenizer, layers, dims)
        dataset = config.test_path
    metrics = {"grid": {f"L{k}_d{d}": grid[f"L{k}_d{d}"] for k in layers for d in dims}, "layers": layers,
               "dims": dims, "metric": config.metric}
    return write_result(config.output, "matryoshka", config.model, dataset, config.seed, metrics, config, details,
                        started)


def plot_matryoshka_grid(result: dict, path: str | Path) -> Path:
    """Heat map of a grid (layers down, dims across, values written in the cells); ``result`` is
    the result JSON or its "metrics"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = result.get("metrics", result)
    layers, dims = metrics["layers"], metrics["dims"]
    values = np.array([[metrics["grid"][f"L{k}_d{d}"] for d in dims] for k in layers], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(dims), 1.0 + 0.5 * len(layers)), constrained_layout=True)
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(dims)), [str(d) for d in dims])
    ax.set_yticks(range(len(layers)), [str(k) for k in layers])
    ax.set_xlabel("leading dims")
    ax.set_ylabel("layer")
    ax.set_title(f"{result.get('model_name', '')} {metrics.get('metric', '')}".strip())
    middle = np.nanmean(values) if np.isfinite(values).any() else 0.0
    for i in range(len(layers)):
        for j in range(len(dims)):
            ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if values[i, j] < middle else "black")
    fig.colorbar(image, ax=ax)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
