"""Entity and attribute spans in product text, for Guided MLM (#4's span schema: a list of
``[char_start, char_end)`` pairs in the document's text; ``data_tools.preprocess
--spans-field spans`` turns them into token spans).

Rule-based and precise rather than exhaustive: each kind is a regular expression (or a
lexicon) that matches what catalogue text writes the same way everywhere —

- ``measurement``: a number with a unit, dimensions ``12 x 8 x 3 in``, ``1080p``, ``2.4GHz``
- ``model_number``: a token mixing letters and digits (``KDL-46V5100``, ``MB397GA``)
- ``attribute``: ``Key: value`` pairs (``Color: Black``, ``Screen Size: 46"``)
- ``colour``: colour words (``black``, ``stainless steel``, ``rose gold``)
- ``size``: ``size 10``, ``Size XL``, ``X-Large``
- ``brand``: words from a brand lexicon given by path (one brand per line), if any

Overlaps resolve to the earlier kind in ``MineConfig.kinds`` (longer match first within a
kind). Output: ``spans`` (sorted, non-overlapping) and ``span_types`` beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .shards import Document, Step

KINDS = ("attribute", "measurement", "model_number", "size", "colour", "brand")

_NUM = r"\d+(?:[.,]\d+)?(?:\s*/\s*\d+)?"
_UNITS = (r"(?:inch(?:es)?|in\.?|ft|feet|cm|mm|m|km|kg|g|lbs?|oz|ml|l|qt|gal|gb|tb|mb|kb|ghz|mhz|hz|"
          r"w|watts?|kw|v|volts?|mah|ah|mp|megapixels?|rpm|dpi|btu|cu\.?\s?ft|sq\.?\s?ft|ports?|pack|pk|pcs|pieces|"
          r"ct|count|x|\"|''|'|%)")
_MEASUREMENT = re.compile(
    rf"(?<![\w.])(?:{_NUM}\s*(?:{_UNITS})?\s*[x×]\s*)+{_NUM}\s*{_UNITS}(?![\w])"  # 12 x 8 x 3 in
    rf"|(?<![\w.]){_NUM}\s*-?\s*{_UNITS}(?![\w])"  # 46 in, 2.4GHz, 500 GB, 10x
    r"|(?<![\w.])(?:480|576|720|1080|1440|2160|4320)[pi](?![\w])"  # video modes
    r"|(?<![\w.])[48]K(?![\w])",
    re.IGNORECASE)
_MODEL = re.compile(r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:[-/.][A-Za-z0-9]+)*(?![\w-])")
_ATTRIBUTE = re.compile(
    r"(?<![\w])(?:[A-Z][A-Za-z]*(?: [A-Za-z]+){0,2})\s*:\s*[^\n:;,/|.]{1,40}?(?=\s*(?:[\n;,/|.]|$|\s[A-Z][a-z]+\s*:))")
_COLOURS = ("black white silver gray grey red blue green yellow orange purple pink brown beige ivory cream gold "
            "navy teal turquoise maroon burgundy charcoal bronze copper chrome titanium graphite khaki olive "
            "lavender magenta cyan").split()
_COLOUR = re.compile(r"(?<![\w-])(?:(?:matte|glossy|dark|light|rose|jet|space|midnight|navy|sky|royal|"
                     r"stainless)\s+)?(?:" + "|".join(_COLOURS) + r"|steel)(?![\w-])", re.IGNORECASE)
_SIZE = re.compile(r"(?<![\w])(?:size\s+(?:\d+(?:\.\d+)?|x{0,3}[sml]|x{1,3}l)|(?:x{1,3}-)?(?:small|large)"
                   r"|x{1,3}l|xs)(?![\w])", re.IGNORECASE)


@dataclass
class MineConfig:
    kinds: list[str] = field(default_factory=lambda: list(KINDS))
    brand_lexicon: Optional[str] = None  # a text file, one brand per line (case-sensitive)
    spans_field: str = "spans"
    types_field: str = "span_types"
    # Model numbers shorter than this are too often ordinary tokens ("3D", "A4").
    min_model_number_length: int = 4

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"mine.kinds: unknown {unknown}; choose from {list(KINDS)}")
        if self.brand_lexicon is not None and not Path(self.brand_lexicon).is_file():
            raise ValueError(f"mine.brand_lexicon={self.brand_lexicon}: no such file")


def _brand_pattern(path: Optional[str]) -> Optional[re.Pattern]:
    if path is None:
        return None
    brands = sorted({line.strip() for line in Path(path).read_text().splitlines() if line.strip()}, key=len,
                    reverse=True)
    if not brands:
        return None
    return re.compile(r"(?<![\w])(?:" + "|".join(re.escape(b) for b in brands) + r")(?![\w])")


def find_spans(text: str, config: MineConfig, brands: Optional[re.Pattern] = None) -> list[tuple[int, int, str]]:
    """(start, end, kind), sorted and non-overlapping."""
    patterns = {"attribute": _ATTRIBUTE, "measurement": _MEASUREMENT, "model_number": _MODEL, "size": _SIZE,
                "colour": _COLOUR, "brand": brands}
    taken: list[tuple[int, int, str]] = []
    occupied = bytearray(len(text))
    for kind in config.kinds:
        pattern = patterns.get(kind)
        if pattern is None:
            continue
        for m in sorted(pattern.finditer(text), key=lambda m: (m.start() - m.end(), m.start())):
            start, end = m.start(), m.end()
            while end > start and text[end - 1].isspace():
                end -= 1
            if end <= start or any(occupied[start:end]):
                continue
            if kind == "model_number" and (end - start < config.min_model_number_length
                                           or _MEASUREMENT.fullmatch(text[start:end])):
                continue
            occupied[start:end] = b"\x01" * (end - start)
            taken.append((start, end, kind))
    return sorted(taken)


def make_mine_step(config: MineConfig) -> Step:
    brands = _brand_pattern(config.brand_lexicon)

    def step(doc: Document) -> Document:
        found = find_spans(doc["text"], config, brands)
        doc[config.spans_field] = [[s, e] for s, e, _ in found]
        doc[config.types_field] = [k for _, _, k in found]
        return doc

    return step
