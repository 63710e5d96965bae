"""The losses of tfft's tasks, all averaged over real rows (or real tokens) of a batch.

Training batches may carry filler rows of sample weight 0 (see :mod:`tfft.preprocess`), and
token-level tasks leave later word pieces, special tokens and padding out of the loss. Every
loss here is a per-example (or per-token) function wrapped in :class:`WeightedMeanLoss`,
which divides by the sum of the weights, so a row weighs the same in any batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.tasks.regress.options import REGRESSION_LOSSES


class WeightedMeanLoss(keras.losses.Loss):
    """A per-example loss averaged with sample weights: ``sum(w * loss) / sum(w)``.

    Keras' own reduction divides by the batch size, so the rows of weight 0 that fill up a
    partial training batch (see :mod:`tfft.preprocess`) would shrink that batch's loss and
    gradient. Dividing by the sum of the weights instead gives every real row the same
    weight whatever batch it is in.
    """

    def __init__(self, per_example, name: str, **kwargs):
        super().__init__(name=name, reduction=keras.losses.Reduction.SUM_OVER_BATCH_SIZE, **kwargs)
        self.per_example = per_example

    def call(self, y_true, y_pred):
        return self.per_example(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        losses = tf.cast(self.call(y_true, y_pred), tf.float32)
        if sample_weight is None:
            return tf.reduce_mean(losses)
        weights = tf.cast(tf.reshape(sample_weight, tf.shape(losses)), tf.float32)
        return tf.math.divide_no_nan(tf.reduce_sum(losses * weights), tf.reduce_sum(weights))

    def get_config(self):
        return {"name": self.name}


def classification_loss() -> keras.losses.Loss:
    """Cross-entropy on logits, averaged over the real (non-filler) rows of each batch."""

    def per_example(labels, logits):
        return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)

    return WeightedMeanLoss(per_example, name="sparse_categorical_crossentropy")


def check_loss(loss: str | None) -> str:
    """The regression loss name (``None`` -> ``"mse"``).

    Raises:
        ConfigError: Not one of :data:`REGRESSION_LOSSES`.
    """
    loss = "mse" if loss is None else loss
    if loss not in REGRESSION_LOSSES:
        raise ConfigError(
            f"`loss` for task regress must be one of {', '.join(REGRESSION_LOSSES)}. Received: loss={loss!r}"
        )
    return loss


def regression_loss(kind: str = "mse", std: Sequence[float] | None = None) -> keras.losses.Loss:
    """Mean squared error or Huber loss, averaged over the real (non-filler) rows of a batch.

    Args:
        kind: ``"mse"`` or ``"huber"`` (delta 1).
        std: Per-target standard deviations when the targets are scaled: residuals are
            divided by them, so the loss is that of standardized targets.

    Returns:
        A Keras loss taking ``[batch, targets]`` targets and predictions.
    """
    kind = check_loss(kind)
    inverse_std = None if std is None else tf.constant(1.0 / np.asarray(std, np.float64), tf.float32)

    def per_example(y_true, y_pred):
        y_pred = tf.cast(y_pred, tf.float32)
        residual = y_pred - tf.reshape(tf.cast(y_true, tf.float32), tf.shape(y_pred))
        if inverse_std is not None:
            residual = residual * inverse_std
        if kind == "mse":
            losses = tf.square(residual)
        else:
            magnitude = tf.abs(residual)
            quadratic = tf.minimum(magnitude, 1.0)
            losses = 0.5 * tf.square(quadratic) + (magnitude - quadratic)
        return tf.reduce_mean(losses, axis=-1)

    return WeightedMeanLoss(per_example, name="mean_squared_error" if kind == "mse" else "huber")


def multilabel_loss() -> keras.losses.Loss:
    """Sigmoid binary cross-entropy on logits, averaged over the labels of an example and
    over the real (non-filler) rows of a batch."""

    def per_example(targets, logits):
        logits = tf.cast(logits, tf.float32)
        targets = tf.reshape(tf.cast(targets, tf.float32), tf.shape(logits))
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
        return tf.reduce_mean(losses, axis=-1)

    return WeightedMeanLoss(per_example, name="binary_crossentropy")


def span_loss() -> keras.losses.Loss:
    """Mean of the start and end cross-entropies over each window's positions.

    ``y_true`` is int ``[batch, 2]`` (start, end positions), ``y_pred`` the float32 logits
    ``[batch, length, 2]``; rows are averaged with their sample weights (see
    :class:`WeightedMeanLoss`).
    """

    def per_example(positions, logits):
        positions = tf.cast(positions, tf.int32)
        logits = tf.transpose(tf.cast(logits, tf.float32), [0, 2, 1])  # [batch, 2, length]
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(positions, logits)
        return tf.reduce_mean(losses, axis=-1)

    return WeightedMeanLoss(per_example, name="span_crossentropy")


def token_loss() -> keras.losses.Loss:
    """Cross-entropy of each word's first piece, averaged over the labelled tokens.

    Tokens labelled -100 (later pieces, special tokens, padding) have weight 0 and their
    label is clamped so the loss stays finite.
    """

    def per_token(labels, logits):
        labels = tf.maximum(tf.cast(labels, tf.int32), 0)
        return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)

    return WeightedMeanLoss(per_token, name="token_crossentropy")


def smoothed_token_crossentropy(smoothing: float):
    """Per-token cross-entropy against targets that put ``smoothing`` of their mass evenly on the vocabulary.

    ``(1 - smoothing) * -log p(label) + smoothing * mean over the vocabulary of -log p``
    (Szegedy et al. 2016, as in fairseq and Hugging Face's ``label_smoothing_factor``); with 0
    it is the plain cross-entropy.
    """

    def per_token(labels, logits):
        logits = tf.cast(logits, tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=logits)
        if not smoothing:
            return nll
        return (1.0 - smoothing) * nll - smoothing * tf.reduce_mean(tf.nn.log_softmax(logits), axis=-1)

    return per_token
