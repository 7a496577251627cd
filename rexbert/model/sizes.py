"""Parameter count of each named size, computed analytically and (``--check``) by
building Hugging Face's ``ModernBertForMaskedLM`` with the same config.

    python -m rexbert.model.sizes            # table of all sizes
    python -m rexbert.model.sizes --check    # also build each HF model and compare
"""

from __future__ import annotations

import argparse

from rexbert.config import MODEL_SIZES, load_model_config
from rexbert.model.config import RexBertConfig


def count_parameters(config: RexBertConfig) -> int:
    """Unique parameters of the encoder with its MLM head (the tied decoder counted once)."""
    h, f, v, n = config.hidden_size, config.ffn_hidden_size, config.vocab_size, config.num_layers
    per_layer = 3 * h * h + h * h + 2 * f * h + f * h + 2 * h  # qkv, proj, fc1, fc2, two norms
    embedding = v * h + h  # tokens + LayerNorm
    head = h * h + h + v  # dense + norm + decoder bias
    # Layer 0 has no attention norm, and the final norm adds one back: they cancel.
    return embedding + n * per_layer + head


def hf_parameter_count(config: RexBertConfig) -> int:
    from transformers import ModernBertForMaskedLM

    from rexbert.model.hf import to_hf_config

    import torch

    with torch.device("meta"):  # shapes only: counts without allocating or initialising
        model = ModernBertForMaskedLM(to_hf_config(config))
    return sum(p.numel() for p in model.parameters())  # tied weights are counted once


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="also build each HF model and compare counts")
    args = parser.parse_args(argv)
    print(f"{'size':<6} {'layers':>6} {'hidden':>6} {'ffn':>5} {'heads':>5} {'parameters':>14}" + ("  HF count" if args.check else ""))
    for size in MODEL_SIZES:
        cfg = load_model_config(size)
        n = count_parameters(cfg)
        line = f"{size:<6} {cfg.num_layers:>6} {cfg.hidden_size:>6} {cfg.ffn_hidden_size:>5} {cfg.num_attention_heads:>5} {n:>14,} ({n / 1e6:.2f}M)"
        if args.check:
            hf = hf_parameter_count(cfg)
            line += f"  {hf:,} {'ok' if hf == n else 'MISMATCH'}"
        print(line)


if __name__ == "__main__":
    main()
