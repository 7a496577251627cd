"""Distil LLM relevance labels into fastText classifiers, one per domain (or pooled).

Per model: a seeded split of its labelled items into train / validation, stratified by
label; k-fold cross-validation on the train part (stratified, seeded; each fold's metrics
at P(relevant) >= 0.5, then mean and std); the final model trained on the whole train part;
on the validation part, accuracy and ROC-AUC, and the decision threshold on P(relevant)
calibrated for the highest recall at a precision >= ``target_precision`` (see
``metrics.calibrate_threshold``), with its precision and recall reported; if no threshold
reaches the target, the max-F1 one, flagged ``target_met: false``.

Outputs in ``out_dir`` (each written atomically): ``<domain>.bin`` per model (the pooled
one ``_pooled.bin``), ``<domain>.validation.jsonl`` (id, domain, label, p_relevant of each
validation item, to audit the threshold), ``metrics.json`` (what the filter reads: per
domain its model file and threshold) and ``metrics.md`` (the same, to read).
"""

from __future__ import annotations

import hashlib
import re
import sys
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..shards import AtomicJsonlWriter, CurationError, write_json_atomic
from . import model as ft
from .config import DistillConfig
from .labels import Item, read_labels
from .metrics import binary_metrics, calibrate_threshold, mean_std, roc_auc
from .report import write_markdown

POOLED = "_pooled"


def model_stem(domain: str) -> str:
    """A file-name-safe stem for a domain's model; never starts with '_' (so never
    ``_pooled``), and one that had to be changed gets a hash of the name (no collisions)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", domain).lstrip("._-")
    if stem != domain:
        stem = f"{stem or 'domain'}-{hashlib.sha1(domain.encode()).hexdigest()[:8]}"
    return stem


def too_few(items: list[Item], config: DistillConfig) -> Optional[str]:
    """Why ``items`` cannot get a model of their own, or None."""
    n_rel = sum(it.relevant for it in items)
    n_not = len(items) - n_rel
    if len(items) < config.min_items_per_domain:
        return f"{len(items)} labelled items < distill.min_items_per_domain={config.min_items_per_domain}"
    if min(n_rel, n_not) < config.k_folds + 1:
        return (f"{n_rel} relevant / {n_not} not_relevant: each label needs >= k_folds + 1 = "
                f"{config.k_folds + 1} items")
    return None


def stratified_split(relevant: np.ndarray, config: DistillConfig, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the train and validation parts (each label split in the same proportion,
    at least one of each label in validation and ``k_folds`` in train) and each train
    item's fold (0..k-1, stratified too)."""
    train, val, folds = [], [], []
    for cls in (True, False):
        idx = rng.permutation(np.flatnonzero(relevant == cls))
        n_val = min(max(1, round(config.validation_fraction * len(idx))), len(idx) - config.k_folds)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
        folds.append(np.arange(len(idx) - n_val) % config.k_folds)
    order = np.argsort(np.concatenate(train), kind="stable")
    return np.concatenate(train)[order], np.sort(np.concatenate(val)), np.concatenate(folds)[order]


def evaluate_model(name: str, items: list[Item], out_dir: Path, config: DistillConfig) -> dict[str, Any]:
    """Split, cross-validate, train, calibrate and save one model; its metrics entry."""
    texts = [it.text for it in items]
    relevant = np.array([it.relevant for it in items], dtype=bool)
    rng = np.random.default_rng([config.seed, zlib.crc32(name.encode())])
    train_idx, val_idx, fold_of = stratified_split(relevant, config, rng)

    folds = []
    for k in range(config.k_folds):
        fit, held = train_idx[fold_of != k], train_idx[fold_of == k]
        m = ft.train([texts[i] for i in fit], relevant[fit], config, out_dir, config.seed)
        p = ft.p_relevant(m, [texts[i] for i in held])
        folds.append({"fold": k, **binary_metrics(relevant[held], p, 0.5), "roc_auc": roc_auc(relevant[held], p)})

    final = ft.train([texts[i] for i in train_idx], relevant[train_idx], config, out_dir, config.seed)
    if config.quantize:
        ft.quantize(final)
    p_val = ft.p_relevant(final, [texts[i] for i in val_idx])
    y_val = relevant[val_idx]
    stem = POOLED if name == POOLED else model_stem(name)
    ft.save(final, out_dir / f"{stem}.bin")
    writer = AtomicJsonlWriter(out_dir / f"{stem}.validation.jsonl")
    for i, p in zip(val_idx, p_val):
        writer.write({"id": items[i].id, "domain": items[i].domain,
                      "label": "relevant" if relevant[i] else "not_relevant", "p_relevant": float(p)})
    writer.commit()
    return {
        "file": f"{stem}.bin",
        "validation_file": f"{stem}.validation.jsonl",
        "counts": {"items": len(items), "relevant": int(relevant.sum()), "not_relevant": int((~relevant).sum()),
                   "train": len(train_idx), "validation": len(val_idx),
                   "validation_relevant": int(y_val.sum())},
        "cv": {"k_folds": config.k_folds, "decision": "p_relevant >= 0.5", "folds": folds, **mean_std(folds)},
        "validation": {**binary_metrics(y_val, p_val, 0.5), "roc_auc": roc_auc(y_val, p_val)},
        "threshold": calibrate_threshold(y_val, p_val, config.target_precision),
        "_val": (val_idx, p_val),  # for the per-domain view of a pooled model; removed before saving
    }


def _pooled_view(entry: dict[str, Any], items: list[Item], domain: str) -> dict[str, Any]:
    """The pooled model's validation metrics on one domain's items, at the pooled threshold."""
    val_idx, p_val = entry["_val"]
    mask = np.array([items[i].domain == domain for i in val_idx], dtype=bool)
    y = np.array([items[i].relevant for i in val_idx], dtype=bool)[mask]
    return binary_metrics(y, p_val[mask], entry["threshold"]["value"]) if mask.any() else {"n": 0}


def distill(labels_path: Path, out_dir: Path, config: DistillConfig) -> dict[str, Any]:
    """Train, evaluate and save the classifiers for every labelled domain; returns what it
    writes to ``<out_dir>/metrics.json``."""
    items, rows = read_labels(Path(labels_path))
    if rows.bad or rows.duplicates:
        print(f"[distill] {labels_path}: {sum(rows.bad.values())} bad row(s) {dict(rows.bad)}, "
              f"{sum(rows.duplicates.values())} repeat(s) {dict(rows.duplicates)} skipped; first: "
              f"{rows.examples[0]}", file=sys.stderr)
    if not items:
        raise CurationError(f"{labels_path}: no usable labelled rows ({rows.rows} rows read)")
    out_dir.mkdir(parents=True, exist_ok=True)
    # no stale thresholds beside new models if this run stops half-way: the filter refuses to start
    (out_dir / "metrics.json").unlink(missing_ok=True)
    by_domain: dict[str, list[Item]] = {}
    for it in items:
        by_domain.setdefault(it.domain, []).append(it)

    fallback = {d: ("distill.per_domain=false" if not config.per_domain else too_few(its, config))
                for d, its in sorted(by_domain.items())}
    models: dict[str, dict[str, Any]] = {}
    for domain, reason in fallback.items():
        if reason is None:
            models[domain] = _log(domain, evaluate_model(domain, by_domain[domain], out_dir, config))
    if any(fallback.values()):
        # the pooled set contains every domain's items: if it is too small, so is each domain
        reason = too_few(items, config)
        if reason is not None:
            raise CurationError(f"{labels_path}: too few usable labelled items for any classifier ({reason})")
        models[POOLED] = _log(POOLED, evaluate_model(POOLED, items, out_dir, config))

    domains: dict[str, dict[str, Any]] = {}
    for domain, reason in fallback.items():
        name, its = (domain if reason is None else POOLED), by_domain[domain]
        m = models[name]
        domains[domain] = {"model": name, "fallback_reason": reason, "items": len(its),
                           "relevant": sum(it.relevant for it in its), "file": m["file"],
                           "threshold": m["threshold"]["value"], "target_met": m["threshold"]["target_met"]}
        if name == POOLED:
            domains[domain]["pooled_validation_on_domain"] = _pooled_view(m, items, domain)
    for m in models.values():
        m.pop("_val")

    metrics = {"labels": rows.to_json(), "config": asdict(config), "models": models, "domains": domains}
    write_json_atomic(out_dir / "metrics.json", metrics)
    write_markdown(out_dir / "metrics.md", metrics)
    return metrics


def _log(name: str, m: dict[str, Any]) -> dict[str, Any]:
    t, cv = m["threshold"], m["cv"]
    print(f"[distill] {name}: {m['counts']['items']} items, cv F1 {cv['f1']['mean']:.3f}±{cv['f1']['std']:.3f}, "
          f"validation accuracy {m['validation']['accuracy']:.3f} AUC {m['validation']['roc_auc']:.3f}, threshold "
          f"{t['value']:.3f}: precision {t['precision']:.3f} recall {t['recall']:.3f}"
          + ("" if t["target_met"] else f"  TARGET PRECISION {t['target_precision']} NOT MET (max-F1 threshold)"),
          file=sys.stderr)
    return m


def main(argv: Optional[list[str]] = None) -> int:
    """``distill LABELS -o OUT_DIR [--config-field VALUE ...]``."""
    import argparse

    from .cli import add_config_args, config_from_args, parse, run

    parser = argparse.ArgumentParser(prog="python -m data_tools.curate distill",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", type=Path, help="labels.jsonl (id, domain, text, label)")
    parser.add_argument("-o", "--out-dir", type=Path, required=True, help="where models and metrics go")
    add_config_args(parser, DistillConfig)
    args = parse(parser, argv)

    def body() -> int:
        metrics = distill(args.labels, args.out_dir, config_from_args(DistillConfig, args))
        unmet = [n for n, m in metrics["models"].items() if not m["threshold"]["target_met"]]
        print(f"[distill] {len(metrics['models'])} model(s) → {args.out_dir}; see metrics.md"
              + (f"; target precision NOT met for {unmet}" if unmet else ""), file=sys.stderr)
        return 0

    return run("distill", body)
