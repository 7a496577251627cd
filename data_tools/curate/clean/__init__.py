"""The clean stage: Gopher/C4 quality and boilerplate rules, fastText language id and a
profanity filter, composed into one ``Step`` (``make_clean_step``)."""

from .config import CleanConfig, LangIdConfig, ProfanityConfig, QualityConfig
from .pipeline import main, make_clean_step

__all__ = ["CleanConfig", "LangIdConfig", "ProfanityConfig", "QualityConfig", "main", "make_clean_step"]
