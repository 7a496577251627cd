"""The trainer: named steps over megatron-core (DDP, TP/PP schedules, finalize_model_grads).

    trainer = Trainer(cfg); trainer.maybe_resume(); trainer.fit()

``fit`` = loop of ``train_step`` → log → ``evaluate`` / ``save`` at their intervals; a
SIGUSR1/SIGTERM checkpoints at the next step boundary and leaves ``REQUEUE`` in the run
directory (exit codes do not survive torchrun).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist

from rexbert.train import checkpoint as ckpt
from rexbert.train.objectives import LossOutput, build_objective

REQUEUE_MARKER = "REQUEUE"
# Parameter-group entries that come from this run's optimizer config, not from a checkpoint
# of another run that it starts from.
_CONFIG_GROUP_KEYS = ("max_lr", "min_lr", "weight_decay", "wd_mult", "lr_mult", "betas", "eps")


class TrainingStopped(RuntimeError):
    """Too many bad steps in a row."""


class Trainer:
    def __init__(self, cfg) -> None:
        from megatron.core import parallel_state
        from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads

        from megatron_ext.parallel import init_parallel
        from rexbert.data.dataset import PretrainingDataset
        from rexbert.model.build import build_model
        from rexbert.train.metrics import MetricsLogger
        from rexbert.train.optim import build_optimizer
        from rexbert.train.schedules import LRScheduler

        self.cfg = cfg
        tcfg = cfg.trainer
        logging.getLogger("megatron").setLevel(logging.WARNING)
        if tcfg.num_threads:
            torch.set_num_threads(tcfg.num_threads)
        self.run_dir = Path(tcfg.run_dir)
        # Data first: a missing path fails before any model is built.
        if cfg.data.loader_backend == "dali":  # fail before any work when the package is missing
            from megatron_ext.compat import require_dali

            require_dali("the DALI data loader (data.loader_backend=dali)")
        self.data = PretrainingDataset(cfg.data)
        self.eval_data = (PretrainingDataset(dataclasses.replace(cfg.data, blend=list(cfg.data.eval_blend),
                                                                 blend_end=None))
                          if cfg.data.eval_blend else None)
        init_parallel(cfg.model.tensor_model_parallel_size, cfg.model.pipeline_model_parallel_size, cfg.model.seed)
        self.dp_rank = parallel_state.get_data_parallel_rank()
        self.dp_size = parallel_state.get_data_parallel_world_size()
        self.is_rank0 = dist.get_rank() == 0
        self._last_stage = parallel_state.is_pipeline_last_stage()
        self.model = build_model(cfg.model)
        # model.compile: torch.compile per layer or whole model, in place (names unchanged)
        from rexbert.model.compile import maybe_compile

        self.model = maybe_compile(self.model, cfg.model)
        self.device = next(self.model.parameters()).device
        self._dali = None  # data.loader_backend=dali: (loader, next sample), built at the first step
        tc = self.model.config
        tc.calculate_per_token_loss = True  # exact token mean over the global batch
        tc.finalize_model_grads_func = finalize_model_grads
        tc.variable_seq_lengths = True  # packed micro-batches differ in length
        self.ddp = DistributedDataParallel(config=tc, ddp_config=DistributedDataParallelConfig(), module=self.model)
        self.optimizer = build_optimizer(cfg.optimizer, [self.ddp])
        self.scheduler = LRScheduler(cfg.schedule, self.optimizer, tcfg.max_steps)
        self.objective = build_objective(cfg.objective, self.model)
        self.metrics = MetricsLogger(self.run_dir, cfg.logging, run_name=self.run_dir.name,
                                     run_config=_to_dict(cfg), enabled=self.is_rank0)
        self.step = 0
        self.consumed_samples = 0
        self.skipped_steps = 0
        self._consecutive_skips = 0
        self._loss_ema: Optional[float] = None
        self._signal_received = False
        self._count_correct = True  # top-1 accuracy: on logged steps and in evaluate()
        self._apply_objective_mode()

    # -- state ------------------------------------------------------------------------

    def _apply_objective_mode(self) -> None:
        self.model.set_causal(self.cfg.objective.is_causal_at(self.step))
        objective = self.cfg.objective.data_objective_at(self.step)
        for data in (self.data, self.eval_data):
            if data is not None and data.config.masking.objective != objective:
                data.config.masking = dataclasses.replace(data.config.masking, objective=objective)
                if data is self.data:
                    self._dali = None  # its prefetched batches were masked for the other objective

    def maybe_resume(self) -> str:
        """Resume from this run's newest complete checkpoint; else start from
        ``trainer.load`` (checkpoint or HF folder) with the configured resets."""
        own = ckpt.find_checkpoint(self.run_dir)
        if own is not None:
            common = ckpt.load_checkpoint(own, self.model, self.optimizer)
            self._restore(common, optimizer=True, schedule=True, data=True)
            return f"resumed from {own}"
        source = self.cfg.trainer.load
        if not source:
            return "fresh start"
        found = ckpt.find_checkpoint(source)
        if found is not None:
            keep_opt = not self.cfg.trainer.reset_optimizer
            # A new run keeps the moments, not the old run's hyper-parameters: its own
            # optimizer.lr / min_lr / weight_decay / betas / eps stay in force.
            settings = [{k: g[k] for k in _CONFIG_GROUP_KEYS if k in g} for g in self.optimizer.param_groups]
            common = ckpt.load_checkpoint(found, self.model, self.optimizer if keep_opt else None, load_rng=False)
            for group, own_settings in zip(self.optimizer.param_groups, settings):
                group.update(own_settings)
            self._restore(common, optimizer=keep_opt, schedule=not self.cfg.trainer.reset_schedule,
                          data=not self.cfg.trainer.reset_data_position)
            return f"started from checkpoint {found}"
        if (Path(source) / "config.json").is_file():
            from rexbert.model.hf import read_hf_folder
            from rexbert.model.parallel_state_dict import load_full_state_dict

            _, full = read_hf_folder(source)
            load_full_state_dict(self.model, full)
            return f"started from Hugging Face folder {source}"
        raise FileNotFoundError(f"trainer.load={source}: no complete checkpoint and no Hugging Face config.json there")

    def _restore(self, common: dict, optimizer: bool, schedule: bool, data: bool) -> None:
        if schedule:
            self.step = common["step"]
            self.scheduler.load_state_dict(common["scheduler"])
        if data:
            self.consumed_samples = common["consumed_samples"]
        self.skipped_steps = common.get("skipped_steps", 0) if schedule else 0
        if schedule:  # the spike guard's memory: without it a resumed run skips other steps
            self._loss_ema = common.get("loss_ema")
            self._consecutive_skips = common.get("consecutive_skips", 0)
        self.scheduler.step(self.step, self.consumed_samples * self.cfg.data.seq_length)
        self._apply_objective_mode()

    def save(self) -> Path:
        common = ckpt.common_state(self.step, self.consumed_samples, self.scheduler.state_dict(),
                                   {"skipped_steps": self.skipped_steps, "loss_ema": self._loss_ema,
                                    "consecutive_skips": self._consecutive_skips})
        return ckpt.save_checkpoint(self.run_dir, self.step, self.model, self.optimizer, common,
                                    self.cfg.trainer.keep_last)

    # -- one step ---------------------------------------------------------------------

    def global_batch_size(self, consumed_samples: Optional[int] = None) -> int:
        """The global batch of the step that starts at ``consumed_samples`` (default: the next)."""
        from rexbert.train.schedules import global_batch_size_at

        consumed = self.consumed_samples if consumed_samples is None else consumed_samples
        return global_batch_size_at(self.cfg.batch_ramp, consumed * self.cfg.data.seq_length,
                                    self.cfg.trainer.global_batch_size, self.cfg.trainer.micro_batch_size,
                                    self.dp_size)

    def _train_micro_batches(self, global_batch: int) -> list[dict]:
        """This step's micro-batches on the model's device, from ``data.loader_backend``."""
        first = self.consumed_samples
        if self.cfg.data.loader_backend == "dali":
            if self._dali is None or self._dali[1] != first:  # first step, resume, objective switch
                from rexbert.data.dali_loader import DaliMicroBatches

                device_id = self.device.index if self.device.type == "cuda" else None
                loader = DaliMicroBatches(self.global_batch_size, partial(self._micro_batches, self.data),
                                          first, device_id)
                self._dali = (loader, first)
            batches = self._dali[0].step(first, global_batch)
            self._dali = (self._dali[0], first + global_batch)
            return batches
        return self._on_device(self._micro_batches(self.data, first, global_batch))

    def _on_device(self, batches: list[dict]) -> list[dict]:
        if self.device.type == "cpu":
            return batches
        return [{k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in mb.items()}
                for mb in batches]

    def _micro_batches(self, data, first_sample: int, global_batch: int) -> list[dict]:
        from rexbert.data.collate import collate_packed, collate_padded, pack_multiple

        mbs = self.cfg.trainer.micro_batch_size
        per_rank = global_batch // self.dp_size
        start = first_sample + self.dp_rank * per_rank
        if data.config.packed:
            multiple = pack_multiple(data.config.pad_packed_to, self.cfg.model.fp8)
            collate = partial(collate_packed, pad_to_multiple=multiple, pad_id=data.special.pad_id)
        else:
            collate = partial(collate_padded, pad_id=data.special.pad_id)
        return [collate([data[i] for i in range(s, s + mbs)]) for s in range(start, start + per_rank, mbs)]

    def _forward_step(self, data_iterator, model):
        batch = next(data_iterator)
        if not self._last_stage:  # earlier pipeline stages pass hidden states on; no loss there
            from rexbert.train.objectives import model_inputs

            return model(**model_inputs(batch)), self._loss_func
        return self.objective(model, batch, want_correct=self._count_correct), self._loss_func

    @staticmethod
    def _loss_func(output: LossOutput):
        tokens = output.losses.shape[-1]
        per_term = output.losses.sum(dim=-1)
        total = per_term.sum()
        reduced = {"loss_sum": total.detach(), "tokens": torch.tensor(float(tokens))}
        if output.correct is not None:
            reduced["correct"] = output.correct.sum().float()
        if len(output.terms) > 1:
            for name, value in zip(output.terms, per_term.detach().reshape(-1)):
                reduced[f"loss/{name}"] = value
        return total, torch.tensor(tokens, dtype=torch.int), reduced

    def _run_micro_batches(self, micro_batches: list[dict], forward_only: bool) -> dict[str, float]:
        from megatron.core.pipeline_parallel import get_forward_backward_func

        first = micro_batches[0]["input_ids"]
        outputs = get_forward_backward_func()(
            forward_step_func=self._forward_step, data_iterator=iter(micro_batches), model=[self.ddp],
            num_microbatches=len(micro_batches), seq_length=first.shape[-1], micro_batch_size=first.shape[0],
            forward_only=forward_only,
        )
        return self._reduce(outputs)

    def _reduce(self, outputs: list[dict]) -> dict[str, float]:
        """Sum the micro-batch results over DP ranks; every rank gets the last stage's sums."""
        from megatron.core import parallel_state

        keys = sorted({k for o in outputs for k in o}) if outputs else []
        names: list = [keys]
        last = parallel_state.get_pipeline_model_parallel_last_rank()
        pp_group = parallel_state.get_pipeline_model_parallel_group()
        if parallel_state.get_pipeline_model_parallel_world_size() > 1:
            dist.broadcast_object_list(names, src=last, group=pp_group)
        keys = names[0]
        sums = torch.tensor([sum(float(o[k]) for o in outputs) for k in keys] if outputs else [0.0] * len(keys),
                            dtype=torch.float64)
        dist.all_reduce(sums, group=parallel_state.get_data_parallel_group())
        if parallel_state.get_pipeline_model_parallel_world_size() > 1:
            dist.broadcast(sums, src=last, group=pp_group)
        return dict(zip(keys, sums.tolist()))

    def is_log_step(self, step: int) -> bool:
        """Whether ``fit`` logs the metrics of step ``step`` (1-based, as ``self.step`` after it)."""
        return step % self.cfg.trainer.log_interval == 0 or step == self.cfg.trainer.max_steps

    def train_step(self) -> dict[str, Any]:
        """One optimizer step on the next global batch. Returns its metrics; ``accuracy``
        (masked-token top-1, an argmax over the logits) only on steps that ``fit`` logs."""
        self._apply_objective_mode()
        global_batch = self.global_batch_size()
        micro_batches = self._train_micro_batches(global_batch)
        self.ddp.train()
        self.ddp.zero_grad_buffer()
        self.optimizer.zero_grad()
        start = time.perf_counter()
        self._count_correct = self.is_log_step(self.step + 1)
        try:
            sums = self._run_micro_batches(micro_batches, forward_only=False)
        finally:
            self._count_correct = True
        tokens = max(sums.get("tokens", 0.0), 1.0)
        loss = sums.get("loss_sum", 0.0) / tokens
        skip = self._is_bad(loss)
        if skip:
            self.skipped_steps += 1
            self._consecutive_skips += 1
            if self._consecutive_skips >= self.cfg.trainer.max_consecutive_skips:
                raise TrainingStopped(f"{self._consecutive_skips} bad steps in a row (last loss {loss})")
            grad_norm = float("nan")
        else:
            self._consecutive_skips = 0
            grad_norm = self._optimizer_step()
            self._loss_ema = loss if self._loss_ema is None else 0.9 * self._loss_ema + 0.1 * loss
        elapsed = time.perf_counter() - start
        self.step += 1
        self.consumed_samples += global_batch
        self.scheduler.step(self.step, self.consumed_samples * self.cfg.data.seq_length)
        seq_tokens = self.dp_size * sum(int(mb["input_ids"].numel()) - mb.get("num_padding", 0)
                                        for mb in micro_batches)
        flops = self._step_flops(micro_batches, tokens) * self.dp_size
        result = {"loss": loss, "lr": self.scheduler.current_lr, "grad_norm": grad_norm,
                  "global_batch": global_batch, "tokens_per_s": seq_tokens / elapsed,
                  "tflops_per_s": flops / elapsed / 1e12, "skipped_steps": self.skipped_steps,
                  "consumed_samples": self.consumed_samples}
        if "correct" in sums:
            result["accuracy"] = sums["correct"] / tokens
        if self.cfg.trainer.peak_tflops:
            world = dist.get_world_size()
            result["mfu"] = flops / elapsed / 1e12 / (self.cfg.trainer.peak_tflops * world)
        for key, value in sums.items():
            if key.startswith("loss/"):
                result[key] = value / tokens
        return result

    def _step_flops(self, micro_batches: list[dict], predicted: float) -> float:
        """This rank's model FLOPs for the step (predicted = tokens through the head, all DP ranks)."""
        from rexbert.data.collate import document_lengths
        from rexbert.train.flops import step_flops

        lengths = []
        for mb in micro_batches:
            if "cu_seqlens" in mb:
                lengths.extend(document_lengths(mb))
            else:
                lengths.extend((~mb["padding_mask"]).sum(dim=1).tolist())
        return step_flops(self.cfg.model, lengths, int(predicted / self.dp_size))

    def _optimizer_step(self) -> float:
        """megatron's ``optimizer.step()``, unrolled so the grad norm is measured even when
        nothing is clipped (optimi's step reuses the gradient buffers as scratch)."""
        opt = self.optimizer
        if opt.prepare_grads():  # found inf/nan (fp16 loss scaling only)
            return float("nan")
        clip = self.cfg.optimizer.clip_grad
        grad_norm = opt.clip_grad_norm(clip) if clip > 0 else opt.get_grad_norm()
        opt.step_with_ready_grads()
        return float(grad_norm)

    def _is_bad(self, loss: float) -> bool:
        if not math.isfinite(loss):
            return True
        factor = self.cfg.trainer.spike_factor
        return bool(factor and self._loss_ema is not None and loss > factor * self._loss_ema)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss and masked-token top-1 on the first ``eval_samples`` held-out samples."""
        if self.eval_data is None:
            return {}
        self.ddp.eval()
        n = self.cfg.trainer.eval_samples
        mbs = self.cfg.trainer.micro_batch_size
        chunk = mbs * self.dp_size
        n -= n % chunk
        totals: dict[str, float] = {}
        for first in range(0, n, chunk):
            batches = self._on_device(self._micro_batches(self.eval_data, first, chunk))
            sums = self._run_micro_batches(batches, forward_only=True)
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + v
        tokens = max(totals.get("tokens", 0.0), 1.0)
        self.ddp.train()
        return {"eval_loss": totals.get("loss_sum", 0.0) / tokens, "eval_accuracy": totals.get("correct", 0.0) / tokens}

    # -- the loop ---------------------------------------------------------------------

    def _handle_signal(self, signum, frame) -> None:
        self._signal_received = True

    def _stop_requested(self) -> bool:
        flag = torch.tensor([1.0 if self._signal_received else 0.0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def fit(self) -> dict[str, Any]:
        """Train to ``trainer.max_steps``; returns the last logged metrics."""
        from tqdm import tqdm

        tcfg = self.cfg.trainer
        previous = {s: signal.signal(s, self._handle_signal) for s in (signal.SIGUSR1, signal.SIGTERM)}
        if self.is_rank0:
            (self.run_dir / REQUEUE_MARKER).unlink(missing_ok=True)
        last: dict[str, Any] = {}
        bar = tqdm(total=tcfg.max_steps, initial=self.step, disable=not self.is_rank0, desc="train", dynamic_ncols=True)
        try:
            while self.step < tcfg.max_steps:
                last = self.train_step()
                bar.update(1)
                bar.set_postfix(loss=f"{last['loss']:.3f}", lr=f"{last['lr']:.2e}")
                if self.is_log_step(self.step):
                    self.metrics.log(self.step, last)
                if tcfg.eval_interval and self.step % tcfg.eval_interval == 0 and self.step < tcfg.max_steps:
                    self.metrics.log(self.step, self.evaluate())
                if tcfg.save_interval and self.step % tcfg.save_interval == 0 and self.step < tcfg.max_steps:
                    self.save()
                if self._stop_requested():
                    self.save()
                    if self.is_rank0:
                        (self.run_dir / REQUEUE_MARKER).write_text(f"{self.step}\n")
                    return {**last, "stopped_by_signal": True}
            evaluation = self.evaluate()
            if evaluation:
                self.metrics.log(self.step, evaluation)
                last.update(evaluation)
            self.save()
            if tcfg.export_hf:
                from rexbert.model.hf import export_hf

                export_hf(self.model, self.run_dir / "hf")
            if tcfg.plot and self.is_rank0 and self.metrics.path.is_file():
                from rexbert.train.metrics import plot_losses

                plot_losses(self.metrics.path, self.run_dir / "loss.png", title=self.run_dir.name)
            return last
        finally:
            bar.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.metrics.close()


def _to_dict(cfg) -> dict:
    """The run's config as plain data, for W&B."""
    return dataclasses.asdict(cfg)
