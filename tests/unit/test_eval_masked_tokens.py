"""Masked-token recovery (rexbert.eval.mlm_protocol / mlm_masking / masked_tokens): top-k counted
right against set logits, masking deterministic and never on special tokens, word mode
independent of the tokenizer, the full run on real Abt product text."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from eval_helpers import abt_path, tiny_mlm_folder
from rexbert.eval import mlm_protocol
from rexbert.eval.common import EvalError, load_tokenizer, read_table
from rexbert.eval.masked_tokens import count_unit_hits, masked_token_recovery
from rexbert.eval.mlm_masking import mask_document
from rexbert.eval.mlm_protocol import MaskedTokensConfig, build_examples, run_masked_tokens



@pytest.fixture(scope="module")
def tiny(tiny_mlm):
    return tiny_mlm


@pytest.fixture(scope="module")
def tokenizer(tiny):
    return load_tokenizer(tiny)


@pytest.fixture(scope="module")
def abt_texts():
    return [f"{r['title']} {r['description']}".strip() for r in read_table(abt_path(), ["title", "description"])]


def logits_with_ranks(targets: list[int], ranks: list[int], vocab: int) -> torch.Tensor:
    """[n, vocab] logits where targets[i] is the ranks[i]-th best id (1-based), all scores distinct."""
    ids = torch.arange(vocab)
    rows = []
    for target, rank in zip(targets, ranks):
        others = ids[ids != target]
        order = torch.cat([others[:rank - 1], torch.tensor([target]), others[rank - 1:]])  # best first
        row = torch.empty(vocab)
        row[order] = torch.arange(vocab, 0, -1, dtype=torch.float)
        rows.append(row)
    return torch.stack(rows)


def test_count_unit_hits_hand_computed():
    targets = [3, 7, 1, 0, 9, 4]
    ranks = [1, 2, 3, 4, 5, 7]
    topk = logits_with_ranks(targets, ranks, 10).topk(5, dim=-1).indices
    tokens = [[i] for i in range(6)]
    assert count_unit_hits(topk, torch.tensor(targets), tokens, [1, 3, 5]) == {1: 1, 3: 3, 5: 5}
    # words: (ranks 1, 2), (3), (4, 5, 7): a word needs every token in its top-k
    words = [[0, 1], [2], [3, 4, 5]]
    assert count_unit_hits(topk, torch.tensor(targets), words, [1, 3, 5]) == {1: 0, 3: 2, 5: 2}


class SetLogitsModel(torch.nn.Module):
    """An MLM whose logits put each masked position's target at a chosen rank: 1 + position % 6."""

    def __init__(self, examples, vocab: int) -> None:
        super().__init__()
        self.by_ids = {tuple(e.input_ids): e for e in examples}
        self.vocab = vocab

    def forward(self, input_ids, attention_mask, **kwargs):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        for row, length in enumerate(attention_mask.sum(1).tolist()):
            example = self.by_ids[tuple(input_ids[row, :length].tolist())]
            for position, target in example.targets.items():
                logits[row, position] = logits_with_ranks([target], [1 + position % 6], self.vocab)[0]
        return SimpleNamespace(logits=logits)


@pytest.mark.parametrize("mode", ["token", "word"])
def test_run_with_set_logits_scores_exactly(tmp_path, monkeypatch, tiny, tokenizer, abt_texts, mode):
    texts = abt_texts[:12]
    data = tmp_path / "products.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    config = MaskedTokensConfig(model=str(tiny), data_path=str(data), output=str(tmp_path / "out.json"),
                                text_columns=["text"], block_sizes=[48], mode=mode, batch_size=5, baseline=False)
    examples = build_examples(tokenizer, texts, 48, mode, config.mask_ratio, config.seed)
    model = SetLogitsModel(examples, len(tokenizer))
    monkeypatch.setattr(mlm_protocol, "load_masked_lm", lambda path, device: (model, tokenizer))

    metrics = run_masked_tokens(config)["metrics"]["48"]

    worst = [max(1 + p % 6 for p in unit) for e in examples for unit in e.units]  # a word: its worst token
    assert metrics["positions"] == len(worst) > 0
    for k in (1, 3, 5):
        assert metrics[f"top{k}"] == pytest.approx(sum(r <= k for r in worst) / len(worst))
    assert json.loads((tmp_path / "out.json").read_text())["metrics"]["48"]["positions"] == len(worst)


def test_masking_deterministic_from_seed(tokenizer, abt_texts):
    texts = abt_texts[:30]
    for mode in ("token", "word"):
        first = build_examples(tokenizer, texts, 64, mode, 0.15, seed=3)
        again = build_examples(tokenizer, texts[::-1], 64, mode, 0.15, seed=3)[::-1]  # order does not matter
        other = build_examples(tokenizer, texts, 64, mode, 0.15, seed=4)
        assert [e.targets for e in first] == [e.targets for e in again]
        assert [e.targets for e in first] != [e.targets for e in other]


def test_special_tokens_never_masked_and_budget(tokenizer, abt_texts):
    special = set(tokenizer.all_special_ids)
    for block in (16, 128):
        masked = regular = 0
        for text in abt_texts[:200]:
            example = mask_document(tokenizer, text, block, "token", 0.15, seed=0)
            ids = tokenizer(text, truncation=True, max_length=block)["input_ids"]
            assert len(example.input_ids) == len(ids) <= block
            for position in example.targets:
                assert ids[position] not in special
                assert example.input_ids[position] == tokenizer.mask_token_id
            assert all(example.input_ids[p] == ids[p] for p in range(len(ids)) if p not in example.targets)
            n = sum(i not in special for i in ids)
            assert len(example.targets) <= max(1, round(0.15 * n))
            masked, regular = masked + len(example.targets), regular + n
            word = mask_document(tokenizer, text, block, "word", 0.15, seed=0)
            assert not any(ids[p] in special for p in word.targets)
        assert 0.12 < masked / regular < 0.16  # 15% per document, rounded


def wordpiece_tokenizer(texts):
    """A different (WordPiece, BERT-style) fast tokenizer trained on the same text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
        ("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def masked_words(tokenizer, text, example):
    offsets = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=512)["offset_mapping"]
    return sorted(text[min(offsets[p][0] for p in u):max(offsets[p][1] for p in u)].strip() for u in example.units)


def test_word_mode_masks_the_same_words_whatever_the_tokenizer(tokenizer, abt_texts):
    other = wordpiece_tokenizer(abt_texts)
    compared = differ = 0
    for text in abt_texts[:40]:
        a = mask_document(tokenizer, text, 512, "word", 0.15, seed=1)
        b = mask_document(other, text, 512, "word", 0.15, seed=1)
        assert masked_words(tokenizer, text, a) == masked_words(other, text, b)
        compared += len(a.units)
        differ += len(a.input_ids) != len(b.input_ids)
    assert compared > 100 and differ > 20  # many words, on genuinely different tokenisations


def test_run_on_abt_products(tmp_path, tiny, tokenizer):
    out = tmp_path / "masked.json"
    result = run_masked_tokens(MaskedTokensConfig(model=str(tiny), data_path=abt_path(), output=str(out), limit=40,
                                                  block_sizes=[32, 128], batch_size=8))
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics == json.loads(json.dumps(result["metrics"]))
    assert set(metrics) == {"32", "128"}
    for block, entry in metrics.items():
        assert entry["documents"] == 40 and entry["mean_tokens"] <= int(block)
        assert 0 <= entry["top1"] <= entry["top3"] <= entry["top5"] <= 1
        assert entry["positions"] == entry["masked_tokens"] > 0
    # the baseline predicts the evaluated texts' most frequent token everywhere: recount it
    texts = mlm_protocol.load_texts(abt_path(), ["title", "description"], " ", 40)
    counts = mlm_protocol.unigram_counts(tokenizer, texts)
    counts[tokenizer.all_special_ids] = -1
    examples = build_examples(tokenizer, texts, 128, "token", 0.15, 0)
    targets = [t for e in examples for t in e.targets.values()]
    assert metrics["128"]["baseline_top1"] == pytest.approx(np.mean(np.array(targets) == counts.argmax()))


def test_demo_api_still_works(tiny, tokenizer, abt_texts):
    ids = np.concatenate(tokenizer(abt_texts[:50], add_special_tokens=False)["input_ids"])
    frequencies = np.bincount(ids, minlength=len(tokenizer))
    result = masked_token_recovery(tiny, abt_texts[:8], frequencies, max_length=64)
    assert result.positions > 0 and 0 <= result.top1 <= result.top5 <= 1
    assert 0 <= result.baseline_top1 <= result.baseline_top5 <= 1


def test_clear_errors(tmp_path, tiny):
    with pytest.raises(EvalError, match="no column.*'body'"):
        run_masked_tokens(MaskedTokensConfig(model=str(tiny), data_path=abt_path(), text_columns=["title", "body"],
                                             output=str(tmp_path / "x.json")))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(EvalError, match="weights.*tokenizer"):
        run_masked_tokens(MaskedTokensConfig(model=str(broken), data_path=abt_path(), output=str(tmp_path / "x.json")))
    with pytest.raises(EvalError, match="mode="):
        MaskedTokensConfig(mode="span")
    with pytest.raises(EvalError, match="block_sizes"):
        MaskedTokensConfig(block_sizes=[])
