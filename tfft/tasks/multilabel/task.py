"""Multi-label classification: any number of labels per text or text pair (``--task multilabel``).

Labels come either as one column listing them (``--label-separator ,``: ``"sports,politics"``;
a JSON Lines list works too) or as one 0/1 column per label (``--label-columns a,b,c``),
read in :mod:`.labels`. The head has one logit per label, trained with sigmoid binary
cross-entropy; a label is predicted when its probability is at or above the threshold
(``--threshold``, default 0.5), which is stored with the model. Metrics (:mod:`.metrics`):
micro and macro F1, per-label precision, recall, F1 and support.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.data import LabelSet, TableSpec
from tfft.data.checks import listing
from tfft.errors import DataError
from tfft.losses import multilabel_loss
from tfft.tasks.multilabel.labels import binary_columns, label_names_from_lists, multi_hot, multi_hot_from_api
from tfft.tasks.multilabel.metrics import multilabel_metrics, multilabel_train_metrics
from tfft.tasks.multilabel.options import MultiLabelOptions
from tfft.tasks.sequence import SequenceTask, label_names_from_args, per_name_lines

logger = logging.getLogger(__name__)

#: ``--label-separator`` when neither it nor ``--label-columns`` is given
DEFAULT_SEPARATOR = ","


def select_labels(scores: tf.Tensor, names: Sequence[str], threshold: float) -> dict[str, tf.Tensor]:
    """The labels at or above the threshold, most probable first (TF ops, for serving).

    Args:
        scores: Probabilities ``[batch, labels]``.
        names: The label names.
        threshold: The decision threshold.

    Returns:
        ``labels``: tf.string ``[batch, labels]``, the chosen labels first (by descending
        score), then ``""``; ``label_mask``: bool, true where ``labels`` holds a label;
        ``scores``: the probabilities, in label-name order.
    """
    scores = tf.cast(scores, tf.float32)
    order = tf.argsort(scores, axis=-1, direction="DESCENDING", stable=True)
    ordered = tf.gather(scores, order, batch_dims=1)
    mask = ordered >= threshold
    chosen = tf.gather(tf.constant(list(names), tf.string), order)
    return {
        "labels": tf.where(mask, chosen, tf.constant("", tf.string)),
        "label_mask": mask,
        "scores": scores,
    }


class MultiLabelTask(SequenceTask):
    """``--task multilabel``: one sigmoid output per label, binary cross-entropy.

    Reading: ``--label-columns a,b,c`` reads one 0/1 column per label (the label names are
    the column names); otherwise ``--label-column`` lists the labels of each row, split on
    ``--label-separator`` (default ``,``; JSON Lines lists and TFDS sequences work too), and
    the label names are those seen in training. A row may have no labels. Either format
    can be evaluated against a model trained on the other.

    Settings: ``labels``, ``threshold`` (used by the export) and how the labels were
    given (``label_separator`` or ``label_columns``, re-applied by ``tfft evaluate``).
    """

    name = "multilabel"
    default_monitor = "val_micro_f1"
    headline = ("examples", "micro_f1", "macro_f1", "exact_match")
    slice_metric = "micro_f1"

    def table_spec(self, config, labelled: bool) -> TableSpec:
        data, task = config.data, config.task
        if not labelled:
            return TableSpec(data.text_column, data.text_pair_column, format=data.format)
        columns = task.label_column_list()
        if columns is not None:
            return TableSpec(
                data.text_column, data.text_pair_column, format=data.format, label_columns=columns
            )
        return TableSpec(
            data.text_column,
            data.text_pair_column,
            label_column=data.label_column,
            format=data.format,
            label_separator=task.label_separator or DEFAULT_SEPARATOR,
            allow_empty_label_list=True,
        )

    def settings_from_data(self, train, config) -> dict:
        task = config.task
        if train.label_separator is not None:
            names = label_names_from_lists(train)
        else:
            names = tuple(train.label_columns)
        targets = self.targets({"labels": list(names)}, train)
        never = [name for name, count in zip(names, targets.sum(axis=0), strict=True) if count == 0]
        if never:
            logger.warning(
                "%s: label(s) %s never occur in training; the model will learn to never predict them.",
                train.source,
                listing(never),
            )
        settings = {"labels": list(names), "threshold": task.threshold}
        # How the labels were given: `tfft evaluate` and `predict` read data the same way
        # unless told otherwise.
        if train.label_separator is not None:
            settings["label_separator"] = train.label_separator
        else:
            settings["label_columns"] = ",".join(names)
        return settings

    def settings_from_args(self, label_names, num_labels, options) -> dict:
        threshold = MultiLabelOptions.from_api(options, self.name).threshold
        label_names = label_names_from_args(label_names, num_labels)
        return {"labels": list(LabelSet(list(label_names)).names), "threshold": threshold}

    def targets(self, settings, examples) -> np.ndarray:
        if examples.label_lists is None:
            raise DataError(f"{examples.source}: these examples have no labels (no label column was read).")
        if examples.label_separator is not None:
            return multi_hot(examples, settings["labels"])
        return binary_columns(examples, settings["labels"])

    def targets_from_api(self, settings, labels) -> np.ndarray:
        return multi_hot_from_api(labels, settings["labels"])

    def loss(self, spec):
        return multilabel_loss()

    def train_metrics(self, spec) -> list:
        return multilabel_train_metrics(len(spec.settings["labels"]), spec.settings["threshold"])

    def answers(self, settings, outputs):
        scores = tf.sigmoid(tf.cast(outputs, tf.float32))
        return select_labels(scores, settings["labels"], settings["threshold"])

    def metrics(self, settings, targets, answers) -> dict:
        return multilabel_metrics(targets, answers["scores"], settings["labels"], settings["threshold"])

    def row(self, settings, answers, index) -> dict:
        mask = answers["label_mask"][index]
        return {
            "labels": [str(label) for label in answers["labels"][index][mask]],
            "scores": {
                name: round(float(p), 6)
                for name, p in zip(settings["labels"], answers["scores"][index], strict=True)
            },
        }

    def format_metrics(self, metrics) -> list[str]:
        lines = [
            f"threshold    {metrics['threshold']:g}",
            f"micro_f1     {metrics['micro_f1']:.4f}  (precision {metrics['micro_precision']:.4f}, "
            f"recall {metrics['micro_recall']:.4f})",
            f"macro_f1     {metrics['macro_f1']:.4f}",
            f"exact_match  {metrics['exact_match']:.4f}",
        ]
        lines.extend(per_name_lines(metrics["per_label"]))
        return lines


TASK = MultiLabelTask()
