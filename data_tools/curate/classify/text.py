"""The one text normalisation fastText sees, at training and at prediction time.

fastText splits on whitespace only and reads one example per line, so: lower case, common
punctuation split off words (``switch,`` and ``switch`` are one token), every run of
whitespace (newlines included) → one space, and ``__label__`` inside the text defused (in a
training file it would be read as a label).
"""

from __future__ import annotations

LABEL_PREFIX = "__label__"
PUNCTUATION = '.,!?;:()[]{}"/|'
_PADDED = [(c, f" {c} ") for c in PUNCTUATION] + [("\x00", " ")]


def normalise(text: str) -> str:
    # one str.replace per character: ~4x faster than a regex substitution, and this is
    # most of the filter's per-document cost
    text = text.lower().replace(LABEL_PREFIX, " label ")
    for c, padded in _PADDED:
        if c in text:
            text = text.replace(c, padded)
    return " ".join(text.split())


def training_line(label: str, text: str) -> str:
    """One line of a fastText training file; ``text`` must already be normalised."""
    return f"{LABEL_PREFIX}{label} {text}\n"
