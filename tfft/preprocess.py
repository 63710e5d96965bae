"""tf.data pipelines: token ids -> length-bucketed, padded batches.

Training batches are grouped by length (``bucket_by_sequence_length``) and padded to the
bucket's length, so that little compute goes to padding and XLA only ever sees a handful
of shapes: one per bucket. Partial training batches are padded up to the full batch size
with rows whose sample weight is 0, so the batch dimension never changes either.

Elements are ``(features, labels, sample_weight)`` with features
``{"input_ids", "attention_mask", "token_type_ids"}`` (int32 ``[batch, length]``), or
``{"text"[, "text_pair"]}`` strings for backbones that read raw text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.tokenization import Encoded

logger = logging.getLogger(__name__)

MIN_BUCKET = 16


def bucket_lengths(max_length: int, min_bucket: int = MIN_BUCKET) -> list[int]:
    """Padded lengths used for batches: powers of two from ``min_bucket``, then ``max_length``.

    >>> bucket_lengths(128)
    [16, 32, 64, 128]
    >>> bucket_lengths(100)
    [16, 32, 64, 100]
    """
    lengths = []
    length = min_bucket
    while length < max_length:
        lengths.append(length)
        length *= 2
    lengths.append(max_length)
    return lengths


def training_steps(encoded: Encoded, batch_size: int, buckets: list[int]) -> int:
    """Batches in one training epoch: per bucket, its examples divided by the batch size, rounded up."""
    bucket_of = np.searchsorted(np.asarray(buckets), encoded.lengths(), side="left")
    counts = np.bincount(bucket_of, minlength=len(buckets) + 1)
    return int(sum(-(-int(count) // batch_size) for count in counts))


def _ragged(rows: Sequence[np.ndarray]) -> tf.RaggedTensor:
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    values = np.concatenate(rows).astype(np.int32) if len(rows) else np.zeros([0], np.int32)
    return tf.RaggedTensor.from_row_lengths(values, lengths)


def _pad_batch_dim(batch_size: int):
    """Pad a batch to ``batch_size`` rows; padded rows get sample weight 0."""

    def pad(features, labels, weights):
        missing = batch_size - tf.shape(weights)[0]

        def fill(tensor):
            paddings = [[0, missing]] + [[0, 0]] * (len(tensor.shape) - 1)
            return tf.pad(tensor, paddings, constant_values=tf.zeros([], tensor.dtype))

        features = {name: fill(value) for name, value in features.items()}
        return features, fill(labels), fill(weights)

    return pad


def _pad_length_to_bucket(buckets: list[int]):
    """Pad a batch padded to its longest row further, up to the next bucket length."""
    bounds = tf.constant(buckets, dtype=tf.int32)

    def pad(features, *rest):
        length = tf.shape(features["input_ids"])[1]
        target = bounds[tf.argmax(tf.cast(bounds >= length, tf.int32))]
        features = {
            name: tf.pad(value, [[0, 0], [0, target - length]], constant_values=0)
            for name, value in features.items()
        }
        return (features, *rest)

    return pad


def token_dataset(
    encoded: Encoded,
    labels: np.ndarray | None = None,
    *,
    batch_size: int,
    max_length: int,
    pad_id: int = 0,
    training: bool = False,
    seed: int | None = None,
    weights: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Batches of token ids for ``model.fit``, ``evaluate`` or ``predict``.

    Args:
        encoded: unpadded ids from a :class:`~tfft.tokenization.TextEncoder`.
        labels: one label per example (any numeric dtype), or None for prediction.
        batch_size: rows per batch (global, across replicas).
        max_length: the longest sequence; sets the largest bucket.
        pad_id: the padding token id.
        training: shuffle every epoch and group by length; otherwise keep the order.
        seed: shuffling seed.
        weights: per-example sample weights (default 1).

    Returns:
        A dataset of ``(features, labels, sample_weight)``; without labels, of
        ``features`` alone, in the original order.
    """
    buckets = bucket_lengths(max_length)
    count = len(encoded)
    ids = _ragged(encoded.input_ids)
    types = _ragged(encoded.token_type_ids)
    if labels is None:
        dataset = tf.data.Dataset.from_tensor_slices((ids, types))
        dataset = dataset.map(
            lambda i, t: {"input_ids": i, "attention_mask": tf.ones_like(i), "token_type_ids": t}
        )
        dataset = dataset.padded_batch(
            batch_size, padding_values={"input_ids": pad_id, "attention_mask": 0, "token_type_ids": 0}
        )
        return dataset.map(lambda f: _pad_length_to_bucket(buckets)(f)[0]).prefetch(tf.data.AUTOTUNE)

    labels = np.asarray(labels)
    weights = np.ones([count], np.float32) if weights is None else np.asarray(weights, np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((ids, types, labels, weights))
    dataset = dataset.map(
        lambda i, t, y, w: ({"input_ids": i, "attention_mask": tf.ones_like(i), "token_type_ids": t}, y, w)
    )
    padding = ({"input_ids": pad_id, "attention_mask": 0, "token_type_ids": 0}, tf.cast(0, labels.dtype), 0.0)
    if training:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=lambda features, y, w: tf.shape(features["input_ids"])[0],
            bucket_boundaries=[length + 1 for length in buckets],
            bucket_batch_sizes=[batch_size] * (len(buckets) + 1),
            padding_values=padding,
            pad_to_bucket_boundary=True,
        )
        # Keep the batch dimension fixed for XLA; padded rows weigh 0.
        dataset = dataset.map(_pad_batch_dim(batch_size))
        # The number of batches does not depend on the shuffle: one partial batch per bucket.
        dataset = dataset.apply(
            tf.data.experimental.assert_cardinality(training_steps(encoded, batch_size, buckets))
        )
    else:
        # Evaluation keeps partial batches (at most one extra shape per bucket), so that
        # Keras' mean loss is not diluted by padding rows.
        dataset = dataset.padded_batch(batch_size, padding_values=padding)
        dataset = dataset.map(_pad_length_to_bucket(buckets))
    return dataset.prefetch(tf.data.AUTOTUNE)


def text_dataset(
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    labels: np.ndarray | None = None,
    *,
    batch_size: int,
    training: bool = False,
    seed: int | None = None,
    weights: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Batches of raw strings, for backbones that tokenize inside (text-embedding modules)."""
    features = {"text": tf.constant(list(texts), dtype=tf.string)}
    if pairs is not None:
        features["text_pair"] = tf.constant(list(pairs), dtype=tf.string)
    if labels is None:
        return tf.data.Dataset.from_tensor_slices(features).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    labels = np.asarray(labels)
    weights = np.ones([len(texts)], np.float32) if weights is None else np.asarray(weights, np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels, weights))
    if not training:
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    dataset = dataset.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(_pad_batch_dim(batch_size)).prefetch(tf.data.AUTOTUNE)
