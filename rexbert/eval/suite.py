"""``rexbert eval suite``: several tasks over several models, then the report — baselines
side by side (any HF MLM folder on disk: ours exported, ModernBERT, Ettin, BERT ...).

    rexbert eval suite 'models=[runs/demo/phase3/hf,/models/ModernBERT-base]' output=runs/eval \\
        'tasks={masked_tokens: [data_path=products.parquet], glue: [task=sst2]}'

Results go to ``<output>/<model name>/<task>[-<n>].json``, the report to ``<output>/report/``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rexbert.eval.common import EvalError

MODEL_FIELDS = ("model", "model_path", "model_dir")
OUTPUT_FIELDS = ("output", "output_path", "result_path", "out", "output_dir")


@dataclass
class SuiteConfig:
    models: list[str] = field(default_factory=list)
    output: str = "runs/eval"
    # task → its Hydra overrides (a list per run of that task: {glue: [task=sst2]}).
    tasks: dict[str, list[str]] = field(default_factory=lambda: {"masked_tokens": []})
    title: str = "Evaluation report"

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models is empty: give model folders, e.g. 'models=[runs/demo/phase3/hf]'")
        if not self.tasks:
            raise ValueError("tasks is empty")


def config_field(config_cls: type, names: Sequence[str], what: str, task: str) -> str:
    have = {f.name for f in dataclasses.fields(config_cls)}
    for name in names:
        if name in have:
            return name
    raise EvalError(f"eval task {task}: its config has no {what} field (one of {names})")


def run_suite(overrides: Sequence[str]) -> Path:
    from rexbert.eval.cli import compose_eval, load_task_config, task_parts
    from rexbert.eval.report import build_report

    config: SuiteConfig = compose_eval("suite", SuiteConfig, overrides)
    out = Path(config.output)
    for model in config.models:
        name = Path(model).name if Path(model).name not in ("hf", "") else "-".join(Path(model).parts[-3:-1])
        for task, task_overrides in config.tasks.items():
            config_cls, run = task_parts(task)
            model_field = config_field(config_cls, MODEL_FIELDS, "model path", task)
            out_field = config_field(config_cls, OUTPUT_FIELDS, "output path", task)
            target = out / name / (task if out_field.endswith("dir") else f"{task}.json")
            task_config = load_task_config(task, [*task_overrides, f"{model_field}={model}", f"{out_field}={target}"])
            print(f"[rexbert eval] {task} on {model}", flush=True)
            run(task_config)
    return build_report([out], out / "report", config.title)
