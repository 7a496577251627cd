"""Metrics: a local JSONL file is the truth; W&B on top when configured (offline without a
key); a loss-curve PNG at the end. Only global rank 0 writes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional


@dataclass
class LoggingConfig:
    wandb: bool = False
    wandb_project: str = "rexbert"
    wandb_mode: str = "offline"  # offline | online | disabled
    log_interval: int = 10


class MetricsLogger:
    def __init__(self, run_dir: Path, config: LoggingConfig, run_name: str, run_config: Optional[dict] = None,
                 enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self._wandb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if config.wandb and config.wandb_mode != "disabled":
            import wandb  # lazily: CPU tests and users without W&B never import it

            mode = config.wandb_mode if os.environ.get("WANDB_API_KEY") else "offline"
            self._wandb = wandb.init(project=config.wandb_project, name=run_name, dir=str(run_dir), mode=mode,
                                     config=run_config, resume="allow", id=run_name)

    def log(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _plain(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._wandb is not None:
            self._wandb.log(record, step=step)

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value


def read_metrics(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_losses(metrics_path: Path, out_png: Path, title: str = "") -> Path:
    """Training (and evaluation, when logged) loss against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style in (("loss", "-"), ("eval_loss", "o-")):
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            ax.plot(*zip(*points), style, label=key.replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png
