"""Heuristic quality and boilerplate rules, each a small function citing its source:

- Gopher: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from
  Training Gopher", App. A.1.1 (quality filters of MassiveWeb) — document drops.
- C4: Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
  Text-to-Text Transformer", Sec. 2.2 — line edits (a line is removed, the document kept)
  and document drops.

``clean_lines`` applies the line edits; ``check_document`` then applies the document rules to
the edited text and returns the first failing rule as ``"quality:<rule>"``. Thresholds live in
``QualityConfig``.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

from .config import QualityConfig

_CITATION = re.compile(r"\[(?:\d+|citation needed|edit)\]", re.IGNORECASE)
_JS_WARNING = re.compile(r"\b(?:enable|enabled|disabled?|turn(?:ed)? (?:on|off)|requires?|required|browser|"
                         r"support(?:s|ed)?|activate)\b", re.IGNORECASE)
_TERMINAL = (".", "!", "?", '"', "\u201d", "'", "\u2019")
_BULLETS = ("\u2022", "\u25cf", "\u25aa", "\u25e6", "\u2023", "\u00b7", "-", "*", "\u2013")
_ELLIPSES = ("...", "\u2026")
_ALPHA = re.compile(r"[^\W\d_]")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


# --- C4 line edits ---------------------------------------------------------------------------

def is_javascript_line(line: str, mode: str) -> bool:
    """C4 removes every line containing "javascript" (its pages often say "JavaScript must be
    enabled"). ``mode="warning"`` narrows it to lines that also say enable/disabled/browser/…,
    so a product titled "JavaScript: The Good Parts" survives; ``"off"`` disables the rule."""
    if mode == "off" or "javascript" not in line.lower():
        return False
    return mode == "any" or bool(_JS_WARNING.search(line))


def is_policy_line(line: str, phrases: list[str]) -> bool:
    """C4 removes lines containing "terms of use", "privacy policy", "cookie policy", "uses
    cookies", "use of cookies" or "use cookies" (consent banners and footers)."""
    lower = line.lower()
    return any(p in lower for p in phrases)


def strip_citation_markers(line: str) -> str:
    """C4 removes Wikipedia citation markers: [1], [citation needed], [edit]."""
    return _CITATION.sub("", line)


def lacks_terminal_punctuation(line: str) -> bool:
    """C4 keeps only lines ending in a terminal punctuation mark (period, exclamation mark,
    question mark, end quotation mark). Off by default: titles and spec lists have none."""
    return not line.rstrip().endswith(_TERMINAL)


def clean_lines(text: str, config: QualityConfig) -> str:
    """The text without the lines the C4 line rules remove (and without citation markers)."""
    kept = []
    for line in text.split("\n"):
        if config.remove_citation_markers:
            line = strip_citation_markers(line)
        if is_javascript_line(line, config.javascript_lines):
            continue
        if config.remove_policy_lines and is_policy_line(line, config.policy_phrases):
            continue
        if line.strip() and config.require_terminal_punctuation and lacks_terminal_punctuation(line):
            continue
        if line.strip() and config.min_line_words and len(line.split()) < config.min_line_words:
            continue
        kept.append(line)
    return "\n".join(kept).strip()


# --- document drops: each takes (text, words, lines, config), True = drop ---------------------

def bad_word_count(text: str, words: list[str], lines: list[str], c: QualityConfig) -> bool:
    """Gopher: keep documents of 50 to 100,000 words (here ``min_words``..``max_words``)."""
    return not c.min_words <= len(words) <= c.max_words


def bad_mean_word_length(text: str, words: list[str], lines: list[str], c: QualityConfig) -> bool:
    """Gopher: mean word length between 3 and 10 characters."""
    mean = sum(len(w) for w in words) / len(words)
    return not c.min_mean_word_length <= mean <= c.max_mean_word_length


def too_many_hashes(text: str, words: list[str], lines: list[str], c: QualityConfig) -> bool:
    """Gopher: symbol-to-word ratio below 0.1 for the hash symbol."""
    return text.count("#") / len(words) > c.max_hash_ratio


def too_many_ellipses(text: str, words: list[str], lines: list[str], c: QualityConfig) -> bool:
    """Gopher: symbol-to-word ratio below 0.1 for the ellipsis."""
    return sum(text.count(e) for e in _ELLIPSES) / len(words) > c.max_ellipsis_ratio


def too_many_bullet_lines(text: str, words: list[str], lines: list[str], c: QualityConfig) -> bool:
    """Gopher: fewer than 90% of lines start with a bullet point."""
    starts = sum(line.lstrip().startswith(_BULLETS) for line in lines)
    return starts / len(lines) > c.max_bullet_line_fraction


def too_many_ellipsis_lines(text: str, words: list[str], lines: list[str], c: QualityConfig) -> bool:
    """Gopher: fewer than 30% of lines end with an ellipsis (truncated teasers)."""
    ends = sum(line.rstrip().endswith(_ELLIPSES) for line in lines)
    return ends / len(lines) > c.max_ellipsis_line_fraction


def too_few_alpha_words(text: str, words: list[str], lines: list[str], c: QualityConfig) -> bool:
    """Gopher: at least 80% of words contain an alphabetic character (here
    ``min_alpha_word_fraction``, 0.5 by default for spec lists)."""
    alpha = sum(1 for w in words if _ALPHA.search(w))
    return alpha / len(words) < c.min_alpha_word_fraction


def too_few_stop_words(text: str, words: list[str], lines: list[str], c: QualityConfig) -> bool:
    """Gopher: the document contains at least two of "the", "be", "to", "of", "and", "that",
    "have", "with" (off by default: product titles have none)."""
    if c.min_stop_words == 0:
        return False
    present = {w.strip(".,;:!?\"'()").lower() for w in words} & set(c.stop_words)
    return len(present) < c.min_stop_words


def has_lorem_ipsum(text: str, words: list[str], lines: list[str], c: QualityConfig) -> bool:
    """C4: remove any page where the phrase "lorem ipsum" appears (placeholder text)."""
    return c.drop_lorem_ipsum and "lorem ipsum" in text.lower()


def has_curly_brace(text: str, words: list[str], lines: list[str], c: QualityConfig) -> bool:
    """C4: remove any page containing a curly bracket (code)."""
    return c.drop_curly_braces and "{" in text


def too_few_sentences(text: str, words: list[str], lines: list[str], c: QualityConfig) -> bool:
    """C4: discard pages with fewer than 3 sentences (off by default: a title is one)."""
    return c.min_sentences > 0 and len(_SENTENCE_END.findall(text)) < c.min_sentences


Rule = Callable[[str, list[str], list[str], QualityConfig], bool]
DOCUMENT_RULES: tuple[tuple[str, Rule], ...] = (
    ("lorem_ipsum", has_lorem_ipsum),
    ("curly_braces", has_curly_brace),
    ("word_count", bad_word_count),
    ("mean_word_length", bad_mean_word_length),
    ("hash_ratio", too_many_hashes),
    ("ellipsis_ratio", too_many_ellipses),
    ("bullet_lines", too_many_bullet_lines),
    ("ellipsis_lines", too_many_ellipsis_lines),
    ("alpha_words", too_few_alpha_words),
    ("stop_words", too_few_stop_words),
    ("sentences", too_few_sentences),
)


def check_document(text: str, config: QualityConfig) -> Optional[str]:
    """The first document rule that fails, as ``"quality:<rule>"``, or None to keep.
    Empty text (e.g. every line was boilerplate) is ``"quality:empty"``."""
    words = text.split()
    if not words:
        return "quality:empty"
    lines = [line for line in text.split("\n") if line.strip()]
    for name, rule in DOCUMENT_RULES:
        if rule(text, words, lines, config):
            return f"quality:{name}"
    return None


def apply_quality(text: str, config: QualityConfig) -> tuple[str, Optional[str]]:
    """(text after the line edits, drop reason or None)."""
    cleaned = clean_lines(text, config)
    return cleaned, check_document(cleaned, config)
