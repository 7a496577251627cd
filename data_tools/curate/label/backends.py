"""The labeller interface, the backend factory and the keyword stand-in.

A labeller turns a batch of texts into one result each: a label from the prompt's label set,
or no label and the reason (after its retries, if it has any). Results are yielded as they
complete, with the text's index, so the caller can store each one at once.

Backends: ``http`` (an OpenAI-compatible chat-completions server, http_backend.py),
``transformers`` (a local causal LM, transformers_backend.py) and ``keyword`` (below).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Optional, Protocol, Sequence

from ..shards import CurationError
from .config import LabelConfig
from .prompt import Prompt


@dataclass
class LabelResult:
    label: Optional[str]          # None: unlabelled after retries (see error)
    error: Optional[str] = None
    attempts: int = 1
    raw: Optional[str] = None     # the model's reply, for debugging


class Labeller(Protocol):
    model_name: str               # part of the cache key
    requests_sent: int            # model calls made (http: requests, retries included)

    def label(self, texts: Sequence[str]) -> Iterator[tuple[int, LabelResult]]: ...

    def close(self) -> None: ...


class LabellerError(CurationError):
    """A failure no retry can fix (bad URL, rejected key, unknown model): the run stops."""


def model_name(config: LabelConfig) -> str:
    """The model part of the cache key, known without loading anything."""
    if config.backend == "keyword":
        return f"keyword-v1:min_cues={config.keyword.min_cues}"
    if not config.model.strip():
        raise ValueError(f"label.model must be set for backend {config.backend!r} "
                         "(the served model name, or a local model directory)")
    return config.model


def build_labeller(config: LabelConfig, prompt: Prompt) -> Labeller:
    if config.backend == "keyword":
        return KeywordLabeller(prompt, config.keyword.min_cues)
    if config.backend == "http":
        from .http_backend import HttpLabeller

        return HttpLabeller(config, prompt)
    if config.backend == "transformers":
        from .transformers_backend import TransformersLabeller

        return TransformersLabeller(config, prompt)
    raise ValueError(f"label.backend={config.backend!r} is not a backend")


# Kinds of shopping cue; each kind counts once however often it occurs.
_CUES: dict[str, re.Pattern] = {
    "price": re.compile(r"[$€£¥]\s?\d|\b\d+(?:[.,]\d{2})?\s?(?:usd|eur|gbp|dollars?|euros?)\b"
                        r"|\bprice[sd]?\b|\bmsrp\b", re.IGNORECASE),
    "shopping": re.compile(
        r"\b(?:buy|buying|purchase|order(?:ed)? now|add to (?:cart|basket)|checkout|in stock|"
        r"out of stock|free (?:shipping|delivery)|shipping|sale|discount|coupon|\d+\s?% off|"
        r"deal|warranty|refund|returns?|customer reviews?|rating|sku|seller|shop now|retail)\b",
        re.IGNORECASE),
    "unit": re.compile(
        r"\b\d+(?:[.,]\d+)?\s?(?:-\s?)?(?:mm|cm|in|inch(?:es)?|ft|gb|tb|mb|ghz|mhz|hz|mbps|"
        r"watts?|w|volts?|v|mah|oz|lbs?|kg|g|ml|l|mp|megapixels?|port|speed|piece|pack|"
        r"x\d+)\b|\b\d+(?:\.\d+)?\"", re.IGNORECASE),
    "product_word": re.compile(
        r"\b(?:compatible|finish|wireless|bluetooth|usb|hdmi|rechargeable|batter(?:y|ies)|cable|"
        r"adapter|charger|stainless|portable|built-in|accessor(?:y|ies)|brand|kit|dimensions|"
        r"colou?rs?|sizes?|includes|specifications?|features)\b", re.IGNORECASE),
    # Model numbers: a token of 4+ characters mixing capitals and digits (EZXS88W, DSC-W120),
    # or a UPC/EAN-like run of 8 to 14 digits.
    "model_number": re.compile(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9][A-Z0-9-]{3,}\b"
                               r"|\b\d{8,14}\b"),
    # Brand-like all-capital words or acronyms (LCD, HDMI, SONY): needs two of them.
    "caps": re.compile(r"\b[A-Z]{2,}\b"),
}
_MIN_HITS = {"caps": 2}


def _present(name: str, text: str) -> bool:
    need = _MIN_HITS.get(name, 1)
    for hits, _ in enumerate(_CUES[name].finditer(text), 1):
        if hits >= need:
            return True
    return False


def shopping_cues(text: str) -> list[str]:
    """The cue kinds present in a text (sorted)."""
    return sorted(name for name in _CUES if _present(name, text))


class KeywordLabeller:
    """A deterministic STAND-IN for an LLM, for tests and the tiny demo: the positive label
    (the prompt's first) when at least ``min_cues`` kinds of shopping cue occur (prices,
    shopping words, units, model numbers, brand-like capitals), else the second label. It
    knows nothing of the prompt's definition and is no substitute for a real labeller."""

    def __init__(self, prompt: Prompt, min_cues: int = 2) -> None:
        if len(prompt.labels) != 2:
            raise CurationError(f"{prompt.source}: the keyword labeller needs exactly two labels "
                                f"(positive first), not {list(prompt.labels)}")
        self.positive, self.negative = prompt.labels
        self.min_cues = min_cues
        self.model_name = f"keyword-v1:min_cues={min_cues}"  # as model_name() derives it
        self.requests_sent = 0

    def label(self, texts: Sequence[str]) -> Iterator[tuple[int, LabelResult]]:
        for i, text in enumerate(texts):
            self.requests_sent += 1
            cues = shopping_cues(text)
            label = self.positive if len(cues) >= self.min_cues else self.negative
            yield i, LabelResult(label, raw=",".join(cues))

    def close(self) -> None:
        pass
