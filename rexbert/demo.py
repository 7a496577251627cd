"""The main job, tiny and end to end on data the package ships.

Builds a RexBERT encoder on megatron-core (``micro`` by default), runs real product
titles with one word masked through it, prints the top-5 fill-mask predictions, exports
the model to a Hugging Face folder and checks that ``transformers`` predicts the same.

    python -m rexbert.demo [--size micro] [--out runs/demo] [--products 6]

The encoder is freshly initialised here, so its predictions are not yet meaningful;
training arrives with the curriculum (issues #4/#5).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch


def mask_title(text: str, mask_token: str) -> tuple[str, str] | None:
    """Product title with its last word of ≥ 4 letters replaced by the mask token."""
    title = text.split(". ")[0]
    words = list(re.finditer(r"\b[A-Za-z]{4,}\b", title))
    if not words:
        return None
    w = words[-1]
    return title[: w.start()] + mask_token + title[w.end():], w.group(0)


def top5(logits: torch.Tensor, input_ids: torch.Tensor, mask_id: int, tokenizer) -> list[list[str]]:
    rows = []
    for b, pos in (input_ids == mask_id).nonzero().tolist():
        ids = logits[b, pos].topk(5).indices.tolist()
        rows.append([tokenizer.decode([i]).strip() or repr(tokenizer.decode([i])).replace("\\n", "⏎") for i in ids])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="micro", help="model size from conf/model (default: micro)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    parser.add_argument("--products", type=int, default=6, help="number of sample products to fill (default: 6)")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from megatron_ext.parallel import destroy_parallel, init_parallel
    from rexbert.config import load_model_config
    from rexbert.model.build import build_model
    from rexbert.model.hf import export_hf
    from rexbert.model.sizes import count_parameters
    from rexbert.sample_data import load_sample
    from rexbert.tokenizer import load_tokenizer

    console = Console()
    start = time.perf_counter()
    config = load_model_config(args.size)
    init_parallel(1, 1, seed=config.seed)
    tokenizer = load_tokenizer()
    model = build_model(config).eval()
    console.print(f"[bold]rexbert-{args.size}[/]: {config.num_layers} layers × {config.hidden_size}, "
                  f"{count_parameters(config) / 1e6:.2f}M parameters, megatron-core local spec on CPU")

    masked = [m for m in (mask_title(r["text"], tokenizer.mask_token) for r in load_sample("products")) if m]
    masked = masked[: args.products]
    batch = tokenizer([m[0] for m in masked], padding=True, return_tensors="pt")
    padding = batch["attention_mask"] == 0
    with torch.no_grad():
        logits = model(batch["input_ids"], padding_mask=padding)
    ours = top5(logits, batch["input_ids"], tokenizer.mask_token_id, tokenizer)

    table = Table(title="Top-5 fill-mask on sample product titles (untrained encoder)")
    table.add_column("masked title", overflow="fold")
    table.add_column("answer")
    table.add_column("top-5 predictions", overflow="fold")
    for (text, answer), preds in zip(masked, ours):
        table.add_row(text, answer, " | ".join(preds))
    console.print(table)

    export_dir = export_hf(model, args.out / "hf")
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    hf_model = AutoModelForMaskedLM.from_pretrained(export_dir, local_files_only=True).eval()
    hf_tok = AutoTokenizer.from_pretrained(export_dir, local_files_only=True)
    hf_batch = hf_tok([m[0] for m in masked], padding=True, return_tensors="pt")
    with torch.no_grad():
        hf_logits = hf_model(**hf_batch).logits
    theirs = top5(hf_logits, hf_batch["input_ids"], hf_tok.mask_token_id, hf_tok)
    max_diff = (logits - hf_logits)[~padding].abs().max().item()
    if theirs != ours or max_diff > 1e-4:
        raise SystemExit(f"HF round-trip mismatch: max |Δlogit| {max_diff:.2e}")
    console.print(f"Exported to [bold]{export_dir}[/]; transformers' ModernBertForMaskedLM gives the same "
                  f"top-5 (max |Δlogit| {max_diff:.1e}).")
    console.print(f"Done in {time.perf_counter() - start:.1f} s.")
    destroy_parallel()


if __name__ == "__main__":
    main()
