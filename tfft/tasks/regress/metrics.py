"""Scoring regression: final metrics (MSE, MAE, Pearson, Spearman) and the Keras metrics
shown while training."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.keras import keras


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the average of their ranks.

    >>> average_ranks(np.array([10.0, 20.0, 10.0, 30.0])).tolist()
    [1.5, 3.0, 1.5, 4.0]
    """
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.concatenate([[True], ordered[1:] != ordered[:-1]]) if len(values) else np.zeros(0, bool)
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    sizes = np.diff(np.append(starts, len(values)))
    ranks = np.empty(len(values), np.float64)
    ranks[order] = (starts + (sizes + 1) / 2.0)[group]
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation; None when it is undefined (fewer than 2 values, or a constant)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if len(x) < 2:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy)))
    if denominator == 0:
        return None
    return float(np.clip(np.dot(dx, dy) / denominator, -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman rank correlation (Pearson of average ranks); None when undefined."""
    return pearson(average_ranks(x), average_ranks(y))


def _mean_defined(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def regression_metrics(targets: np.ndarray, predictions: np.ndarray, names: Sequence[str]) -> dict:
    """Final metrics of regression predictions.

    Args:
        targets: ``[examples, targets]`` (or ``[examples]`` for one target).
        predictions: The same shape, in the targets' scale.
        names: The target names.

    Returns:
        ``examples``; ``mse``, ``mae`` over every value; ``pearson``, ``spearman`` averaged
        over the targets (None where a correlation is undefined: a constant column, fewer
        than 2 examples); ``per_target``: the same four per target name.
    """
    targets = np.asarray(targets, np.float64).reshape(len(targets), -1)
    predictions = np.asarray(predictions, np.float64).reshape(len(predictions), -1)
    if targets.shape != predictions.shape or targets.shape[1] != len(names):
        raise ValueError(
            f"regression_metrics: targets {targets.shape}, predictions {predictions.shape}, "
            f"{len(names)} names."
        )
    per_target = {}
    for index, name in enumerate(names):
        truth, guess = targets[:, index], predictions[:, index]
        per_target[name] = {
            "mse": float(np.mean((guess - truth) ** 2)) if len(truth) else 0.0,
            "mae": float(np.mean(np.abs(guess - truth))) if len(truth) else 0.0,
            "pearson": pearson(guess, truth),
            "spearman": spearman(guess, truth),
        }
    errors = predictions - targets
    return {
        "examples": int(len(targets)),
        "mse": float(np.mean(errors**2)) if errors.size else 0.0,
        "mae": float(np.mean(np.abs(errors))) if errors.size else 0.0,
        "pearson": _mean_defined([m["pearson"] for m in per_target.values()]),
        "spearman": _mean_defined([m["spearman"] for m in per_target.values()]),
        "per_target": per_target,
    }


class Pearson(keras.metrics.Metric):
    """Streaming Pearson correlation between predictions and targets, averaged over targets.

    Weighted sums are kept in float64, so rows of sample weight 0 (batch filler) do not
    count and long evaluations do not lose precision. A target whose correlation is
    undefined (constant so far) counts as 0.

    Args:
        num_targets: Outputs per example.
        name: Metric name.
    """

    def __init__(self, num_targets: int = 1, name: str = "pearson", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_targets = num_targets
        self.sums = self.add_weight(
            name="sums", shape=(6, num_targets), initializer="zeros", dtype=tf.float64
        )  # rows: weight, x, y, x^2, y^2, x*y

    def update_state(self, y_true, y_pred, sample_weight=None):
        y = tf.reshape(tf.cast(y_true, tf.float64), [-1, self.num_targets])
        x = tf.reshape(tf.cast(y_pred, tf.float64), [-1, self.num_targets])
        if sample_weight is None:
            w = tf.ones_like(x[:, :1])
        else:
            w = tf.reshape(tf.cast(sample_weight, tf.float64), [-1, 1])
        w = tf.broadcast_to(w, tf.shape(x))
        batch = tf.stack(
            [
                tf.reduce_sum(w, 0),
                tf.reduce_sum(w * x, 0),
                tf.reduce_sum(w * y, 0),
                tf.reduce_sum(w * x * x, 0),
                tf.reduce_sum(w * y * y, 0),
                tf.reduce_sum(w * x * y, 0),
            ]
        )
        self.sums.assign_add(batch)

    def result(self):
        n, sx, sy, sxx, syy, sxy = tf.unstack(self.sums)
        covariance = sxy - tf.math.divide_no_nan(sx * sy, n)
        var_x = tf.maximum(sxx - tf.math.divide_no_nan(sx * sx, n), 0.0)
        var_y = tf.maximum(syy - tf.math.divide_no_nan(sy * sy, n), 0.0)
        correlation = tf.math.divide_no_nan(covariance, tf.sqrt(var_x * var_y))
        return tf.cast(tf.reduce_mean(tf.clip_by_value(correlation, -1.0, 1.0)), tf.float32)

    def reset_state(self):
        self.sums.assign(tf.zeros_like(self.sums))

    def get_config(self):
        return {**super().get_config(), "num_targets": self.num_targets}


def regression_train_metrics(num_targets: int) -> list:
    """Metrics shown while training: mean absolute error and Pearson correlation."""
    return [keras.metrics.MeanAbsoluteError(name="mae"), Pearson(num_targets)]
