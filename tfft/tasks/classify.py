"""Text classification: single sentences and sentence pairs, one label each."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.data import LabelSet
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.tasks.base import check_no_options
from tfft.tasks.sequence import SequenceTask


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


def classification_head(features: tf.Tensor, num_labels: int, dropout: float) -> tf.Tensor:
    """Dropout and a dense layer to float32 logits (float32 even under mixed precision)."""
    features = keras.layers.Dropout(dropout, name="head_dropout")(features)
    logits = keras.layers.Dense(
        num_labels,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name="classifier",
    )(features)
    return keras.layers.Activation("linear", dtype="float32", name="logits")(logits)


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


def classification_train_metrics(num_labels: int) -> list:
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), MacroF1(num_labels)]


def class_weights(ids: np.ndarray, num_classes: int) -> np.ndarray:
    """``--class-weights auto``: ``n / (classes * count)`` per class (absent classes weigh 0)."""
    counts = np.bincount(np.asarray(ids, np.int64), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(ids) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def label_column(examples) -> str:
    return getattr(examples, "label_column", None) or "label"


class ClassifyTask(SequenceTask):
    """``--task classify``: softmax over the label set, cross-entropy, accuracy and macro F1."""

    name = "classify"
    default_monitor = "val_accuracy"
    headline = ("examples", "accuracy", "macro_f1")

    def read(self, source, config, *, labelled=True, option="--train", max_examples=None):
        examples = super().read(source, config, labelled=labelled, option=option, max_examples=max_examples)
        examples.label_column = config.data.label_column
        return examples

    def split(self, examples, fraction, seed):
        parts = examples.split(fraction, seed)
        for part in parts:
            part.label_column = label_column(examples)
        return parts

    def settings_from_data(self, train, config) -> dict:
        labels = LabelSet.from_labels(train.labels)
        if len(labels) < 2:
            raise DataError(
                f"{train.source}: column `{label_column(train)}` has a single label "
                f"({labels.names[0]!r}); classification needs at least 2."
            )
        return {"labels": list(labels.names)}

    def settings_from_args(self, label_names, num_labels, options) -> dict:
        check_no_options(self.name, options)
        if label_names is None:
            if num_labels is None or num_labels < 2:
                raise ConfigError(f"`num_labels` must be at least 2. Received: num_labels={num_labels!r}")
            label_names = [str(index) for index in range(num_labels)]
        elif num_labels is not None and num_labels != len(label_names):
            raise ConfigError(
                f"`num_labels` ({num_labels}) does not match `label_names` ({len(label_names)} names). "
                f"Received: label_names={list(label_names)!r}"
            )
        if len(label_names) < 2:
            raise ConfigError(
                f"Classification needs at least 2 labels. Received: label_names={list(label_names)!r}"
            )
        return {"labels": list(LabelSet(list(label_names)).names)}

    def targets(self, settings, examples) -> np.ndarray:
        labels = LabelSet(settings["labels"])
        return np.asarray(
            labels.ids(examples.labels, examples.source, examples.rows, label_column(examples)), np.int32
        )

    def targets_from_api(self, settings, labels: Sequence) -> np.ndarray:
        index = {name: position for position, name in enumerate(settings["labels"])}
        ids = []
        for row, label in enumerate(labels):
            key = str(label).strip()
            if key not in index:
                raise DataError(
                    f"labels[{row}]: label {label!r} is not one of the model's labels: "
                    f"{', '.join(settings['labels'])}"
                )
            ids.append(index[key])
        return np.asarray(ids, dtype=np.int32)

    def sample_weights(self, settings, targets, config):
        if config.task.class_weights != "auto":
            return None
        return class_weights(targets, len(settings["labels"]))[targets]

    def loss(self, spec):
        return classification_loss()

    def train_metrics(self, spec) -> list:
        return classification_train_metrics(len(spec.label_names))

    def answers(self, settings, outputs):
        probabilities = tf.nn.softmax(tf.cast(outputs, tf.float32), axis=-1)
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "label": tf.gather(tf.constant(list(settings["labels"])), label_id),
            "label_id": label_id,
            "probabilities": probabilities,
        }

    def metrics(self, settings, targets, answers) -> dict:
        return classification_metrics(targets, answers["probabilities"], settings["labels"])

    def row(self, settings, answers, index) -> dict:
        return {
            "label": answers["label"][index],
            "probabilities": {
                name: round(float(p), 6)
                for name, p in zip(settings["labels"], answers["probabilities"][index])
            },
        }

    def format_metrics(self, metrics) -> list[str]:
        lines = [f"accuracy  {metrics['accuracy']:.4f}", f"macro_f1  {metrics['macro_f1']:.4f}"]
        for name, scores in metrics["per_class"].items():
            lines.append(
                f"  {name:<12} precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
                f"f1 {scores['f1']:.4f}  support {scores['support']}"
            )
        return lines


TASK = ClassifyTask()
