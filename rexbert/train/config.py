"""The trainer's own settings (the rest of a run's config lives with its component:
model, data, optimizer, schedule, objective, logging)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class TrainerConfig:
    # Fixed by config (or the Slurm job), never a timestamp: a requeued job must find its
    # checkpoints. Checkpoints, metrics, plots and the export all live under it.
    run_dir: str = "runs/default"
    max_steps: int = 100
    micro_batch_size: int = 8
    global_batch_size: int = 64
    log_interval: int = 10
    eval_interval: int = 0  # 0: evaluate only at the end
    eval_samples: int = 64
    save_interval: int = 0  # 0: save only at the end (and on a signal)
    keep_last: int = 2
    # Where this run starts from when it has no checkpoint of its own: a checkpoint
    # directory (a run dir, its checkpoints/ folder, or one iter_* folder) or a Hugging
    # Face folder. What resets is below.
    load: Optional[str] = None
    reset_optimizer: bool = True
    reset_schedule: bool = True
    reset_data_position: bool = True
    # Skip a step whose loss is NaN/Inf or above spike_factor × the running mean (0: off);
    # stop after max_consecutive_skips skips in a row.
    spike_factor: float = 0.0
    max_consecutive_skips: int = 5
    num_threads: int = 0  # torch CPU threads; 0: leave as is. Fix it for bitwise resume.
    export_hf: bool = True  # export the final model to <run_dir>/hf
    # Peak dense TFLOP/s of one device at the training precision (e.g. 989 for an H100 in
    # bf16); 0: log achieved TFLOP/s only, no MFU.
    peak_tflops: float = 0.0
    plot: bool = True

    def __post_init__(self) -> None:
        if self.max_steps < 0:
            raise ValueError("trainer.max_steps must be >= 0")
        if self.micro_batch_size < 1 or self.global_batch_size < self.micro_batch_size:
            raise ValueError("trainer.global_batch_size must be >= trainer.micro_batch_size >= 1")
        if self.keep_last < 1:
            raise ValueError("trainer.keep_last must be >= 1")
