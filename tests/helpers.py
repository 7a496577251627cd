"""Small builders shared by the test tiers."""

from __future__ import annotations

import torch

from rexbert.model.config import RexBertConfig

SMALL_VOCAB = 512
PAD_ID = 3


def small_config(**overrides) -> RexBertConfig:
    """4 layers (global at 0 and 3), 64 wide, 512-id vocabulary."""
    fields = dict(num_layers=4, hidden_size=64, num_attention_heads=4, ffn_hidden_size=96,
                  vocab_size=SMALL_VOCAB, pad_token_id=PAD_ID, max_position_embeddings=1024)
    fields.update(overrides)
    return RexBertConfig(**fields)


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter distinct random values: norm weights around 1, decoder bias
    and everything else around 0, so a mis-mapped tensor cannot go unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        if "norm" in name:
            p.copy_(1.0 + 0.2 * noise)
        elif p.dim() == 1:
            p.copy_(0.5 * noise)
        else:
            p.copy_(noise / p.shape[-1] ** 0.5)


def padded_batch(lengths: list[int], vocab: int = SMALL_VOCAB, seed: int = 0):
    """Right-padded random ids [b, max(lengths)] and the padding mask (True at padding)."""
    gen = torch.Generator().manual_seed(seed)
    seq = max(lengths)
    ids = torch.randint(PAD_ID + 1, vocab, (len(lengths), seq), generator=gen)
    padding = torch.arange(seq)[None, :] >= torch.tensor(lengths)[:, None]
    ids[padding] = PAD_ID
    return ids, padding


def hf_model(config: RexBertConfig):
    from transformers import ModernBertForMaskedLM

    from rexbert.model.hf import to_hf_config

    hf_config = to_hf_config(config)
    hf_config._attn_implementation = "sdpa"
    return ModernBertForMaskedLM(hf_config).eval()


def small_special_tokens():
    """Special ids at the top of the 512-id test vocabulary (BPE-like ids below 500)."""
    from rexbert.data.masking import SpecialTokens

    return SpecialTokens(cls_id=501, sep_id=502, pad_id=PAD_ID, mask_id=504, num_regular=500,
                         special_ids=frozenset({PAD_ID}))


def write_corpus(prefix, documents, spans=None, vocab: int = SMALL_VOCAB) -> str:
    """Write documents (lists of ids) — and optional token spans ([[s, e], …] per document) —
    as a Megatron indexed dataset (+ ``_spans`` side-file). Returns the prefix."""
    import numpy as np
    from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder, get_bin_path, get_idx_path

    prefix = str(prefix)
    builder = IndexedDatasetBuilder(get_bin_path(prefix), dtype=DType.optimal_dtype(vocab))
    for doc in documents:
        builder.add_document(torch.tensor(doc), [len(doc)])
    builder.finalize(get_idx_path(prefix))
    if spans is not None:
        sp = IndexedDatasetBuilder(get_bin_path(prefix + "_spans"), dtype=np.int32)
        for doc_spans in spans:
            flat = np.asarray(doc_spans, dtype=np.int32).reshape(-1)
            sp.add_document(torch.from_numpy(flat), [len(flat)])
        sp.finalize(get_idx_path(prefix + "_spans"))
    return prefix


def random_documents(count: int, min_len: int, max_len: int, seed: int = 0, num_regular: int = 500):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (count,), generator=gen).tolist()
    return [torch.randint(4, num_regular, (n,), generator=gen).tolist() for n in lengths]


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A model's state dict without megatron's ``_extra_state`` entries, cloned."""
    return {k: v.clone() for k, v in module.state_dict().items() if not k.endswith("._extra_state")}
