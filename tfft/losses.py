"""The losses of tfft's tasks, all averaged over real rows (or real tokens) of a batch.

Training batches may carry filler rows of sample weight 0 (see :mod:`tfft.preprocess`), and
token-level tasks leave later word pieces, special tokens and padding out of the loss. Every
loss here is a per-example (or per-token) function wrapped in :class:`WeightedMeanLoss`,
which divides by the sum of the weights, so a row weighs the same in any batch.

Per-token losses given ``tokens_per_row`` (NER: the mean words per training sentence)
divide by ``real rows x tokens_per_row`` instead of the batch's own token count, so a token
weighs the same in any batch too. Length-bucketed batches hold rows of similar length: divided
by its own count, a batch of 32 four-word sentences (128 tokens) moved the model as much as
one of 32 forty-word sentences (1,280 tokens), so every token of a short sentence weighed ten
times more than one of a long sentence. Shuffled batches of random rows have nearly the same
count every step, which is why the standard recipe's per-batch token mean is no problem there;
so do token-budget batches (``--batch-tokens``: about the same number of tokens, however many
rows), and NER keeps the per-batch token mean with them.
CoNLL-2003 NER (MiniLM, seed 42, float32, power-of-two groups): validation entity F1 after
the first epoch 0.874 against 0.858-0.862 with the per-batch mean (README, NER). The
seq2seq, causal-lm and mlm losses keep the per-batch token mean: on Multi30k (Marian from
random weights, one epoch) the rows x tokens_per_row form trained worse (README, Padding).
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

    def __init__(self, per_example, name: str, tokens_per_row: float | None = None, **kwargs):
        super().__init__(name=name, reduction=keras.losses.Reduction.SUM_OVER_BATCH_SIZE, **kwargs)
        self.per_example = per_example
        self.tokens_per_row = None if tokens_per_row is None else float(tokens_per_row)

    def call(self, y_true, y_pred):
        return self.per_example(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        losses = tf.cast(self.call(y_true, y_pred), tf.float32)
        if sample_weight is None:
            sample_weight = tf.ones_like(losses)
        weights = tf.cast(tf.reshape(sample_weight, tf.shape(losses)), tf.float32)
        return tf.math.divide_no_nan(tf.reduce_sum(losses * weights), self.denominator(weights))

    def denominator(self, weights) -> tf.Tensor:
        """What a batch's weighted loss sum is divided by, float32: the sum of ``weights``; for
        per-token weights ``[rows, length]`` with ``tokens_per_row`` set, the number of rows
        with any weight (filler rows have none) times ``tokens_per_row``.

        >>> loss = WeightedMeanLoss(None, name="tokens", tokens_per_row=2.5)
        >>> float(loss.denominator(tf.constant([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])))
        5.0
        """
        weights = tf.cast(weights, tf.float32)
        if self.tokens_per_row is None or weights.shape.rank is None or weights.shape.rank < 2:
            return tf.reduce_sum(weights)
        per_row = tf.reduce_sum(weights, axis=list(range(1, weights.shape.rank)))
        return tf.reduce_sum(tf.cast(per_row > 0, tf.float32)) * self.tokens_per_row

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


def token_loss(tokens_per_row: float | None = None) -> keras.losses.Loss:
    """Cross-entropy of each word's first piece, summed over the labelled tokens and divided
    by ``real rows x tokens_per_row`` (see the module docstring); without ``tokens_per_row``,
    averaged over the batch's labelled tokens.

    Tokens labelled -100 (later pieces, special tokens, padding) have weight 0 and their
    label is clamped so the loss stays finite.
    """

    def per_token(labels, logits):
        labels = tf.maximum(tf.cast(labels, tf.int32), 0)
        return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)

    return WeightedMeanLoss(per_token, name="token_crossentropy", tokens_per_row=tokens_per_row)


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
