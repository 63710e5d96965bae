"""Text classification: single sentences and sentence pairs, one label each (``--task classify``).

A softmax over the label set, trained with cross-entropy (:func:`tfft.losses.classification_loss`,
weighted by class with ``--class-weights auto``); scored (:mod:`.metrics`) by accuracy and
macro F1. Serves ``label``, ``label_id`` and ``probabilities``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.data import LabelSet
from tfft.errors import ConfigError, DataError
from tfft.losses import classification_loss
from tfft.tasks.classify.metrics import class_weights, classification_metrics, classification_train_metrics
from tfft.tasks.classify.options import ClassifyOptions, label_name_map
from tfft.tasks.sequence import SequenceTask, label_names_from_args, per_name_lines


def name_labels(examples, mapping: dict[str, str]) -> list[str]:
    """The examples' raw labels as their ``--label-names`` names (labels that are names
    already stay).

    Raises:
        DataError: a label that ``--label-names`` does not name (file, line and label).
    """
    known = {**{name: name for name in mapping.values()}, **mapping}
    given = ",".join(f"{label}={name}" for label, name in mapping.items())
    for label, row in zip(examples.labels, examples.rows):
        if label not in known:
            raise DataError(
                f"{examples.source}:{row}: label {label!r} in column `{label_column(examples)}` has no name "
                f"in --label-names. Received: label_names={given!r}"
            )
    return [known[label] for label in examples.labels]


def label_column(examples) -> str:
    """The column the examples' labels were read from, for messages (``label`` if unknown)."""
    return getattr(examples, "label_column", None) or "label"


class ClassifyTask(SequenceTask):
    """``--task classify``: softmax over the label set, cross-entropy, accuracy and macro F1."""

    name = "classify"
    default_monitor = "val_accuracy"
    headline = ("examples", "accuracy", "macro_f1")
    slice_metric = "accuracy"

    def read(self, source, config, *, labelled=True, option="--train", max_examples=None, extra_columns=()):
        examples = super().read(
            source,
            config,
            labelled=labelled,
            option=option,
            max_examples=max_examples,
            extra_columns=extra_columns,
        )
        examples.label_column = config.data.label_column
        label_names = getattr(config.task, "label_names", None)
        if labelled and label_names and examples.labels is not None:
            examples.labels = name_labels(examples, label_name_map("label_names", label_names))
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
        label_names = getattr(config.task, "label_names", None)
        if not label_names:
            return {"labels": list(labels.names)}
        # the names in the order of the labels they stand for (0, 1, ... for integers)
        mapping = label_name_map("label_names", label_names)
        order = [mapping[label] for label in LabelSet.from_labels(list(mapping)).names]
        return {"labels": [name for name in order if name in labels.names], "label_names": label_names}

    def settings_from_args(self, label_names, num_labels, options) -> dict:
        ClassifyOptions.from_api(options, self.name)
        label_names = label_names_from_args(label_names, num_labels, minimum=2)
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
        lines.extend(per_name_lines(metrics["per_class"]))
        return lines


TASK = ClassifyTask()
