"""Classification head pieces: the loss over real rows, macro F1, final metrics."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfft.losses import classification_loss
from tfft.tasks.classify.metrics import MacroF1, classification_metrics


def test_filler_rows_do_not_shrink_the_loss():
    loss = classification_loss()
    labels = tf.constant([0, 1, 0, 0])
    logits = tf.constant([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0], [-3.0, 3.0]])
    real_only = loss(labels[:2], logits[:2])
    padded = loss(labels, logits, sample_weight=tf.constant([1.0, 1.0, 0.0, 0.0]))
    assert float(padded) == pytest.approx(float(real_only), rel=1e-6)
    expected = -np.mean([np.log(1 / (1 + np.exp(-2.0))), np.log(1 / (1 + np.exp(-1.0)))])
    assert float(real_only) == pytest.approx(expected, rel=1e-5)


def test_macro_f1_metric_ignores_zero_weight_rows_and_absent_classes():
    metric = MacroF1(3)
    metric.update_state([0, 1, 1, 2], tf.one_hot([0, 1, 0, 0], 3), sample_weight=[1, 1, 1, 0])
    # class 0: tp 1, fp 1, fn 0 -> f1 2/3; class 1: tp 1, fn 1 -> f1 2/3; class 2 absent (zero weight)
    assert float(metric.result()) == pytest.approx(2 / 3, rel=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_classification_metrics_per_class():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    metrics = classification_metrics(np.array([0, 1, 1, 1]), probabilities, ["neg", "pos"])
    assert metrics["accuracy"] == 0.75 and metrics["examples"] == 4
    assert metrics["per_class"]["pos"] == {
        "precision": 1.0,
        "recall": pytest.approx(2 / 3),
        "f1": 0.8,
        "support": 3,
    }
    assert metrics["confusion_matrix"] == [[1, 0], [1, 2]]
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2, rel=1e-6)
