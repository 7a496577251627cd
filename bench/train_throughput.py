"""Training-step throughput: real (non-padding) tokens/s and MFU of OUR training step, side by
side with Hugging Face ``ModernBertForMaskedLM`` on the same documents, masks and weights.

    python bench/train_throughput.py --size micro --seq-length 512 --micro-batch 8 --global-batch 64 \\
        --steps 6 --warmup 1 --threads 2 [--peak-tflops 989 | --peak-tflops gemm] [--json out.json]
    torchrun --nproc-per-node 2 bench/train_throughput.py --tp 2 ...   # parallel layouts

Data: ``rexbert/sample_data/products.jsonl`` tokenised with ``rexbert.tokenizer`` into a
Megatron ``.bin/.idx`` (in a temporary folder), read by the trainer's own dataset: packed
sequences of ≤ seq-length tokens, each document framed [CLS] … [SEP], 15% of tokens masked
(uniform, 80/10/10) by default.

Contenders, timed step by step in turn (so a change in machine load hits all of them):

- **ours**: ``rexbert.train.trainer.Trainer.train_step`` — megatron-core forward/backward
  schedule over packed micro-batches (cu_seqlens), sparse MLM head, DDP grad buffers and the
  configured optimizer (StableAdamW by default) in megatron's wrapper. Only its data loading
  is replaced by the prepared batches (``train_step`` does not time that part either).
- **hf_sparse**: ``ModernBertForMaskedLM`` with ``sparse_prediction=True`` (head on masked
  positions only), the same pieces one per row padded to the micro-batch's longest, SDPA
  attention, loss averaged over the step's tokens, ``torch.optim.AdamW(fused=True)`` (the HF
  ``Trainer`` default on torch ≥ 2.8).
- **hf_dense**: the same with HF's default dense head (logits at every position).

All start from our initial weights (``rexbert.model.hf_mapping.megatron_to_hf``); the first
step's loss of each is recorded as evidence that they compute the same thing. tokens/s =
real tokens of the timed steps / their summed wall time (warm-up steps excluded); the same
count for every contender. FLOPs per step: ``rexbert.train.flops.step_flops`` (formula in
docs/training.md) on the real pieces, so MFU is on useful FLOPs for all three; padding work
HF does is not credited. MFU needs ``--peak-tflops``: one device's peak at the precision used
(a datasheet number, e.g. 989 for an H100 SXM in bf16), or ``gemm`` to use a large GEMM
measured in the same run (what CPUs without a datasheet number get).

Precision: ``fp32`` (CPU or GPU); ``bf16`` (bf16 params, megatron's mixed-precision
optimizer; HF under ``torch.autocast(bfloat16)``) and ``fp8`` (Transformer Engine, hybrid
format; HF runs bf16 autocast) need CUDA, and fp8 needs transformer-engine. With TP/PP or DP
> 1 (torchrun) only ours runs: HF has no such layout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRECISIONS = ("fp32", "bf16", "fp8")
IMPLS = ("auto", "local", "transformer_engine")


@dataclass
class BenchConfig:
    size: str = "micro"  # conf/model/<size>.yaml
    seq_length: int = 512
    micro_batch_size: int = 8  # packed sequences per micro-batch (per DP rank); the trainer's default
    global_batch_size: int = 64  # sequences per optimizer step (the trainer's default); 0: one micro-batch per DP rank
    steps: int = 6  # timed steps
    warmup: int = 1  # untimed steps before
    precision: str = "fp32"
    impl: str = "auto"  # model.transformer_impl; auto: TE on CUDA when installed, else local
    tp: int = 1
    pp: int = 1
    threads: int = 2  # torch CPU threads (0: leave as is)
    peak_tflops: float = 0.0  # one device's peak at this precision; 0: no MFU
    peak_name: str = ""  # what the peak is (e.g. "H100 SXM bf16 dense"), echoed in the output
    measure_peak: bool = False  # peak := a large GEMM measured here (CPUs have no datasheet number)
    mask_ratio: float = 0.15
    masking: str = "uniform"
    optimizer: str = "stable_adamw"  # ours: optimizer.name (stable_adamw | adamw)
    hf: bool = True  # also run the Hugging Face contenders (world of one only)
    hf_dense: bool = True
    max_documents: int = 0  # 0: all products
    work_dir: Optional[str] = None  # corpus + run dir; default: a temporary folder
    model_overrides: tuple[str, ...] = ()  # extra `model.*` Hydra overrides

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision={self.precision!r}: choose one of {PRECISIONS}")
        if self.impl not in IMPLS:
            raise ValueError(f"--impl={self.impl!r}: choose one of {IMPLS}")
        if self.steps < 1 or self.warmup < 0:
            raise ValueError("--steps must be >= 1 and --warmup >= 0")
        if self.peak_tflops < 0:
            raise ValueError("--peak-tflops must be >= 0")


# -- data ------------------------------------------------------------------------------


def write_products_corpus(prefix: Path, max_documents: int = 0) -> tuple[str, int]:
    """Tokenise the shipped product texts (no special tokens: the dataset frames each
    document) into a Megatron indexed dataset at ``prefix``. Returns (prefix, documents)."""
    import numpy as np
    from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder, get_bin_path, get_idx_path

    from rexbert.sample_data import load_sample
    from rexbert.tokenizer import VOCAB_SIZE, build_modernbert_tokenizer

    records = load_sample("products")
    if max_documents:
        records = records[:max_documents]
    tokenizer = build_modernbert_tokenizer()
    encoded = tokenizer([r["text"] for r in records], add_special_tokens=False)["input_ids"]
    prefix.parent.mkdir(parents=True, exist_ok=True)
    builder = IndexedDatasetBuilder(get_bin_path(str(prefix)), dtype=DType.optimal_dtype(VOCAB_SIZE))
    for ids in encoded:
        builder.add_document(torch.from_numpy(np.asarray(ids, dtype=np.int64)), [len(ids)])
    builder.finalize(get_idx_path(str(prefix)))
    return str(prefix), len(records)


def packed_to_padded(batch: dict, pad_id: int) -> dict:
    """The packed micro-batch's pieces, one per row, right-padded to the longest: HF's input."""
    from rexbert.model.attention import unpack_index

    cu = batch["cu_seqlens"].to(torch.int64)
    if batch.get("num_padding", 0):  # the FP8 pad segment is no document: HF does not get it
        cu = cu[:-1]
    token_index, padding, _ = unpack_index(cu)
    token_index = token_index.to(batch["input_ids"].device)
    padding = padding.to(batch["input_ids"].device)
    ids = batch["input_ids"][0][token_index].masked_fill(padding, pad_id)
    labels = batch["labels"][0][token_index].masked_fill(padding, -100)
    return {"input_ids": ids, "attention_mask": (~padding).long(), "labels": labels}


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


# -- set-up ------------------------------------------------------------------------------


def _resolve_impl(cfg: BenchConfig) -> str:
    from megatron_ext import compat

    if cfg.precision == "fp8":
        compat.require_te("--precision fp8 (FP8 matmuls through Transformer Engine)")
        if cfg.impl == "local":
            raise ValueError("--precision fp8 needs --impl transformer_engine (or auto)")
        return "transformer_engine"
    if cfg.impl != "auto":
        return cfg.impl
    return "transformer_engine" if compat.HAVE_CUDA and compat.HAVE_TE else "local"


def check_device(cfg: BenchConfig) -> torch.device:
    """CUDA when present; bf16/fp8 refuse to run without it."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if cfg.precision != "fp32":
        raise ValueError(f"--precision {cfg.precision} needs a CUDA GPU (megatron's mixed-precision optimizer and "
                         "TE's FP8 are GPU-only); on CPU use --precision fp32")
    return torch.device("cpu")


def build_trainer(cfg: BenchConfig, data_prefix: str, run_dir: Path):
    """Our Trainer on the product corpus, configured like a real run (no eval, no export).
    Call after ``init_parallel`` (the data-parallel size sets the default global batch)."""
    from megatron.core import parallel_state

    from rexbert.config import load_run_config
    from rexbert.train.trainer import Trainer

    impl = _resolve_impl(cfg)
    dp = parallel_state.get_data_parallel_world_size()
    dtype = "float32" if cfg.precision == "fp32" else "bfloat16"
    overrides = [
        f"model={cfg.size}",
        f"model.transformer_impl={impl}",
        f"model.params_dtype={dtype}",
        f"model.tensor_model_parallel_size={cfg.tp}",
        f"model.pipeline_model_parallel_size={cfg.pp}",
        *cfg.model_overrides,
        f"data.blend=[{data_prefix}]",
        "data.eval_blend=null",
        f"data.seq_length={cfg.seq_length}",
        f"data.masking.strategy={cfg.masking}",
        f"data.masking.mask_ratio={cfg.mask_ratio}",
        f"trainer.run_dir={run_dir}",
        f"trainer.micro_batch_size={cfg.micro_batch_size}",
        f"trainer.global_batch_size={cfg.global_batch_size or cfg.micro_batch_size * dp}",
        f"trainer.max_steps={cfg.warmup + cfg.steps}",
        f"trainer.num_threads={cfg.threads}",
        f"trainer.peak_tflops={cfg.peak_tflops}",
        "trainer.export_hf=false",
        "trainer.plot=false",
        f"optimizer.name={cfg.optimizer}",
        "logging.wandb=false",
    ]
    if cfg.precision == "fp8":
        overrides.append("model.fp8=hybrid")
    return Trainer(load_run_config(overrides))


def prepare_steps(trainer, num_steps: int, device: torch.device) -> list[list[dict]]:
    """Each step's packed micro-batches for this rank, exactly as ``train_step`` would build
    them, moved to ``device`` once."""
    steps, consumed = [], trainer.consumed_samples
    gb = trainer.global_batch_size()
    for _ in range(num_steps):
        steps.append([_to(mb, device) for mb in trainer._micro_batches(trainer.data, consumed, gb)])
        consumed += gb
    return steps


def serve_prepared(trainer, steps: list[list[dict]]) -> None:
    """Make ``trainer.train_step`` take the prepared micro-batches (keyed by the first sample)."""
    gb = trainer.global_batch_size()
    by_first = {trainer.consumed_samples + i * gb: mbs for i, mbs in enumerate(steps)}
    trainer._micro_batches = lambda data, first, global_batch: by_first[first]


def step_counts(config, micro_batches: list[dict]) -> dict[str, float]:
    """Real tokens, predicted tokens and model FLOPs of one step's micro-batches on this rank."""
    from rexbert.data.collate import document_lengths
    from rexbert.train.flops import step_flops

    lengths: list[int] = []
    predicted = 0
    for mb in micro_batches:
        lengths.extend(document_lengths(mb))
        predicted += int((mb["labels"] != -100).sum())
    return {"tokens": float(sum(lengths)), "predicted": float(predicted),
            "flops": step_flops(config, lengths, predicted)}


class HFContender:
    """``ModernBertForMaskedLM`` with our initial weights and a fused torch AdamW."""

    def __init__(self, trainer, sparse: bool, device: torch.device, precision: str) -> None:
        from transformers import ModernBertForMaskedLM

        from rexbert.model.hf import to_hf_config
        from rexbert.model.hf_mapping import megatron_to_hf

        config = trainer.cfg.model
        hf_config = to_hf_config(config)
        hf_config._attn_implementation = "sdpa"
        hf_config.sparse_prediction = sparse
        self.model = ModernBertForMaskedLM(hf_config)
        state = {k: v.detach().float().cpu() for k, v in trainer.model.state_dict().items()
                 if torch.is_tensor(v)}
        self.model.load_state_dict(megatron_to_hf(state, config), strict=True)
        self.model.to(device).train()
        opt = trainer.cfg.optimizer
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=opt.lr, betas=tuple(opt.betas), eps=opt.eps,
                                           weight_decay=opt.weight_decay, fused=True)
        self.device = device
        self.autocast = precision != "fp32"

    def train_step(self, padded: list[dict]) -> float:
        """Forward/backward over the micro-batches (loss = mean over the step's predicted
        tokens), one optimizer step. Returns the step's loss."""
        total = sum(int((b["labels"] != -100).sum()) for b in padded)
        loss_sum = 0.0
        for batch in padded:
            n = int((batch["labels"] != -100).sum())
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                loss = self.model(**batch).loss
            (loss * (n / total)).backward()
            loss_sum += float(loss.detach()) * n
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum / total


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


def measure_gemm_tflops(device: torch.device, precision: str) -> tuple[float, str]:
    """Best of 7 square GEMMs at the run's precision (fp8 runs: bf16) on ``device``."""
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    n = 2048 if device.type == "cpu" else 8192
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = min(_timed(lambda: a @ b, device)[0] for _ in range(7))
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    name = f"measured {str(dtype).replace('torch.', '')} GEMM {n}×{n}×{n} on {device.type}{threads}"
    return 2 * n**3 / best / 1e12, name


def machine_description(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core CPU ({cpu}), {threads} torch threads, torch {torch.__version__}"


# -- the benchmark -----------------------------------------------------------------------


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    """Time ``cfg.steps`` training steps (after ``cfg.warmup``) of each contender on the same
    batches. Returns a JSON-ready dict (every rank returns global rank 0's numbers)."""
    import torch.distributed as dist

    from megatron_ext.parallel import init_parallel

    device = check_device(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.measure_peak:
        peak, name = measure_gemm_tflops(device, cfg.precision)
        cfg = dataclasses.replace(cfg, peak_tflops=peak, peak_name=name)
    init_parallel(cfg.tp, cfg.pp)  # the trainer calls it again with the same sizes: a no-op
    rank = dist.get_rank()
    tmp = tempfile.TemporaryDirectory(prefix="rexbert_bench_") if rank == 0 and not cfg.work_dir else None
    shared = [cfg.work_dir or (tmp.name if tmp else None)]
    dist.broadcast_object_list(shared, src=0)  # torchrun ranks of one node share rank 0's folder
    work = Path(shared[0])
    try:
        prefix = work / "data" / "products"
        if rank == 0:
            write_products_corpus(prefix, cfg.max_documents)
        dist.barrier()
        trainer = build_trainer(cfg, str(prefix), work / "run")
        report = _run(cfg, trainer, device)
        dist.barrier()  # nobody reads the folder any more
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()


def _run(cfg: BenchConfig, trainer, device: torch.device) -> dict[str, Any]:
    import torch.distributed as dist
    from megatron.core import parallel_state

    total_steps = cfg.warmup + cfg.steps
    steps = prepare_steps(trainer, total_steps, device)
    world = dist.get_world_size()
    run_hf = cfg.hf and world == 1
    hf: dict[str, HFContender] = {}
    padded: list[list[dict]] = []
    if run_hf:  # before our first step: every model starts from the same weights
        hf["hf_sparse"] = HFContender(trainer, True, device, cfg.precision)
        if cfg.hf_dense:
            hf["hf_dense"] = HFContender(trainer, False, device, cfg.precision)
        padded = [[packed_to_padded(mb, trainer.cfg.model.pad_token_id) for mb in mbs] for mbs in steps]
    serve_prepared(trainer, steps)

    # Per-step counts summed over DP ranks (TP/PP ranks of one replica hold the same data).
    keys = ("tokens", "predicted", "flops", "padded_tokens")
    counts = []
    for i, mbs in enumerate(steps):
        c = step_counts(trainer.cfg.model, mbs)
        c["padded_tokens"] = float(sum(b["input_ids"].numel() for b in padded[i])) if padded else 0.0
        values = torch.tensor([c[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(values, group=parallel_state.get_data_parallel_group())
        counts.append(dict(zip(keys, values.tolist())))

    runners: dict[str, Callable[[int], float]] = {"ours": lambda i: trainer.train_step()["loss"]}
    for name, contender in hf.items():
        runners[name] = lambda i, c=contender: c.train_step(padded[i])
    times: dict[str, list[float]] = {n: [] for n in runners}
    first_loss: dict[str, float] = {}
    names = list(runners)
    for i in range(total_steps):
        order = names[i % len(names):] + names[: i % len(names)]  # rotate: no fixed position
        for name in order:
            elapsed, loss = _timed(lambda: runners[name](i), device)
            if i == 0:
                first_loss[name] = float(loss)
            if i >= cfg.warmup:
                times[name].append(elapsed)

    timed = counts[cfg.warmup:]
    tokens = sum(c["tokens"] for c in timed)
    flops = sum(c["flops"] for c in timed)
    padded_tokens = sum(c["padded_tokens"] for c in timed)
    results = {}
    for name, ts in times.items():
        seconds = sum(ts)
        entry = {"tokens_per_s": tokens / seconds, "step_s_median": statistics.median(ts),
                 "step_s_min": min(ts), "step_s_max": max(ts), "tflops_per_s": flops / seconds / 1e12,
                 "first_step_loss": first_loss[name]}
        if cfg.peak_tflops:
            entry["mfu"] = flops / seconds / 1e12 / (cfg.peak_tflops * world)
        results[name] = entry
    ratios = {f"ours_vs_{n}": results["ours"]["tokens_per_s"] / results[n]["tokens_per_s"] for n in hf}
    return {
        "machine": machine_description(device, torch.get_num_threads()),
        "device": str(device),
        "world_size": world,
        "config": {**dataclasses.asdict(cfg), "model_overrides": list(cfg.model_overrides),
                   "transformer_impl": trainer.cfg.model.transformer_impl,
                   "global_batch_size": trainer.global_batch_size(),
                   "ours_optimizer": trainer.cfg.optimizer.name, "hf_optimizer": "torch.optim.AdamW(fused=True)"},
        "peak": ({"tflops": cfg.peak_tflops, "name": cfg.peak_name or "from --peak-tflops"}
                 if cfg.peak_tflops else None),
        "steps": {"warmup": cfg.warmup, "timed": cfg.steps},
        "real_tokens_timed": tokens,
        "real_tokens_per_step": [c["tokens"] for c in counts],
        "predicted_tokens_per_step": [c["predicted"] for c in counts],
        "hf_padded_tokens_per_step": [c["padded_tokens"] for c in counts] if run_hf else None,
        "hf_padding_fraction": (1 - tokens / padded_tokens) if run_hf and padded_tokens else None,
        "model_flops_timed": flops,
        "results": results,
        "ratios": ratios,
        "hf_skipped": None if run_hf else ("disabled" if not cfg.hf
                                           else f"world size {world}: HF has no TP/PP/DP layout"),
    }


# -- output ------------------------------------------------------------------------------

LABELS = {
    "ours": "rexbert Trainer.train_step (packed, sparse head)",
    "hf_sparse": "HF ModernBertForMaskedLM, sparse_prediction=True (padded)",
    "hf_dense": "HF ModernBertForMaskedLM, dense head (padded)",
}


def markdown_table(report: dict[str, Any]) -> str:
    mfu = report["peak"] is not None
    head = "| contender | real tokens/s | median step (s) | model TFLOP/s |" + (" MFU |" if mfu else "") \
        + " ours ÷ it | first-step loss |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    ours = report["results"]["ours"]["tokens_per_s"]
    for name, r in report["results"].items():
        row = f"| {LABELS[name]} | {r['tokens_per_s']:,.0f} | {r['step_s_median']:.3f} | {r['tflops_per_s']:.4f} |"
        if mfu:
            row += f" {100 * r['mfu']:.1f}% |"
        ratio = "—" if name == "ours" else f"**{ours / r['tokens_per_s']:.2f}×**"
        row += f" {ratio} | {r['first_step_loss']:.5f} |"
        lines.append(row)
    return "\n".join(lines)


def summary(report: dict[str, Any]) -> str:
    cfg = report["config"]
    per_step = report["real_tokens_per_step"]
    lines = [
        f"machine: {report['machine']}",
        f"model {cfg['size']} ({cfg['transformer_impl']}), seq {cfg['seq_length']}, {cfg['precision']}, "
        f"TP={cfg['tp']} PP={cfg['pp']} world={report['world_size']}, global batch {cfg['global_batch_size']} "
        f"packed sequences ({cfg['micro_batch_size']} per micro-batch), {cfg['masking']} masking "
        f"{cfg['mask_ratio']:.0%}",
        f"steps: {report['steps']['timed']} timed after {report['steps']['warmup']} warm-up; real tokens per step "
        f"{min(per_step):.0f}–{max(per_step):.0f} (mean {statistics.mean(per_step):.0f}); optimizers: ours "
        f"{cfg['ours_optimizer']}, HF {cfg['hf_optimizer']}",
    ]
    if report["hf_padding_fraction"] is not None:
        lines.append(f"HF padding: {100 * report['hf_padding_fraction']:.1f}% of its input positions are padding")
    if report["peak"]:
        lines.append(f"peak: {report['peak']['tflops']:.4g} TFLOP/s per device ({report['peak']['name']})")
    if report["hf_skipped"]:
        lines.append(f"HF contenders skipped: {report['hf_skipped']}")
    return "\n".join(lines) + "\n\n" + markdown_table(report)


def parse_args(argv: Optional[list[str]] = None) -> tuple[BenchConfig, Optional[Path]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = BenchConfig()
    p.add_argument("--size", default=d.size, help="conf/model/<size>.yaml (default: micro)")
    p.add_argument("--seq-length", type=int, default=d.seq_length)
    p.add_argument("--micro-batch", type=int, default=d.micro_batch_size, help="packed sequences per micro-batch")
    p.add_argument("--global-batch", type=int, default=d.global_batch_size,
                   help="sequences per optimizer step (default 64, the trainer's; 0: one micro-batch per DP rank)")
    p.add_argument("--steps", type=int, default=d.steps, help="timed steps")
    p.add_argument("--warmup", type=int, default=d.warmup, help="untimed steps first")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision)
    p.add_argument("--impl", choices=IMPLS, default=d.impl, help="model.transformer_impl")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--pp", type=int, default=1)
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (0: leave as is)")
    p.add_argument("--peak-tflops", default="0",
                   help="one device's peak TFLOP/s at this precision (for MFU), or 'gemm': measure a large GEMM here")
    p.add_argument("--peak-name", default="", help="what that peak is, echoed in the output")
    p.add_argument("--mask-ratio", type=float, default=d.mask_ratio)
    p.add_argument("--masking", choices=("uniform", "span"), default=d.masking)
    p.add_argument("--optimizer", choices=("stable_adamw", "adamw"), default=d.optimizer, help="ours")
    p.add_argument("--no-hf", action="store_true", help="time ours only")
    p.add_argument("--no-hf-dense", action="store_true", help="skip HF's dense-head contender")
    p.add_argument("--max-documents", type=int, default=0)
    p.add_argument("--work-dir", default=None, help="keep the corpus and run dir here (default: temporary)")
    p.add_argument("--json", type=Path, default=None, help="also write the full report here")
    p.add_argument("overrides", nargs="*", help="extra model.* overrides, e.g. model.recompute=selective")
    a = p.parse_args(argv)
    for o in a.overrides:
        if not o.startswith("model."):
            p.error(f"{o!r}: only model.* overrides are accepted")
    measure = a.peak_tflops == "gemm"
    try:
        peak = 0.0 if measure else float(a.peak_tflops)
    except ValueError:
        p.error(f"--peak-tflops {a.peak_tflops!r}: a number (TFLOP/s) or 'gemm'")
    cfg = BenchConfig(size=a.size, seq_length=a.seq_length, micro_batch_size=a.micro_batch,
                      global_batch_size=a.global_batch, steps=a.steps, warmup=a.warmup, precision=a.precision,
                      impl=a.impl, tp=a.tp, pp=a.pp, threads=a.threads, peak_tflops=peak, peak_name=a.peak_name,
                      measure_peak=measure, mask_ratio=a.mask_ratio, masking=a.masking, optimizer=a.optimizer,
                      hf=not a.no_hf, hf_dense=not a.no_hf_dense, max_documents=a.max_documents,
                      work_dir=a.work_dir, model_overrides=tuple(a.overrides))
    return cfg, a.json


def main(argv: Optional[list[str]] = None) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg, json_path = parse_args(argv)
    report = run_benchmark(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary(report))
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
