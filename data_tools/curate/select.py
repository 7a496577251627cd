"""Domain selection over a domain-labelled web corpus (FineFineWeb's layout: jsonl shards,
one folder per domain, or a domain field in each record).

Each document gets ``domain`` (normalised: lower case, spaces/hyphens → underscores) and
``route``: ``direct`` (a domain taken whole) or ``filter`` (a domain whose documents must
pass the relevance classifier). Documents of any other domain are dropped with the reason
``domain_not_selected``; a document whose domain cannot be found, ``no_domain``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .shards import CurationError, Document, Step


def normalise_domain(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


@dataclass
class SelectConfig:
    # Domains kept whole, and domains whose documents go through label → distill → filter.
    domains_direct: list[str] = field(default_factory=list)
    domains_filter: list[str] = field(default_factory=list)
    domain_field: str = "domain"
    # FineFineWeb keeps each domain in its own folder: take the shard's parent folder name
    # when a record has no domain field.
    domain_from_folder: bool = True

    def __post_init__(self) -> None:
        self.domains_direct = [normalise_domain(d) for d in self.domains_direct]
        self.domains_filter = [normalise_domain(d) for d in self.domains_filter]
        both = set(self.domains_direct) & set(self.domains_filter)
        if both:
            raise ValueError(f"select: {sorted(both)} listed in both select.domains_direct and select.domains_filter")


def make_select_step(config: SelectConfig, shard: Optional[Path] = None) -> Step:
    if not config.domains_direct and not config.domains_filter:
        raise CurationError("select.domains_direct and select.domains_filter are both empty: nothing to select")
    direct, filtered = set(config.domains_direct), set(config.domains_filter)
    folder = normalise_domain(shard.parent.name) if shard is not None and config.domain_from_folder else None

    def step(doc: Document) -> "Document | str":
        raw = doc.get(config.domain_field)
        domain = normalise_domain(raw) if isinstance(raw, str) and raw.strip() else folder
        if domain is None:
            return "no_domain"
        if domain in direct:
            route = "direct"
        elif domain in filtered:
            route = "filter"
        else:
            return "domain_not_selected"
        doc["domain"] = domain
        doc["route"] = route
        return doc

    return step
