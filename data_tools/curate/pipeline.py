"""The whole curation run, stage by stage, in one output directory:

    <output>/01_select/   shards with domain + route            (shard-parallel)
    <output>/02_sample/   sample.jsonl: N per filtered domain
    <output>/03_label/    labels.jsonl + the label cache
    <output>/04_audit/    audit.json / audit.md
    <output>/05_distill/  <domain>.bin fastText models, metrics.json / metrics.md
    <output>/06_filter/   shards scored and cut at each domain's threshold   (shard-parallel)
    <output>/07_clean/    language id, quality rules, profanity               (shard-parallel)
    <output>/08_dedup/    MinHash near-duplicates removed (over all shards)
    <output>/09_decontam/ documents sharing long n-grams with eval sets removed (shard-parallel)
    <output>/10_mine/     + spans / span_types: the final corpus, for data_tools.preprocess
    <output>/report/      report.md, report.json, domains.png

Every stage resumes (finished shards and stored labels are not redone). Shard-parallel
stages take ``shard_index``/``num_shards`` (a Slurm array: launch/curate.sh); the others run
once over everything.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .classify.config import DistillConfig, FilterConfig
from .clean.config import CleanConfig
from .decontam import DecontamConfig
from .dedup import DedupConfig
from .label.config import LabelConfig
from .audit import AuditConfig
from .mine import MineConfig
from .report import ReportConfig
from .sample import SampleConfig
from .select import SelectConfig
from .shards import (CurationError, expand_inputs, output_shards, run_stage, shard_name, stage_summary,
                     write_json_atomic)

STAGES = ("select", "sample", "label", "audit", "distill", "filter", "clean", "dedup", "decontam", "mine", "report")
SHARD_PARALLEL = ("select", "filter", "clean", "decontam", "mine")
DIRS = {s: f"{i:02d}_{s}" for i, s in enumerate(STAGES[:-1], 1)} | {"report": "report"}


@dataclass
class CurateConfig:
    inputs: list[str] = field(default_factory=list)  # shards, folders or globs of the domain-labelled corpus
    output: str = "runs/curate"
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    # Stages to redo although they finished (their done markers are ignored); e.g. after a
    # config change: redo=[distill,filter].
    redo: list[str] = field(default_factory=list)
    shard_index: int = 0  # this task's share of the shard-parallel stages: shards[i::n]
    num_shards: int = 1
    progress: bool = True
    select: SelectConfig = field(default_factory=SelectConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    label: LabelConfig = field(default_factory=lambda: LabelConfig(backend="keyword"))
    audit: AuditConfig = field(default_factory=lambda: AuditConfig(judge=LabelConfig(backend="keyword")))
    distill: DistillConfig = field(default_factory=DistillConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    mine: MineConfig = field(default_factory=MineConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def __post_init__(self) -> None:
        unknown = [s for s in [*self.stages, *self.redo] if s not in STAGES]
        if unknown:
            raise ValueError(f"stages: unknown {unknown}; choose from {list(STAGES)}")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"shard_index={self.shard_index} must be in [0, num_shards={self.num_shards})")


def stage_dir(config: CurateConfig, stage: str) -> Path:
    return Path(config.output) / DIRS[stage]


def _all_names(config: CurateConfig) -> list[str]:
    """Every shard's file name, in corpus order. Names stay the same through the stages, so
    an array task takes the same shards in every stage, whatever the others have finished."""
    if not config.inputs:
        raise CurationError("inputs is empty: give the corpus shards, e.g. inputs=[/data/finefineweb]")
    return [shard_name(p) for p in expand_inputs(config.inputs)]


def _stage_inputs(config: CurateConfig, stage: str, all_shards: bool = False) -> list[Path]:
    """The input shards of ``stage`` for this task (``shard_index::num_shards`` of the
    corpus's shards, or all of them): the corpus for select, else the same names in the
    output of the nearest earlier shard-producing stage, which must have finished them."""
    if stage == "select":
        shards = expand_inputs(config.inputs) if config.inputs else _all_names(config)
        return shards if all_shards else shards[config.shard_index::config.num_shards]
    order = ("select", "filter", "clean", "dedup", "decontam", "mine")
    source = order[order.index(stage) - 1]
    folder = stage_dir(config, source)
    names = _all_names(config)
    if not all_shards:
        names = names[config.shard_index::config.num_shards]
    missing = [n for n in names if not (folder / f"{n}.done.json").is_file()]
    if missing:
        raise CurationError(f"{stage} needs {source}'s output of {len(missing)} shard(s) (first: "
                            f"{folder / missing[0]}); run stages=[{source}] first")
    return [folder / n for n in names]


def run(config: CurateConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``config.stages`` in pipeline order; returns {stage: summary}. A whole-corpus
    stage that finished before (its ``<stage>.complete.json``) is not redone unless in ``redo``;
    shard-parallel stages skip finished shards (their own done markers)."""
    results: dict[str, Any] = {}
    for stage in [s for s in STAGES if s in config.stages]:
        start = time.perf_counter()
        marker = stage_dir(config, stage) / f"{stage}.complete.json"
        if stage in config.redo:
            _forget(config, stage)
        once = stage not in SHARD_PARALLEL and stage != "report"  # the report is cheap: always fresh
        if once and marker.is_file():
            results[stage] = json.loads(marker.read_text())
            log(f"[curate] {stage}: finished before ({marker}); redo=[{stage}] to run it again")
            continue
        results[stage] = STAGE_RUNNERS[stage](config)
        if once:
            write_json_atomic(marker, results[stage])
        log(f"[curate] {stage}: {_describe(results[stage])} ({time.perf_counter() - start:.1f} s)")
    return results


def _forget(config: CurateConfig, stage: str) -> None:
    """Remove a stage's done markers so that it runs again (its outputs are overwritten)."""
    folder = stage_dir(config, stage)
    if not folder.is_dir():
        return
    if stage in SHARD_PARALLEL:  # only this task's shards: array tasks must not race
        markers = [folder / f"{n}.done.json" for n in _all_names(config)[config.shard_index::config.num_shards]]
    else:
        markers = [*folder.glob("*.done.json"), folder / f"{stage}.complete.json"]
    for marker in markers:
        marker.unlink(missing_ok=True)


def _describe(summary: Any) -> str:
    if isinstance(summary, dict) and "kept" in summary:
        dropped = ", ".join(f"{k} {v}" for k, v in summary.get("dropped", {}).items())
        return f"{summary['kept']}/{summary['documents_in']} kept" + (f" (dropped: {dropped})" if dropped else "")
    return "done"


def _shard_stage(stage: str, make_step: Callable[[], Any], per_shard: bool = False):
    def runner(config: CurateConfig) -> dict[str, Any]:
        shards = _stage_inputs(config, stage)
        out = stage_dir(config, stage)
        run_stage(stage, shards, out, make_step(config), progress=config.progress, per_shard_step=per_shard,
                  write_summary=False)
        return stage_summary(out)
    return runner


def _select_step(config: CurateConfig):
    from .select import make_select_step

    return lambda shard: make_select_step(config.select, shard)


def _sample(config: CurateConfig) -> dict[str, Any]:
    from .sample import sample

    out = stage_dir(config, "sample")
    out.mkdir(parents=True, exist_ok=True)
    return sample(_stage_inputs(config, "filter", all_shards=True), out / "sample.jsonl", config.sample)


def _label(config: CurateConfig) -> dict[str, Any]:
    from .label.run import label_documents

    return label_documents([stage_dir(config, "sample") / "sample.jsonl"], stage_dir(config, "label"), config.label)


def _audit(config: CurateConfig) -> dict[str, Any]:
    from .audit import audit_labels

    return audit_labels(stage_dir(config, "label") / "labels.jsonl", stage_dir(config, "audit"), config.audit)


def _distill(config: CurateConfig) -> dict[str, Any]:
    from .classify.distill import distill

    return distill(stage_dir(config, "label") / "labels.jsonl", stage_dir(config, "distill"), config.distill)


def _filter_step(config: CurateConfig):
    import dataclasses

    from .classify.filter import make_filter_step

    filter_config = config.filter
    if not filter_config.models_dir:
        filter_config = dataclasses.replace(filter_config, models_dir=str(stage_dir(config, "distill")))
    if not filter_config.domains_direct and not filter_config.domains_filter:
        filter_config = dataclasses.replace(filter_config, domains_direct=config.select.domains_direct,
                                            domains_filter=config.select.domains_filter)
    return make_filter_step(filter_config)


def _clean_step(config: CurateConfig):
    from .clean.pipeline import make_clean_step

    return make_clean_step(config.clean)


def _dedup(config: CurateConfig) -> dict[str, Any]:
    from .dedup import dedup

    dedup(_stage_inputs(config, "dedup", all_shards=True), stage_dir(config, "dedup"), config.dedup)
    return stage_summary(stage_dir(config, "dedup"))


def _decontam_step(config: CurateConfig):
    from .decontam import make_decontam_step

    return make_decontam_step(config.decontam)


def _mine_step(config: CurateConfig):
    from .mine import make_mine_step

    return make_mine_step(config.mine)


def _report(config: CurateConfig) -> dict[str, Any]:
    from .report import build_report

    stages = []
    for stage in ("select", "filter", "clean", "dedup", "decontam", "mine"):
        folder = stage_dir(config, stage)
        if folder.is_dir():
            stages.append((stage, output_shards(folder), stage_summary(folder)))
    if not stages:
        raise CurationError(f"report: no stage output under {config.output}")
    return build_report(stages, stage_dir(config, "report"), config.report)


STAGE_RUNNERS: dict[str, Callable[[CurateConfig], Any]] = {
    "select": _shard_stage("select", _select_step, per_shard=True),
    "sample": _sample,
    "label": _label,
    "audit": _audit,
    "distill": _distill,
    "filter": _shard_stage("filter", _filter_step),
    "clean": _shard_stage("clean", _clean_step),
    "dedup": _dedup,
    "decontam": _shard_stage("decontam", _decontam_step),
    "mine": _shard_stage("mine", _mine_step),
    "report": _report,
}
