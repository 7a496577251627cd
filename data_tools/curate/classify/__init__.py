"""Relevance classification: distil the LLM labels into per-domain fastText classifiers
with calibrated thresholds (``distill``), then filter the corpus with them (``filter``)."""

from .config import DistillConfig, FilterConfig
from .distill import distill
from .filter import make_filter_step

__all__ = ["DistillConfig", "FilterConfig", "distill", "make_filter_step"]
