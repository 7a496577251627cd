"""Acceptance 4: masking statistics over >= 10k sequences, special tokens never masked,
guided masking takes mined spans first; CLM targets stay inside a document."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import small_special_tokens
from rexbert.data.masking import IGNORE_INDEX, MaskingConfig, mask_piece, piece_rng

SPECIAL = small_special_tokens()
NUM_SEQUENCES = 10_000


def framed_piece(rng: np.random.Generator) -> np.ndarray:
    body = rng.integers(4, 500, size=int(rng.integers(20, 200)))
    body[rng.random(len(body)) < 0.02] = SPECIAL.mask_id  # literal special ids inside text
    return np.concatenate([[SPECIAL.cls_id], body, [SPECIAL.sep_id]])


def run(config: MaskingConfig, spans_for=None):
    masked = maskable = 0
    drawn: list[int] = []
    outputs = []
    for i in range(NUM_SEQUENCES):
        tokens = framed_piece(np.random.default_rng([99, i]))
        spans = spans_for(tokens) if spans_for else np.zeros((0, 2), dtype=np.int64)
        inputs, labels = mask_piece(tokens, spans, config, SPECIAL, piece_rng(7, 0, 0, i, 0), drawn)
        special = SPECIAL.is_special(tokens)
        assert (labels[special] == IGNORE_INDEX).all() and (inputs[special] == tokens[special]).all()
        masked += int((labels != IGNORE_INDEX).sum())
        maskable += int((~special).sum())
        outputs.append((tokens, spans, inputs, labels))
    return masked / maskable, drawn, outputs


@pytest.mark.parametrize("strategy", ["uniform", "span"])
@pytest.mark.parametrize("ratio", [0.15, 0.3])
def test_masked_fraction_on_target(strategy, ratio):
    fraction, _, _ = run(MaskingConfig(strategy=strategy, mask_ratio=ratio))
    assert abs(fraction - ratio) <= 0.005


@pytest.mark.parametrize("lam", [1.0, 3.0])
def test_span_lengths_are_one_plus_poisson(lam):
    _, drawn, _ = run(MaskingConfig(strategy="span", mask_ratio=0.3, span_lambda=lam))
    assert len(drawn) > 10_000
    assert abs(np.mean(drawn) / (1 + lam) - 1) <= 0.05


def test_replacement_split_80_10_10():
    _, _, outputs = run(MaskingConfig(strategy="uniform", mask_ratio=0.3))
    masked = np.concatenate([inp[lab != IGNORE_INDEX] for _, _, inp, lab in outputs])
    originals = np.concatenate([lab[lab != IGNORE_INDEX] for _, _, _, lab in outputs])
    as_mask = np.mean(masked == SPECIAL.mask_id)
    kept = np.mean(masked == originals)
    assert abs(as_mask - 0.8) < 0.01 and abs(kept - (0.1 + 0.1 / 496)) < 0.01
    assert not SPECIAL.is_special(masked[(masked != SPECIAL.mask_id)]).any()  # random ids are regular


def two_spans(tokens: np.ndarray) -> np.ndarray:
    n = len(tokens)
    return np.array([[2, 2 + max(1, n // 20)], [n // 2, n // 2 + max(1, n // 20)]])


def test_guided_masks_mined_spans_first():
    config = MaskingConfig(strategy="guided", mask_ratio=0.3)
    fraction, _, outputs = run(config, spans_for=two_spans)
    assert abs(fraction - 0.3) <= 0.005
    for tokens, spans, _, labels in outputs:
        special = SPECIAL.is_special(tokens)
        in_span = np.zeros(len(tokens), dtype=bool)
        for s, e in spans:
            in_span[s:e] = True
        in_span &= ~special
        # The budget (30%) exceeds the mined spans (~10%): every mined token is masked.
        assert (labels[in_span] != IGNORE_INDEX).all()


def test_guided_with_small_budget_masks_only_span_tokens():
    config = MaskingConfig(strategy="guided", mask_ratio=0.03)
    _, _, outputs = run(config, spans_for=two_spans)
    for tokens, spans, _, labels in outputs[:2000]:
        in_span = np.zeros(len(tokens), dtype=bool)
        for s, e in spans:
            in_span[s:e] = True
        assert not ((labels != IGNORE_INDEX) & ~in_span).any()


def test_guided_fraction_mixes_per_sequence():
    config = MaskingConfig(strategy="span", mask_ratio=0.05, guided_fraction=0.05)
    _, _, outputs = run(config, spans_for=two_spans)
    only_spans = 0
    for tokens, spans, _, labels in outputs:
        in_span = np.zeros(len(tokens), dtype=bool)
        for s, e in spans:
            in_span[s:e] = True
        masked = labels != IGNORE_INDEX
        only_spans += bool(masked.any() and not (masked & ~in_span).any())
    # Guided pieces mask only mined tokens at this budget; span pieces rarely do by chance.
    assert 0.03 < only_spans / len(outputs) < 0.09


def test_same_key_same_mask():
    tokens = framed_piece(np.random.default_rng(1))
    config = MaskingConfig()
    a = mask_piece(tokens, np.zeros((0, 2), dtype=np.int64), config, SPECIAL, piece_rng(1, 2, 3, 4, 5))
    b = mask_piece(tokens, np.zeros((0, 2), dtype=np.int64), config, SPECIAL, piece_rng(1, 2, 3, 4, 5))
    c = mask_piece(tokens, np.zeros((0, 2), dtype=np.int64), config, SPECIAL, piece_rng(1, 2, 3, 4, 6))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])


def test_clm_targets_stay_in_the_piece():
    tokens = framed_piece(np.random.default_rng(2))
    inputs, labels = mask_piece(tokens, np.zeros((0, 2), dtype=np.int64), MaskingConfig(objective="clm"),
                                SPECIAL, piece_rng(0, 0, 0, 0, 0))
    assert np.array_equal(inputs, tokens)
    assert np.array_equal(labels[:-1], tokens[1:]) and labels[-1] == IGNORE_INDEX


def test_bad_config_names_the_key():
    with pytest.raises(ValueError, match="data.masking.strategy"):
        MaskingConfig(strategy="random")
    with pytest.raises(ValueError, match="mask_ratio"):
        MaskingConfig(mask_ratio=1.5)
