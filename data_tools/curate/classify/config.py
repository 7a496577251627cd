"""Typed configs of the distill and filter stages (Hydra-compatible field types)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..select import normalise_domain

LOSSES = ("softmax", "hs", "ova", "ns")
UNKNOWN_DOMAIN_POLICIES = ("drop", "keep")


@dataclass
class DistillConfig:
    """How the LLM relevance labels are distilled into fastText classifiers.

    ``per_domain``: one classifier per domain (as RexBERT does). A domain with fewer than
    ``min_items_per_domain`` usable labelled items, or fewer than ``k_folds + 1`` items of
    either label (too few to stratify a validation part and k folds), gets no model of its
    own: it uses the pooled model, trained and calibrated on the labelled items of every
    domain, and ``metrics.json`` says so with the reason. ``per_domain=False`` trains only
    the pooled model.
    """

    per_domain: bool = True
    min_items_per_domain: int = 200
    k_folds: int = 5
    validation_fraction: float = 0.2
    # The decision threshold on P(relevant) is the smallest one whose precision on the
    # validation part reaches this.
    target_precision: float = 0.9
    seed: int = 0
    # fastText (train_supervised) settings: word bigrams; a hash bucket of 200k rows keeps a
    # model at ~50 MB with dim 64 (fastText's default, 2M rows, ~800 MB at dim 100).
    epoch: int = 25
    lr: float = 0.5
    dim: int = 64
    word_ngrams: int = 2
    minn: int = 0  # character n-grams off (0, 0): word features are enough and 3x faster
    maxn: int = 0
    min_count: int = 1
    loss: str = "softmax"
    bucket: int = 200_000
    # One thread: training is then deterministic given ``seed``.
    threads: int = 1
    # Product-quantise the final model (a smaller .bin, slightly different scores); the
    # threshold is calibrated on the quantised model.
    quantize: bool = False

    def __post_init__(self) -> None:
        positive = {"min_items_per_domain": self.min_items_per_domain, "epoch": self.epoch, "dim": self.dim,
                    "word_ngrams": self.word_ngrams, "min_count": self.min_count, "bucket": self.bucket,
                    "threads": self.threads}
        for key, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"distill.{key}={value!r} must be an integer >= 1")
        if not isinstance(self.k_folds, int) or self.k_folds < 2:
            raise ValueError(f"distill.k_folds={self.k_folds!r} must be an integer >= 2")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"distill.validation_fraction={self.validation_fraction} must be in (0, 1)")
        if not 0 < self.target_precision <= 1:
            raise ValueError(f"distill.target_precision={self.target_precision} must be in (0, 1]")
        if not self.lr > 0:
            raise ValueError(f"distill.lr={self.lr} must be > 0")
        if not 0 <= self.minn <= self.maxn:
            raise ValueError(f"distill.minn={self.minn}, distill.maxn={self.maxn}: need 0 <= minn <= maxn")
        if self.loss not in LOSSES:
            raise ValueError(f"distill.loss={self.loss!r}: choose one of {LOSSES}")


@dataclass
class FilterConfig:
    """Which domains the relevance filter keeps whole, which it classifies, and how.

    ``models_dir`` is a distill output (``metrics.json`` + ``*.bin``). ``domains_filter``
    empty means every domain that ``metrics.json`` has a model for. ``threshold_override``
    replaces the calibrated threshold of a filtered domain. Documents of any other domain
    (or with no domain) are dropped (``unknown_domain="drop"``) or passed through unscored
    (``"keep"``).
    """

    models_dir: str = ""  # required; checked when the filter is built
    domains_direct: list[str] = field(default_factory=list)
    domains_filter: list[str] = field(default_factory=list)
    threshold_override: dict[str, float] = field(default_factory=dict)
    domain_field: str = "domain"
    text_field: str = "text"
    unknown_domain: str = "drop"

    def __post_init__(self) -> None:
        self.domains_direct = [normalise_domain(d) for d in self.domains_direct]
        self.domains_filter = [normalise_domain(d) for d in self.domains_filter]
        self.threshold_override = {normalise_domain(k): v for k, v in dict(self.threshold_override).items()}
        both = set(self.domains_direct) & set(self.domains_filter)
        if both:
            raise ValueError(f"filter: {sorted(both)} listed in both filter.domains_direct and filter.domains_filter")
        if self.unknown_domain not in UNKNOWN_DOMAIN_POLICIES:
            raise ValueError(f"filter.unknown_domain={self.unknown_domain!r}: choose one of {UNKNOWN_DOMAIN_POLICIES}")
        for domain, value in self.threshold_override.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"filter.threshold_override.{domain}={value!r} must be a number in [0, 1]")
            if domain in self.domains_direct:
                raise ValueError(f"filter.threshold_override.{domain}: '{domain}' is in filter.domains_direct, "
                                 "which is never classified")
            if self.domains_filter and domain not in self.domains_filter:
                raise ValueError(f"filter.threshold_override.{domain}: '{domain}' is not in filter.domains_filter")
