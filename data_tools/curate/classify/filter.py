"""The relevance filter: a ``Step`` that scores documents of the classified domains with
their distilled fastText model and keeps those at or above the domain's threshold.

Per document (its domain read from ``domain_field`` and normalised as by ``select``):
a ``domains_direct`` domain passes through unscored; a ``domains_filter`` domain gets
``scores.relevance`` = P(relevant) and is kept if it is >= the threshold (the one calibrated
by distill, in ``metrics.json``, unless overridden), else dropped as
``below_threshold:<domain>``; any other domain, or none, is dropped as
``domain_not_selected`` / ``no_domain``, or passed through with ``unknown_domain="keep"``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

from ..select import normalise_domain
from ..shards import CurationError, Document, Step
from . import model as ft
from .config import FilterConfig
from .text import normalise

__all__ = ["FilterConfig", "load_thresholds", "make_filter_step"]


def read_metrics(models_dir: Path) -> dict[str, Any]:
    path = models_dir / "metrics.json"
    if not path.is_file():
        raise CurationError(f"filter.models_dir={str(models_dir)!r}: no metrics.json (run distill first)")
    try:
        metrics = json.loads(path.read_text())
        metrics["domains"].items()
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise CurationError(f"{path}: not a distill metrics file ({e})") from None
    return metrics


def load_thresholds(config: FilterConfig) -> dict[str, tuple[str, float]]:
    """Each filtered domain's (model file, threshold), checked against ``metrics.json``."""
    if not config.models_dir:
        raise CurationError("filter.models_dir is required: the distill output directory")
    models_dir = Path(config.models_dir)
    domains = read_metrics(models_dir)["domains"]
    direct = set(config.domains_direct)
    wanted = config.domains_filter or sorted(d for d, e in domains.items() if e.get("model") and d not in direct)
    stray = set(config.threshold_override) - set(wanted)
    if stray:
        raise CurationError(f"filter.threshold_override: {sorted(stray)} not among the filtered domains {wanted}")
    out = {}
    for domain in wanted:
        entry = domains.get(domain)
        if entry is None:
            raise CurationError(f"filter.domains_filter: '{domain}' has no labelled items in "
                                f"{models_dir / 'metrics.json'} (known: {sorted(domains)})")
        if not entry.get("model"):
            raise CurationError(f"filter.domains_filter: '{domain}' has no model in {models_dir}: "
                                f"{entry.get('fallback_reason')}")
        threshold = config.threshold_override.get(domain, entry["threshold"])
        out[domain] = (entry["file"], float(threshold))
    return out


def make_filter_step(config: FilterConfig) -> Step:
    """Loads every needed model once (a model shared by several domains, once) and returns
    the per-document step."""
    thresholds = load_thresholds(config)
    models_dir = Path(config.models_dir)
    loaded: dict[str, Any] = {}
    for file, _ in thresholds.values():
        if file not in loaded:
            try:
                loaded[file] = ft.load(models_dir / file)
            except (FileNotFoundError, ValueError) as e:
                raise CurationError(f"{models_dir / file}: cannot load the fastText model ({e})") from None
    classify = {d: (loaded[file], t) for d, (file, t) in thresholds.items()}
    direct = set(config.domains_direct)
    keep_unknown = config.unknown_domain == "keep"
    domain_field, text_field = config.domain_field, config.text_field

    def step(doc: Document) -> "Document | str":
        raw = doc.get(domain_field)
        domain = normalise_domain(raw) if isinstance(raw, str) else ""
        if domain in classify:
            model, threshold = classify[domain]
            p = ft.p_relevant_one(model, normalise(doc[text_field]))
            scores = doc.get("scores")
            if not isinstance(scores, dict):
                scores = doc["scores"] = {}
            scores["relevance"] = p
            return doc if p >= threshold else f"below_threshold:{domain}"
        if domain in direct or keep_unknown:
            return doc
        return "domain_not_selected" if domain else "no_domain"

    return step


def main(argv: Optional[list[str]] = None) -> int:
    """``filter SHARDS... -o OUT_DIR --models-dir DIR [--config-field VALUE ...]``."""
    import argparse

    from ..shards import expand_inputs, run_stage
    from .cli import add_config_args, config_from_args, parse, run

    parser = argparse.ArgumentParser(prog="python -m data_tools.curate filter",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="jsonl shards, directories or globs")
    parser.add_argument("-o", "--out-dir", type=Path, required=True)
    parser.add_argument("--no-progress", action="store_true")
    add_config_args(parser, FilterConfig)
    args = parse(parser, argv)

    def body() -> int:
        config = config_from_args(FilterConfig, args)
        step = make_filter_step(config)
        stats = run_stage("filter", expand_inputs(args.inputs), args.out_dir, step, text_field=config.text_field,
                          progress=not args.no_progress)
        kept, seen = sum(s["kept"] for s in stats), sum(s["documents_in"] for s in stats)
        print(f"[filter] kept {kept} of {seen} documents → {args.out_dir}", file=sys.stderr)
        return 0

    return run("filter", body)
