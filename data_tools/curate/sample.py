"""A deterministic, stratified sample of N documents per domain for LLM labelling.

Bottom-k sampling: every document gets the priority sha256(seed, id) and each domain keeps
the N documents of smallest priority — a uniform sample without replacement (a reservoir
keyed by hash), with O(N) memory per domain, in one streaming pass, and the same sample
whatever the shard order or sharding.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .shards import AtomicJsonlWriter, BadLine, read_documents, write_json_atomic


@dataclass
class SampleConfig:
    per_domain: int = 10_000
    seed: int = 0
    # Only documents routed to the classifier need labels; direct domains are kept whole.
    routes: list[str] = field(default_factory=lambda: ["filter"])

    def __post_init__(self) -> None:
        if self.per_domain < 1:
            raise ValueError(f"sample.per_domain={self.per_domain} must be >= 1")


def priority(seed: int, doc_id: Any) -> int:
    digest = hashlib.sha256(f"{seed}\x00{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def sample(inputs: Sequence[Path], out_path: Path, config: SampleConfig) -> dict[str, Any]:
    """Write the sample to ``out_path`` (jsonl, sorted by domain then priority) and
    ``<out_path>.stats.json``; returns the stats."""
    heaps: dict[str, list[tuple[int, str, dict]]] = {}
    seen: Counter = Counter()
    bad: list[BadLine] = []
    for path in inputs:
        for doc in read_documents(path, bad_lines=bad):
            if doc.get("route", "filter") not in config.routes:
                continue
            domain = doc.get("domain", "unknown")
            seen[domain] += 1
            # max-heap of the N smallest priorities (negated); ties broken by id
            item = (-priority(config.seed, doc["id"]), str(doc["id"]), doc)
            heap = heaps.setdefault(domain, [])
            if len(heap) < config.per_domain:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)
    writer = AtomicJsonlWriter(out_path)
    taken = {}
    for domain in sorted(heaps):
        chosen = sorted(heaps[domain], key=lambda t: (-t[0], t[1]))
        taken[domain] = len(chosen)
        for _, _, doc in chosen:
            writer.write(doc)
    writer.commit()
    stats = {"per_domain": config.per_domain, "seed": config.seed, "seen": dict(sorted(seen.items())),
             "sampled": taken, "bad_lines": len(bad)}
    write_json_atomic(out_path.with_name(out_path.name + ".stats.json"), stats)
    return stats
