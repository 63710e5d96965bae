"""Scoring classification: final metrics (accuracy, macro F1, per-class scores), the Keras
metrics shown while training, and ``--class-weights auto`` from the label counts."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfft.keras import keras


class MacroF1(keras.metrics.Metric):
    """Macro-averaged F1 over ``num_classes`` from integer labels and logits.

    Classes that never occur and are never predicted are left out of the average.
    """

    def __init__(self, num_classes: int, name: str = "macro_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.confusion = self.add_weight(
            name="confusion", shape=(num_classes, num_classes), initializer="zeros", dtype=tf.float32
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        y_pred = tf.argmax(tf.reshape(y_pred, [-1, self.num_classes]), axis=-1, output_type=tf.int32)
        weights = None if sample_weight is None else tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
        batch = tf.math.confusion_matrix(y_true, y_pred, self.num_classes, weights=weights, dtype=tf.float32)
        self.confusion.assign_add(batch)

    def result(self):
        return macro_f1_from_confusion(self.confusion)

    def reset_state(self):
        self.confusion.assign(tf.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def macro_f1_from_confusion(confusion):
    """Macro F1 from a ``[true, predicted]`` confusion matrix (tensor or array)."""
    confusion = tf.cast(confusion, tf.float32)
    true_positive = tf.linalg.diag_part(confusion)
    predicted = tf.reduce_sum(confusion, axis=0)
    actual = tf.reduce_sum(confusion, axis=1)
    f1 = tf.math.divide_no_nan(2 * true_positive, predicted + actual)
    present = tf.cast((predicted + actual) > 0, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(f1 * present), tf.reduce_sum(present))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, names) -> dict:
    """Accuracy, macro F1 and per-class precision/recall/F1 of finished predictions."""
    num_classes = len(names)
    predicted = np.argmax(probabilities, axis=-1)
    confusion = np.zeros([num_classes, num_classes], dtype=np.int64)
    np.add.at(confusion, (np.asarray(labels), predicted), 1)
    per_class = {}
    for index, name in enumerate(names):
        tp = confusion[index, index]
        precision = tp / max(confusion[:, index].sum(), 1)
        recall = tp / max(confusion[index].sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(confusion[index].sum()),
        }
    return {
        "examples": int(len(labels)),
        "accuracy": float(np.mean(predicted == np.asarray(labels))) if len(labels) else 0.0,
        "macro_f1": float(macro_f1_from_confusion(confusion).numpy()),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def classification_train_metrics(num_labels: int) -> list:
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), MacroF1(num_labels)]


def class_weights(ids: np.ndarray, num_classes: int) -> np.ndarray:
    """``--class-weights auto``: ``n / (classes * count)`` per class (absent classes weigh 0)."""
    counts = np.bincount(np.asarray(ids, np.int64), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(ids) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)
