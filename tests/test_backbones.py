"""Backbone sources: the Hugging Face cache, TF Hub URLs through the TF Hub cache, more families."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401
import transformers
from helpers import write_tiny_roberta

import tfft
from tfft.errors import BackboneError

TEXTS = ["the movie was good", "The FILM was awful!", "great fun, love it"]


def test_hf_model_by_name_from_the_local_cache(tiny_bert_dir, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snapshot = cache / "models--tiny-org--tiny-bert" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_bert_dir, snapshot)
    (cache / "models--tiny-org--tiny-bert" / "refs").mkdir()
    (cache / "models--tiny-org--tiny-bert" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    backbone = tfft.load_backbone(hf_model="tiny-org/tiny-bert")
    assert backbone.kind == "hf" and backbone.source == "tiny-org/tiny-bert"


def test_hub_https_url_resolves_through_the_tf_hub_cache(tiny_text_embedding_dir, tmp_path, monkeypatch):
    url = "https://models.example.com/tiny-embedding/1"
    cache = tmp_path / "tfhub_cache"
    shutil.copytree(tiny_text_embedding_dir, cache / hashlib.sha1(url.encode()).hexdigest())
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    model = tfft.build_model(hub_url=url, num_labels=2)
    assert model.tfft_spec.backbone.kind == "hub-text"


def test_uncached_hub_url_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "empty_cache"))
    with pytest.raises(BackboneError, match="cannot be downloaded here"):
        tfft.load_backbone(hub_url="https://models.example.invalid/not-cached/1")


def test_roberta_exports_raw_text_with_the_in_graph_byte_level_bpe(tmp_path):
    folder = tmp_path / "roberta"
    write_tiny_roberta(folder)
    model = tfft.build_model(hf_model=str(folder), label_names=["a", "b"], pair=True)
    encoder = model.tfft_spec.backbone.encoder
    assert encoder.graph_tokenizer() is not None  # byte-level BPE runs in the graph (tfft.text.bpe)
    assert encoder.template.prefix == (0,) and encoder.template.middle == (2, 2)
    path = tfft.export_saved_model(model, tmp_path / "m", max_length=24)
    metadata = json.loads((path / "assets.extra" / "tfft.json").read_text())
    assert metadata["in_graph_tokenizer"] is True and "predict_ids" in metadata["signatures"]
    classifier = tfft.ExportedClassifier(path)
    got = classifier.predict(TEXTS, TEXTS[::-1])["probabilities"]
    data = tfft.make_dataset(model, TEXTS, text_pairs=TEXTS[::-1], max_length=24)
    np.testing.assert_allclose(got, tf.nn.softmax(model.predict(data, verbose=0)).numpy(), atol=1e-4)


@pytest.mark.long  # another WordPiece family; BERT and RoBERTa raw-text exports stay in the default suite
def test_mpnet_wordpiece_with_its_own_special_tokens_exports_raw_text(tmp_path):
    from helpers import tiny_vocab

    folder = tmp_path / "mpnet"
    folder.mkdir()
    vocab = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] + tiny_vocab()[5:]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.MPNetTokenizerFast(str(folder / "vocab.txt")).save_pretrained(str(folder))
    config = transformers.MPNetConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    mpnet = transformers.TFMPNetModel(config)
    mpnet(mpnet.dummy_inputs)
    mpnet.save_pretrained(str(folder))
    model = tfft.build_model(hf_model=str(folder), label_names=["a", "b"], pair=True)
    encoder = model.tfft_spec.backbone.encoder
    python = encoder.encode(TEXTS, TEXTS[::-1], 20)
    from tfft.tokenization import GraphTextEncoder

    graph = GraphTextEncoder(encoder.graph_tokenizer(), encoder.template).encode(TEXTS, TEXTS[::-1], 20)
    assert [list(r) for r in graph.input_ids] == [list(r) for r in python.input_ids]
    path = tfft.export_saved_model(model, tmp_path / "m", max_length=20)
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["serving_default"](text=tf.constant(TEXTS), text_pair=tf.constant(TEXTS[::-1]))
    data = tfft.make_dataset(model, TEXTS, text_pairs=TEXTS[::-1], max_length=20)
    np.testing.assert_allclose(
        out["probabilities"].numpy(), tf.nn.softmax(model.predict(data, verbose=0)).numpy(), atol=1e-4
    )
