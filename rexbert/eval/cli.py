"""``rexbert eval <task> [HYDRA_OVERRIDE ...]`` (also ``python -m rexbert eval ...``).

Each task's config is a dataclass schema, merged with ``conf/eval/<task>.yaml`` (if any) and
``key=value`` overrides in Hydra's syntax (a misspelled key or a wrong type fails at start,
naming it):

    rexbert eval masked_tokens model=runs/demo/phase3/hf data_path=products.parquet
    rexbert eval glue model=/models/ModernBERT-base task=sst2 'lrs=[2e-5,5e-5]' 'seeds=[0,1,2]'
    rexbert eval suite 'models=[runs/demo/phase3/hf,/models/ModernBERT-base]' output=runs/eval
    rexbert eval report runs/eval -o runs/eval/report
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from rexbert.eval.common import EvalError

# task → (module, config class, run function)
TASKS: dict[str, tuple[str, str, str]] = {
    "masked_tokens": ("rexbert.eval.mlm_protocol", "MaskedTokensConfig", "run_masked_tokens"),
    "relevance": ("rexbert.eval.relevance", "RelevanceConfig", "run_relevance"),
    "glue": ("rexbert.eval.glue", "GlueConfig", "run_glue"),
    "ner": ("rexbert.eval.ner", "NerConfig", "run_ner"),
    "qa": ("rexbert.eval.qa", "QaConfig", "run_qa"),
    "retrieval": ("rexbert.eval.retrieval", "RetrievalConfig", "run_retrieval"),
    "matryoshka": ("rexbert.eval.matryoshka", "MatryoshkaConfig", "run_matryoshka"),
}


def task_parts(task: str) -> tuple[type, Any]:
    if task not in TASKS:
        raise EvalError(f"unknown evaluation task {task!r}; choose from {sorted(TASKS)}, suite or report")
    module, config_name, run_name = TASKS[task]
    mod = importlib.import_module(module)
    return getattr(mod, config_name), getattr(mod, run_name)


def eval_conf_dir() -> Path:
    return Path(os.environ.get("REXBERT_CONF_DIR", Path(__file__).resolve().parents[2] / "conf")) / "eval"


def compose_eval(name: str, schema: type, overrides: Sequence[str]) -> Any:
    """``schema`` ← conf/eval/<name>.yaml (when it exists) ← ``key=value`` overrides, as a
    typed object; an unknown key or a wrong type fails naming it.

    OmegaConf's merge rather than Hydra's compose: the training configs register ``model``
    and ``data`` as Hydra config groups process-wide, which would turn ``model=/path/to/hf``
    into a group override."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    merged = OmegaConf.structured(schema)
    path = eval_conf_dir() / f"{name}.yaml"
    try:
        if path.is_file():
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise EvalError(f"overrides must be key=value, got {bad}")
        merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        where = f" (key {key})" if key else ""
        raise EvalError(f"eval {name} config{where}: {str(e).splitlines()[0]}") from None
    except ValueError as e:  # a dataclass's own check, naming the key
        raise EvalError(f"eval {name} config: {e}") from None


def load_task_config(task: str, overrides: Sequence[str] = ()) -> Any:
    """The typed config of ``task``: schema ← conf/eval/<task>.yaml (if any) ← overrides."""
    config_cls, _ = task_parts(task)
    return compose_eval(task, config_cls, overrides)


def run_task(task: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    config = load_task_config(task, overrides)
    _, run = task_parts(task)
    return run(config)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("tasks:", ", ".join(sorted(TASKS)), "+ suite, report")
        return 0
    task, rest = argv[0], argv[1:]
    try:
        if task == "report":
            from rexbert.eval.report import build_report

            import argparse

            parser = argparse.ArgumentParser(prog="rexbert eval report")
            parser.add_argument("results", nargs="+", help="folders (or files) of result JSONs")
            parser.add_argument("-o", "--out", required=True)
            parser.add_argument("--title", default="Evaluation report")
            args = parser.parse_args(rest)
            print(build_report(args.results, args.out, args.title))
            return 0
        if task == "suite":
            from rexbert.eval.suite import run_suite

            run_suite(rest)
            return 0
        result = run_task(task, rest)
        print({k: v for k, v in result.get("metrics", {}).items()})
        return 0
    except EvalError as e:
        print(f"[rexbert eval] error: {e}", file=sys.stderr)
        return 2
