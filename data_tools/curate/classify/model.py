"""fastText (fasttext-numpy2) training, scoring and atomic saving of a relevance classifier."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..shards import CurationError
from .config import DistillConfig
from .text import LABEL_PREFIX, training_line

RELEVANT = f"{LABEL_PREFIX}relevant"
FASTTEXT_LOG_EPS = 1e-5  # fastText scores are exp(log(p + 1e-5))
M_PERTURB = -6  # glibc mallopt parameter


def _fasttext():
    import fasttext

    return fasttext


@contextlib.contextmanager
def zeroed_allocations() -> Iterator[None]:
    """While fastText builds a model, make malloc hand out zeroed memory.

    fasttext-numpy2 (fastText master) keeps matrices in an uninitialised
    ``intgemm::AlignedVector`` and its random init writes only ``thread``/10 of the input
    matrix; the rest is whatever the heap held: NaN ("Encountered NaN" even at lr 1e-12),
    or finite garbage such as the weights of the model trained before it (CV folds leaking
    into each other, and a seed that no longer fixes the result). glibc's ``M_PERTURB``
    with 0xff fills each allocation with 0x00 (upstream 0.9.2's std::vector zeros);
    it is switched off again afterwards. Without glibc, a warning."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None or mallopt(M_PERTURB, 0xFF) != 1:
        print("[distill] warning: no glibc mallopt(M_PERTURB): fastText may start from uninitialised memory "
              "(NaN, non-deterministic results)", file=sys.stderr)
        yield
        return
    try:
        yield
    finally:
        mallopt(M_PERTURB, 0)


def train(texts: Sequence[str], relevant: np.ndarray, config: DistillConfig, work_dir: Path, seed: int):
    """A supervised model on normalised ``texts``. fastText reads its training data from a
    file: a temporary one in ``work_dir``, lines shuffled (fastText decays lr over the file
    in order; one class after the other would bias it)."""
    order = np.random.default_rng(seed).permutation(len(texts))
    fd, name = tempfile.mkstemp(prefix=".train-", suffix=".txt", dir=work_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for i in order:
                f.write(training_line("relevant" if relevant[i] else "not_relevant", texts[i]))
        with zeroed_allocations():
            return _fasttext().train_supervised(
                input=name, epoch=config.epoch, lr=config.lr, dim=config.dim, wordNgrams=config.word_ngrams,
                minn=config.minn, maxn=config.maxn, minCount=config.min_count, loss=config.loss,
                bucket=config.bucket, thread=config.threads, seed=seed, verbose=0)
    except RuntimeError as e:
        if "NaN" not in str(e):
            raise
        raise CurationError(f"fastText training diverged ({e}): lower distill.lr={config.lr}") from None
    finally:
        os.unlink(name)


def p_relevant(model, texts: Sequence[str]) -> np.ndarray:
    """P(relevant) of each normalised text (0 where the model gives the label no score)."""
    if not texts:
        return np.zeros(0)
    labels, probs = model.predict(list(texts), k=-1)
    return np.array([_relevant_prob(ls, ps) for ls, ps in zip(labels, probs)], dtype=np.float64)


def p_relevant_one(model, text: str) -> float:
    labels, probs = model.predict(text, k=-1)
    return _relevant_prob(labels, probs)


def _relevant_prob(labels, probs) -> float:
    for label, prob in zip(labels, probs):
        if label == RELEVANT:
            # take fastText's 1e-5 back off (clipping alone would tie the top scores at 1.0)
            return min(max(float(prob) - FASTTEXT_LOG_EPS, 0.0), 1.0)
    return 0.0


def quantize(model) -> None:
    with zeroed_allocations():
        model.quantize(retrain=False)


def save(model, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    model.save_model(str(tmp))
    os.replace(tmp, path)


def load(path: Path):
    if not path.is_file():
        raise FileNotFoundError(path)
    return _fasttext().load_model(str(path))
