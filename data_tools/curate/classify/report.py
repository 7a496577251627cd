"""``metrics.md``: the distill metrics as tables to read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _ms(cv: dict[str, Any], key: str) -> str:
    v = cv.get(key)
    return f"{v['mean']:.3f} ± {v['std']:.3f}" if v else "n/a"


def _f(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _counts(counts: dict[str, int]) -> str:
    return " (" + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")" if counts else ""


def render(metrics: dict[str, Any]) -> str:
    cfg, rows = metrics["config"], metrics["labels"]
    lines = [
        "# Relevance classifiers (fastText)", "",
        f"Labels: `{rows['file']}`: {rows['rows']} rows, {rows['usable']} usable, {rows['bad']} bad"
        f"{_counts(rows['bad_by_reason'])}, {sum(rows['duplicates'].values())} repeats skipped"
        f"{_counts(rows['duplicates'])}.",
        f"Split: {1 - cfg['validation_fraction']:.0%} train / {cfg['validation_fraction']:.0%} validation "
        f"(stratified, seed {cfg['seed']}); {cfg['k_folds']}-fold CV on train at p >= 0.5; threshold: "
        f"highest validation recall at precision >= {cfg['target_precision']}.", "",
        "## Models", "",
        "| model | items (rel / not) | CV accuracy | CV precision | CV recall | CV F1 | val accuracy | val ROC-AUC "
        "| threshold | val precision | val recall | target met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics["models"].items():
        c, cv, v, t = m["counts"], m["cv"], m["validation"], m["threshold"]
        lines.append(
            f"| {name} | {c['items']} ({c['relevant']} / {c['not_relevant']}) | {_ms(cv, 'accuracy')} "
            f"| {_ms(cv, 'precision')} | {_ms(cv, 'recall')} | {_ms(cv, 'f1')} | {_f(v['accuracy'])} "
            f"| {_f(v['roc_auc'])} | {t['value']:.4f} | {_f(t['precision'])} | {_f(t['recall'])} "
            f"| {'yes' if t['target_met'] else '**NO** (max-F1 threshold)'} |")
    lines += ["", "## Domains", "", "| domain | labelled items (relevant) | model | threshold | note |",
              "|---|---|---|---|---|"]
    for domain, d in metrics["domains"].items():
        note = d["fallback_reason"] or ""
        view = d.get("pooled_validation_on_domain", {})
        if view.get("n"):
            note += (f"; pooled model on this domain's {view['n']} validation items: precision "
                     f"{view['precision']:.3f}, recall {view['recall']:.3f}")
        lines.append(f"| {domain} | {d['items']} ({d['relevant']}) | {d['model']} | {d['threshold']:.4f} | {note} |")
    if rows["examples"]:
        lines += ["", "## Skipped rows (first ones)", ""] + [f"- {e}" for e in rows["examples"]]
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, metrics: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(render(metrics), encoding="utf-8")
    os.replace(tmp, path)
