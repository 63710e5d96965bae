"""Bucketed, padded tf.data batches: shapes, masks, weights and order."""

from __future__ import annotations

import numpy as np
import pytest

from tfft.dry_run import scan_batches
from tfft.preprocess import (
    Batching,
    bucket_lengths,
    ragged_rows,
    text_dataset,
    token_batches,
    token_dataset,
    training_steps,
)
from tfft.token_budget import budget_lengths
from tfft.tokenization import Encoded


def encoded(lengths, seed=0):
    rng = np.random.default_rng(seed)
    ids = [rng.integers(5, 50, size=n).astype(np.int32) for n in lengths]
    return Encoded(ids, [np.zeros_like(row) for row in ids])


def test_bucket_lengths():
    assert bucket_lengths(128) == [16, 32, 64, 128]
    assert bucket_lengths(100) == [16, 32, 64, 100]
    assert bucket_lengths(16) == [16]
    assert bucket_lengths(8) == [8]


def test_training_batches_use_few_shapes_and_consistent_masks():
    rng = np.random.default_rng(1)
    lengths = rng.integers(2, 129, size=300)
    data = encoded(lengths)
    labels = np.arange(300, dtype=np.int32) % 3
    dataset = token_dataset(data, labels, batch_size=16, max_length=128, training=True, seed=3)
    shapes = set()
    seen_rows = 0
    steps = int(dataset.cardinality())
    assert steps == sum(1 for _ in dataset)
    for features, y, w in dataset:
        ids, mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
        shapes.add(ids.shape)
        assert ids.shape[0] == 16 and y.shape == (16,) and w.shape == (16,)
        assert ids.shape[1] in (16, 32, 64, 128)
        real = w.numpy() > 0
        # mask is 1 exactly on the non-padding positions of real rows
        row_lengths = mask.sum(axis=1)
        assert np.all(mask[real].cumprod(axis=1) == mask[real])  # right padding
        assert np.all(ids[mask == 0] == 0)
        assert np.all(row_lengths[~real] == 0)
        seen_rows += int(real.sum())
    assert seen_rows == 300  # nothing dropped
    assert len(shapes) <= 4


def padding_share(dataset) -> float:
    _, _, tokens = scan_batches(dataset)  # the dry run's count of token slots and real tokens
    return 1 - tokens["real"] / tokens["slots"]


def free_shape_batches(per_token: bool, groups: str):
    """500 rows of 3-128 tokens in training batches of 16 without bounded shapes, labels and
    weights per row or per token; the row's index is its label (every label of the row)."""
    rng = np.random.default_rng(2)
    lengths = np.concatenate([rng.integers(3, 20, size=400), rng.integers(20, 129, size=100)])
    data = encoded(lengths)
    free = Batching(fixed_shapes=False, groups=groups)
    if not per_token:
        labels = np.arange(500, dtype=np.int32)
        batches = token_dataset(
            data, labels, batch_size=16, max_length=128, training=True, seed=3, batching=free
        )
        return lengths, data, batches
    labels = ragged_rows([np.full([n], i, np.int32) for i, n in enumerate(lengths)])
    weights = ragged_rows([np.ones([n], np.float32) for n in lengths], np.float32)
    batches = token_batches(
        data,
        labels,
        weights,
        label_padding=-1,
        batch_size=16,
        max_length=128,
        training=True,
        seed=3,
        batching=free,
    )
    return lengths, data, batches


@pytest.mark.parametrize(
    ("per_token", "kind"),
    [(False, "fine"), (True, "buckets"), (False, "buckets"), (True, "none")],
    ids=["per-example-fine-groups", "per-token", "per-example", "per-token-random-rows"],
)
def test_free_shape_batches_pad_to_the_fine_grid_without_filler_rows(per_token, kind):
    """``Batching(fixed_shapes=False)`` (tfft fit without XLA): batch_size rows, each batch
    padded to the fine grid length of its longest row, partial batches only as long as their
    real rows; every row once an epoch, with its own labels; the batch count known before.
    Grouped on the fine grid (classify, regress, multilabel) a batch's rows are of nearly one
    length (padding under 10%); on the power-of-two buckets, or not grouped at all (NER: random
    rows), a batch mixes lengths (see tfft.preprocess)."""
    lengths, data, free = free_shape_batches(per_token, kind)
    fine = budget_lengths(128)
    mixed = kind != "fine"
    groups = {"fine": fine, "buckets": bucket_lengths(128), "none": [128]}[kind]
    assert int(free.cardinality()) == training_steps(lengths, 16, groups) == sum(1 for _ in free)
    seen, partial, spread = [], 0, []
    for features, y, w in free:
        ids, mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
        rows = ids.shape[0]
        assert rows <= 16 and y.shape[0] == rows
        partial += rows < 16
        row_lengths = mask.sum(axis=1)
        assert ids.shape[1] == fine[np.searchsorted(fine, row_lengths.max())]
        assert len(set(np.searchsorted(groups, row_lengths))) == 1  # one group per batch
        spread.append(row_lengths.max() - row_lengths.min())
        labels = y.numpy() if not per_token else y.numpy()[:, 0]
        for label, row, n in zip(labels, ids, row_lengths, strict=True):
            assert row[:n].tolist() == data.input_ids[label].tolist()
        if per_token:  # each token labelled and weighed, the padding not
            assert np.array_equal(w.numpy(), mask.astype(np.float32))
            assert np.all((y.numpy() == labels[:, None]) == (mask == 1))
        else:
            assert np.all(w.numpy() == 1.0)  # no filler rows
        seen.extend(labels.tolist())
    assert sorted(seen) == list(range(500))  # every row once, none added
    assert 0 < partial <= len(groups)  # at most one partial batch per group
    if mixed:
        assert np.mean(spread) > 4  # not rows of nearly one length
    else:
        assert padding_share(free) < 0.1
    if kind == "none":  # rows of all lengths in one batch: the long rows pad most batches
        assert np.mean(spread) > 40
        return
    labels = np.arange(500, dtype=np.int32)
    bounded = token_dataset(data, labels, batch_size=16, max_length=128, training=True, seed=3)
    assert padding_share(free) < padding_share(bounded)


def test_text_dataset_without_bounded_shapes_keeps_the_partial_batch():
    texts = ["a", "b", "c"]
    free = Batching(fixed_shapes=False)
    batches = list(
        text_dataset(texts, None, np.array([0, 1, 0]), batch_size=2, training=True, seed=0, batching=free)
    )
    assert sorted(tuple(f["text"].shape) for f, _, _ in batches) == [(1,), (2,)]
    assert np.concatenate([w.numpy() for _, _, w in batches]).tolist() == [1.0, 1.0, 1.0]


def test_eval_batches_keep_order_and_labels():
    lengths = [3, 40, 7, 128, 20]
    data = encoded(lengths)
    labels = np.array([0, 1, 2, 3, 4], np.int32)
    batches = list(token_dataset(data, labels, batch_size=2, max_length=128))
    got_labels = np.concatenate([y.numpy() for _, y, _ in batches])
    assert got_labels.tolist() == [0, 1, 2, 3, 4]
    first_ids = batches[0][0]["input_ids"].numpy()
    assert first_ids.shape == (2, 64)  # longest row 40 -> bucket 64
    assert first_ids[0, :3].tolist() == data.input_ids[0].tolist()


def test_prediction_dataset_has_features_only_in_order():
    data = encoded([5, 9, 2])
    batches = list(token_dataset(data, None, batch_size=2, max_length=32))
    assert set(batches[0]) == {"input_ids", "attention_mask", "token_type_ids"}
    assert batches[0]["input_ids"].shape == (2, 16)
    assert batches[1]["attention_mask"].numpy().sum() == 2


def test_text_dataset_pads_training_batches_with_zero_weight():
    texts = ["a", "b", "c"]
    batches = list(text_dataset(texts, None, np.array([0, 1, 0]), batch_size=2, training=True, seed=0))
    assert [tuple(f["text"].shape) for f, _, _ in batches] == [(2,), (2,)]
    assert sorted(np.concatenate([w.numpy() for _, _, w in batches]).tolist()) == [0.0, 1.0, 1.0, 1.0]
