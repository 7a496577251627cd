"""Checkpoint conversion commands.

    python -m rexbert.convert check PATH
        Import a local ModernBertForMaskedLM folder (ModernBERT, Ettin, or a rexbert export)
        into the megatron-core encoder and compare its MLM logits with transformers' on the
        shipped sample text. Exits non-zero if they differ by more than --tol.

    python -m rexbert.convert reexport PATH OUT
        Import PATH and export it again to OUT (with rexbert's tokenizer files unless PATH
        has its own) — a round trip through megatron-core's layout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def _sample_texts(n: int) -> list[str]:
    from rexbert.sample_data import load_sample

    return [r["text"][:400] for r in load_sample("products")[:n]]


def check(path: Path, tol: float, num_texts: int) -> float:
    """Max |Δlogit| between rexbert and transformers for the folder at ``path``."""
    from transformers import AutoModelForMaskedLM

    from megatron_ext.parallel import init_parallel
    from rexbert.model.hf import import_hf
    from rexbert.tokenizer import load_tokenizer

    init_parallel(1, 1)
    ours = import_hf(path).eval()
    theirs = AutoModelForMaskedLM.from_pretrained(path, local_files_only=True, attn_implementation="sdpa").eval()
    has_tokenizer = (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(path if has_tokenizer else None)
    batch = tokenizer(_sample_texts(num_texts), padding=True, truncation=True, max_length=512, return_tensors="pt")
    padding = batch["attention_mask"] == 0
    with torch.no_grad():
        diff = (ours(batch["input_ids"], padding_mask=padding) - theirs(**batch).logits)[~padding].abs().max().item()
    verdict = "ok" if diff <= tol else "MISMATCH"
    print(f"{path}: {ours.rexbert_config.num_layers} layers × {ours.rexbert_config.hidden_size}; "
          f"max |Δlogit| vs transformers over {int((~padding).sum())} tokens = {diff:.2e} ({verdict}, tol {tol:g})")
    return diff


def reexport(path: Path, out: Path) -> None:
    from megatron_ext.parallel import init_parallel
    from rexbert.model.hf import export_hf, import_hf
    from rexbert.tokenizer import load_tokenizer

    init_parallel(1, 1)
    model = import_hf(path)
    tokenizer = load_tokenizer(path if (path / "tokenizer.json").is_file() else None)
    print(f"wrote {export_hf(model, out, tokenizer)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rexbert.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser("check", help="compare rexbert and transformers logits for a local HF folder")
    p_check.add_argument("path", type=Path)
    p_check.add_argument("--tol", type=float, default=1e-4, help="max allowed |Δlogit| (default 1e-4, fp32)")
    p_check.add_argument("--texts", type=int, default=4, help="number of sample texts (default 4)")
    p_re = sub.add_parser("reexport", help="import a local HF folder and export it again")
    p_re.add_argument("path", type=Path)
    p_re.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "check":
        return 0 if check(args.path, args.tol, args.texts) <= args.tol else 1
    reexport(args.path, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
