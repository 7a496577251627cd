"""Profanity / adult-content filter on better-profanity's word list and matcher.

better-profanity's ``censor()`` rescans every word against all ~900 entries and took 43 ms
per document on the rexbert sample (58 s for 1,340 documents on a 2-core VM), so we count
profane words ourselves with its own ``VaryingString`` matcher (which also catches l33t
variants: "sh1t", "f*ck"), cached per distinct token, and bucketed by length. Words are runs of
letters, digits and ``@ $ * ' "`` as in better-profanity; its multi-word entries ("blow job")
are matched over 2–4 consecutive words.

Its list is broad ("god", "hell", "kill", "knob", "strip", "organ"): the default allow list
(``ProfanityConfig.allow_words``) removes everyday words, and a document is dropped only when
at least ``min_count`` of its words are profane and they exceed ``max_fraction`` of its words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ..shards import CurationError
from .config import ProfanityConfig

_WORD = re.compile(r"[\w@$*'\"]+")
_CACHE_LIMIT = 1_000_000
_MAX_PHRASE_WORDS = 4


class ProfanityFilter:
    """``filter(text)`` → None to keep or ``"profanity"``; ``count(text)`` → (profane, words)."""

    def __init__(self, config: ProfanityConfig) -> None:
        from better_profanity import Profanity

        self.config = config
        profanity = Profanity()
        profanity.load_censor_words(whitelist_words=[w.lower() for w in config.allow_words])
        if config.extra_words_path:
            profanity.add_censor_words(read_word_list(Path(config.extra_words_path)))
        single, phrases = [], []
        for entry in profanity.CENSOR_WORDSET:
            (phrases if " " in str(entry) else single).append(entry)
        self._by_length: dict[int, list] = {}
        for entry in single:
            for n in range(entry._min_len, entry._max_len + 1):
                self._by_length.setdefault(n, []).append(entry)
        self._phrases = phrases
        self._phrase_starts = [_Phrase(str(p).split(" ", 1)[0], profanity.CHARS_MAPPING) for p in phrases]
        self._word_cache: dict[str, bool] = {}
        self._start_cache: dict[str, bool] = {}

    def is_profane(self, word: str) -> bool:
        """One lower-cased word against the single-word entries (and their variants)."""
        hit = self._word_cache.get(word)
        if hit is None:
            hit = any(entry == word for entry in self._by_length.get(len(word), ()))
            self._remember(self._word_cache, word, hit)
        return hit

    def _starts_phrase(self, word: str) -> bool:
        hit = self._start_cache.get(word)
        if hit is None:
            hit = any(start.matches(word) for start in self._phrase_starts)
            self._remember(self._start_cache, word, hit)
        return hit

    @staticmethod
    def _remember(cache: dict[str, bool], word: str, hit: bool) -> None:
        if len(cache) >= _CACHE_LIMIT:  # bound memory on a long stream of rare tokens
            cache.clear()
        cache[word] = hit

    def count(self, text: str) -> tuple[int, int]:
        """(profane words, words); a multi-word entry counts once."""
        words = [w.strip("'\"").lower() for w in _WORD.findall(text)]
        words = [w for w in words if w]
        profane, i = 0, 0
        while i < len(words):
            span = self._phrase_at(words, i) if self._phrases and self._starts_phrase(words[i]) else 0
            if span:
                profane += 1
                i += span
                continue
            profane += self.is_profane(words[i])
            i += 1
        return profane, len(words)

    def _phrase_at(self, words: list[str], i: int) -> int:
        for n in range(2, _MAX_PHRASE_WORDS + 1):
            if i + n > len(words):
                break
            phrase = " ".join(words[i:i + n])
            if any(entry == phrase for entry in self._phrases):
                return n
        return 0

    def __call__(self, text: str) -> Optional[str]:
        profane, total = self.count(text)
        if profane >= self.config.min_count and profane > self.config.max_fraction * total:
            return "profanity"
        return None


class _Phrase:
    """The first word of a multi-word entry, matched with better-profanity's variants."""

    def __init__(self, word: str, chars_mapping: dict) -> None:
        from better_profanity.varying_string import VaryingString

        self._word = VaryingString(word, char_map=chars_mapping)

    def matches(self, word: str) -> bool:
        return self._word == word


def read_word_list(path: Path) -> list[str]:
    """One word or phrase per line; blank lines and ``#`` comments skipped."""
    if not path.is_file():
        raise CurationError(f"clean.profanity.extra_words_path={path}: no such file")
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip().lower()
        if line and not line.startswith("#"):
            words.append(line)
    return words
