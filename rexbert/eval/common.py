"""What every evaluation shares: opening a Hugging Face model folder by path (offline, with
a clear error naming what is missing), seeding, reading tabular data files with a clear
error naming missing columns, and writing the result JSON.

The result JSON of every task (``write_result``)::

    {"task": "glue", "model": "/path/to/model", "model_name": "model", "dataset": "sst2",
     "seed": 0, "metrics": {"accuracy": 0.91, ...}, "config": {...}, "details": {...},
     "rexbert_version": "0.1.0", "seconds": 12.3}
"""

from __future__ import annotations

import csv
import json
import os
import random
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class EvalError(Exception):
    """A user-facing evaluation error (bad model folder, bad data file, bad config)."""


def check_model_folder(path: str | os.PathLike) -> Path:
    """A Hugging Face model folder usable offline: config.json, weights (safetensors,
    sharded safetensors with an index, or pytorch_model.bin) and a tokenizer."""
    folder = Path(path)
    if not folder.is_dir():
        raise EvalError(f"model folder {folder} does not exist")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / f).is_file() for f in WEIGHT_FILES) and not list(folder.glob("*.safetensors")):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not (folder / "tokenizer.json").is_file() and not (folder / "vocab.txt").is_file():
        missing.append("tokenizer (tokenizer.json or vocab.txt)")
    if missing:
        raise EvalError(f"model folder {folder} is missing: {', '.join(missing)}")
    return folder


def load_tokenizer(path: str | os.PathLike):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(check_model_folder(path), local_files_only=True)


def load_masked_lm(path: str | os.PathLike, device: str = "cpu"):
    """(model in eval mode, tokenizer) of an MLM folder."""
    from transformers import AutoModelForMaskedLM

    folder = check_model_folder(path)
    model = AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True).to(device).eval()
    return model, load_tokenizer(folder)


def set_seed(seed: int) -> None:
    """Python, numpy and torch (CPU and CUDA) RNGs; deterministic algorithms where cheap."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def read_table(path: str | os.PathLike, columns: Sequence[str] = (), limit: Optional[int] = None) -> list[dict]:
    """Rows of a .jsonl(.gz) / .csv / .tsv / .parquet file as dicts; every name in
    ``columns`` must be there (the error names the file, the missing columns and the ones it has)."""
    p = Path(path)
    if not p.is_file():
        raise EvalError(f"data file {p} does not exist")
    name = p.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(p)
        have = table.column_names
        rows = table.slice(0, limit).to_pylist() if limit else table.to_pylist()
    elif name.endswith((".jsonl", ".jsonl.gz", ".json")):
        import gzip

        opener = gzip.open if name.endswith(".gz") else open
        rows = []
        with opener(p, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise EvalError(f"{p}:{number}: not valid JSON ({e.msg})") from None
                if limit and len(rows) >= limit:
                    break
        have = sorted({k for r in rows for k in r})
    elif name.endswith((".csv", ".tsv")):
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t" if name.endswith(".tsv") else ",")
            have = list(reader.fieldnames or [])
            rows = []
            for row in reader:
                rows.append(row)
                if limit and len(rows) >= limit:
                    break
    else:
        raise EvalError(f"data file {p}: unsupported format (use .jsonl, .csv, .tsv or .parquet)")
    missing = [c for c in columns if c not in have]
    if missing:
        raise EvalError(f"data file {p} has no column(s) {missing}; it has {list(have)}")
    return rows


def write_result(path: str | os.PathLike, task: str, model: str | os.PathLike, dataset: str, seed: int,
                 metrics: dict[str, Any], config: Any = None, details: Optional[dict[str, Any]] = None,
                 started: Optional[float] = None) -> dict[str, Any]:
    """Write the task's result JSON atomically; returns it."""
    from rexbert import __version__

    result = {"task": task, "model": str(model), "model_name": Path(str(model)).name, "dataset": dataset,
              "seed": seed, "metrics": metrics,
              "config": asdict(config) if is_dataclass(config) else (config or {}),
              "details": details or {}, "rexbert_version": __version__,
              "seconds": round(time.perf_counter() - started, 2) if started is not None else None}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    # NaN (e.g. a CI from one seed) becomes null: strict JSON readers reject NaN
    tmp.write_text(json.dumps(_nan_to_none(result), indent=2, default=_json_default, allow_nan=False) + "\n")
    os.replace(tmp, out)
    return result


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, (np.floating,)) and np.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def mean_ci95(values: Iterable[float]) -> dict[str, float]:
    """Mean and the half-width of a 95% Student-t confidence interval across seeds."""
    from scipy import stats

    v = np.asarray(list(values), dtype=float)
    if v.size < 2:
        return {"mean": float(v.mean()) if v.size else float("nan"), "ci95": float("nan"), "n": int(v.size)}
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return {"mean": float(v.mean()), "ci95": float(half), "n": int(v.size)}
