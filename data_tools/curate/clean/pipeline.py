"""The clean stage: quality and boilerplate rules (line edits, then document drops), language
id, then profanity — one ``Step`` for ``shards.run_stage``. A kept document has its text
replaced by the line-edited text and gains ``lang`` and ``lang_score`` (when language id is
on); a dropped one gets the first failing filter's reason (``quality:<rule>``,
``lang:<code>``, ``profanity``).

    python -m data_tools.curate clean SHARDS... -o OUT_DIR [--set quality.min_words=5 ...]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from ..shards import CurationError, Document, Step
from .config import CleanConfig, apply_overrides
from .langid import LanguageFilter
from .profanity import ProfanityFilter
from .quality import apply_quality

__all__ = ["CleanConfig", "make_clean_step", "main"]


def make_clean_step(config: CleanConfig) -> Step:
    """Loads the models once and returns doc → cleaned doc | drop reason."""
    langid = LanguageFilter(config.langid) if config.langid.enabled else None
    profanity = ProfanityFilter(config.profanity) if config.profanity.enabled else None
    quality = config.quality if config.quality.enabled else None
    text_field = config.text_field

    def step(doc: Document) -> "Document | str":
        text = doc[text_field]
        if quality is not None:
            text, reason = apply_quality(text, quality)
            if reason:
                return reason
        if langid is not None:
            reason, code, prob = langid(text)
            if reason:
                return reason
            doc["lang"], doc["lang_score"] = code, round(prob, 4)
        if profanity is not None and (reason := profanity(text)):
            return reason
        doc[text_field] = text
        return doc

    return step


def main(argv: Optional[list[str]] = None) -> int:
    """``clean SHARDS... -o OUT_DIR [--set KEY=VALUE ...]``."""
    import argparse

    from ..shards import expand_inputs, run_stage

    parser = argparse.ArgumentParser(prog="python -m data_tools.curate clean", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="jsonl shards, directories or globs")
    parser.add_argument("-o", "--out-dir", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. langid.languages=[en,de] quality.min_words=5 "
                             "profanity.enabled=false (keys: CleanConfig's fields)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = apply_overrides(CleanConfig(), args.overrides, prefix="clean.")
    except ValueError as e:  # a config check: it names the key
        print(f"[clean] error: {e}", file=sys.stderr)
        return 2
    try:
        step = make_clean_step(config)
        stats = run_stage("clean", expand_inputs(args.inputs), args.out_dir, step, text_field=config.text_field,
                          id_field=config.id_field, progress=not args.no_progress)
    except CurationError as e:
        print(f"[clean] error: {e}", file=sys.stderr)
        return 2
    kept, seen = sum(s["kept"] for s in stats), sum(s["documents_in"] for s in stats)
    bad = sum(s["bad_lines"] for s in stats)
    print(f"[clean] kept {kept} of {seen} documents ({bad} unreadable lines) → {args.out_dir}", file=sys.stderr)
    return 0
