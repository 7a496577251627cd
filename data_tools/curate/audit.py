"""QA audit of the relevance labels: a stronger model (the judge) re-labels a seeded random
subset of ``labels.jsonl`` through the same backends and cache, and the two are compared:
agreement, Cohen's kappa, the confusion matrix, per-label precision/recall of the labeller
against the judge, and examples of disagreement. A kappa under the threshold flags the
prompt (the definition of relevance) for refinement: give the refined prompt a new version,
relabel, audit again.

Writes ``audit.json``, ``audit.md`` (for people) and ``audit.sample.jsonl`` (each audited
item with both labels) into the output directory.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .label.backends import build_labeller, model_name
from .label.cache import LabelCache, text_sha256
from .label.cli_args import add_labeller_args, labeller_config
from .label.config import LabelConfig
from .label.engine import ensure_labels
from .label.prompt import load_prompt
from .label.run import cache_path
from .shards import AtomicJsonlWriter, BadLine, CurationError, read_documents, write_json_atomic


@dataclass
class AuditConfig:
    sample_size: int = 200          # items re-labelled by the judge (all when fewer)
    seed: int = 0
    kappa_threshold: float = 0.6    # below: the prompt needs refinement
    max_examples: int = 20          # disagreements shown in the report
    fail_below_threshold: bool = False  # exit 1 when flagged (a pipeline gate)
    judge: LabelConfig = field(default_factory=LabelConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.sample_size, int) or self.sample_size < 1:
            raise ValueError(f"audit.sample_size={self.sample_size!r} must be an integer >= 1")
        if not -1.0 <= self.kappa_threshold <= 1.0:
            raise ValueError(f"audit.kappa_threshold={self.kappa_threshold!r} must be in [-1, 1]")
        if not isinstance(self.max_examples, int) or self.max_examples < 0:
            raise ValueError(f"audit.max_examples={self.max_examples!r} must be an integer >= 0")


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> Optional[float]:
    """Cohen's kappa of two raters over the same items: (p_o - p_e) / (1 - p_e), with p_e the
    agreement expected from each rater's label frequencies. None when undefined (p_e = 1:
    both raters gave one and the same label to everything)."""
    if len(a) != len(b):
        raise ValueError(f"raters labelled {len(a)} and {len(b)} items")
    if not a:
        return None
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def confusion_matrix(a: Sequence[str], b: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """``matrix[label_a][label_b]``: items rater a labelled label_a and rater b label_b."""
    matrix = {x: {y: 0 for y in labels} for x in labels}
    for x, y in zip(a, b):
        matrix[x][y] += 1
    return matrix


def _per_label(matrix: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    # The labeller measured against the judge's labels as reference.
    out = {}
    for k in matrix:
        predicted = sum(matrix[k].values())
        reference = sum(row[k] for row in matrix.values())
        hit = matrix[k][k]
        out[k] = {"labeller": predicted, "judge": reference,
                  "precision": round(hit / predicted, 4) if predicted else None,
                  "recall": round(hit / reference, 4) if reference else None}
    return out


def _read_labels(path: Path, labels: Sequence[str]) -> tuple[list[dict[str, Any]], list[BadLine]]:
    """The usable rows of a labels.jsonl; unreadable lines and rows without a known label are
    returned as bad lines (line 0: read_documents does not say which line a row came from)."""
    bad: list[BadLine] = []
    rows = []
    for doc in read_documents(path, "text", "id", bad):
        missing = [k for k in ("label", "model", "prompt_version") if not isinstance(doc.get(k), str)]
        if missing:
            bad.append(BadLine(str(path), 0, f"item {doc['id']!r}: no string field(s) {', '.join(missing)}"))
        elif doc["label"] not in labels:
            bad.append(BadLine(str(path), 0, f"item {doc['id']!r}: label {doc['label']!r} not in {list(labels)}"))
        else:
            rows.append(doc)
    if not rows:
        raise CurationError(f"{path}: no labelled items to audit")
    return rows, bad


def audit_labels(labels_file: Path, out_dir: Path, config: AuditConfig) -> dict[str, Any]:
    """Audit ``labels_file`` (a labelling run's labels.jsonl); returns what audit.json holds."""
    prompt = load_prompt(config.judge.prompt)
    rows, bad = _read_labels(Path(labels_file), prompt.labels)
    if bad:
        print(f"[audit] {labels_file}: {len(bad)} unusable line(s) skipped (first: {bad[0].error})",
              file=sys.stderr)
    versions = {r["prompt_version"] for r in rows}
    if versions != {prompt.version}:
        raise CurationError(f"{labels_file}: labels made with prompt version(s) {sorted(versions)}, "
                            f"but the judge's prompt is {prompt.version!r} ({prompt.source}); "
                            "agreement is only meaningful under the same definition")
    judge_model = model_name(config.judge)
    labeller_models = sorted({r["model"] for r in rows})
    if labeller_models == [judge_model]:
        raise CurationError(f"audit.judge.model={judge_model!r} is the labeller itself; "
                            "audit with a different (stronger) model")
    sample = random.Random(config.seed).sample(rows, min(config.sample_size, len(rows)))
    texts = {text_sha256(r["text"][:config.judge.max_chars]): r["text"][:config.judge.max_chars] for r in sample}

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with LabelCache(cache_path(config.judge, out_dir)) as cache:
        cache.check_prompt(prompt.version, prompt.content_sha256, prompt.source)
        outcome = ensure_labels(texts, cache, prompt, judge_model,
                                lambda: build_labeller(config.judge, prompt),
                                progress=config.judge.progress, desc=f"audit ({judge_model})")

    judged, mine, theirs, disagreements = [], [], [], []
    for r in sample:
        judge_label = outcome.labels.get(text_sha256(r["text"][:config.judge.max_chars]))
        judged.append({"id": r["id"], "label": r["label"], "judge_label": judge_label})
        if judge_label is None:
            continue
        mine.append(r["label"])
        theirs.append(judge_label)
        if judge_label != r["label"] and len(disagreements) < config.max_examples:
            disagreements.append({"id": r["id"], "label": r["label"], "judge_label": judge_label,
                                  "text": r["text"][:500]})
    matrix = confusion_matrix(mine, theirs, prompt.labels)
    kappa = cohen_kappa(mine, theirs)
    agreement = sum(x == y for x, y in zip(mine, theirs)) / len(mine) if mine else None
    flagged = kappa is None or kappa < config.kappa_threshold
    report = {
        "labels_file": str(labels_file), "prompt_version": prompt.version, "prompt_file": prompt.source,
        "labeller_models": labeller_models, "judge_model": judge_model,
        "items": len(rows), "sample_size": len(sample), "seed": config.seed,
        "judged": len(mine), "judge_unlabelled": len(sample) - len(mine),
        "agreement": round(agreement, 4) if agreement is not None else None,
        "kappa": round(kappa, 4) if kappa is not None else None,
        "kappa_threshold": config.kappa_threshold, "needs_refinement": flagged,
        "confusion": matrix, "per_label": _per_label(matrix),
        "disagreements": disagreements, "disagreements_total": sum(x != y for x, y in zip(mine, theirs)),
        "requests_sent": outcome.requests_sent, "cache_hits": outcome.cache_hits,
        "bad_lines": len(bad), "config": asdict(config),
    }
    sample_writer = AtomicJsonlWriter(out_dir / "audit.sample.jsonl")
    for row in judged:
        sample_writer.write(row)
    sample_writer.commit()
    write_json_atomic(out_dir / "audit.json", report)
    tmp = out_dir / ".audit.md.partial"
    tmp.write_text(render_markdown(report), encoding="utf-8")
    tmp.replace(out_dir / "audit.md")
    return report


def render_markdown(r: dict[str, Any]) -> str:
    labels = list(r["confusion"])
    kappa = "undefined (one label throughout)" if r["kappa"] is None else f"{r['kappa']:.3f}"
    agreement = "n/a" if r["agreement"] is None else f"{r['agreement']:.1%}"
    verdict = (f"**Refine the prompt**: kappa is below the threshold {r['kappa_threshold']}."
               if r["needs_refinement"] else f"OK: kappa meets the threshold {r['kappa_threshold']}.")
    lines = [
        f"# Label audit: {r['prompt_version']}", "",
        f"- labels: `{r['labels_file']}` ({r['items']} items, by {', '.join(r['labeller_models'])})",
        f"- judge: `{r['judge_model']}`, {r['sample_size']} items sampled (seed {r['seed']}), "
        f"{r['judged']} judged, {r['judge_unlabelled']} left unlabelled by the judge",
        f"- agreement: {agreement}",
        f"- Cohen's kappa: {kappa}", "", verdict, "",
        "## Confusion (rows: labeller, columns: judge)", "",
        "| labeller \\ judge | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for a in labels:
        lines.append(f"| {a} | " + " | ".join(str(r["confusion"][a][b]) for b in labels) + " |")
    lines += ["", "| label | labeller | judge | precision | recall |", "|---|---|---|---|---|"]
    for k, v in r["per_label"].items():
        lines.append(f"| {k} | {v['labeller']} | {v['judge']} | {v['precision']} | {v['recall']} |")
    lines += ["", f"## Disagreements ({len(r['disagreements'])} of {r['disagreements_total']} shown)", ""]
    for d in r["disagreements"]:
        text = " ".join(d["text"].split())[:300]
        lines.append(f"- `{d['id']}`: labeller **{d['label']}**, judge **{d['judge_label']}**: {text}")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_tools.curate audit",
        description="Re-label a seeded random subset of labels.jsonl with a stronger model (the "
        "judge; same backends and cache) and report agreement, Cohen's kappa, the confusion "
        "matrix and disagreements; a kappa below the threshold flags the prompt.")
    p.add_argument("labels", type=Path, help="labels.jsonl of a labelling run")
    p.add_argument("-o", "--output-dir", required=True, type=Path)
    p.add_argument("--sample-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--kappa-threshold", type=float)
    p.add_argument("--max-examples", type=int)
    p.add_argument("--fail-below-threshold", action="store_true", help="exit 1 when flagged")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    add_labeller_args(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="[audit] %(levelname)s %(name)s: %(message)s")
    try:
        judge = labeller_config(args)
        if args.no_progress:
            judge.progress = False
        given = {k: getattr(args, k) for k in ("sample_size", "seed", "kappa_threshold", "max_examples")
                 if getattr(args, k) is not None}
        config = AuditConfig(**given, fail_below_threshold=args.fail_below_threshold, judge=judge)
        report = audit_labels(args.labels, args.output_dir, config)
    except (ValueError, CurationError) as e:
        print(f"audit: error: {e}", file=sys.stderr)
        return 2
    print(f"audit: {report['judged']} items judged by {report['judge_model']}: agreement "
          f"{report['agreement']}, kappa {report['kappa']}"
          f"{' -> REFINE THE PROMPT' if report['needs_refinement'] else ''}; "
          f"see {args.output_dir / 'audit.md'}", file=sys.stderr)
    return 1 if report["needs_refinement"] and config.fail_below_threshold else 0


if __name__ == "__main__":
    sys.exit(main())
