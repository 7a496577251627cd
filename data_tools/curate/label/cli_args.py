"""Command-line options of a labeller (``label`` and the audit's judge) → LabelConfig.

Options left out keep the dataclass defaults, so the defaults live in config.py only.
"""

from __future__ import annotations

import argparse

from .config import BACKENDS, HttpConfig, KeywordConfig, LabelConfig, TransformersConfig

# option dest -> (config section or "", field)
_FIELDS = {
    "backend": ("", "backend"), "model": ("", "model"), "prompt": ("", "prompt"),
    "cache": ("", "cache_path"), "max_chars": ("", "max_chars"), "concurrency": ("", "concurrency"),
    "max_unlabelled_fraction": ("", "max_unlabelled_fraction"),
    "text_field": ("", "text_field"), "id_field": ("", "id_field"), "domain_field": ("", "domain_field"),
    "base_url": ("http", "base_url"), "api_key_env": ("http", "api_key_env"),
    "timeout": ("http", "timeout_s"), "max_retries": ("http", "max_retries"),
    "backoff": ("http", "backoff_initial_s"), "backoff_max": ("http", "backoff_max_s"),
    "max_tokens": ("http", "max_tokens"),
    "device": ("transformers", "device"), "gen_batch_size": ("transformers", "batch_size"),
    "max_new_tokens": ("transformers", "max_new_tokens"),
    "min_cues": ("keyword", "min_cues"),
}


def add_labeller_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("labeller")
    g.add_argument("--backend", choices=BACKENDS, help="default: http")
    g.add_argument("--model", help="served model name (http) or local model directory (transformers)")
    g.add_argument("--prompt", help="prompt name in data_tools/curate/prompts/ or a .yaml path "
                   "(default: ecommerce_relevance_v1)")
    g.add_argument("--cache", help="sqlite label cache (default: <output dir>/label_cache.sqlite)")
    g.add_argument("--max-chars", type=int, help="characters of each text sent (default: 4000)")
    g.add_argument("--concurrency", type=int, help="http requests in flight (default: 8)")
    g.add_argument("--max-unlabelled-fraction", type=float,
                   help="fail when more documents stay unlabelled (default: 0)")
    g.add_argument("--text-field")
    g.add_argument("--id-field")
    g.add_argument("--domain-field")
    h = p.add_argument_group("http backend")
    h.add_argument("--base-url", help="OpenAI-compatible API root (default: http://localhost:8000/v1)")
    h.add_argument("--api-key-env", help="environment variable holding the API key (default: OPENAI_API_KEY)")
    h.add_argument("--timeout", type=float, help="seconds per request (default: 60)")
    h.add_argument("--max-retries", type=int, help="retries per text (default: 6)")
    h.add_argument("--backoff", type=float, help="first retry delay in seconds (default: 1)")
    h.add_argument("--backoff-max", type=float, help="longest retry delay (default: 60)")
    h.add_argument("--max-tokens", type=int)
    t = p.add_argument_group("transformers backend")
    t.add_argument("--device")
    t.add_argument("--gen-batch-size", type=int)
    t.add_argument("--max-new-tokens", type=int)
    k = p.add_argument_group("keyword backend (a stand-in for tests and demos)")
    k.add_argument("--min-cues", type=int, help="shopping-cue kinds needed for the positive label (default: 2)")


def labeller_config(args: argparse.Namespace) -> LabelConfig:
    """The options given, on top of the defaults; raises ValueError naming a bad key."""
    top: dict = {}
    sections: dict[str, dict] = {"http": {}, "transformers": {}, "keyword": {}}
    for dest, (section, name) in _FIELDS.items():
        value = getattr(args, dest, None)
        if value is not None:
            (sections[section] if section else top)[name] = value
    return LabelConfig(**top, http=HttpConfig(**sections["http"]),
                       transformers=TransformersConfig(**sections["transformers"]),
                       keyword=KeywordConfig(**sections["keyword"]))
