"""Packing, blends and sampling (acceptance 5), and packed = padded loss (acceptance 6)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers import padded_batch, random_documents, randomize_, small_config, small_special_tokens, write_corpus
from rexbert.data.blend import BlendSchedule, parse_blend
from rexbert.data.collate import collate_packed, collate_padded, packed_seq_params
from rexbert.data.dataset import DataConfig, PretrainingDataset
from rexbert.data.masking import MaskingConfig
from rexbert.data.packing import pack_epoch
from rexbert.data.sampler import GlobalBatchSampler

SPECIAL = small_special_tokens()
SEQ = 128


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    general = write_corpus(root / "general", random_documents(300, 5, 300, seed=1))
    docs = random_documents(120, 10, 90, seed=2)
    spans = [[[1, 4], [len(d) // 2, len(d) // 2 + 3]] for d in docs]
    domain = write_corpus(root / "domain", docs, spans)
    return general, domain


def make_dataset(corpora, **overrides) -> PretrainingDataset:
    general, domain = corpora
    fields = dict(blend=["0.7", general, "0.3", domain], seq_length=SEQ, seed=5,
                  masking=MaskingConfig(strategy="span", mask_ratio=0.3, guided_fraction=0.1))
    fields.update(overrides)
    return PretrainingDataset(DataConfig(**fields), SPECIAL)


def test_epoch_packing_covers_every_token_once():
    lengths = np.array([5, 300, 0, 126, 127, 1, 40])
    packing = pack_epoch(lengths, SEQ, seed=0, dataset=0, epoch=0)
    covered = {d: np.zeros(n, dtype=int) for d, n in enumerate(lengths)}
    for s in range(packing.num_sequences):
        pieces = packing.pieces(s)
        assert sum(p.framed_length for p in pieces) <= SEQ
        for p in pieces:
            covered[p.document][p.start:p.end] += 1
    assert all((c == 1).all() for c in covered.values())
    assert max(p.chunk for s in range(packing.num_sequences) for p in packing.pieces(s)) == 2  # 300 = 126+126+48


def test_pieces_are_framed_and_masked_consistently(corpora):
    data = make_dataset(corpora)
    for piece in data[0] + data[1]:
        assert piece.input_ids[0] == SPECIAL.cls_id and piece.input_ids[-1] == SPECIAL.sep_id
        assert piece.labels[0] == -100 and piece.labels[-1] == -100
        assert len(piece.input_ids) <= SEQ


def test_blend_counts_track_weights_and_anneal():
    schedule = BlendSchedule(["0.7", "a", "0.3", "b"], ["0.0", "a", "1.0", "b"], 1000, 2000)
    picks = np.array([schedule.lookup(i)[0] for i in range(3000)])
    assert abs(np.mean(picks[:1000] == 1) - 0.3) < 0.01
    assert abs(np.mean(picks[2000:] == 1) - 1.0) < 0.01
    assert 0.5 < np.mean(picks[1000:2000] == 1) < 0.8  # halfway through a 0.3 → 1.0 anneal
    within = [schedule.lookup(i)[1] for i in range(3000) if picks[i] == 0]
    assert within == list(range(len(within)))  # each dataset is read in order


def test_blend_errors_name_the_key():
    with pytest.raises(ValueError, match="data.blend"):
        parse_blend(["0.5", "a", "0.5"])
    with pytest.raises(ValueError, match="data.blend_end"):
        BlendSchedule(["1", "a", "1", "b"], ["1", "b", "1", "a"], 0, 10)


def test_missing_prefix_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        PretrainingDataset(DataConfig(blend=[str(tmp_path / "nothing_here")]), SPECIAL)


def _read(data: PretrainingDataset, sampler: GlobalBatchSampler, steps: int):
    out = []
    for _, micro_batches in zip(range(steps), sampler):
        out.append([[np.concatenate([p.input_ids for p in data[i]]) for i in mb] for mb in micro_batches])
    return out


def test_same_seed_same_batches_and_resume(corpora):
    a = _read(make_dataset(corpora), GlobalBatchSampler(8, 2), 12)
    b = _read(make_dataset(corpora), GlobalBatchSampler(8, 2), 12)
    resumed = _read(make_dataset(corpora), GlobalBatchSampler(8, 2, consumed_samples=5 * 8), 7)
    flat = lambda steps: [x for step in steps for mb in step for x in mb]  # noqa: E731
    assert all(np.array_equal(x, y) for x, y in zip(flat(a), flat(b)))
    assert all(np.array_equal(x, y) for x, y in zip(flat(a[5:]), flat(resumed)))
    other_seed = _read(make_dataset(corpora, seed=6), GlobalBatchSampler(8, 2), 1)
    assert not all(np.array_equal(x, y) for x, y in zip(flat(a[:1]), flat(other_seed)))


def test_dp2_ranks_see_the_dp1_global_batch(corpora):
    data = make_dataset(corpora)
    one = GlobalBatchSampler(8, 2)
    ranks = [GlobalBatchSampler(8, 2, dp_rank=r, dp_size=2) for r in range(2)]
    for step in range(20):
        global_batch = [i for mb in one.step_indices(step) for i in mb]
        together = [i for r in ranks for mb in r.step_indices(step) for i in mb]
        assert together == global_batch
    # and the samples themselves are what rank-independent indexing gives
    assert np.array_equal(data[17][0].input_ids, make_dataset(corpora)[17][0].input_ids)


def test_packed_and_padded_give_the_same_per_document_loss(world_of_one, corpora):
    from rexbert.model.build import build_model

    model = build_model(small_config()).eval()
    randomize_(model, seed=51)
    data = make_dataset(corpora)
    samples = [data[i] for i in range(4)]
    packed = collate_packed(samples)
    padded = collate_padded(samples, SPECIAL.pad_id)
    assert torch.equal(packed["labels"][packed["labels"] != -100], padded["labels"][padded["labels"] != -100])
    with torch.no_grad():
        loss_packed = model(packed["input_ids"], packed_seq_params=packed_seq_params(packed), labels=packed["labels"])
        loss_padded = model(padded["input_ids"], padding_mask=padded["padding_mask"], labels=padded["labels"])
    # Per document: sum the per-token losses of each piece.
    counts = (padded["labels"] != -100).sum(dim=1).tolist()
    per_doc_packed = torch.stack([c.sum() for c in loss_packed.split(counts)])
    per_doc_padded = torch.stack([c.sum() for c in loss_padded.split(counts)])
    assert (per_doc_packed - per_doc_padded).abs().max().item() <= 1e-5


def test_loader_yields_the_sampler_order(corpora):
    from rexbert.data.loader import micro_batch_loader

    data = make_dataset(corpora)
    sampler = GlobalBatchSampler(4, 2, consumed_samples=8)
    batches = iter(micro_batch_loader(data, sampler))
    first = next(batches)
    expected = collate_packed([data[8], data[9]])
    assert torch.equal(first["input_ids"], expected["input_ids"])
    assert torch.equal(first["cu_seqlens"], expected["cu_seqlens"])
    padded = next(iter(micro_batch_loader(make_dataset(corpora, packed=False), GlobalBatchSampler(4, 2))))
    assert padded["input_ids"].shape[0] == len(data[0]) + len(data[1])


def test_span_side_file_with_no_spans_opens(tmp_path):
    from rexbert.data.documents import DocumentSource

    prefix = write_corpus(tmp_path / "nospans", random_documents(5, 3, 9), spans=[[] for _ in range(5)])
    source = DocumentSource(prefix)
    assert source.has_spans and source.spans(2).shape == (0, 2)


def test_fp8_pack_padding_leaves_real_tokens_unchanged(world_of_one, corpora):
    """A pack padded to a multiple of 16 (one dummy segment, labels ignored) gives the same
    logits on every real token and the same per-token losses as the unpadded pack."""
    from rexbert.data.collate import document_lengths
    from rexbert.model.build import build_model

    model = build_model(small_config()).eval()
    randomize_(model, seed=52)
    data = make_dataset(corpora)
    samples = [data[i] for i in range(3)]
    plain = collate_packed(samples)
    total = plain["input_ids"].shape[1]
    assert total % 16, "pick samples whose pack is not already a multiple of 16"
    padded = collate_packed(samples, pad_to_multiple=16, pad_id=SPECIAL.pad_id)
    pad = padded["num_padding"]
    assert padded["input_ids"].shape[1] == total + pad and padded["input_ids"].shape[1] % 16 == 0 and 0 < pad < 16
    assert torch.equal(padded["cu_seqlens"][:-1], plain["cu_seqlens"])
    assert (padded["input_ids"][0, total:] == SPECIAL.pad_id).all() and (padded["labels"][0, total:] == -100).all()
    assert document_lengths(padded) == document_lengths(plain) == torch.diff(plain["cu_seqlens"]).tolist()
    with torch.no_grad():
        logits = [model(b["input_ids"], packed_seq_params=packed_seq_params(b))[0, :total] for b in (plain, padded)]
        losses = [model(b["input_ids"], packed_seq_params=packed_seq_params(b), labels=b["labels"])
                  for b in (plain, padded)]
    # Same documents, one more (shortest) row in the attention's length groups: equal up to
    # SDPA's blocking over a different padded width (docs/benchmarks.md), if not bitwise.
    assert (logits[0] - logits[1]).abs().max().item() <= 1e-5
    assert losses[0].shape == losses[1].shape and (losses[0] - losses[1]).abs().max().item() <= 1e-5
    assert collate_packed(samples, pad_to_multiple=total)["input_ids"].shape[1] == total  # already a multiple
    assert "num_padding" not in collate_packed(samples, pad_to_multiple=1)


def test_pack_padding_follows_fp8_unless_set():
    from rexbert.data.collate import pack_multiple

    assert pack_multiple(None, None) == 0
    assert pack_multiple(None, "hybrid") == 16
    assert pack_multiple(0, "hybrid") == 0
    assert pack_multiple(64, None) == 64
    with pytest.raises(ValueError, match="data.pad_packed_to"):
        DataConfig(pad_packed_to=-1)
