"""Cache-first labelling of a set of texts, shared by the labelling run and the audit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .backends import Labeller
from .cache import LabelCache
from .prompt import Prompt


@dataclass
class LabelOutcome:
    labels: dict[str, str] = field(default_factory=dict)   # text sha256 -> label
    errors: dict[str, str] = field(default_factory=dict)   # text sha256 -> why unlabelled
    cache_hits: int = 0       # texts whose label was already stored
    labelled_now: int = 0     # texts labelled (and stored) by this call
    requests_sent: int = 0    # model calls, retries included


def ensure_labels(texts: dict[str, str], cache: LabelCache, prompt: Prompt, model: str,
                  make_labeller: Callable[[], Labeller], *, progress: bool = True,
                  desc: str = "label") -> LabelOutcome:
    """Every text (keyed by its sha256) gets its stored label; only texts without one are
    sent to the labeller (built only then), and each new label is committed as it arrives."""
    from tqdm import tqdm

    out = LabelOutcome(labels=cache.get_many(texts, prompt.version, model))
    out.cache_hits = len(out.labels)
    missing = [sha for sha in texts if sha not in out.labels]
    if not missing:
        return out
    labeller = make_labeller()
    if labeller.model_name != model:
        raise AssertionError(f"labeller model {labeller.model_name!r} != cache model {model!r}")
    try:
        with tqdm(total=len(missing), desc=desc, unit="text", disable=not progress,
                  mininterval=1.0) as bar:
            for i, result in labeller.label([texts[sha] for sha in missing]):
                sha = missing[i]
                if result.label is None:
                    out.errors[sha] = result.error or "no label"
                else:
                    cache.put(sha, prompt.version, model, result.label)
                    out.labels[sha] = result.label
                    out.labelled_now += 1
                bar.update(1)
    finally:
        out.requests_sent = labeller.requests_sent
        labeller.close()
    return out
