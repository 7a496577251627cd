"""Acceptance 5: the exported folder loads offline with AutoModelForMaskedLM, AutoTokenizer
and sentence-transformers; import gives the same weights back; configs we cannot
represent are rejected with the flag named; writes are atomic."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from helpers import randomize_, small_config, weights
from rexbert.model.build import build_model
from rexbert.model.hf import export_hf, import_hf, read_hf_folder, save_hf_folder
from rexbert.tokenizer import VOCAB_SIZE

GOLDEN = [50281, 510, 5347, 273, 6181, 310, 50284, 15, 50282]  # ModernBERT's own ids


@pytest.fixture(scope="module")
def exported(world_of_one, tmp_path_factory):
    config = small_config(vocab_size=VOCAB_SIZE, pad_token_id=50283)
    model = build_model(config).eval()
    randomize_(model, seed=21)
    out = tmp_path_factory.mktemp("export") / "rexbert-tiny"
    assert export_hf(model, out) == out
    return model, out


def test_automodel_logits_equal_ours(exported):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model, out = exported
    hf = AutoModelForMaskedLM.from_pretrained(out, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    batch = tok(["The capital of France is [MASK].", "Stainless steel 12-cup coffee maker"],
                padding=True, return_tensors="pt")
    padding = batch["attention_mask"] == 0
    with torch.no_grad():
        ours = model(batch["input_ids"], padding_mask=padding)
        theirs = hf(**batch).logits
    assert (ours - theirs)[~padding].abs().max().item() <= 1e-4
    assert torch.equal(hf.decoder.weight, hf.model.embeddings.tok_embeddings.weight)  # tied


def test_tokenizer_golden_ids(exported):
    from transformers import AutoTokenizer

    _, out = exported
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert tok("The capital of France is [MASK].")["input_ids"] == GOLDEN
    assert len(tok) == VOCAB_SIZE


def test_config_writes_both_thetas(exported):
    _, out = exported
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["rope_parameters"]["full_attention"]["rope_theta"] == 160_000.0
    assert cfg["rope_parameters"]["sliding_attention"]["rope_theta"] == 10_000.0
    assert cfg["global_rope_theta"] == 160_000.0 and cfg["local_rope_theta"] == 10_000.0


def test_sentence_transformers_embeds(exported):
    from sentence_transformers import SentenceTransformer

    _, out = exported
    st = SentenceTransformer(str(out), device="cpu", local_files_only=True)
    emb = st.encode(["wireless mouse", "ergonomic keyboard", "wireless mouse"], convert_to_tensor=True)
    assert emb.shape == (3, 64)
    assert torch.isfinite(emb).all()
    assert torch.allclose(emb[0], emb[2]) and not torch.allclose(emb[0], emb[1])


def test_import_round_trip(exported):
    model, out = exported
    imported = import_hf(out)
    ours, back = weights(model), weights(imported)
    assert set(ours) == set(back)
    assert all(torch.equal(ours[k], back[k]) for k in ours)


@pytest.mark.parametrize(
    "flag, value",
    [("norm_bias", True), ("hidden_activation", "silu"), ("tie_word_embeddings", False),
     ("layer_types", ["sliding_attention", "full_attention", "full_attention", "sliding_attention"])],
)
def test_unrepresentable_config_is_rejected(exported, tmp_path, flag, value):
    _, out = exported
    copy = tmp_path / "bad"
    shutil.copytree(out, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg[flag] = value
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=flag):
        read_hf_folder(copy)


def test_failed_export_keeps_previous_folder(exported, tmp_path, monkeypatch):
    model, out = exported
    target = tmp_path / "keep"
    shutil.copytree(out, target)
    before = (target / "model.safetensors").read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_hf_folder(model.state_dict(), model.rexbert_config, target)
    assert (target / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]  # no temporary left behind


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_hf_folder(tmp_path / "nowhere")


def test_convert_check_cli(exported, capsys):
    from rexbert.convert import main

    _, out = exported
    assert main(["check", str(out), "--texts", "2"]) == 0
    assert "ok" in capsys.readouterr().out


def test_convert_reexport_cli(exported, tmp_path):
    from rexbert.convert import main

    _, out = exported
    assert main(["reexport", str(out), str(tmp_path / "again")]) == 0
    assert (tmp_path / "again/model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
