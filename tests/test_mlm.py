"""Masked-LM adaptation (``--task mlm``) and ``tfft export --format hf`` on tiny random BERT and RoBERTa."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from helpers import write_tiny_bert, write_tiny_roberta

import tfft
from tfft.config import load_config
from tfft.errors import ConfigError, DataError, ExportError
from tfft.keras import keras
from tfft.tasks.causal_lm.data import LMExamples
from tfft.tasks.mlm.masking import mask_batch, masked_batches, ordinary_ids, word_rows

CORPUS = [
    "the movie was very good and the actors were great",
    "the plot is boring and the film was awful",
    "i love this cafe at night",
    "it was a great day",
]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return write_tiny_bert(tmp_path_factory.mktemp("mlm") / "bert")


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    return write_tiny_roberta(tmp_path_factory.mktemp("mlm") / "roberta")


def tokenizer_of(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


# --- rows and word numbers -------------------------------------------------------------------


def test_word_numbers_group_word_pieces_and_skip_special_tokens(bert_dir):
    tokenizer = tokenizer_of(bert_dir)
    ids, words, documents = word_rows(tokenizer, ["movie xyz!"], 32)
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    assert tokens == ["[CLS]", "movie", "x", "##y", "##z", "!", "[SEP]"]
    assert words[0].tolist() == [0, 1, 2, 2, 2, 3, 0]
    assert documents == [0]


def test_long_documents_become_several_rows_and_nothing_is_dropped(bert_dir):
    tokenizer = tokenizer_of(bert_dir)
    text = " ".join(["movie"] * 25)
    ids, words, documents = word_rows(tokenizer, [text, "good"], 10)
    assert documents == [0, 0, 0, 0, 1]
    assert all(len(row) <= 10 for row in ids)
    assert sum(int((row > 0).sum()) for row in words[:4]) == 25  # every word once
    assert [int(row.max()) for row in words[:4]] == [8, 8, 8, 1]  # numbered within each row


def test_roberta_word_numbers_follow_byte_level_words(roberta_dir):
    tokenizer = tokenizer_of(roberta_dir)
    ids, words, _ = word_rows(tokenizer, ["ab cd"], 16)
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    assert tokens == ["<s>", "a", "b", "Ġ", "c", "d", "</s>"]
    assert words[0].tolist() == [0, 1, 1, 2, 2, 2, 0]


# --- masking statistics ----------------------------------------------------------------------


def synthetic_batch(rows=3000, words_per_row=20, seed=0):
    """Rows of ``[special] words of 1-3 tokens [special] padding``: ids, word numbers, and
    which positions are special or padding."""
    rng = np.random.default_rng(seed)
    word_lists = [rng.integers(1, 4, size=words_per_row) for _ in range(rows)]
    length = 2 + max(int(w.sum()) for w in word_lists) + 3
    ids = np.zeros([rows, length], np.int32)
    words = np.zeros([rows, length], np.int32)
    special = np.zeros([rows, length], bool)
    for r, sizes in enumerate(word_lists):
        numbers = np.repeat(np.arange(1, words_per_row + 1), sizes)
        ids[r, 0] = 2
        ids[r, 1 : 1 + len(numbers)] = rng.integers(10, 100, size=len(numbers))
        ids[r, 1 + len(numbers)] = 3
        words[r, 1 : 1 + len(numbers)] = numbers
        special[r, 0] = special[r, 1 + len(numbers) :] = True  # [CLS], [SEP] and padding
    return ids, words, special


def test_whole_word_masking_statistics():
    ids, words, special = synthetic_batch()
    candidates = tf.constant(np.arange(10, 100, dtype=np.int32))
    masked, labels, weights = (
        t.numpy()
        for t in mask_batch(
            tf.constant(ids),
            tf.constant(words),
            tf.constant([7, 1]),
            probability=0.15,
            mask_id=4,
            candidates=candidates,
        )
    )
    chosen = weights > 0
    assert (labels == ids).all()
    assert not chosen[special].any()  # special tokens and padding are never masked
    # whole words: every token of a word shares its fate; 15% of the words per row on average
    chosen_words = 0
    for r in range(len(ids)):
        for number in range(1, words[r].max() + 1):
            fate = chosen[r, words[r] == number]
            assert fate.all() or not fate.any()
            chosen_words += int(fate.all())
    share = chosen_words / (len(ids) * 20)
    assert share == pytest.approx(0.15, abs=0.005)
    # of the chosen tokens: 80% [MASK], 10% random, 10% unchanged
    replaced = masked[chosen]
    original = ids[chosen]
    mask_share = float(np.mean(replaced == 4))
    unchanged = float(np.mean(replaced == original))
    random_share = 1 - mask_share - unchanged
    assert mask_share == pytest.approx(0.8, abs=0.015)
    assert random_share == pytest.approx(0.1, abs=0.015)  # (a random draw may equal the original: ~1%)
    assert unchanged == pytest.approx(0.1, abs=0.015)
    assert np.isin(replaced[(replaced != 4) & (replaced != original)], np.arange(10, 100)).all()
    assert (masked[~chosen] == ids[~chosen]).all()


def test_masking_probability_is_the_share_of_words():
    ids, words, _ = synthetic_batch(rows=1000, words_per_row=10)
    candidates = tf.constant(np.arange(10, 100, dtype=np.int32))
    _, _, weights = mask_batch(
        ids, words, tf.constant([1, 2]), probability=0.4, mask_id=4, candidates=candidates
    )
    chosen = weights.numpy() > 0
    per_row = [len(set(words[r][chosen[r]].tolist())) for r in range(len(ids))]
    assert set(per_row) <= {4}  # floor(0.4 * 10 + u) is 4 for every u in [0, 1)


def test_random_replacements_never_draw_special_tokens(bert_dir):
    tokenizer = tokenizer_of(bert_dir)
    ordinary = ordinary_ids(tokenizer)
    assert not set(ordinary.tolist()) & set(tokenizer.all_special_ids)
    assert len(ordinary) == len(tokenizer) - len(tokenizer.all_special_ids)


def first_masks(dataset):
    return [features["input_ids"].numpy() for features, _, _ in dataset]


def test_masks_are_fresh_each_epoch_seeded_and_fixed_for_evaluation(bert_dir):
    tokenizer = tokenizer_of(bert_dir)
    texts = CORPUS * 6
    train = masked_batches(
        tokenizer, texts, probability=0.15, batch_size=8, max_length=32, training=True, seed=3
    )
    epoch1, epoch2 = first_masks(train), first_masks(train)
    again = first_masks(
        masked_batches(tokenizer, texts, probability=0.15, batch_size=8, max_length=32, training=True, seed=3)
    )
    assert any(a.shape != b.shape or (a != b).any() for a, b in zip(epoch1, epoch2))
    assert all((a == b).all() for a, b in zip(epoch1, again))
    evaluation = masked_batches(tokenizer, texts, probability=0.15, batch_size=8, max_length=32, seed=3)
    assert all((a == b).all() for a, b in zip(first_masks(evaluation), first_masks(evaluation)))


def test_training_batches_filler_rows_and_padding_weigh_nothing(bert_dir):
    tokenizer = tokenizer_of(bert_dir)
    batches = masked_batches(
        tokenizer, CORPUS[:3], probability=1.0, batch_size=8, max_length=32, training=True, seed=0
    )
    features, labels, weights = next(iter(batches))
    mask = features["attention_mask"].numpy()
    weights = weights.numpy()
    assert weights.shape[0] == 8 and (weights[mask == 0] == 0).all()
    specials = np.isin(labels.numpy(), tokenizer.all_special_ids)
    assert (weights[specials] == 0).all()
    assert (weights[(mask == 1) & ~specials] == 1).all()  # probability 1: every word is chosen


# --- model, loss, training -------------------------------------------------------------------


def test_checkpoint_without_head_gets_one_with_a_log_line(bert_dir, caplog):
    with caplog.at_level(logging.INFO, logger="tfft.backbones.masked_lm"):
        model = tfft.build_model(hf_model=str(bert_dir), task="mlm")
    assert "has no masked-LM head" in caplog.text and "tied to the word embeddings" in caplog.text
    backbone = model.tfft_spec.backbone
    assert backbone.head_initialised and type(backbone.model).__name__ == "TFBertForMaskedLM"
    assert model.tfft_spec.settings == {"labels": [], "mask_probability": 0.15}


def test_loss_covers_the_masked_positions_only(bert_dir):
    model = tfft.build_model(hf_model=str(bert_dir), task="mlm", mask_probability=0.3)
    features, labels, weights = next(iter(tfft.make_dataset(model, CORPUS, batch_size=4, seed=1)))
    logits = model(features)
    loss = float(tfft.loss_for(model)(labels, logits, weights))
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits).numpy()
    chosen = weights.numpy() > 0
    assert 0 < chosen.sum() < (features["attention_mask"].numpy() > 0).sum()
    assert loss == pytest.approx(float(nll[chosen].mean()), rel=1e-5)
    assert loss != pytest.approx(float(nll[features["attention_mask"].numpy() > 0].mean()), rel=1e-3)


def test_fitting_lowers_masked_lm_loss_on_roberta(roberta_dir):
    keras.utils.set_random_seed(0)
    model = tfft.build_model(hf_model=str(roberta_dir), task="mlm")
    task = model.tfft_spec.task_object
    examples = LMExamples(CORPUS, None, "corpus", [1, 2, 3, 4])
    model.compile(
        optimizer=keras.optimizers.Adam(5e-3),
        loss=tfft.loss_for(model),
        weighted_metrics=tfft.metrics_for(model),
    )
    before = task.score(model, examples, 8, 64)
    history = model.fit(
        tfft.make_dataset(model, CORPUS * 8, batch_size=8, max_length=64, training=True, seed=0),
        epochs=8,
        verbose=0,
    )
    after = task.score(model, examples, 8, 64)
    assert set(history.history) == {"loss", "token_accuracy", "perplexity"}
    assert after["loss"] < before["loss"] - 0.5
    assert after["perplexity"] == pytest.approx(np.exp(after["loss"]))
    assert after["tokens"] == before["tokens"] > 0


def test_options_from_yaml_and_errors(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  task: mlm\ntask:\n  mask_probability: 0.25\n")
    assert load_config(path).task.mask_probability == 0.25
    path.write_text("model:\n  task: mlm\ntask:\n  mask_probability: 1.5\n")
    with pytest.raises(ConfigError, match="mask_probability"):
        load_config(path)
    with pytest.raises(ConfigError, match="no labels"):
        tfft.build_model(hf_model="unused", task="mlm", num_labels=2)


# --- CLI, exports, Hugging Face round trip ----------------------------------------------------


def encoder_kernel(hf_model):
    """The first attention query kernel of a BERT encoder (any head)."""
    return next(w.numpy() for w in hf_model.weights if "layer_._0/attention/self/query/kernel" in w.name)


def test_cli_mlm_then_export_hf_then_classify_starts_from_the_adapted_encoder(bert_dir, tmp_path):
    from tfft.pipeline import load_run_model
    from tfft_cli.main import cli

    (tmp_path / "docs.txt").write_text("\n".join(CORPUS * 4) + "\n")
    (tmp_path / "cls.tsv").write_text(
        "text\tlabel\ngood movie\t1\nawful plot\t0\ngreat day\t1\nboring film\t0\n"
    )
    runner = CliRunner()
    common = ["--max-length", "32", "--batch-size", "4", "--epochs", "1", "--learning-rate", "1e-2"]
    result = runner.invoke(
        cli,
        ["fit", "--task", "mlm", "--hf-model", str(bert_dir), "--train", str(tmp_path / "docs.txt")]
        + ["--eval", str(tmp_path / "docs.txt"), "--mask-probability", "0.3", *common]
        + ["--run-dir", str(tmp_path / "run"), "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["eval"]["tokens"] > 0 and summary["eval"]["perplexity"] > 1
    settings = json.loads((tmp_path / "run" / "task.json").read_text())["settings"]
    assert settings["mask_probability"] == 0.3

    result = runner.invoke(
        cli, ["export", "--format", "hf", str(tmp_path / "run"), "--export-dir", str(tmp_path / "hf")]
    )
    assert result.exit_code == 0, result.output
    files = {p.name for p in (tmp_path / "hf").iterdir()}
    assert {"config.json", "tf_model.h5", "vocab.txt", "tokenizer.json", "tfft_export.json"} <= files
    record = json.loads((tmp_path / "hf" / "tfft_export.json").read_text())
    assert record["task"] == "mlm" and record["contents"] == "encoder + masked-LM head"
    result = runner.invoke(
        cli, ["export", "--format", "hf", str(tmp_path / "run"), "--export-dir", str(tmp_path / "hf")]
    )
    assert result.exit_code != 0 and "not empty" in result.output

    _, adapted = load_run_model(tmp_path / "run")
    original = tfft.build_model(hf_model=str(bert_dir), task="classify", num_labels=2)
    reloaded = tfft.build_model(hf_model=str(tmp_path / "hf"), task="classify", num_labels=2)
    adapted_kernel = encoder_kernel(adapted.tfft_spec.backbone.model)
    assert not np.allclose(adapted_kernel, encoder_kernel(original.tfft_spec.backbone.model))
    np.testing.assert_array_equal(encoder_kernel(reloaded.tfft_spec.backbone.model), adapted_kernel)

    result = runner.invoke(
        cli,
        [
            "fit",
            "--task",
            "classify",
            "--hf-model",
            str(tmp_path / "hf"),
            "--train",
            str(tmp_path / "cls.tsv"),
        ]
        + [*common, "--run-dir", str(tmp_path / "cls")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output


def test_export_scores_match_the_in_memory_model(roberta_dir, tmp_path):
    from tfft.pipeline import ExportedModel, predict_rows, run_evaluate

    model = tfft.build_model(hf_model=str(roberta_dir), task="mlm")
    path = tfft.export_saved_model(model, tmp_path / "export", max_length=64)
    (tmp_path / "docs.txt").write_text("\n".join(CORPUS) + "\n")
    exported = ExportedModel(path)
    metrics = run_evaluate(exported, str(tmp_path / "docs.txt"))
    python = model.tfft_spec.task_object.score(model, LMExamples(CORPUS, None, "x", [1, 2, 3, 4]), 64, 64)
    assert metrics["task"] == "mlm" and metrics["tokens"] == python["tokens"] > 0
    assert metrics["perplexity"] == pytest.approx(python["perplexity"], rel=1e-4)
    text = "the film was <mask> good"
    tokenizer = model.tfft_spec.backbone.tokenizer
    position = tokenizer(text)["input_ids"].index(tokenizer.mask_token_id)
    fills = next(predict_rows(exported, [text]))["fills"]
    assert [fill["position"] for fill in fills] == [position] and len(fills[0]["tokens"]) == 5
    assert fills[0]["probabilities"] == sorted(fills[0]["probabilities"], reverse=True)
    with pytest.raises(DataError, match="--text:2: no <mask> token"):
        list(predict_rows(exported, ["<mask>", "no mask"]))


def test_export_hf_of_a_classifier_is_the_encoder_and_lora_is_merged(bert_dir, tmp_path):
    from transformers import TFAutoModel

    from tfft.hf_export import save_hf_checkpoint

    model = tfft.build_model(hf_model=str(bert_dir), task="classify", num_labels=2, lora=dict(rank=2))
    for weight in model.trainable_weights:  # adapters away from their zero start
        weight.assign(tf.random.normal(weight.shape, stddev=0.5, seed=1))
    folder = save_hf_checkpoint(model, tmp_path / "hf")
    record = json.loads((folder / "tfft_export.json").read_text())
    assert record["contents"].startswith("encoder only")
    ids = tf.constant([[2, 110, 111, 3]])
    mask = tf.ones_like(ids)
    ours = model.tfft_spec.backbone.model(input_ids=ids, attention_mask=mask).last_hidden_state
    theirs = TFAutoModel.from_pretrained(str(folder))(input_ids=ids, attention_mask=mask).last_hidden_state
    np.testing.assert_allclose(theirs.numpy(), ours.numpy(), atol=1e-4)
    with pytest.raises(ExportError, match="not empty"):
        save_hf_checkpoint(model, folder)


def test_mlm_with_lora_trains_adapters_only(bert_dir):
    model = tfft.build_model(hf_model=str(bert_dir), task="mlm", lora=dict(rank=2, targets="query,value"))
    names = [w.name for w in model.trainable_weights]
    assert names and all("lora" in name for name in names)


def test_predict_needs_a_mask_token_and_text_pairs_are_refused(bert_dir):
    task = tfft.build_model(hf_model=str(bert_dir), task="mlm").tfft_spec.task_object
    with pytest.raises(ConfigError, match="--text-pair"):
        task.examples_from_cli(["a"], ["b"])
    with pytest.raises(DataError, match="no `labels`"):
        task.make_dataset(None, ["a"], ["x"], None)


FILL_TEXTS = {
    "bert": ["the movie was [MASK] good", "[MASK] film,  [MASK]!", "no mask at all", "a [MASK]"],
    "roberta": ["the film was <mask> good", "<mask> film,  <mask>!", "no mask at all", "a <mask>"],
}


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_export_fills_masks_in_raw_text_as_the_python_model(kind, bert_dir, roberta_dir, tmp_path):
    """``serving_default(text)`` gives the in-memory model's top-5 tokens and probabilities at
    each mask, in order, and the text with the best token filled in (WordPiece and BPE)."""
    folder = bert_dir if kind == "bert" else roberta_dir
    model = tfft.build_model(hf_model=str(folder), task="mlm")
    path = tfft.export_saved_model(model, tmp_path / "export", max_length=64)
    metadata = json.loads((path / "assets.extra" / "tfft.json").read_text())
    assert metadata["in_graph_tokenizer"] and "fill_text" in metadata["signatures"]
    texts = FILL_TEXTS[kind]
    out = tf.saved_model.load(str(path)).signatures["serving_default"](text=tf.constant(texts))
    tokenizer = model.tfft_spec.backbone.tokenizer
    for r, text in enumerate(texts):
        ids = tokenizer(text, truncation=True, max_length=64)["input_ids"]
        features = {"input_ids": tf.constant([ids]), "attention_mask": tf.ones([1, len(ids)], tf.int32)}
        probabilities = tf.nn.softmax(tf.cast(model(features, training=False), tf.float32), -1)[0].numpy()
        positions = [i for i, token in enumerate(ids) if token == tokenizer.mask_token_id]
        assert out["mask_count"][r].numpy() == len(positions) == text.count(tokenizer.mask_token)
        filled = list(ids)
        for m, position in enumerate(positions):
            best = np.argsort(-probabilities[position])[:5]
            assert out["mask_positions"][r, m].numpy() == position
            assert out["token_ids"][r, m].numpy().tolist() == best.tolist()
            assert [t.decode() for t in out["tokens"][r, m].numpy()] == tokenizer.convert_ids_to_tokens(
                best.tolist()
            )
            np.testing.assert_allclose(out["scores"][r, m].numpy(), probabilities[position][best], atol=1e-5)
            filled[position] = int(best[0])
        assert (out["mask_positions"][r, len(positions) :].numpy() == -1).all()
        assert out["filled_text"][r].numpy().decode() == tokenizer.decode(filled, skip_special_tokens=True)
    # the model card's example carries the model's own mask token, and the export fills it
    card = (path / "README.md").read_text()
    example = json.loads(re.search(r"-d '(\{.*\})'", card).group(1))["instances"][0]["text"]
    assert tokenizer.mask_token in example
    assert f'tfft predict {path} --text "{example}"' in card
    card_out = tf.saved_model.load(str(path)).signatures["serving_default"](text=tf.constant([example]))
    assert card_out["mask_count"].numpy().tolist() == [1]
    filled_text = card_out["filled_text"][0].numpy().decode()
    best = int(card_out["token_ids"][0, 0, 0])
    ids = tokenizer(example)["input_ids"]
    ids[ids.index(tokenizer.mask_token_id)] = best
    assert filled_text == tokenizer.decode(ids, skip_special_tokens=True)
    assert filled_text and tokenizer.mask_token not in filled_text
