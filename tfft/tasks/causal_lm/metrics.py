"""Scores of ``--task causal-lm``: token loss, perplexity, next-token accuracy; stop strings.

All three are computed over the weighted label tokens (response tokens of prompt/response
data, every real token of plain text): ``loss`` is the mean negative log-likelihood per
token (nats), ``perplexity`` is ``exp(loss)``, ``token_accuracy`` the share of tokens that
are the model's most likely next token.

>>> scores = TokenScores()
>>> scores.add(np.log([[2.0, 8.0]]), np.array([[1, 0]]), np.array([[1.0, 1.0]]))
>>> round(scores.result()["perplexity"], 4), scores.result()["token_accuracy"]
(4.0, 0.5)
>>> cut_at_stop("Paris.\\nQ: and Rome?", ["\\n", "Q:"])
'Paris.'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.keras import keras


class TokenScores:
    """Sums of weighted token NLL and correct next tokens, over batches."""

    def __init__(self):
        self.nll = 0.0
        self.correct = 0.0
        self.tokens = 0.0

    def add(self, nll: np.ndarray, correct: np.ndarray, weights: np.ndarray) -> None:
        """Add a batch: per-token NLL, 1 where the argmax was the label, per-token weights."""
        weights = np.asarray(weights, np.float64)
        self.nll += float((np.asarray(nll, np.float64) * weights).sum())
        self.correct += float((np.asarray(correct, np.float64) * weights).sum())
        self.tokens += float(weights.sum())

    def result(self) -> dict:
        """``tokens``, ``loss``, ``perplexity`` and ``token_accuracy`` (NaN without tokens)."""
        if not self.tokens:
            return {"tokens": 0, "loss": math.nan, "perplexity": math.nan, "token_accuracy": math.nan}
        loss = self.nll / self.tokens
        return {
            "tokens": int(self.tokens),
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
            "token_accuracy": self.correct / self.tokens,
        }


def token_nll_and_correct(labels: tf.Tensor, logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-token NLL (float32) and whether the label is the argmax (int32), ``[batch, length]``."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.int32)
    return nll, correct


class Perplexity(keras.metrics.Metric):
    """``exp`` of the weighted mean token NLL, as a Keras metric (``perplexity`` in fit logs)."""

    def __init__(self, name: str = "perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.nll = self.add_weight(name="nll", initializer="zeros", dtype=tf.float32)
        self.count = self.add_weight(name="count", initializer="zeros", dtype=tf.float32)

    def update_state(self, y_true, y_pred, sample_weight=None):
        nll, _ = token_nll_and_correct(y_true, y_pred)
        weights = tf.ones_like(nll) if sample_weight is None else tf.cast(sample_weight, tf.float32)
        weights = tf.reshape(weights, tf.shape(nll))
        self.nll.assign_add(tf.reduce_sum(nll * weights))
        self.count.assign_add(tf.reduce_sum(weights))

    def result(self):
        return tf.exp(tf.math.divide_no_nan(self.nll, self.count))

    def reset_state(self):
        self.nll.assign(0.0)
        self.count.assign(0.0)


def stop_strings(stop: str | None) -> list[str]:
    r"""The stop strings of the ``stop`` setting: ``|``-separated, ``\n`` and ``\t`` unescaped."""
    if not stop:
        return []
    return [part.replace("\\n", "\n").replace("\\t", "\t") for part in stop.split("|") if part]


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` up to (without) the first occurrence of any stop string."""
    end = len(text)
    for stop in stops:
        index = text.find(stop)
        if index != -1:
            end = min(end, index)
    return text[:end]
