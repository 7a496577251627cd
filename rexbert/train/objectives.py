"""Training objectives as loss modules chosen by config.

- ``mlm``: masked-LM with a sparse head (only labelled positions go through the head).
- ``clm``: next-token prediction with causal attention (the same encoder, causal mask).
- ``clm_to_mlm``: CLM until ``switch_step``, then MLM — one run, no LR reset.
- ``matryoshka``: m3BERT's recipe (XMUDeepLIT/m3bert ``CustomLlamaForMLM``): the unweighted
  sum over (layer ∈ mrl_layers) × (dim ∈ mrl_dims) of mean MLM cross-entropies, where the
  hidden state of layer k (1-based; only the last layer has the final norm) is sliced to its
  first d dims and fed through the one shared head sliced to [:d] (dense [:d, :d], norm
  weight [:d], decoder [:, :d], full decoder bias).

Every objective returns per-token losses; the trainer's loss function sums them and counts
tokens, so the mean is exact over the global batch whatever the micro-batch / DP split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch
import torch.nn.functional as F
from megatron.core import tensor_parallel

OBJECTIVES = ("mlm", "clm", "clm_to_mlm", "matryoshka")


@dataclass
class ObjectiveConfig:
    name: str = "mlm"
    switch_step: int = 0  # clm_to_mlm: first MLM step
    mrl_layers: List[int] = field(default_factory=list)  # matryoshka; [] → only the last layer
    mrl_dims: List[int] = field(default_factory=list)  # matryoshka; [] → only the full width

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise ValueError(f"objective.name={self.name!r}: choose one of {OBJECTIVES}")
        if self.name == "clm_to_mlm" and self.switch_step <= 0:
            raise ValueError("objective.switch_step must be > 0 for clm_to_mlm")

    def is_causal_at(self, step: int) -> bool:
        return self.name == "clm" or (self.name == "clm_to_mlm" and step < self.switch_step)

    def data_objective_at(self, step: int) -> str:
        return "clm" if self.is_causal_at(step) else "mlm"


@dataclass
class LossOutput:
    """Per-token losses [n] (or [terms, n] for matryoshka), top-1 correctness [n] (None when
    not asked for), names of terms."""

    losses: torch.Tensor
    correct: Optional[torch.Tensor]
    terms: tuple[str, ...] = ("loss",)


def model_inputs(batch: dict) -> dict:
    """The model's input keyword arguments for a collated batch (packed or padded)."""
    from rexbert.data.collate import packed_seq_params

    if "cu_seqlens" in batch:
        return {"input_ids": batch["input_ids"], "packed_seq_params": packed_seq_params(batch)}
    return {"input_ids": batch["input_ids"], "padding_mask": batch["padding_mask"]}


def lm_forward(model, batch: dict, want_correct: bool = True) -> LossOutput:
    """``want_correct=False`` skips the top-1 argmax over the logits (the trainer counts it
    only on steps it logs)."""
    if not want_correct:
        return LossOutput(model(**model_inputs(batch), labels=batch["labels"]), None)
    losses, correct = model(**model_inputs(batch), labels=batch["labels"], return_correct=True)
    return LossOutput(losses, correct)


class MatryoshkaLoss:
    """m3BERT's (layers × dims) sum of MLM losses with one shared, sliced head."""

    def __init__(self, model, config: ObjectiveConfig) -> None:
        inner = model.module if hasattr(model, "module") else model
        cfg = inner.rexbert_config
        if cfg.pipeline_model_parallel_size > 1:
            raise ValueError("objective.name=matryoshka needs pipeline_model_parallel_size=1: the "
                             "intermediate layers' hidden states would have to cross pipeline stages")
        self.layers = list(config.mrl_layers) or [cfg.num_layers]
        self.dims = list(config.mrl_dims) or [cfg.hidden_size]
        for k in self.layers:
            if not 1 <= k <= cfg.num_layers:
                raise ValueError(f"objective.mrl_layers: {k} is not a layer in 1..{cfg.num_layers}")
        for d in self.dims:
            if not 1 <= d <= cfg.hidden_size:
                raise ValueError(f"objective.mrl_dims: {d} is not in 1..{cfg.hidden_size}")
        self.num_layers = cfg.num_layers
        self.terms = tuple(f"L{k}_d{d}" for k in self.layers for d in self.dims)

    def __call__(self, model, batch: dict, want_correct: bool = True) -> LossOutput:
        inner = model.module if hasattr(model, "module") else model
        captured: dict[int, torch.Tensor] = {}
        hooks = [
            inner.encoder.layers[k - 1].register_forward_hook(
                lambda module, args, output, k=k: captured.__setitem__(k, output[0]))
            for k in self.layers if k < self.num_layers
        ]
        try:
            final = model(**model_inputs(batch), return_hidden=True)  # [b, s, h], final-normed
        finally:
            for h in hooks:
                h.remove()
        labels = batch["labels"]
        selected = labels != -100
        targets = labels[selected]
        weight = inner.shared_embedding_or_output_weight()
        bias = inner.output_layer.bias
        head = inner.head
        losses, correct = [], None
        for k in self.layers:
            hidden = final if k == self.num_layers else captured[k].transpose(0, 1)
            hidden = hidden[selected]
            for d in self.dims:
                x = F.gelu(F.linear(hidden[:, :d], head.dense.weight[:d, :d]))
                x = F.layer_norm(x, (d,), head.norm.weight[:d], None, head.norm.eps)
                x = tensor_parallel.copy_to_tensor_model_parallel_region(x)
                logits = F.linear(x, weight[:, :d], bias)  # vocab-parallel [n, V/tp]
                losses.append(tensor_parallel.vocab_parallel_cross_entropy(logits[None], targets[None])[0])
                if want_correct and k == self.num_layers and d == self.dims[-1]:
                    from rexbert.model.encoder import vocab_parallel_top1

                    correct = vocab_parallel_top1(logits.detach(), inner.tp_group) == targets
        if correct is None and want_correct:  # the full model is not among the terms
            correct = torch.zeros_like(targets, dtype=torch.bool)
        return LossOutput(torch.stack(losses), correct, self.terms)


def build_objective(config: ObjectiveConfig, model):
    """A callable (model, batch, want_correct=True) → LossOutput."""
    if config.name == "matryoshka":
        return MatryoshkaLoss(model, config)
    return lm_forward
