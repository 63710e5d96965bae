"""Summarization and translation (``--task summarize|translate``) on tiny random encoder-decoders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from helpers import (
    ENGLISH,
    GERMAN,
    write_german_bert,
    write_tiny_bart,
    write_tiny_bert,
    write_tiny_marian,
    write_tiny_t5,
)

import tfft
from tfft.config import load_config
from tfft.data.parallel import PairExamples
from tfft.errors import BackboneError, ConfigError, DataError
from tfft.keras import keras
from tfft.pipeline import ExportedModel, predict_rows, read_train_eval, run_evaluate
from tfft.tasks import get_task


@pytest.fixture(scope="module")
def bert2bert_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert2bert")
    return write_tiny_bert(root / "encoder", layers=1), write_german_bert(root / "decoder")


@pytest.fixture(scope="module")
def parallel_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("parallel")
    rows = list(zip(ENGLISH, GERMAN)) * 6
    (folder / "train.en").write_text("\n".join(s for s, _ in rows) + "\n\n")  # trailing blank lines are fine
    (folder / "train.de").write_text("\n".join(t for _, t in rows) + "\n")
    (folder / "val.en").write_text("\n".join(ENGLISH) + "\n")
    (folder / "val.de").write_text("\n".join(GERMAN) + "\n")
    lines = ["source\ttarget"] + [f"{s}\t{t}" for s, t in zip(ENGLISH, GERMAN)]
    (folder / "pairs.tsv").write_text("\n".join(lines) + "\n")
    return {
        name.replace(".", "_"): folder / name
        for name in ("train.en", "train.de", "val.en", "val.de", "pairs.tsv")
    }


@pytest.fixture(scope="module")
def trained_bert2bert(bert2bert_dirs):
    """A BERT2BERT (tiny English encoder, tiny German decoder) fitted on the toy pairs."""
    encoder, decoder = bert2bert_dirs
    keras.utils.set_random_seed(0)
    model = tfft.build_model(
        hf_model=str(encoder), task="translate", decoder_model=str(decoder), max_new_tokens=8
    )
    data = tfft.make_dataset(
        model, ENGLISH * 4, GERMAN * 4, batch_size=8, max_length=16, training=True, seed=0
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=tfft.loss_for(model), jit_compile=False)
    before = model.evaluate(data, verbose=0)
    model.fit(data, epochs=40, verbose=0)
    model.loss_history = (before, model.evaluate(data, verbose=0))
    return model


def config_for(**overrides):
    return load_config(None, overrides)


# --- reading --------------------------------------------------------------------------------


def test_reads_parallel_files_and_pairs_of_paths(parallel_files):
    task = get_task("translate")
    config = config_for(
        **{
            "model.task": "translate",
            "task.source_file": str(parallel_files["train_en"]),
            "task.target_file": str(parallel_files["train_de"]),
            "data.eval": f"{parallel_files['val_en']},{parallel_files['val_de']}",
        }
    )
    train, evaluation = read_train_eval(config)
    assert len(train) == 36 and train.sources[1] == ENGLISH[1] and train.targets[1] == GERMAN[1]
    assert evaluation.targets == GERMAN and evaluation.rows[-1] == 6
    table = task.read(str(parallel_files["pairs_tsv"]), config, option="--eval")
    assert table.sources == ENGLISH and table.targets == GERMAN
    inputs = task.read(str(parallel_files["val_en"]), config, labelled=False, option="--input")
    assert inputs.sources == ENGLISH and inputs.targets is None


def test_parallel_reading_errors_name_file_and_line(tmp_path):
    task = get_task("translate")
    (tmp_path / "a.en").write_text("one\n\nthree\n")
    (tmp_path / "b.de").write_text("eins\nzwei\ndrei\n")
    (tmp_path / "c.de").write_text("eins\nzwei\n")
    config = config_for(**{"model.task": "translate"})
    with pytest.raises(DataError, match=r"a\.en:2: blank line"):
        task.read(f"{tmp_path / 'a.en'},{tmp_path / 'b.de'}", config)
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n")
    with pytest.raises(DataError, match=r"c\.de: 2 lines, but .*a\.en has 3"):
        task.read(f"{tmp_path / 'a.en'},{tmp_path / 'c.de'}", config)
    with pytest.raises(DataError, match="plain-text file holds sources only"):
        task.read(str(tmp_path / "a.en"), config, option="--eval")
    with pytest.raises(ConfigError, match="--source-file with --target-file"):
        task.read(None, config)
    both = config_for(**{"model.task": "translate", "task.source_file": str(tmp_path / "a.en")})
    with pytest.raises(ConfigError, match="not both"):
        task.read(str(tmp_path / "a.en"), both, option="--train")
    (tmp_path / "bad.en").write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(DataError, match=r"bad\.en:2: not valid UTF-8"):
        task.read(f"{tmp_path / 'bad.en'},{tmp_path / 'b.de'}", config)


def test_settings_from_args_rejects_unknown_options():
    with pytest.raises(ConfigError, match="takes no option"):
        get_task("summarize").settings_from_args(None, None, {"threshold": 0.3})
    with pytest.raises(ConfigError, match="num_beams"):
        get_task("summarize").settings_from_args(None, None, {"num_beams": 0})
    with pytest.raises(ConfigError, match="label_smoothing"):
        get_task("translate").settings_from_args(None, None, {"label_smoothing": 1.0})
    with pytest.raises(ConfigError, match="label_smoothing"):
        config_for(**{"task.label_smoothing": -0.1})


def test_label_smoothing_spreads_a_share_of_the_target_over_the_vocabulary():
    from tfft.losses import smoothed_token_crossentropy

    logits = np.random.default_rng(0).normal(size=(2, 3, 5)).astype(np.float32)
    labels = np.array([[0, 4, 2], [1, 1, 3]], np.int32)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    plain = smoothed_token_crossentropy(0.0)(labels, tf.constant(logits, tf.bfloat16)).numpy()
    np.testing.assert_allclose(plain, nll, atol=0.05)  # bfloat16 logits, float32 loss
    smoothed = smoothed_token_crossentropy(0.1)(labels, logits).numpy()
    np.testing.assert_allclose(smoothed, 0.9 * nll - 0.1 * log_probs.mean(-1), rtol=1e-5)
    # The loss of the smoothed targets is lowest at their own distribution, not at the one-hot label.
    one_hot = np.log(np.eye(5)[labels] * 0.999 + 0.0002)
    spread = np.log(np.eye(5)[labels] * 0.9 + 0.02)
    assert (
        smoothed_token_crossentropy(0.1)(labels, spread).numpy()
        < smoothed_token_crossentropy(0.1)(labels, one_hot).numpy()
    ).all()


# --- batches and training -----------------------------------------------------------------


def test_batches_are_bucketed_shifted_and_masked(trained_bert2bert):
    model = trained_bert2bert
    task = model.tfft_spec.task_object
    data = tfft.make_dataset(
        model, ENGLISH * 3, GERMAN * 3, batch_size=8, max_length=64, training=True, seed=1
    )
    assert int(data.cardinality()) == 3  # 18 pairs, one bucket: 8 + 8 + 2 (filled up to 8)
    start = model.decoder_start_token_id
    sep = model.tfft_spec.backbone.target_tokenizer.sep_token_id
    total_weight = 0.0
    for features, labels, weights in data:
        assert features["input_ids"].shape == (8, 16) and labels.shape == (8, 16)
        assert features["decoder_input_ids"].shape == labels.shape == weights.shape
        dec, lab, w = features["decoder_input_ids"].numpy(), labels.numpy(), weights.numpy()
        for row in range(8):
            n = int(w[row].sum())
            if n == 0:
                continue  # a filler row
            assert dec[row, 0] == start and lab[row, n - 1] == sep
            np.testing.assert_array_equal(dec[row, 1:n], lab[row, : n - 1])  # teacher forcing: shifted right
            assert not w[row, n:].any()  # padding weighs 0
        total_weight += w.sum()
    labels = task.encode_targets(model, GERMAN * 3)
    assert total_weight == sum(len(row) for row in labels)


def test_target_truncation_keeps_the_end_token(trained_bert2bert):
    model = trained_bert2bert
    task = model.tfft_spec.task_object
    spec = model.tfft_spec
    short = dict(spec.settings, max_target_length=3)
    model.tfft_spec = type(spec)(spec.task, spec.label_names, spec.pair, spec.pooling, spec.backbone, short)
    try:
        (row,) = task.encode_targets(model, ["der Film war gut"])
    finally:
        model.tfft_spec = spec
    tokenizer = spec.backbone.target_tokenizer
    assert tokenizer.convert_ids_to_tokens(row.tolist()) == ["der", "Film", "[SEP]"]


def test_training_lowers_the_loss(trained_bert2bert):
    before, after = trained_bert2bert.loss_history
    assert after < before * 0.7


# --- generation, metrics, export ---------------------------------------------------------------


def test_export_generates_the_same_text_as_python(trained_bert2bert, parallel_files, tmp_path):
    model = trained_bert2bert
    task = model.tfft_spec.task_object
    python_greedy = task.generate(model, ENGLISH, batch_size=4, max_length=16)
    assert any(python_greedy)
    path = tfft.export_saved_model(model, tmp_path / "greedy", max_length=16)
    metadata = json.loads((path / "assets.extra" / "tfft.json").read_text())
    assert metadata["in_graph_tokenizer"] and metadata["task"] == "translate"
    exported = ExportedModel(path)
    assert exported.encoder is None  # raw text in
    rows = list(predict_rows(exported, ENGLISH, batch_size=4))
    assert [row["generated_text"] for row in rows] == python_greedy
    metrics = run_evaluate(path, str(parallel_files["pairs_tsv"]))  # a table: source and target columns
    assert metrics["task"] == "translate" and metrics["examples"] == 6
    assert metrics["bleu"] == pytest.approx(task.metrics(python_greedy, GERMAN)["bleu"])
    # In-graph detokenization is Hugging Face's decode.
    ids = tf.constant([[2, 25, 60, 7, 3, 0]], tf.int32)  # [CLS] ... [SEP] [PAD]
    tokenizer = model.tfft_spec.backbone.target_tokenizer
    serving = task.serving(model, 16)
    decoded = serving.detokenizer.detokenize(ids).numpy()[0].decode()
    assert decoded == tokenizer.decode(ids[0].numpy(), skip_special_tokens=True)


@pytest.mark.long  # greedy export equality stays in the default suite
def test_beam_search_export_matches_python(trained_bert2bert, tmp_path):
    model = trained_bert2bert
    task = model.tfft_spec.task_object
    spec = model.tfft_spec
    beams = dict(spec.settings, num_beams=3, length_penalty=0.6)
    model.tfft_spec = type(spec)(spec.task, spec.label_names, spec.pair, spec.pooling, spec.backbone, beams)
    try:
        python_beam = task.generate(model, ENGLISH[:3], batch_size=3, max_length=16)
        path = tfft.export_saved_model(model, tmp_path / "beam", max_length=16)
    finally:
        model.tfft_spec = spec
    assert [row["generated_text"] for row in predict_rows(path, ENGLISH[:3])] == python_beam


def test_xla_falls_back_to_graph_mode(trained_bert2bert, monkeypatch, caplog):
    from tfft.backbones import seq2seq as seq2seq_models

    model = trained_bert2bert
    task = model.tfft_spec.task_object
    expected = task.generate(model, ENGLISH[:2], batch_size=2, max_length=16, xla=False)
    original = seq2seq_models.Seq2SeqModel.generator

    def no_xla(self, settings, xla):
        function = original(self, settings, xla=False)
        if not xla:
            return function

        def fails(*args):
            raise tf.errors.InvalidArgumentError(None, None, "XLA compilation failed (test)")

        return fails

    monkeypatch.setattr(seq2seq_models.Seq2SeqModel, "generator", no_xla)
    with caplog.at_level("WARNING"):
        assert task.generate(model, ENGLISH[:2], batch_size=2, max_length=16) == expected
    assert "without XLA" in caplog.text
    with pytest.raises(tf.errors.InvalidArgumentError):
        task.generate(model, ENGLISH[:2], batch_size=2, max_length=16, xla=True)


def _new_tokens(model, texts, **settings) -> list[list[int]]:
    """The ids generated for ``texts`` (the start token dropped, cut before the end token)."""
    from tfft.backbones.seq2seq import generate_ids_batched
    from tfft.tasks.seq2seq.batches import encode_sources
    from tfft.tasks.seq2seq.options import generation_settings

    spec = model.tfft_spec
    rows = generate_ids_batched(
        model,
        encode_sources(model, texts, 16),
        pad_id=spec.backbone.encoder.template.pad_id,
        buckets=[8, 16],
        batch_size=len(texts),
        settings=generation_settings({**spec.settings, **settings}),
        xla=False,
    )
    end = model.hf.generation_config.eos_token_id
    cut = []
    for row in rows:
        new = [int(i) for i in row[1:]]
        cut.append(new[: new.index(end)] if end in new else new)
    return cut


@pytest.mark.long  # about 60 s; greedy export equality stays in the default suite
def test_minimum_length_and_repetition_penalty_steer_generation(trained_bert2bert, tmp_path):
    model = trained_bert2bert
    greedy = _new_tokens(model, ENGLISH)
    shortest = min(len(row) for row in greedy)
    assert shortest < 6, greedy  # so that a minimum of 6 changes something
    longer = _new_tokens(model, ENGLISH, min_new_tokens=6)
    assert min(len(row) for row in longer) >= 6, longer
    repeated = [row for row in longer if len(set(row)) < len(row)]
    assert repeated, longer  # so that the penalty has something to remove
    penalized = _new_tokens(model, ENGLISH, min_new_tokens=6, repetition_penalty=1e6)
    assert all(len(set(row)) == len(row) for row in penalized), penalized
    # The settings travel with the export, which generates the same text.
    task, spec = model.tfft_spec.task_object, model.tfft_spec
    steered = dict(spec.settings, min_new_tokens=6, repetition_penalty=1e6)
    model.tfft_spec = type(spec)(spec.task, spec.label_names, spec.pair, spec.pooling, spec.backbone, steered)
    try:
        python = task.generate(model, ENGLISH, batch_size=4, max_length=16)
        path = tfft.export_saved_model(model, tmp_path / "steered", max_length=16)
    finally:
        model.tfft_spec = spec
    assert [row["generated_text"] for row in predict_rows(path, ENGLISH)] == python


def test_traced_generation_equals_eager_generation(trained_bert2bert):
    """Hugging Face's traced generation pads the cache; a BERT decoder once took wrong positions
    and attended to the empty cache slots there (greedy output repeated itself), while eager
    generation was right."""
    model = trained_bert2bert
    tokenizer = model.tfft_spec.backbone.encoder.tokenizer
    for length in (8, 16):
        encoded = tokenizer(ENGLISH, padding="max_length", max_length=length, return_tensors="np")
        ids, mask = (tf.constant(encoded[name], tf.int32) for name in ("input_ids", "attention_mask"))
        eager = model.generate_ids(ids, mask, max_new_tokens=8).numpy()
        traced = model.generator({"max_new_tokens": 8}, xla=False)(ids, mask).numpy()
        # Traced generation always writes max_new_tokens (padding after the end token).
        np.testing.assert_array_equal(traced[:, : eager.shape[1]], eager)
        assert (traced[:, eager.shape[1] :] == model.hf.generation_config.pad_token_id).all()


@pytest.fixture(scope="module")
def copying_bert2bert(bert2bert_dirs):
    """A BERT2BERT with a copy head, fitted to write each source's first three words."""
    encoder, _ = bert2bert_dirs
    keras.utils.set_random_seed(0)
    model = tfft.build_model(hf_model=str(encoder), task="summarize", copy_attention=True, max_new_tokens=8)
    targets = [" ".join(text.split()[:3]) for text in ENGLISH]
    data = tfft.make_dataset(
        model, ENGLISH * 4, targets * 4, batch_size=8, max_length=16, training=True, seed=0
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=tfft.loss_for(model), jit_compile=False)
    model.fit(data, epochs=30, verbose=0)
    return model, targets


def test_copy_head_mixes_probabilities_copies_and_exports(copying_bert2bert, tmp_path):
    from tfft.backbones.bert2bert import CopyEncoderDecoder

    model, targets = copying_bert2bert
    assert isinstance(model.hf, CopyEncoderDecoder) and model.tfft_spec.settings["copy_attention"]
    batch = next(iter(tfft.make_dataset(model, ENGLISH, targets, batch_size=6, max_length=16)))[0]
    log_p = model(batch)
    # The logits are log-probabilities of the write/copy mixture: they sum to 1 per position.
    np.testing.assert_allclose(tf.reduce_logsumexp(log_p, -1).numpy(), 0.0, atol=1e-4)
    # Shut the gate (copy only): all the mass lies on the source's tokens.
    gate = model.hf.copy_gate
    kernel, bias = gate.get_weights()
    try:
        gate.set_weights([np.zeros_like(kernel), np.full_like(bias, -30.0)])
        copied = tf.exp(model(batch)).numpy()
    finally:
        gate.set_weights([kernel, bias])
    ids, mask = batch["input_ids"].numpy(), batch["attention_mask"].numpy()
    for row in range(len(ids)):
        on_source = copied[row][:, sorted(set(ids[row][mask[row] == 1]))].sum(-1)
        np.testing.assert_allclose(on_source, 1.0, atol=1e-4)
    task = model.tfft_spec.task_object
    generated = task.generate(model, ENGLISH, batch_size=4, max_length=16)
    assert generated == targets
    path = tfft.export_saved_model(model, tmp_path / "copy", max_length=16)
    assert [row["generated_text"] for row in predict_rows(path, ENGLISH)] == generated


def test_copy_head_needs_one_vocabulary_and_an_encoder_checkpoint(bert2bert_dirs, tmp_path):
    encoder, german = bert2bert_dirs
    with pytest.raises(ConfigError, match="one vocabulary"):
        tfft.build_model(
            hf_model=str(encoder), task="summarize", decoder_model=str(german), copy_attention=True
        )
    with pytest.raises(ConfigError, match="--copy-attention is for encoder checkpoints"):
        tfft.build_model(hf_model=str(write_tiny_t5(tmp_path / "t5")), task="summarize", copy_attention=True)


def test_metrics_are_bleu_and_rouge():
    bleu = get_task("translate").metrics(["der Film war gut"], ["der Film war gut"])
    assert bleu["bleu"] == pytest.approx(100.0) and "tok:13a" in bleu["bleu_signature"]
    assert get_task("translate").metrics(["x y z"], ["der Film war gut"])["bleu"] == 0.0
    rouge = get_task("summarize").metrics(["the cat sat"], ["the cat sat on the mat"])
    assert rouge["rouge1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert 0 < rouge["rouge2"] < rouge["rouge1"] and rouge["examples"] == 1


# --- other architectures ----------------------------------------------------------------------


def test_marian_trains_and_generates_in_mixed_bfloat16(tmp_path):
    # Hugging Face's TF Marian multiplies bfloat16 embeddings by a float32 sqrt(d_model) and
    # hands bfloat16 logits to the float32 forced-end-token processor; both fail unmended.
    from tfft.config import RuntimeConfig

    folder = write_tiny_marian(tmp_path / "marian")
    with tfft.runtime(RuntimeConfig(precision="mixed_bfloat16")):
        model = tfft.build_model(hf_model=str(folder), task="translate", max_new_tokens=6)
        assert type(model.hf).__name__ == "TFMarianMTModel"
        assert model.hf.model.encoder.embed_scale == pytest.approx(4.0)
        assert model.hf.model.encoder.layers[0].fc1.compute_dtype == "bfloat16"
        data = tfft.make_dataset(model, ENGLISH, GERMAN, batch_size=3, max_length=16, training=True)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=tfft.loss_for(model))
        history = model.fit(data, epochs=2, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        generated = model.tfft_spec.task_object.generate(model, ENGLISH[:3], batch_size=3, max_length=16)
    assert len(generated) == 3 and all(isinstance(text, str) for text in generated)


@pytest.mark.long  # Marian stays in the default suite
def test_t5_summarize_with_prefix_exports_raw_text(tmp_path):
    folder = write_tiny_t5(tmp_path / "t5")
    model = tfft.build_model(
        hf_model=str(folder), task="summarize", source_prefix="summarize: ", max_new_tokens=6
    )
    assert type(model.hf).__name__ == "TFT5ForConditionalGeneration"
    task = model.tfft_spec.task_object
    data = tfft.make_dataset(model, ENGLISH, ENGLISH, batch_size=4, max_length=16, training=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=tfft.loss_for(model))
    model.fit(data, epochs=2, verbose=0)
    (source,) = task.encode_sources(model, ["fun night"], 64)
    tokenizer = model.tfft_spec.backbone.encoder.tokenizer
    assert source.tolist() == tokenizer("summarize: fun night")["input_ids"]
    expected = task.generate(model, ENGLISH, batch_size=4, max_length=16)
    path = tfft.export_saved_model(model, tmp_path / "export", max_length=16)
    exported = ExportedModel(path)
    # tensorflow-text segments this tiny vocabulary unlike the converted Hugging Face tokenizer,
    # so the export checks that and takes token ids.
    assert (exported.encoder is None) == exported.metadata["in_graph_tokenizer"]
    assert [row["generated_text"] for row in predict_rows(exported, ENGLISH)] == expected
    metrics = task.evaluate_export(exported, PairExamples(ENGLISH, ENGLISH, "test", list(range(1, 7))))
    assert set(metrics) >= {"rouge1", "rouge2", "rougeL"}


@pytest.mark.long  # about 60 s; BERT2BERT's and Marian's stay in the default suite
def test_bart_exports_raw_text(tmp_path):
    folder = write_tiny_bart(tmp_path / "bart")
    model = tfft.build_model(hf_model=str(folder), task="translate", max_new_tokens=6)
    task = model.tfft_spec.task_object
    expected = task.generate(model, ENGLISH[:3], batch_size=3, max_length=16)
    path = tfft.export_saved_model(model, tmp_path / "export", max_length=16)
    exported = ExportedModel(path)
    assert exported.encoder is None  # byte-level BPE runs in the graph both ways (tfft.text.bpe)
    assert set(exported.loaded.signatures) == {"serving_default", "generate_ids"}
    served = exported.loaded.signatures["serving_default"](text=tf.constant(ENGLISH[:3]))["generated_text"]
    assert [text.decode("utf-8") for text in served.numpy()] == expected
    assert [row["generated_text"] for row in predict_rows(exported, ENGLISH[:3])] == expected


def _as_pytorch_checkpoint(model, source: Path, folder: Path) -> dict[str, np.ndarray]:
    """Copy ``source`` without its TF weights; return the model's weights under PyTorch names."""
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    folder.mkdir()
    for file in source.iterdir():
        if file.name != "tf_model.h5":
            (folder / file.name).write_bytes(file.read_bytes())
    tensors = {}
    for weight in model.hf.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(weight.name, tf_weight_shape=weight.shape)
        array = weight.numpy()
        tensors[name] = np.ascontiguousarray(array.T if transpose is TransposeType.SIMPLE else array)
    return tensors


@pytest.mark.parametrize("writer", [write_tiny_t5, write_tiny_bart], ids=["t5", "bart"])
def test_loads_pytorch_format_safetensors_without_torch(writer, tmp_path):
    from safetensors.numpy import save_file

    source = writer(tmp_path / "tf")
    reference = tfft.build_model(hf_model=str(source), task="translate")
    folder = tmp_path / "pt"
    tensors = _as_pytorch_checkpoint(reference, source, folder)
    # A PyTorch BART keeps final_logits_bias as a buffer that some exports leave out: it starts at zero.
    optional = {name: tensors.pop(name) for name in list(tensors) if "final_logits_bias" in name}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    loaded = tfft.build_model(hf_model=str(folder), task="translate")
    batch = next(iter(tfft.make_dataset(reference, ENGLISH, GERMAN, batch_size=6, max_length=16)))[0]
    np.testing.assert_allclose(loaded(batch).numpy(), reference(batch).numpy(), atol=1e-5)
    assert writer is write_tiny_t5 or optional  # BART has the bias, and loads without it

    tensors.pop(next(name for name in sorted(tensors) if "layer_norm" in name or "layernorm" in name))
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BackboneError, match="does not hold every weight"):
        tfft.build_model(hf_model=str(folder), task="translate")


# --- command line ------------------------------------------------------------------------------


@pytest.mark.long  # about 100 s; export and `evaluate` of translation stay in the default suite
def test_cli_fit_predict_evaluate_translate(bert2bert_dirs, parallel_files, tmp_path):
    from tfft_cli.main import cli

    encoder, decoder = bert2bert_dirs
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "fit",
            "--json",
            "--hf-model",
            str(encoder),
            "--decoder-model",
            str(decoder),
            "--task",
            "translate",
            "--source-file",
            str(parallel_files["train_en"]),
            "--target-file",
            str(parallel_files["train_de"]),
            "--eval",
            f"{parallel_files['val_en']},{parallel_files['val_de']}",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--max-length",
            "16",
            "--max-new-tokens",
            "6",
            "--learning-rate",
            "1e-3",
            "--label-smoothing",
            "0.1",
            "--run-dir",
            str(tmp_path / "run"),
            "--export-dir",
            str(tmp_path / "export"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert set(summary["eval"]) == {"examples", "bleu"} and summary["eval"]["examples"] == 6
    assert json.loads((tmp_path / "run" / "task.json").read_text())["settings"]["label_smoothing"] == 0.1
    result = runner.invoke(cli, ["predict", str(tmp_path / "export"), "--text", "the movie was good"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)) == {"text", "generated_text"}
    result = runner.invoke(
        cli,
        [
            "evaluate",
            str(tmp_path / "export"),
            "--data",
            f"{parallel_files['val_en']},{parallel_files['val_de']}",
        ],
    )
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("bleu")]
    assert float(line.split()[1]) == pytest.approx(
        summary["eval"]["bleu"], abs=0.01
    )  # export == in-memory model
