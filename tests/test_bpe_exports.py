"""Exports of byte-level BPE models take raw text: the in-graph tokenizer equals the Python path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from helpers import write_bpe_tokenizer, write_tiny_bpe_model, write_tiny_gpt2_lm

import tfft
from tfft.pipeline import ExportedModel

TEXTS = [
    "The cat sat on the mat, and it's 2024!",
    "Héllo wörld 你好世界 🙂🎉  tabs\tand\nnew lines  ",
    "",
    "numbers 3.14159 and a long long long long long long long long long long long long text",
]
MAX_LENGTH = 16


@pytest.fixture(scope="module")
def bpe_models(tmp_path_factory):
    return {
        family: write_tiny_bpe_model(tmp_path_factory.mktemp(family) / "m", family)
        for family in ("roberta", "gpt2")
    }


@pytest.mark.parametrize(
    ("family", "task", "options"),
    [
        ("roberta", "classify", {"label_names": ["a", "b"], "pair": True}),
        ("roberta", "regress", {"num_labels": 1}),
        ("gpt2", "classify", {"label_names": ["a", "b", "c"]}),
        ("gpt2", "multilabel", {"label_names": ["x", "y"]}),
    ],
)
def test_sequence_exports_take_raw_text(bpe_models, family, task, options, tmp_path):
    model = tfft.build_model(hf_model=str(bpe_models[family]), task=task, **options)
    path = tfft.export_saved_model(model, tmp_path / "export", max_length=MAX_LENGTH)
    metadata = json.loads((path / "assets.extra" / "tfft.json").read_text())
    assert metadata["in_graph_tokenizer"] and not (path / "assets.extra" / "tokenizer").exists()
    loaded = ExportedModel(path).loaded
    pairs = TEXTS[::-1] if options.get("pair") else None
    inputs = {"text": tf.constant(TEXTS)} | ({"text_pair": tf.constant(pairs)} if pairs else {})
    served = loaded.signatures["serving_default"](**inputs)
    # the same model through token ids from the Python (Hugging Face) tokenizer
    encoder = model.tfft_spec.backbone.encoder
    encoded = encoder.encode(TEXTS, pairs, MAX_LENGTH)
    assert max(len(row) for row in encoded.input_ids) == MAX_LENGTH  # truncation is exercised
    width = max(len(row) for row in encoded.input_ids)
    ids = np.full([len(TEXTS), width], encoder.template.pad_id, np.int32)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, (piece_ids, piece_types) in enumerate(zip(encoded.input_ids, encoded.token_type_ids)):
        ids[row, : len(piece_ids)], mask[row, : len(piece_ids)], types[row, : len(piece_ids)] = (
            piece_ids,
            1,
            piece_types,
        )
    by_ids = loaded.signatures["predict_ids"](input_ids=ids, attention_mask=mask, token_type_ids=types)
    assert set(served) == set(by_ids)
    for name, value in by_ids.items():
        if value.dtype == tf.string or value.dtype.is_integer:
            assert served[name].numpy().tolist() == value.numpy().tolist(), name
        else:
            np.testing.assert_allclose(served[name].numpy(), value.numpy(), atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def gpt2_lm(tmp_path_factory):
    return write_tiny_gpt2_lm(tmp_path_factory.mktemp("gpt2_lm") / "lm")


def test_causal_lm_export_templates_truncates_and_stops_like_python(gpt2_lm, tmp_path, monkeypatch):
    from tfft.tasks.causal_lm.serving import CausalLMServing

    monkeypatch.setattr(CausalLMServing, "_xla_works", lambda self: False)  # XLA export: test_causal_lm.py
    model = tfft.build_model(
        hf_model=str(gpt2_lm),
        task="causal-lm",
        max_new_tokens=8,
        template="Q: {prompt}\\nA: {prompt} ->",
        stop="the|\\n",
    )
    task = model.tfft_spec.task_object
    prompts = ["the cat", "a bird sang in the tree and the sun is hot and the moon is cold " * 2, "héllo 🙂"]
    expected = task.generate(model, prompts, batch_size=4, max_length=MAX_LENGTH, xla=False)
    path = tfft.export_saved_model(model, tmp_path / "lm", max_length=MAX_LENGTH)
    loaded = ExportedModel(path).loaded
    served = loaded.signatures["serving_default"](text=tf.constant(prompts))
    assert [text.decode("utf-8") for text in served["generated_text"].numpy()] == expected
    plain = CausalLMServing(
        tfft.build_model(hf_model=str(gpt2_lm), task="causal-lm", max_new_tokens=2), 8, xla=False
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="Every prompt needs at least one token"):
        plain.from_text(tf.constant(["the cat", ""]))


def test_causal_lm_detokenizes_like_python_generation(gpt2_lm):
    import transformers

    from tfft.text.bpe import ByteLevelBPETokenizer

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gpt2_lm))
    graph = ByteLevelBPETokenizer.from_hf_tokenizer(tokenizer)
    rows = np.random.default_rng(0).integers(0, len(tokenizer), size=(16, 12)).tolist()
    decoded = [text.decode("utf-8") for text in graph.detokenize(tf.constant(rows)).numpy()]
    assert decoded == tokenizer.batch_decode(rows, skip_special_tokens=True)


def test_a_tokenizer_that_is_not_plain_byte_level_keeps_token_ids(tmp_path):
    import transformers

    from tfft.text.bpe import ByteLevelBPETokenizer

    folder = write_bpe_tokenizer(tmp_path / "gpt2", "gpt2")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec["model"]["dropout"] = 0.1  # BPE dropout is random: no graph twin
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    changed = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert ByteLevelBPETokenizer.from_hf_tokenizer(changed) is None
