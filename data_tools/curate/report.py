"""The corpus report: documents and tokens per domain after every stage (so what each
filter removed is visible), the drop reasons, the domain distribution as a figure (like
RexBERT's Figure 1), and a markdown summary a person can read.

Tokens: the final corpus's tokens-per-character ratio is measured with the ModernBERT
tokenizer on a sample (``ReportConfig.token_sample`` documents) and applied to every stage's
character counts, so the report costs one streaming pass per stage and one small
tokenisation, however large the corpus.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .shards import read_documents, write_json_atomic


@dataclass
class ReportConfig:
    token_sample: int = 2000
    tokenizer: str = ""  # a local tokenizer path; empty: the ModernBERT tokenizer that ships with rexbert
    title: str = "Domain corpus"

    def __post_init__(self) -> None:
        if self.token_sample < 1:
            raise ValueError(f"report.token_sample={self.token_sample} must be >= 1")


def count_stage(shards: Sequence[Path]) -> dict[str, dict[str, int]]:
    """domain → {"documents", "chars"} over a stage's output shards."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for path in shards:
        for doc in read_documents(path):
            domain = doc.get("domain", "unknown")
            counts[domain]["documents"] += 1
            counts[domain]["chars"] += len(doc["text"])
    return {d: dict(c) for d, c in sorted(counts.items())}


def tokens_per_char(shards: Sequence[Path], config: ReportConfig) -> float:
    from rexbert.tokenizer import load_tokenizer

    tok = load_tokenizer(config.tokenizer or None)
    texts = []
    for path in shards:
        for doc in read_documents(path):
            texts.append(doc["text"])
            if len(texts) >= config.token_sample:
                break
        if len(texts) >= config.token_sample:
            break
    chars = sum(len(t) for t in texts)
    if not chars:
        return 0.25
    tokens = sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])
    return tokens / chars


def build_report(stages: Sequence[tuple[str, Sequence[Path], dict[str, Any]]], out_dir: Path,
                 config: ReportConfig) -> dict[str, Any]:
    """``stages``: (name, output shards, that stage's summary stats incl. ``dropped``) in
    pipeline order; the last one is the final corpus. Writes report.json, report.md and
    domains.png into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    per_stage = [(name, count_stage(shards), stats) for name, shards, stats in stages]
    ratio = tokens_per_char(stages[-1][1], config) if stages else 0.25
    report = {"title": config.title, "tokens_per_char": ratio, "stages": []}
    for name, counts, stats in per_stage:
        report["stages"].append({
            "stage": name,
            "documents": sum(c["documents"] for c in counts.values()),
            "tokens": round(sum(c["chars"] for c in counts.values()) * ratio),
            "per_domain": {d: {"documents": c["documents"], "tokens": round(c["chars"] * ratio)}
                           for d, c in counts.items()},
            "dropped": stats.get("dropped", {}),
            "bad_lines": stats.get("bad_lines", 0),
        })
    write_json_atomic(out_dir / "report.json", report)
    figure = plot_domains(report["stages"][-1]["per_domain"] if report["stages"] else {}, out_dir / "domains.png",
                          config.title)
    (out_dir / "report.md").write_text(markdown(report, figure.name))
    return report


def markdown(report: dict[str, Any], figure: str) -> str:
    stages = report["stages"]
    lines = [f"# {report['title']}", ""]
    if stages:
        final = stages[-1]
        lines += [f"Final corpus: **{final['documents']:,} documents, ~{final['tokens']:,} tokens** "
                  f"(tokens estimated at {report['tokens_per_char']:.3f} tokens/char, measured with the "
                  "ModernBERT tokenizer on a sample of the final corpus).", "",
                  f"![tokens per domain]({figure})", "", "## Documents and tokens after each stage", "",
                  "| stage | documents | tokens | removed by this stage |", "|---|---:|---:|---|"]
        for s in stages:
            removed = ", ".join(f"{reason} {n:,}" for reason, n in sorted(s["dropped"].items(), key=lambda kv: -kv[1]))
            lines.append(f"| {s['stage']} | {s['documents']:,} | {s['tokens']:,} | {removed or '—'} |")
        domains = sorted({d for s in stages for d in s["per_domain"]})
        lines += ["", "## Documents per domain and stage", "", "| domain | " + " | ".join(s["stage"] for s in stages)
                  + " |", "|---|" + "---:|" * len(stages)]
        for d in domains:
            lines.append(f"| {d} | " + " | ".join(f"{s['per_domain'].get(d, {}).get('documents', 0):,}" for s in stages)
                         + " |")
        bad = sum(s["bad_lines"] for s in stages)
        lines += ["", f"Unreadable input lines skipped (all stages): {bad:,}."]
    return "\n".join(lines) + "\n"


def plot_domains(per_domain: dict[str, dict[str, int]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(per_domain.items(), key=lambda kv: kv[1]["tokens"])
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(items) + 1)))
    total = sum(v["tokens"] for _, v in items) or 1
    ax.barh([d for d, _ in items], [v["tokens"] for _, v in items], color="#4C72B0")
    for i, (_, v) in enumerate(items):
        ax.text(v["tokens"], i, f" {100 * v['tokens'] / total:.1f}%", va="center", fontsize=8)
    ax.set_xlim(0, 1.15 * max([v["tokens"] for _, v in items] or [1]))  # room for the labels
    ax.set_xlabel("tokens (estimated)")
    ax.set_title(f"{title}: tokens per domain")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.partial.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def read_stage_stats(stage_dir: Path, stage: str) -> dict[str, Any]:
    path = stage_dir / f"{stage}.stats.json"
    return json.loads(path.read_text()) if path.is_file() else {}
