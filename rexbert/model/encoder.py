"""RexBERT: a ModernBERT encoder as a megatron-core ``LanguageModule``.

embedding (+ LayerNorm) → TransformerBlock of per-layer specs (local/global attention,
per-layer RoPE θ) → final norm → MLM head → decoder tied to the embedding.
Parallelism (TP/PP) comes from megatron-core; nothing here issues a collective.
"""

from __future__ import annotations

from typing import Optional

import torch
from megatron.core import tensor_parallel
from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
from megatron.core.models.common.language_module.language_module import LanguageModule
from megatron.core.packed_seq_params import PackedSeqParams
from megatron.core.transformer.enums import AttnMaskType, ModelType
from megatron.core.transformer.transformer_block import TransformerBlock

from rexbert.model.config import RexBertConfig, init_stds, to_transformer_config
from rexbert.model.layers import MLMHead, RexBertEmbedding
from rexbert.model.mlm_loss import can_fuse, decoder_cross_entropy
from rexbert.model.specs import get_rexbert_block_spec

IGNORE_INDEX = -100


class RexBertModel(LanguageModule):
    """The encoder with its MLM head.

    Inputs are either padded (``input_ids [b, s]`` + ``padding_mask [b, s]``, True at
    padding) or packed (``input_ids [1, t]`` + ``packed_seq_params`` with ``cu_seqlens``).
    """

    def __init__(
        self,
        config: RexBertConfig,
        pre_process: bool = True,
        post_process: bool = True,
        pg_collection=None,
        transformer_config=None,
        pp_rank: Optional[int] = None,
    ) -> None:
        transformer_config = transformer_config or to_transformer_config(config)
        super().__init__(config=transformer_config, pg_collection=pg_collection)
        self.rexbert_config = config
        self.model_type = ModelType.encoder_or_decoder
        self.pre_process = pre_process
        self.post_process = post_process
        self.share_embeddings_and_output_weights = True

        if pre_process:
            self.embedding = RexBertEmbedding(
                transformer_config, config.vocab_size, config.embedding_dropout, tp_group=self.tp_group
            )
        # Two RoPE tables: global layers use global θ, local layers local θ.
        use_cpu_init = transformer_config.use_cpu_initialization
        self.rotary_global = RotaryEmbedding(
            config.head_dim, 1.0, rotary_base=config.global_rope_theta,
            use_cpu_initialization=use_cpu_init, cp_group=self.cp_group,
        )
        self.rotary_local = RotaryEmbedding(
            config.head_dim, 1.0, rotary_base=config.local_rope_theta,
            use_cpu_initialization=use_cpu_init, cp_group=self.cp_group,
        )
        self.encoder = TransformerBlock(
            config=transformer_config,
            spec=get_rexbert_block_spec(config, transformer_config, pp_rank=pp_rank),
            pre_process=pre_process,
            post_process=post_process,
            pg_collection=self.pg_collection,
        )
        if post_process:
            self.head = MLMHead(transformer_config, init_stds(config)["out"], config.initializer_cutoff_factor)
            # The decoder: weights tied to the embedding (held here only on a last pipeline
            # stage without the embedding), a vocab-parallel bias.
            self.output_layer = tensor_parallel.ColumnParallelLinear(
                config.hidden_size,
                config.vocab_size,
                config=transformer_config,
                init_method=transformer_config.init_method,
                bias=True,
                skip_bias_add=False,
                gather_output=False,
                skip_weight_param_allocation=pre_process,
                tp_group=self.tp_group,
            )
            with torch.no_grad():
                self.output_layer.bias.zero_()
        self.setup_embeddings_and_output_layer()

    # -- pipeline plumbing --------------------------------------------------------------

    def set_input_tensor(self, input_tensor) -> None:
        if isinstance(input_tensor, list):
            input_tensor = input_tensor[0]
        self.encoder.set_input_tensor(input_tensor)

    # -- forward ------------------------------------------------------------------------

    def set_causal(self, causal: bool) -> None:
        """Switch every layer between bidirectional (MLM) and causal (CLM) attention —
        the same weights, so a CLM→MLM run switches mid-training."""
        kind = AttnMaskType.causal if causal else AttnMaskType.padding
        for layer in self.encoder.layers:
            layer.self_attention.attn_mask_type = kind

    @property
    def is_causal(self) -> bool:
        layers = self.encoder.layers
        return bool(len(layers)) and layers[0].self_attention.attn_mask_type == AttnMaskType.causal

    def rotary_tables(self, seq_len: int) -> torch.Tensor:
        """Stacked [2, seq_len, 1, 1, head_dim] tables (global, local)."""
        return torch.stack([self.rotary_global(seq_len), self.rotary_local(seq_len)])

    def forward(
        self,
        input_ids: torch.Tensor,
        padding_mask: Optional[torch.Tensor] = None,
        packed_seq_params: Optional[PackedSeqParams] = None,
        labels: Optional[torch.Tensor] = None,
        return_hidden: bool = False,
        return_correct: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Returns, on the last stage, vocab-parallel logits ``[b, s, V/tp]`` — or, with
        ``labels``, the per-token loss ``[n]`` over the positions whose label is not -100
        (the head runs on those positions only), or with ``return_hidden`` the final
        normalised hidden states ``[b, s, h]``. ``return_correct`` adds, with labels, whether
        each labelled position's top-1 prediction is right. Earlier stages return hidden states."""
        if packed_seq_params is not None:
            seq_len = int(packed_seq_params.max_seqlen_q)
            attention_mask = None
        else:
            seq_len = input_ids.shape[1]
            attention_mask = None if padding_mask is None else padding_mask[:, None, None, :]

        hidden = self.embedding(input_ids) if self.pre_process else None
        hidden = self.encoder(
            hidden_states=hidden,
            attention_mask=attention_mask,
            rotary_pos_emb=self.rotary_tables(seq_len),
            packed_seq_params=packed_seq_params,
        )
        if not self.post_process:
            return hidden

        hidden = hidden.transpose(0, 1)  # [b, s, h]
        if return_hidden:
            return hidden
        weight = self.shared_embedding_or_output_weight()
        if labels is None:
            logits, _ = self.output_layer(self.head(hidden), weight=weight)
            return logits
        selected = labels != IGNORE_INDEX
        targets = labels[selected]
        if can_fuse(weight, _group_size(self.tp_group)):  # same numerics, fewer walks over the logits
            losses, correct = decoder_cross_entropy(self.head(hidden[selected]), weight, self.output_layer.bias,
                                                    targets, want_correct=return_correct)
            return (losses, correct) if return_correct else losses
        logits, _ = self.output_layer(self.head(hidden[selected]), weight=weight)  # [n, V/tp]
        losses = tensor_parallel.vocab_parallel_cross_entropy(logits.unsqueeze(0), targets.unsqueeze(0))[0]
        if return_correct:
            return losses, vocab_parallel_top1(logits.detach(), self.tp_group) == targets
        return losses


def _group_size(group) -> int:
    import torch.distributed as dist

    return dist.get_world_size(group) if group is not None and dist.is_initialized() else 1


def vocab_parallel_top1(logits: torch.Tensor, tp_group) -> torch.Tensor:
    """Global argmax ids of vocab-parallel logits [n, V/tp] (ties → the lowest id)."""
    import torch.distributed as dist

    local_max, local_arg = logits.max(dim=-1)
    tp = dist.get_world_size(tp_group) if tp_group is not None and dist.is_initialized() else 1
    if tp == 1:
        return local_arg
    rank = dist.get_rank(tp_group)
    maxes = [torch.empty_like(local_max) for _ in range(tp)]
    args = [torch.empty_like(local_arg) for _ in range(tp)]
    dist.all_gather(maxes, local_max.contiguous(), group=tp_group)
    dist.all_gather(args, (local_arg + rank * logits.shape[-1]).contiguous(), group=tp_group)
    best = torch.stack(maxes).argmax(dim=0)
    return torch.stack(args).gather(0, best[None])[0]
