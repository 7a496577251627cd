"""Typed configuration of the labelling stage (and of the audit's judge, which is a labeller too).

Defaults are production values for an OpenAI-compatible server (vLLM, TGI, SGLang or a hosted
API). Every value is checked on construction; a bad one fails with its key named, e.g.
``label.concurrency=0 must be >= 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BACKENDS = ("http", "transformers", "keyword")


def _positive(prefix: str, name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{prefix}.{name}={value!r} must be > 0")


def _at_least(prefix: str, name: str, value: int, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{prefix}.{name}={value!r} must be an integer >= {low}")


@dataclass
class HttpConfig:
    """An OpenAI-compatible ``POST {base_url}/chat/completions`` endpoint."""

    base_url: str = "http://localhost:8000/v1"
    # Name of the environment variable holding the API key; an unset variable sends no
    # Authorization header (local servers). The key itself is never stored in a config.
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0          # per request
    max_retries: int = 6             # after the first attempt; then the item stays unlabelled
    backoff_initial_s: float = 1.0   # first retry waits about this long, doubling each time
    backoff_max_s: float = 60.0
    max_tokens: int = 16             # the answer is one label word (or a tiny json object)

    def __post_init__(self) -> None:
        p = "label.http"
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"{p}.base_url={self.base_url!r} must start with http:// or https://")
        if not self.api_key_env.strip():
            raise ValueError(f"{p}.api_key_env must name an environment variable")
        _positive(p, "timeout_s", self.timeout_s)
        _at_least(p, "max_retries", self.max_retries, 0)
        _positive(p, "backoff_initial_s", self.backoff_initial_s)
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(f"{p}.backoff_max_s={self.backoff_max_s!r} must be >= "
                             f"backoff_initial_s={self.backoff_initial_s!r}")
        _at_least(p, "max_tokens", self.max_tokens, 1)


@dataclass
class TransformersConfig:
    """A local causal LM (``label.model`` is its directory) answering the same prompt."""

    device: str = "cpu"
    batch_size: int = 8
    max_new_tokens: int = 8

    def __post_init__(self) -> None:
        _at_least("label.transformers", "batch_size", self.batch_size, 1)
        _at_least("label.transformers", "max_new_tokens", self.max_new_tokens, 1)


@dataclass
class KeywordConfig:
    """The deterministic stand-in: relevant when at least ``min_cues`` kinds of shopping cue
    occur (see backends.KeywordLabeller)."""

    min_cues: int = 2

    def __post_init__(self) -> None:
        _at_least("label.keyword", "min_cues", self.min_cues, 1)


@dataclass
class LabelConfig:
    backend: str = "http"            # http | transformers | keyword
    # http: the model name the server serves; transformers: a local model directory;
    # keyword: ignored (its name is derived from its settings). Part of the cache key;
    # required (checked when a run starts) for http and transformers.
    model: str = ""
    # A prompt name in data_tools/curate/prompts/ or a path to a prompt .yaml file.
    prompt: str = "ecommerce_relevance_v1"
    cache_path: str = ""             # sqlite label cache; "" = <output dir>/label_cache.sqlite
    text_field: str = "text"
    id_field: str = "id"
    domain_field: str = "domain"     # counted per domain in the stats when present
    max_chars: int = 4000            # the text sent (and hashed for the cache) is cut here
    concurrency: int = 8             # http requests in flight
    # The run fails (exit 1) when more than this share of documents stays unlabelled
    # after retries; their labels are still written and a rerun retries only them.
    max_unlabelled_fraction: float = 0.0
    progress: bool = True
    http: HttpConfig = field(default_factory=HttpConfig)
    transformers: TransformersConfig = field(default_factory=TransformersConfig)
    keyword: KeywordConfig = field(default_factory=KeywordConfig)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"label.backend={self.backend!r} must be one of {', '.join(BACKENDS)}")
        if not self.prompt.strip():
            raise ValueError("label.prompt must name a prompt or a .yaml file")
        for name in ("text_field", "id_field"):
            if not getattr(self, name):
                raise ValueError(f"label.{name} must not be empty")
        _at_least("label", "max_chars", self.max_chars, 1)
        _at_least("label", "concurrency", self.concurrency, 1)
        if not 0.0 <= self.max_unlabelled_fraction <= 1.0:
            raise ValueError(f"label.max_unlabelled_fraction={self.max_unlabelled_fraction!r} "
                             "must be in [0, 1]")
