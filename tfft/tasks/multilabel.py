"""Multi-label classification: any number of labels per text or text pair (``--task multilabel``).

Labels come either as one column listing them (``--label-separator ,``: ``"sports,politics"``;
a JSON Lines list works too) or as one 0/1 column per label (``--label-columns a,b,c``).
The head has one logit per label, trained with sigmoid binary cross-entropy; a label is
predicted when its probability is at or above the threshold (``--threshold``, default 0.5),
which is stored with the model. Metrics: micro and macro F1, per-label precision, recall,
F1 and support.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfft.data import LabelSet, TableSpec
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.tasks.base import check_no_options
from tfft.tasks.classify import WeightedMeanLoss
from tfft.tasks.sequence import SequenceTask

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
_ONE = re.compile(r"(?i)1(?:\.0*)?|true")
_ZERO = re.compile(r"(?i)0(?:\.0*)?|false")
_MAX_LISTED = 20


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


def _listing(names: Sequence[str]) -> str:
    if len(names) <= _MAX_LISTED:
        return ", ".join(names)
    return f"{', '.join(names[:_MAX_LISTED])}, ... ({len(names)} in all)"


# --- targets -------------------------------------------------------------------------------


def label_names_from_lists(examples: Any) -> tuple[str, ...]:
    """The label set of training examples read with a ``label_separator``.

    Labels are sorted like :meth:`tfft.data.LabelSet.from_labels` (numerically when all
    are integers).

    Raises:
        DataError: No example lists any label.
    """
    unique = {label for labels in examples.label_lists for label in labels}
    if not unique:
        column = (examples.label_columns or ("label",))[0]
        raise DataError(
            f"{examples.source}: column `{column}` lists no label in any of the {len(examples)} rows; "
            "multi-label training needs at least one label."
        )
    return LabelSet.from_labels(sorted(unique)).names


def multi_hot(examples: Any, names: Sequence[str]) -> np.ndarray:
    """0/1 targets ``[examples, labels]`` of examples read with a ``label_separator``.

    Raises:
        DataError: A label is not in ``names`` (the message names file, line, column).
    """
    index = {name: position for position, name in enumerate(names)}
    column = (examples.label_columns or ("label",))[0]
    targets = np.zeros([len(examples), len(names)], np.float32)
    for row_index, (labels, row) in enumerate(zip(examples.label_lists, examples.rows, strict=True)):
        for label in labels:
            if label not in index:
                raise DataError(
                    f"{examples.source}:{row}: label {label!r} in column `{column}` was never seen in "
                    f"training. Known labels: {_listing(list(names))}"
                )
            targets[row_index, index[label]] = 1.0
    return targets


def parse_binary(value: str, where: str, column: str) -> float:
    """One cell of a 0/1 label column: ``0``/``1`` (also ``0.0``/``1.0``, ``false``/``true``).

    Raises:
        DataError: Anything else, e.g. ``train.csv:4: column `toxic` holds 'yes'; ...``.

    Example:
        >>> parse_binary("1", "train.csv:2", "toxic"), parse_binary("False", "train.csv:2", "toxic")
        (1.0, 0.0)
    """
    text = value.strip()
    if _ONE.fullmatch(text):
        return 1.0
    if _ZERO.fullmatch(text):
        return 0.0
    raise DataError(
        f"{where}: column `{column}` holds {value!r}; a label column (--label-columns) must hold 0 or 1."
    )


def binary_columns(examples: Any, names: Sequence[str]) -> np.ndarray:
    """0/1 targets ``[examples, labels]`` of examples read with one ``label_columns`` column per label.

    The columns may come in any order; there must be one per label name, and no other.

    Raises:
        DataError: A cell is not 0 or 1, or the columns read are not the label names.
    """
    columns = tuple(examples.label_columns or ())
    if sorted(columns) != sorted(names):
        raise DataError(
            f"{examples.source}: the model's labels are the columns {', '.join(names)}, "
            f"but these examples were read from {', '.join(columns) or 'no label columns'}."
        )
    position_of = {name: position for position, name in enumerate(names)}
    targets = np.zeros([len(examples), len(names)], np.float32)
    for row_index, (values, row) in enumerate(zip(examples.label_lists, examples.rows, strict=True)):
        where = f"{examples.source}:{row}"
        for value, column in zip(values, columns, strict=True):
            targets[row_index, position_of[column]] = parse_binary(value, where, column)
    return targets


def multi_hot_from_api(labels: Sequence[Any], names: Sequence[str]) -> np.ndarray:
    """Targets from Python values: per example a list of label names, or a 0/1 vector.

    Raises:
        DataError: An unknown name, a vector of the wrong length, or values other than 0/1.
    """
    index = {name: position for position, name in enumerate(names)}
    targets = np.zeros([len(labels), len(names)], np.float32)
    for row, value in enumerate(labels):
        if isinstance(value, str):
            raise DataError(
                f"labels[{row}]: expected a list of label names or a 0/1 vector, not the string {value!r}."
            )
        items = list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else list(value)
        if items and all(isinstance(item, (int, float, bool)) for item in items):
            if len(items) != len(names) or any(float(item) not in (0.0, 1.0) for item in items):
                raise DataError(
                    f"labels[{row}]: a 0/1 vector needs {len(names)} values of 0 or 1. Received: {items!r}"
                )
            targets[row] = np.asarray(items, np.float32)
            continue
        for item in items:
            if str(item) not in index:
                raise DataError(
                    f"labels[{row}]: label {item!r} is not one of the model's labels: {_listing(list(names))}"
                )
            targets[row, index[str(item)]] = 1.0
    return targets


# --- metrics -------------------------------------------------------------------------------


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


def multilabel_loss() -> keras.losses.Loss:
    """Sigmoid binary cross-entropy on logits, averaged over the labels of an example and
    over the real (non-filler) rows of a batch."""

    def per_example(targets, logits):
        logits = tf.cast(logits, tf.float32)
        targets = tf.reshape(tf.cast(targets, tf.float32), tf.shape(logits))
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
        return tf.reduce_mean(losses, axis=-1)

    return WeightedMeanLoss(per_example, name="binary_crossentropy")


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


# --- the task ------------------------------------------------------------------------------

DEFAULT_SEPARATOR = ","


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

    def table_spec(self, config, labelled: bool) -> TableSpec:
        data, task = config.data, config.task
        if not labelled:
            return TableSpec(data.text_column, data.text_pair_column, format=data.format)
        columns = task.label_column_list()
        if columns is not None and task.label_separator is not None:
            raise ConfigError(
                "Give --label-columns (one 0/1 column per label) or --label-separator (one column "
                f"listing the labels), not both. Received: label_columns={task.label_columns!r}, "
                f"label_separator={task.label_separator!r}"
            )
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
        if task.loss is not None or task.scale_targets or task.class_weights is not None:
            raise ConfigError(
                "--loss, --scale-targets and --class-weights do not apply to --task multilabel "
                "(its loss is binary cross-entropy)."
            )
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
                _listing(never),
            )
        settings = {"labels": list(names), "threshold": check_threshold(task.threshold)}
        # How the labels were given: `tfft evaluate` and `predict` read data the same way
        # unless told otherwise.
        if train.label_separator is not None:
            settings["label_separator"] = train.label_separator
        else:
            settings["label_columns"] = ",".join(names)
        return settings

    def settings_from_args(self, label_names, num_labels, options) -> dict:
        options = dict(options)
        threshold = check_threshold(options.pop("threshold", None))
        check_no_options(self.name, options)
        if label_names is None:
            if num_labels is None or isinstance(num_labels, bool) or num_labels < 1:
                raise ConfigError(f"`num_labels` must be at least 1. Received: num_labels={num_labels!r}")
            label_names = [str(index) for index in range(num_labels)]
        elif num_labels is not None and num_labels != len(label_names):
            raise ConfigError(
                f"`num_labels` ({num_labels}) does not match `label_names` ({len(label_names)} names). "
                f"Received: label_names={list(label_names)!r}"
            )
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
        for name, scores in metrics["per_label"].items():
            lines.append(
                f"  {name:<12} precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
                f"f1 {scores['f1']:.4f}  support {scores['support']}"
            )
        return lines


TASK = MultiLabelTask()
