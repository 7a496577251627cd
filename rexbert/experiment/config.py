"""An experiment's typed config: ``conf/experiment/<name>.yaml`` merged onto these dataclasses,
then ``key=value`` overrides (OmegaConf, so a misspelled key or a wrong type fails naming it).

An experiment trains several **arms** (recipes) for every seed with the same budget and data,
each arm a chain of **stages** (one training run each, a stage starting from the previous
one's checkpoint), then runs the same **evals** (``rexbert eval`` tasks) on every arm's final
export. Stages with the same settings are trained once and shared between arms (both arms
of the annealing experiment start from one general phase).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence


class ExperimentError(ValueError):
    """A bad experiment config or a run that cannot go on; the message names the key or file."""


@dataclass
class StageConfig:
    name: str = ""
    steps: int = 0
    overrides: list[str] = field(default_factory=list)  # training overrides (Hydra syntax)
    # key → multiplier: the key is set to round(multiplier × this stage's steps) after step_scale,
    # e.g. {objective.switch_step: 0.25} switches CLM→MLM a quarter of the way through.
    scale_with_steps: dict[str, float] = field(default_factory=dict)


@dataclass
class ArmConfig:
    name: str = ""
    label: str = ""  # in tables and plots; default: name
    stages: list[StageConfig] = field(default_factory=list)


@dataclass
class EvalConfig:
    name: str = ""
    task: str = ""  # a `rexbert eval` task: masked_tokens, glue, matryoshka, retrieval, ...
    overrides: list[str] = field(default_factory=list)
    # column label → dotted path into the result's "metrics" ("128.top1"); a grid eval
    # (matryoshka) names the grid's path instead, e.g. {ndcg@10: grid}.
    metrics: dict[str, str] = field(default_factory=dict)
    grid: bool = False


@dataclass
class ExpectConfig:
    """The paper's claim as a comparison: ``better`` beats ``than`` on ``metric``."""
    metric: str = ""  # a column of the table (an eval's metric label, or "<eval label> <cell>" for grids)
    better: str = ""  # arm name
    than: str = ""  # arm name


@dataclass
class ExperimentConfig:
    name: str = ""
    title: str = ""
    paper: str = ""
    claim: str = ""
    setting: str = ""  # one paragraph for the results page
    caveat: str = ""  # why a toy run might not reproduce the paper
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    base_train: list[str] = field(default_factory=list)  # conf/experiment/_base.yaml: every experiment's
    train: list[str] = field(default_factory=list)  # this experiment's overrides, for every stage
    arms: list[ArmConfig] = field(default_factory=list)
    # Evals defined once in conf/experiment/_base.yaml (shared_evals) and picked by name here,
    # before the experiment's own `evals`.
    shared_evals: dict[str, EvalConfig] = field(default_factory=dict)
    use_evals: list[str] = field(default_factory=list)
    evals: list[EvalConfig] = field(default_factory=list)
    expect: list[ExpectConfig] = field(default_factory=list)
    step_scale: float = 1.0  # multiplies every stage's steps (the reduced test runs use ~0.02)
    eval_extra: dict[str, list[str]] = field(default_factory=dict)  # task → more overrides (tests)
    corpus_dir: str = "runs/experiments/_corpus"
    work_dir: str = "runs/experiments/${name}"
    output: str = "docs/results/${name}"
    index: Optional[str] = "docs/results.md"  # the page indexing every experiment; null: none
    # 1, not 2: on a 2-core machine shared with anything else, 2 OpenMP threads stall on each
    # other (measured 1.3 s/step vs 0.06 s quiet, for the tiny model); 1 thread degrades gracefully.
    num_threads: int = 1
    # Checkpoint every N steps inside a stage, so a killed stage resumes (not part of a run's
    # identity: it does not change the weights). 0: only at the end.
    save_interval: int = 500

    def __post_init__(self) -> None:
        if not self.name:
            raise ExperimentError("experiment config: name is empty")
        if not self.seeds:
            raise ExperimentError(f"experiment {self.name}: seeds is empty")
        if len(set(self.seeds)) != len(self.seeds):
            raise ExperimentError(f"experiment {self.name}: seeds {self.seeds} repeat")
        if self.step_scale <= 0:
            raise ExperimentError(f"experiment {self.name}: step_scale must be > 0")
        names = [a.name for a in self.arms]
        if len(names) < 2 or len(set(names)) != len(names) or not all(names):
            raise ExperimentError(f"experiment {self.name}: arms need two or more distinct names, got {names}")
        for arm in self.arms:
            arm.label = arm.label or arm.name
            if not arm.stages:
                raise ExperimentError(f"experiment {self.name}: arm {arm.name} has no stages")
            for i, stage in enumerate(arm.stages):
                if not stage.name or stage.steps < 1:
                    raise ExperimentError(f"experiment {self.name}: arm {arm.name} stage {i} needs a name and steps >= 1")
        for name in self.use_evals:
            if name not in self.shared_evals:
                raise ExperimentError(f"experiment {self.name}: use_evals names {name!r}, not one of "
                                      f"{sorted(self.shared_evals)} (conf/experiment/_base.yaml shared_evals)")
        self.evals = [self.shared_evals[n] for n in self.use_evals] + list(self.evals)
        self.shared_evals, self.use_evals = {}, []  # resolved: results.json holds the evals as run
        if not self.evals:
            raise ExperimentError(f"experiment {self.name}: evals is empty")
        for ev in self.evals:
            if not ev.name or not ev.task or not ev.metrics:
                raise ExperimentError(f"experiment {self.name}: eval {ev.name or '?'} needs a name, a task and metrics")
        columns = self.columns()
        for ex in self.expect:
            if ex.metric not in columns:
                raise ExperimentError(f"experiment {self.name}: expect.metric {ex.metric!r} is not a column; "
                                      f"columns: {columns}")
            for arm in (ex.better, ex.than):
                if arm not in names:
                    raise ExperimentError(f"experiment {self.name}: expect names arm {arm!r}, not one of {names}")

    def columns(self) -> list[str]:
        """The result table's columns: each eval's metric labels (a grid eval: its mean over cells)."""
        return [f"{label} (grid mean)" if ev.grid else label for ev in self.evals for label in ev.metrics]

    def stage_steps(self, stage: StageConfig) -> int:
        return max(1, round(stage.steps * self.step_scale))

    def arm(self, name: str) -> ArmConfig:
        return next(a for a in self.arms if a.name == name)


def experiment_conf_dir() -> Path:
    return Path(os.environ.get("REXBERT_CONF_DIR", Path(__file__).resolve().parents[2] / "conf")) / "experiment"


def available_experiments() -> list[str]:
    return sorted(p.stem for p in experiment_conf_dir().glob("*.yaml") if not p.stem.startswith("_"))


def load_experiment(name: str, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """conf/experiment/<name>.yaml ← overrides, typed. Paths are made absolute."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = experiment_conf_dir() / f"{name}.yaml"
    base = experiment_conf_dir() / "_base.yaml"
    if name.startswith("_") or not path.is_file():
        raise ExperimentError(f"no experiment {name!r}: {path} does not exist; "
                              f"choose from {', '.join(available_experiments()) or 'none'}")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ExperimentError(f"overrides must be key=value, got {bad}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), {"name": name},
                                 OmegaConf.load(base) if base.is_file() else {}, OmegaConf.load(path))
        merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
        for key in ("corpus_dir", "work_dir", "output", "index"):
            value = merged[key]
            if value is not None:
                merged[key] = str(Path(value).resolve())
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        where = f" (key {key})" if key else ""
        raise ExperimentError(f"experiment {name} ({path}){where}: {str(e).splitlines()[0]}") from None


def plain(config: Any) -> Any:
    """The config as JSON-able data (stored beside the results)."""
    import dataclasses

    return dataclasses.asdict(config)
