"""Relevance labels from an LLM (or a local model, or a keyword stand-in), cached on disk.

``label_documents`` (run.py) labels jsonl shards; ``LabelConfig`` (config.py) configures it;
the prompt and the definition of relevance are versioned YAML files in ../prompts/.
"""

from .backends import KeywordLabeller, LabelResult, Labeller, LabellerError, build_labeller, model_name
from .cache import LabelCache, text_sha256
from .config import HttpConfig, KeywordConfig, LabelConfig, TransformersConfig
from .engine import LabelOutcome, ensure_labels
from .prompt import Prompt, load_prompt, parse_reply
from .run import label_documents, main

__all__ = [
    "HttpConfig", "KeywordConfig", "KeywordLabeller", "LabelCache", "LabelConfig", "LabelOutcome",
    "LabelResult", "Labeller", "LabellerError", "Prompt", "TransformersConfig", "build_labeller",
    "ensure_labels", "label_documents", "load_prompt", "main", "model_name", "parse_reply",
    "text_sha256",
]
