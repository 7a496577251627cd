"""Run an experiment: every arm × seed trained by the ordinary trainer (``rexbert.train``), each
final export evaluated by the ordinary evaluation tasks (``rexbert eval``), then the results
page (``rexbert.experiment.results``).

Resumable at two grains. A stage whose ``stage.complete.json`` exists is never trained again
and an eval whose result JSON exists is never rerun; a stage killed half-way resumes from its
own last checkpoint when it saved one (``trainer.save_interval``), else starts over.

Work layout (``work_dir``)::

    stages/<stage>-<hash>/seed<k>/   # a training run (checkpoints, metrics.jsonl, hf/)
    evals/<arm>/seed<k>/<eval>.json  # one rexbert eval result
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rexbert.experiment.config import ArmConfig, EvalConfig, ExperimentConfig, ExperimentError

COMPLETE = "stage.complete.json"


@dataclass(frozen=True)
class StageRun:
    arm: str
    seed: int
    name: str
    steps: int
    run_dir: Path
    overrides: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return (self.run_dir / COMPLETE).is_file()

    @property
    def export(self) -> Path:
        return self.run_dir / "hf"


def plan_stages(cfg: ExperimentConfig, arm: ArmConfig, seed: int) -> list[StageRun]:
    """The arm's stages for one seed. A stage's folder is keyed by everything that decides its
    weights (shared overrides, the chain of stages up to it, the seed), so arms that begin
    alike share those runs."""
    runs: list[StageRun] = []
    chain: list[Any] = [[*cfg.base_train, *cfg.train], seed]
    previous: Optional[Path] = None
    for stage in arm.stages:
        steps = cfg.stage_steps(stage)
        chain.append([stage.name, steps, list(stage.overrides), sorted(stage.scale_with_steps.items())])
        key = hashlib.sha256(json.dumps(chain).encode()).hexdigest()[:10]
        run_dir = Path(cfg.work_dir) / "stages" / f"{stage.name}-{key}" / f"seed{seed}"
        overrides = [*cfg.base_train, *cfg.train, f"model.seed={seed}", f"data.seed={seed}", f"trainer.run_dir={run_dir}",
                     f"trainer.max_steps={steps}", f"trainer.num_threads={cfg.num_threads}",
                     f"trainer.save_interval={cfg.save_interval}"]
        if previous is not None:
            overrides.append(f"trainer.load={previous}")
        overrides += list(stage.overrides)
        overrides += [f"{k}={max(1, round(v * steps))}" for k, v in stage.scale_with_steps.items()]
        runs.append(StageRun(arm.name, seed, stage.name, steps, run_dir, tuple(overrides)))
        previous = run_dir
    return runs


def eval_path(cfg: ExperimentConfig, arm: str, seed: int, ev: EvalConfig) -> Path:
    return Path(cfg.work_dir) / "evals" / arm / f"seed{seed}" / f"{ev.name}.json"


def train_stage(run: StageRun) -> dict[str, Any]:
    """One training run with the ordinary trainer, in this process; marks it complete."""
    from rexbert.config import load_run_config
    from rexbert.train import checkpoint as ckpt
    from rexbert.train.trainer import Trainer

    if run.run_dir.exists() and ckpt.find_checkpoint(run.run_dir) is None:
        shutil.rmtree(run.run_dir)  # killed before its first checkpoint: start clean
    started = time.perf_counter()
    trainer = Trainer(load_run_config(list(run.overrides)))
    how = trainer.maybe_resume()
    print(f"  {how}", flush=True)
    result = trainer.fit()
    if result.get("stopped_by_signal"):
        raise KeyboardInterrupt(f"stage {run.name} ({run.run_dir}) stopped by a signal after a checkpoint")
    record = {"arm": run.arm, "seed": run.seed, "stage": run.name, "steps": run.steps,
              "seconds": round(time.perf_counter() - started, 1), "final": result, "overrides": list(run.overrides)}
    tmp = run.run_dir / f"{COMPLETE}.tmp"
    tmp.write_text(json.dumps(record, indent=1, default=float))
    tmp.replace(run.run_dir / COMPLETE)
    return record


def run_eval(cfg: ExperimentConfig, ev: EvalConfig, model: Path, out: Path) -> None:
    from rexbert.eval.cli import load_task_config, task_parts
    from rexbert.eval.suite import MODEL_FIELDS, OUTPUT_FIELDS, config_field

    config_cls, run = task_parts(ev.task)
    model_field = config_field(config_cls, MODEL_FIELDS, "model path", ev.task)
    out_field = config_field(config_cls, OUTPUT_FIELDS, "output path", ev.task)
    overrides = [*ev.overrides, *cfg.eval_extra.get(ev.task, []), f"{model_field}={model}", f"{out_field}={out}"]
    if any(f.name == "num_threads" for f in dataclasses.fields(config_cls)):
        overrides.append(f"num_threads={cfg.num_threads}")  # a run setting, like the trainer's
    run(load_task_config(ev.task, overrides))
    if not out.is_file():
        raise ExperimentError(f"eval {ev.name} ({ev.task}) wrote no result at {out}")


def run_experiment(cfg: ExperimentConfig) -> Path:
    """Train and evaluate what is not done yet, then write the results; returns the page."""
    import torch

    from rexbert.experiment.results import write_results
    from rexbert.sample_data.corpus import prepare_sample_corpus

    torch.set_num_threads(cfg.num_threads)
    started = time.perf_counter()
    say = lambda msg: print(f"[experiment {cfg.name} {time.perf_counter() - started:6.0f}s] {msg}", flush=True)  # noqa: E731
    prepare_sample_corpus(Path(cfg.corpus_dir))
    plans = {(arm.name, seed): plan_stages(cfg, arm, seed) for seed in cfg.seeds for arm in cfg.arms}
    unique: dict[Path, StageRun] = {}
    sharing: dict[Path, list[str]] = {}
    for runs in plans.values():
        for run in runs:
            unique.setdefault(run.run_dir, run)
            sharing.setdefault(run.run_dir, []).append(run.arm)
    evals = [(arm, seed, ev) for (arm, seed) in plans for ev in cfg.evals]
    done_stages = sum(r.complete for r in unique.values())
    done_evals = sum(eval_path(cfg, a, s, ev).is_file() for a, s, ev in evals)
    say(f"{len(cfg.arms)} arms × {len(cfg.seeds)} seeds: {len(unique)} training runs ({done_stages} done), "
        f"{len(evals)} evaluations ({done_evals} done); work in {cfg.work_dir}")
    for i, run in enumerate(unique.values(), 1):
        if run.complete:
            continue
        arms = ", ".join(dict.fromkeys(sharing[run.run_dir]))
        say(f"train {i}/{len(unique)}: arm{'s' if ',' in arms else ''} {arms}, seed {run.seed}, stage {run.name} ({run.steps} steps)")
        train_stage(run)
    for i, (arm, seed, ev) in enumerate(evals, 1):
        out = eval_path(cfg, arm, seed, ev)
        if out.is_file():
            continue
        say(f"eval {i}/{len(evals)}: {ev.name} ({ev.task}) on arm {arm}, seed {seed}")
        run_eval(cfg, ev, plans[(arm, seed)][-1].export, out)
    page = write_results(cfg, plans)
    say(f"results: {page}")
    return page
