"""Every task hands ``batching`` (tfft.preprocess.Batching) down to the code that batches.

The Poisson sampler of DP-SGD travels as an argument of ``Task.dataset`` /
``Task.make_dataset``: a task that dropped it would silently train on shuffled batches (and
the pipeline would then refuse ``--dp-sampling poisson`` for it). These tests build each
task's training batches with a sampler and check that the sampler drew them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from helpers import write_tiny_gpt2_lm, write_tiny_t5

import tfft
from tfft.errors import ConfigError
from tfft.preprocess import Batching, PoissonSampler

TEXTS = ["the movie was good", "awful plot", "i love this film", "boring", "great fun", "bad movie"] * 4
WORDS = [text.split() for text in TEXTS]


def cases(tiny_bert_dir, folder):
    """task -> (model, make_dataset arguments, training rows)."""
    bert = str(tiny_bert_dir)
    contexts = [f"{text} said the critic" for text in TEXTS]
    answers = [{"text": ["the critic"], "answer_start": [len(text) + 6]} for text in TEXTS]
    return {
        "classify": (
            lambda: tfft.build_model(hf_model=bert, label_names=["neg", "pos"]),
            (TEXTS, ["pos", "neg"] * 12, None),
        ),
        "multilabel": (
            lambda: tfft.build_model(hf_model=bert, task="multilabel", label_names=["a", "b"]),
            (TEXTS, [["a"], ["b"], ["a", "b"]] * 8, None),
        ),
        "ner": (
            lambda: tfft.build_model(hf_model=bert, task="ner", label_names=["O", "B-PER", "I-PER"]),
            (WORDS, [["O"] * len(words) for words in WORDS], None),
        ),
        "qa": (lambda: tfft.build_model(hf_model=bert, task="qa", doc_stride=8), (TEXTS, answers, contexts)),
        "mlm": (lambda: tfft.build_model(hf_model=bert, task="mlm"), (TEXTS, None, None)),
        "summarize": (
            lambda: tfft.build_model(hf_model=str(write_tiny_t5(folder / "t5")), task="summarize"),
            (TEXTS, [text.split()[0] for text in TEXTS], None),
        ),
        "causal-lm": (
            lambda: tfft.build_model(hf_model=str(write_tiny_gpt2_lm(folder / "gpt2")), task="causal-lm"),
            (TEXTS, [text.split()[-1] for text in TEXTS], None),
        ),
    }


@pytest.mark.parametrize("task", ["classify", "ner", "qa", "mlm", "summarize", "causal-lm"])
def test_training_batches_are_drawn_by_the_sampler_handed_down(tiny_bert_dir, tmp_path, task):
    build, (texts, labels, pairs) = cases(tiny_bert_dir, tmp_path)[task]
    model = build()
    sampler = PoissonSampler(batch_size=4, epochs=1, seed=0)
    data = model.tfft_spec.task_object.make_dataset(
        model,
        texts,
        labels,
        pairs,
        batch_size=4,
        max_length=32,
        training=True,
        batching=Batching(sampler=sampler),
    )
    assert sampler.rows == len(texts)  # the sampler built the dataset (qa: one window per question here)
    assert int(data.cardinality()) == sampler.steps_per_epoch == len(texts) // 4
    for batch in data:
        features = batch[0]
        assert next(iter(features.values())).shape[0] == sampler.capacity
    # Without it, the same call gives shuffled batches of batch_size rows.
    plain = model.tfft_spec.task_object.make_dataset(
        model, texts, labels, pairs, batch_size=4, max_length=32, training=True
    )
    assert {int(next(iter(b[0].values())).shape[0]) for b in plain} == {4}


def test_a_sampler_and_a_token_budget_do_not_combine():
    with pytest.raises(ConfigError, match=r"do not combine with a token budget.*batch_tokens=64"):
        Batching(sampler=PoissonSampler(batch_size=4, epochs=1), batch_tokens=64)
    assert Batching() == Batching(sampler=None, batch_tokens=None)
    assert np.isfinite(PoissonSampler(batch_size=4, epochs=1).max_overflow)


@pytest.mark.parametrize("task", ["classify", "ner", "qa", "mlm", "summarize", "causal-lm"])
def test_free_shape_batches_reach_every_task(tiny_bert_dir, tmp_path, task):
    """``Batching(fixed_shapes=False)`` (tfft fit without XLA) reaches each task's batcher:
    fixed-size batches without filler rows, so an epoch holds exactly the training rows."""
    build, (texts, labels, pairs) = cases(tiny_bert_dir, tmp_path)[task]
    model = build()

    def rows_per_batch(batching):
        data = model.tfft_spec.task_object.make_dataset(
            model, texts, labels, pairs, batch_size=5, max_length=32, training=True, seed=0, batching=batching
        )
        sizes = [int(next(iter(batch[0].values())).shape[0]) for batch in data]
        assert len(sizes) == int(data.cardinality())
        return sizes

    free = rows_per_batch(Batching(fixed_shapes=False))
    assert sum(free) == len(texts) and max(free) == 5 and min(free) < 5
    assert set(rows_per_batch(None)) == {5}  # bounded shapes: partial batches filled up


@pytest.mark.parametrize("task", ["classify", "multilabel", "ner", "qa", "mlm", "causal-lm"])
def test_each_task_groups_its_training_rows_as_it_chose(tiny_bert_dir, tmp_path, task):
    """Without fixed shapes, classify, regress and multilabel (``SequenceTask``) opt in to
    ``Batching(groups="fine")``: each batch holds rows of one fine length group. NER opts in to
    ``groups="none"``: random rows, a batch's rows in several power-of-two buckets. The other
    tasks group on the power-of-two buckets, so that a batch mixes lengths within one (see
    tfft.preprocess and the README's Padding)."""
    from tfft.preprocess import bucket_lengths
    from tfft.token_budget import budget_lengths

    build, (texts, labels, pairs) = cases(tiny_bert_dir, tmp_path)[task]
    if task == "ner":  # rows of over 16 tokens too: two power-of-two buckets
        texts = texts + [["word"] * 20] * 12
        labels = labels + [["O"] * 20] * 12
    model = build()
    data = model.tfft_spec.task_object.make_dataset(
        model,
        texts,
        labels,
        pairs,
        batch_size=5,
        max_length=32,
        training=True,
        seed=0,
        batching=Batching(fixed_shapes=False),
    )
    lengths = [features["attention_mask"].numpy().sum(axis=1) for features, *_ in data]
    fine = [set(np.searchsorted(budget_lengths(32), batch)) for batch in lengths]
    coarse = [set(np.searchsorted(bucket_lengths(32), batch)) for batch in lengths]
    assert len(set().union(*fine)) > 1  # the rows' lengths fall in several fine groups
    assert max(map(len, fine)) == 1 if task in ("classify", "multilabel") else max(map(len, fine)) > 1
    assert max(map(len, coarse)) > 1 if task == "ner" else max(map(len, coarse)) == 1


def test_training_shapes_are_bounded_only_when_something_needs_it():
    from tfft.config import RunConfig, TrainConfig
    from tfft.datasets import fixed_training_shapes

    config = RunConfig()
    accumulating = RunConfig(train=TrainConfig(grad_accum_steps=2))
    assert not fixed_training_shapes(config, xla=False, replicas=1)
    assert fixed_training_shapes(config, xla=True, replicas=1)  # one XLA compilation per shape
    assert fixed_training_shapes(config, xla=False, replicas=2)  # equal shares per replica
    assert fixed_training_shapes(accumulating, xla=False, replicas=1)  # equal micro-batches


def test_seq2seq_sides_are_padded_to_the_fine_grid_without_fixed_shapes(tmp_path):
    """Both sides of a summarize batch go to the fine grid (budget_lengths) when batches need
    not keep bounded shapes, and to power-of-two buckets when they must."""
    from tfft.preprocess import bucket_lengths
    from tfft.token_budget import budget_lengths

    build, (texts, labels, pairs) = cases(None, tmp_path)["summarize"]
    model = build()

    def side_lengths(batching):
        data = model.tfft_spec.task_object.make_dataset(
            model, texts, labels, pairs, batch_size=5, max_length=32, training=True, seed=0, batching=batching
        )
        return [
            (*features["input_ids"].shape[::-1], *labels.shape[::-1], float(weights.numpy().sum()))
            for features, labels, weights in data
        ]

    target_limit = int(model.tfft_spec.settings["max_target_length"])
    free, fixed = side_lengths(Batching(fixed_shapes=False)), side_lengths(None)
    assert {s for s, *_ in free} <= set(budget_lengths(32))
    assert {t for _, _, t, *_ in free} <= set(budget_lengths(target_limit))
    assert {s for s, *_ in fixed} <= set(bucket_lengths(32))
    assert {t for _, _, t, *_ in fixed} <= set(bucket_lengths(target_limit))
    assert {s for s, *_ in free} - set(bucket_lengths(32))  # lengths between the powers of two

    def slots(batches, side):  # token slots (rows x padded length) of one side
        return sum(length * rows for length, rows in (batch[2 * side : 2 * side + 2] for batch in batches))

    assert slots(free, 0) < slots(fixed, 0) and slots(free, 1) <= slots(fixed, 1)
    assert sum(batch[-1] for batch in free) == sum(batch[-1] for batch in fixed)  # the same target tokens
    # grouped on the same power-of-two buckets of the longer side (fine groups slowed the
    # Multi30k Marian down), without filler rows
    assert len(free) == len(fixed) and sum(batch[1] for batch in free) == len(texts) < sum(
        b[1] for b in fixed
    )


PADDING = (0, -100)  # pad ids, mask and weights; NER's label padding


def eval_rows(model, texts, labels, pairs, batching):
    """Evaluation batches as rows: (its features' real values, its targets' values), one
    entry per row (padding left out), in the order the dataset gives them; the lengths the
    batches are padded to; and their token slots (rows x padded length)."""
    data = model.tfft_spec.task_object.make_dataset(
        model, texts, labels, pairs, batch_size=5, max_length=32, batching=batching
    )
    rows, lengths, slots = [], [], 0
    for features, *targets in data:
        ids = features["input_ids"].numpy()
        lengths.append(ids.shape[1])
        slots += ids.size
        parts = [value.numpy() for value in [*features.values(), *targets]]
        for r in range(ids.shape[0]):
            values = [np.ravel(part[r]) for part in parts]
            rows.append(tuple(tuple(v[~np.isin(v, PADDING)].tolist()) for v in values))
    return rows, lengths, slots


@pytest.mark.parametrize("task", ["classify", "ner", "qa", "summarize", "causal-lm"])
def test_evaluation_batches_by_length_hold_the_same_rows_with_less_padding(tiny_bert_dir, tmp_path, task):
    """``Batching(by_length=True)`` (Keras' validation pass in ``tfft fit``): the same rows
    with the same targets, shortest first, on the fine grid, in no more token slots."""
    from tfft.token_budget import budget_lengths

    build, (texts, labels, pairs) = cases(tiny_bert_dir, tmp_path)[task]
    model = build()
    in_order, _, order_slots = eval_rows(model, texts, labels, pairs, None)
    by_length, lengths, slots = eval_rows(
        model, texts, labels, pairs, Batching(fixed_shapes=False, by_length=True)
    )
    assert sorted(by_length) == sorted(in_order) and by_length != in_order
    assert lengths == sorted(lengths) and set(lengths) <= set(budget_lengths(32))
    real = [len(row[0]) for row in by_length]
    assert real == sorted(real)  # input ids, shortest first
    assert slots < order_slots


def test_validation_by_length_gives_the_metrics_of_input_order(tiny_bert_dir):
    """Keras' evaluation of the length-ordered batches equals that of the input-order ones."""
    model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    labels = ["pos", "neg", "neg"] * 8

    def evaluate(batching):
        data = model.tfft_spec.task_object.make_dataset(
            model, TEXTS, labels, None, batch_size=5, max_length=32, batching=batching
        )
        return model.evaluate(data, verbose=0, return_dict=True)

    in_order, by_length = evaluate(None), evaluate(Batching(fixed_shapes=False, by_length=True))
    assert by_length["accuracy"] == in_order["accuracy"]
    assert by_length["loss"] == pytest.approx(in_order["loss"], rel=1e-5)


def test_final_evaluation_orders_rows_by_length_with_the_same_metrics(tiny_bert_dir, monkeypatch):
    """A sequence task's ``evaluate_model`` (fit's final metrics) predicts the rows shortest
    first, and its metrics equal those of the rows in input order."""
    from tfft.config import RunConfig
    from tfft.data import TextExamples

    texts = [f"{text} {'and more ' * (i % 5)}".strip() for i, text in enumerate(TEXTS)]
    labels = ["pos", "neg", "neg"] * 8
    examples = TextExamples(texts, None, labels, "memory", list(range(1, len(texts) + 1)))
    model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"])
    task = model.tfft_spec.task_object
    settings = model.tfft_spec.settings
    config = RunConfig()
    data = task.make_dataset(model, texts, None, None, batch_size=config.train.batch_size, max_length=32)
    outputs = model.predict(data, verbose=0)
    answers = {k: v.numpy() for k, v in task.answers(settings, tf.constant(outputs)).items()}
    in_order = task.metrics(settings, task.targets(settings, examples), answers)
    assert in_order["accuracy"] not in (0.0, 1.0)  # a score that a misaligned row would move

    lengths = []
    predict = type(model).predict

    def recording(self, dataset, **kwargs):
        lengths.extend(int(features["input_ids"].shape[1]) for features in dataset)
        return predict(self, dataset, **kwargs)

    monkeypatch.setattr(type(model), "predict", recording)
    short = RunConfig(
        data=dataclasses.replace(config.data, max_length=32),
        train=dataclasses.replace(config.train, batch_size=5),
    )
    assert task.evaluate_model(model, examples, short) == in_order  # counts: exactly equal
    assert lengths == sorted(lengths) and len(set(lengths)) > 1
