"""build_model on each backbone source; exports reload and agree with the Keras model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401 - in-graph tokenizer ops for reloading exports

import tfft
from tfft.errors import BackboneError, ConfigError, DataError, ExportError

TEXTS = ["the movie was good", "The FILM was awful!", "great fun, love it", "boring plot...", "café night"]
PAIRS = ["it was fun", "not good", "hate", "the actors", "day"]


def keras_probabilities(model, texts, pairs=None, max_length=128):
    data = tfft.make_dataset(model, texts, text_pairs=pairs, batch_size=8, max_length=max_length)
    return tf.nn.softmax(model.predict(data, verbose=0)).numpy()


def train_briefly(model, pairs=None):
    labels = ["pos", "neg", "pos", "neg", "pos"]
    model.compile(
        optimizer=tfft.keras.keras.optimizers.Adam(1e-2),
        loss=tfft.loss_for(model),
        weighted_metrics=tfft.metrics_for(model),
    )
    data = tfft.make_dataset(model, TEXTS, labels, text_pairs=pairs, batch_size=4, training=True, seed=0)
    model.fit(data, epochs=2, verbose=0)


def check_export(model, tmp_path, pairs=None, max_length=128):
    path = tfft.export_saved_model(model, tmp_path / "serving" / "m", max_length=max_length)
    assert path.name == "1"
    loaded = tf.saved_model.load(str(path))
    kwargs = {"text": tf.constant(TEXTS)}
    if pairs is not None:
        kwargs["text_pair"] = tf.constant(pairs)
    out = loaded.signatures["serving_default"](**kwargs)
    expected = keras_probabilities(model, TEXTS, pairs, max_length)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-4)
    names = tfft.model.spec_of(model).label_names
    assert [label.decode() for label in out["label"].numpy()] == [names[i] for i in expected.argmax(-1)]
    assert out["label_id"].numpy().tolist() == expected.argmax(-1).tolist()
    return path


@pytest.mark.parametrize(
    "pooling",
    ["auto", pytest.param("cls", marks=pytest.mark.long), pytest.param("pooler", marks=pytest.mark.long)],
)
def test_hf_model_trains_and_exports_raw_text(tiny_bert_dir, tmp_path, pooling):
    model = tfft.build_model(
        hf_model=str(tiny_bert_dir), task="classify", label_names=["neg", "pos"], pooling=pooling
    )
    assert model.output_shape == (None, 2)
    train_briefly(model)
    path = check_export(model, tmp_path)
    metadata = json.loads((path / "assets.extra" / "tfft.json").read_text())
    assert metadata["labels"] == ["neg", "pos"] and metadata["in_graph_tokenizer"] is True
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"serving_default", "predict_ids"}


def test_hf_pair_model_exports_pair_signature(tiny_bert_dir, tmp_path):
    model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"], pair=True)
    train_briefly(model, PAIRS)
    check_export(model, tmp_path, PAIRS, max_length=12)  # short: truncation in the graph too


def test_export_versions_increase_and_never_overwrite(tiny_bert_dir, tmp_path):
    model = tfft.build_model(hf_model=str(tiny_bert_dir), num_labels=3)
    first = tfft.export_saved_model(model, tmp_path / "m")
    second = tfft.export_saved_model(model, tmp_path / "m")
    assert (first.name, second.name) == ("1", "2")
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".tmp")]


def test_export_to_unwritable_folder_is_a_clear_error(tiny_bert_dir, tmp_path):
    model = tfft.build_model(hf_model=str(tiny_bert_dir), num_labels=2)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="Cannot write the export folder"):
        tfft.export_saved_model(model, blocker / "m")


@pytest.mark.parametrize(
    "model_type",
    [
        "distilbert",
        pytest.param("electra", marks=pytest.mark.long),
        pytest.param("albert", marks=pytest.mark.long),
    ],
)
def test_other_encoder_families(tmp_path, model_type):
    from helpers import write_tiny_bert

    folder = write_tiny_bert(tmp_path / model_type, model_type=model_type)
    model = tfft.build_model(hf_model=str(folder), label_names=["neg", "pos"])
    train_briefly(model)
    check_export(model, tmp_path)


def test_gpt2_decoder_pools_last_token_and_exports_ids_signature(tmp_path):
    import transformers

    folder = tmp_path / "gpt2"
    vocab = {"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz.,!Ġ")}}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.GPT2TokenizerFast(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    tokenizer.save_pretrained(str(folder))
    config = transformers.GPT2Config(vocab_size=len(vocab), n_embd=16, n_layer=1, n_head=2, n_positions=64)
    gpt2 = transformers.TFGPT2Model(config)
    gpt2(gpt2.dummy_inputs)
    gpt2.save_pretrained(str(folder))

    model = tfft.build_model(hf_model=str(folder), label_names=["neg", "pos"])
    assert tfft.model.spec_of(model).pooling == "last"
    # Right padding must not change a row's prediction: the last *real* token is pooled.
    alone = keras_probabilities(model, ["good"])
    batched = keras_probabilities(model, ["good", "a much longer sentence here"])
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)

    path = tfft.export_saved_model(model, tmp_path / "m", max_length=32)
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"serving_default", "predict_ids"}
    metadata = json.loads((path / "assets.extra" / "tfft.json").read_text())
    assert metadata["in_graph_tokenizer"]  # byte-level BPE runs in the graph (tfft.text.bpe)
    classifier = tfft.ExportedClassifier(path)
    got = classifier.predict(TEXTS)["probabilities"]
    np.testing.assert_allclose(got, keras_probabilities(model, TEXTS, max_length=32), atol=1e-4)


def test_hub_encoder_with_preprocessor_and_with_vocab_asset(tiny_hub_bert, tmp_path):
    for preprocess in (str(tiny_hub_bert.preprocess_dir), None):
        model = tfft.build_model(
            hub_url=str(tiny_hub_bert.encoder_dir), hub_preprocess_url=preprocess, label_names=["neg", "pos"]
        )
        before = [w.numpy().copy() for w in model.trainable_weights]
        train_briefly(model)
        changed = [not np.allclose(a, w.numpy()) for a, w in zip(before, model.trainable_weights)]
        assert sum(changed) > len(changed) // 2  # the hub encoder is fine-tuned, not frozen
        check_export(model, tmp_path / ("pre" if preprocess else "vocab"))


def test_hub_text_embedding_module_single_and_pairs(tiny_text_embedding_dir, tmp_path):
    model = tfft.build_model(hub_url=str(tiny_text_embedding_dir), label_names=["neg", "pos"])
    train_briefly(model)
    check_export(model, tmp_path / "single")
    pair_model = tfft.build_model(hub_url=str(tiny_text_embedding_dir), label_names=["neg", "pos"], pair=True)
    train_briefly(pair_model, PAIRS)
    check_export(pair_model, tmp_path / "pair", PAIRS)


def test_backbone_errors(tmp_path, tiny_bert_dir):
    with pytest.raises(ConfigError, match="exactly one backbone"):
        tfft.build_model(num_labels=2)
    with pytest.raises(ConfigError, match="exactly one backbone"):
        tfft.build_model(hf_model=str(tiny_bert_dir), hub_url="x", num_labels=2)
    with pytest.raises(BackboneError, match="not in the local Hugging Face cache"):
        tfft.build_model(hf_model="no-such-org/no-such-model", num_labels=2)
    with pytest.raises(BackboneError, match="https:// URL or a local path"):
        tfft.build_model(hub_url="ftp://example.com/model", num_labels=2)
    with pytest.raises(BackboneError, match="no such folder"):
        tfft.build_model(hub_url=str(tmp_path / "missing"), num_labels=2)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackboneError, match="no saved_model.pb"):
        tfft.build_model(hub_url=str(empty), num_labels=2)
    with pytest.raises(ConfigError, match="task"):
        tfft.build_model(hf_model=str(tiny_bert_dir), task="translate-everything", num_labels=2)
    with pytest.raises(ConfigError, match="num_labels"):
        tfft.build_model(hf_model=str(tiny_bert_dir), num_labels=1)


def test_make_dataset_rejects_unknown_labels_and_missing_pairs(tiny_bert_dir):
    model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"])
    with pytest.raises(DataError, match="labels\\[1\\]: label 'meh'"):
        tfft.make_dataset(model, ["a", "b"], labels=["pos", "meh"])
    with pytest.raises(DataError, match="text_pairs"):
        tfft.make_dataset(model, ["a"], text_pairs=["b"])


def test_exported_classifier_batches_rows_by_length_and_answers_in_input_order(
    tiny_bert_dir, tmp_path, monkeypatch
):
    """``run_sequence`` (``tfft predict`` / ``evaluate`` of sentence tasks) sends rows of
    similar length together and returns every answer at its text's position."""
    model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"])
    train_briefly(model)
    classifier = tfft.ExportedClassifier(tfft.export_saved_model(model, tmp_path / "m", max_length=32))
    texts = [" ".join(["word"] * (1 + (7 * i) % 11)) + f" {text}" for i, text in enumerate(TEXTS * 3)]
    alone = np.concatenate([classifier.predict([text])["probabilities"] for text in texts])
    sent = []
    call = type(classifier)._call_sequence

    def recording(self, chunk, chunk_pairs):
        sent.append([len(text) for text in chunk])
        return call(self, chunk, chunk_pairs)

    monkeypatch.setattr(type(classifier), "_call_sequence", recording)
    got = classifier.predict(texts, batch_size=4)["probabilities"]
    np.testing.assert_allclose(got, alone, atol=1e-5)
    assert [n for chunk in sent for n in chunk] == sorted(len(text) for text in texts)
