"""Scoring multi-label predictions at a probability threshold: final metrics (micro and
macro F1, exact match, per-label scores) and the Keras metrics shown while training."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfft.errors import ConfigError
from tfft.keras import keras

DEFAULT_THRESHOLD = 0.5


def check_threshold(threshold: Any) -> float:
    """The decision threshold on label probabilities (None -> 0.5).

    Raises:
        ConfigError: Not a number strictly between 0 and 1.
    """
    if threshold is None:
        return DEFAULT_THRESHOLD
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ConfigError(f"`threshold` must be a number between 0 and 1. Received: threshold={threshold!r}")
    return float(threshold)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(
        2 * tp, denominator, out=np.zeros_like(denominator, dtype=np.float64), where=denominator > 0
    )


def multilabel_metrics(
    targets: np.ndarray, scores: np.ndarray, names: Sequence[str], threshold: float = DEFAULT_THRESHOLD
) -> dict:
    """Final metrics of multi-label predictions.

    Args:
        targets: 0/1 ``[examples, labels]``.
        scores: Label probabilities ``[examples, labels]``; a label is predicted when its
            score is at or above ``threshold``.
        names: The label names.
        threshold: The decision threshold.

    Returns:
        ``examples``, ``threshold``; ``micro_precision``, ``micro_recall``, ``micro_f1``
        over every (example, label) decision; ``macro_f1``, the mean F1 of the labels that
        occur or are predicted (labels absent from both are left out, as in classify's
        macro F1); ``exact_match``, the share of examples whose label set is exactly
        right; ``per_label``: precision, recall, F1, support (true count) and predicted
        count of each label.
    """
    truth = np.asarray(targets, np.float64) > 0.5
    predicted = np.asarray(scores, np.float64) >= threshold
    if truth.shape != predicted.shape or truth.ndim != 2 or truth.shape[1] != len(names):
        raise ValueError(
            f"multilabel_metrics: targets {truth.shape}, scores {predicted.shape}, {len(names)} names."
        )
    tp = np.sum(truth & predicted, axis=0).astype(np.float64)
    fp = np.sum(~truth & predicted, axis=0).astype(np.float64)
    fn = np.sum(truth & ~predicted, axis=0).astype(np.float64)
    f1 = _f1(tp, fp, fn)
    present = (tp + fp + fn) > 0
    per_label = {}
    for position, name in enumerate(names):
        per_label[name] = {
            "precision": float(tp[position] / max(tp[position] + fp[position], 1.0)),
            "recall": float(tp[position] / max(tp[position] + fn[position], 1.0)),
            "f1": float(f1[position]),
            "support": int(tp[position] + fn[position]),
            "predicted": int(tp[position] + fp[position]),
        }
    total_tp, total_fp, total_fn = tp.sum(), fp.sum(), fn.sum()
    return {
        "examples": int(len(truth)),
        "threshold": float(threshold),
        "micro_precision": float(total_tp / max(total_tp + total_fp, 1.0)),
        "micro_recall": float(total_tp / max(total_tp + total_fn, 1.0)),
        "micro_f1": float(_f1(np.array([total_tp]), np.array([total_fp]), np.array([total_fn]))[0]),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "exact_match": float(np.mean(np.all(truth == predicted, axis=1))) if len(truth) else 0.0,
        "per_label": per_label,
    }


class MultiLabelF1(keras.metrics.Metric):
    """Streaming micro or macro F1 of multi-label logits at a probability threshold.

    Rows of sample weight 0 (batch filler) do not count. Macro F1 averages the labels
    that occurred or were predicted so far.

    Args:
        num_labels: Logits per example.
        threshold: A label is predicted when ``sigmoid(logit) >= threshold``.
        average: ``"micro"`` or ``"macro"``.
        name: Metric name (default ``"<average>_f1"``).
    """

    def __init__(
        self,
        num_labels: int,
        threshold: float = DEFAULT_THRESHOLD,
        average: str = "micro",
        name: str | None = None,
        **kwargs,
    ):
        if average not in ("micro", "macro"):
            raise ConfigError(f"`average` must be micro or macro. Received: average={average!r}")
        super().__init__(name=name or f"{average}_f1", **kwargs)
        self.num_labels = num_labels
        self.threshold = check_threshold(threshold)
        self.average = average
        # sigmoid(x) >= t  <=>  x >= log(t / (1 - t))
        self._logit_threshold = math.log(self.threshold / (1.0 - self.threshold))
        self.counts = self.add_weight(
            name="counts", shape=(3, num_labels), initializer="zeros", dtype=tf.float32
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = tf.reshape(tf.cast(y_true, tf.float32), [-1, self.num_labels]) > 0.5
        predicted = tf.reshape(tf.cast(y_pred, tf.float32), [-1, self.num_labels]) >= self._logit_threshold
        if sample_weight is None:
            weights = tf.ones_like(tf.cast(truth[:, :1], tf.float32))
        else:
            weights = tf.reshape(tf.cast(sample_weight, tf.float32), [-1, 1])

        def count(mask):
            return tf.reduce_sum(tf.cast(mask, tf.float32) * weights, axis=0)

        self.counts.assign_add(
            tf.stack(
                [
                    count(truth & predicted),
                    count(~truth & predicted),
                    count(truth & ~predicted),
                ]
            )
        )

    def result(self):
        tp, fp, fn = tf.unstack(self.counts)
        if self.average == "micro":
            tp, fp, fn = tf.reduce_sum(tp), tf.reduce_sum(fp), tf.reduce_sum(fn)
            return tf.math.divide_no_nan(2 * tp, 2 * tp + fp + fn)
        denominator = 2 * tp + fp + fn
        f1 = tf.math.divide_no_nan(2 * tp, denominator)
        present = tf.cast(denominator > 0, tf.float32)
        return tf.math.divide_no_nan(tf.reduce_sum(f1 * present), tf.reduce_sum(present))

    def reset_state(self):
        self.counts.assign(tf.zeros_like(self.counts))

    def get_config(self):
        return {
            **super().get_config(),
            "num_labels": self.num_labels,
            "threshold": self.threshold,
            "average": self.average,
        }


def multilabel_train_metrics(num_labels: int, threshold: float = DEFAULT_THRESHOLD) -> list:
    """Metrics shown while training: micro and macro F1 at the model's threshold."""
    return [
        MultiLabelF1(num_labels, threshold, "micro"),
        MultiLabelF1(num_labels, threshold, "macro"),
    ]
