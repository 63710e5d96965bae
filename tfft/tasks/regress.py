"""Regression: one or more float targets per text or text pair (``--task regress``).

The head is a dense layer with one output per target. With ``--scale-targets`` the targets
are standardized with the training mean and standard deviation: the model still outputs
(and serves) values in the original scale, through a fixed affine layer after the dense
one, and the loss is computed on the standardized residuals ``(prediction - target) / std``
— the same optimum as training on standardized targets, with the scaling kept inside the
model and in its settings.

Losses: mean squared error (default) or Huber (delta 1, in standardized units when the
targets are scaled), averaged over the targets of an example and over the real rows of a
batch. Metrics: MSE, MAE, Pearson and Spearman correlation (per target and averaged).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
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

LOSSES = ("mse", "huber")
# A decimal number as people write it in data files: no "nan", "inf", "1_000" or hex,
# which Python's float() would accept.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# --- targets -------------------------------------------------------------------------------


def parse_target(value: str, where: str, column: str) -> float:
    """Parse one raw regression target.

    Args:
        value: The raw string, stripped (``"3.8"``, ``"-1e-3"``).
        where: ``PATH:LINE`` of the row, for errors.
        column: The target's column, for errors.

    Returns:
        The value as a float.

    Raises:
        DataError: The value is not a decimal number, is NaN or infinite, or does not fit
            in float32, e.g. ``train.tsv:7: column `score` holds 'n/a', not a number.``

    Example:
        >>> parse_target("3.80", "train.tsv:2", "score")
        3.8
    """
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        lowered = text.lower().lstrip("+-")
        if lowered in ("nan", "inf", "infinity"):
            raise DataError(
                f"{where}: column `{column}` holds {value!r}; regression targets must be finite numbers."
            )
        raise DataError(f"{where}: column `{column}` holds {value!r}, not a number.")
    number = float(text)
    if not math.isfinite(number) or abs(number) > _FLOAT32_MAX:
        raise DataError(
            f"{where}: column `{column}` holds {value!r}, which does not fit in float32; "
            "regression targets must be finite numbers."
        )
    return number


def label_lists_of(examples: Any) -> list[tuple[str, ...]]:
    """The raw targets of each example as a tuple, whether read from one column or several.

    Raises:
        DataError: The examples carry no labels.
    """
    if examples.label_lists is not None:
        return examples.label_lists
    if examples.labels is not None:
        return [(label,) for label in examples.labels]
    raise DataError(f"{examples.source}: these examples have no targets (no label column was read).")


def parse_targets(examples: Any, columns: Sequence[str] | None = None) -> np.ndarray:
    """The float targets of labelled examples.

    Args:
        examples: A :class:`~tfft.data.TextExamples` read with one label column or several
            (``label_columns``).
        columns: The target column names, for errors; default ``examples.label_columns``.

    Returns:
        float32 ``[examples, targets]``.

    Raises:
        DataError: A target is not a finite number (the message names file, line, column),
            or an example has a different number of targets than ``columns``.
    """
    raw = label_lists_of(examples)
    columns = tuple(columns or examples.label_columns or ("label",))
    values = np.zeros([len(raw), len(columns)], np.float32)
    for index, (targets, row) in enumerate(zip(raw, examples.rows, strict=True)):
        where = f"{examples.source}:{row}"
        if len(targets) != len(columns):
            raise DataError(
                f"{where}: expected {len(columns)} target(s) ({', '.join(columns)}), found {len(targets)}."
            )
        for position, (value, column) in enumerate(zip(targets, columns, strict=True)):
            values[index, position] = parse_target(value, where, column)
    return values


@dataclass(frozen=True)
class TargetScaler:
    """Standardization of regression targets: ``(y - mean) / std`` per target.

    Args:
        mean: The training mean of each target.
        std: The training standard deviation of each target (a constant target gets 1).

    Example:
        >>> scaler = TargetScaler.fit(np.array([[1.0], [3.0]]))
        >>> scaler.to_json()
        {'mean': [2.0], 'std': [1.0]}
        >>> scaler.inverse(scaler.transform(np.array([[5.0]]))).tolist()
        [[5.0]]
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        mean, std = tuple(map(float, self.mean)), tuple(map(float, self.std))
        if not mean or len(mean) != len(std):
            raise ConfigError(
                f"A target scaler needs one mean and one std per target. Received: mean={mean}, std={std}"
            )
        if not all(math.isfinite(v) for v in mean + std) or min(std) <= 0:
            raise ConfigError(
                f"A target scaler needs finite means and positive stds. Received: mean={mean}, std={std}"
            )
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def fit(cls, targets: np.ndarray) -> TargetScaler:
        """The scaler of training targets ``[examples, targets]`` (population std)."""
        targets = np.asarray(targets, np.float64)
        if targets.ndim != 2 or len(targets) == 0:
            raise ValueError(
                f"TargetScaler.fit needs a non-empty [examples, targets] array; got {targets.shape}."
            )
        std = targets.std(axis=0)
        return cls(tuple(targets.mean(axis=0)), tuple(np.where(std > 0, std, 1.0)))

    def transform(self, targets: np.ndarray) -> np.ndarray:
        """Targets in standardized units."""
        return (np.asarray(targets, np.float64) - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Standardized values back in the original scale."""
        return np.asarray(scaled, np.float64) * np.asarray(self.std) + np.asarray(self.mean)

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, data: Any) -> TargetScaler:
        """Rebuild from :meth:`to_json` output.

        Raises:
            ConfigError: ``data`` does not have that shape.
        """
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("mean"), list)
            or not isinstance(data.get("std"), list)
        ):
            raise ConfigError(
                f'A saved target scaler must be {{"mean": [...], "std": [...]}}. Received: {data!r}'
            )
        return cls(tuple(data["mean"]), tuple(data["std"]))


# --- metrics -------------------------------------------------------------------------------


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


# --- loss and head -------------------------------------------------------------------------


def check_loss(loss: str | None) -> str:
    """The regression loss name (``None`` -> ``"mse"``).

    Raises:
        ConfigError: Not one of :data:`LOSSES`.
    """
    loss = "mse" if loss is None else loss
    if loss not in LOSSES:
        raise ConfigError(
            f"`loss` for task regress must be one of {', '.join(LOSSES)}. Received: loss={loss!r}"
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


def regression_output(features: tf.Tensor, num_targets: int, dropout: float, scaler: TargetScaler | None):
    """Dropout, a dense layer to ``num_targets`` outputs and, with a scaler, the fixed map
    back to the original scale; float32 even under mixed precision."""
    features = keras.layers.Dropout(dropout, name="head_dropout")(features)
    outputs = keras.layers.Dense(
        num_targets,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name="regressor",
    )(features)
    outputs = keras.layers.Activation("linear", dtype="float32", name="scores")(outputs)
    if scaler is not None:
        outputs = Rescale(scaler.mean, scaler.std, name="unscale_targets")(outputs)
    return outputs


class Rescale(keras.layers.Layer):
    """``x * std + mean`` with fixed per-output constants (no weights): standardized -> original scale."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]

    def call(self, inputs):
        inputs = tf.cast(inputs, tf.float32)
        return inputs * tf.constant(self.std, tf.float32) + tf.constant(self.mean, tf.float32)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


# --- the task ------------------------------------------------------------------------------


class RegressTask(SequenceTask):
    """``--task regress``: one float output per target column, MSE or Huber loss.

    Settings: ``labels`` (the target names: the training columns, or ``score`` /
    ``score_0``... from ``num_labels``), ``loss`` (``mse``/``huber``), ``scaler``
    (``{"mean": [...], "std": [...]}`` with ``--scale-targets``, else None) and, for several
    targets, ``label_columns`` (so ``tfft evaluate`` reads the same columns by default).
    The model's outputs, the export's ``score`` and all metrics are in the targets'
    original scale.
    """

    name = "regress"
    default_monitor = "val_pearson"
    headline = ("examples", "mse", "mae", "pearson", "spearman")

    def table_spec(self, config, labelled: bool) -> TableSpec:
        data, task = config.data, config.task
        if task.label_separator is not None:
            raise ConfigError(
                "--label-separator is for --task multilabel; regression targets are one number per "
                f"column (--label-column, or --label-columns for several). Received: "
                f"label_separator={task.label_separator!r}"
            )
        columns = task.label_column_list()
        return TableSpec(
            text_column=data.text_column,
            text_pair_column=data.text_pair_column,
            label_column=data.label_column if labelled and columns is None else None,
            label_columns=columns if labelled else None,
            format=data.format,
        )

    def settings_from_data(self, train, config) -> dict:
        if config.task.class_weights is not None:
            raise ConfigError("--class-weights is for classification tasks, not --task regress.")
        targets = parse_targets(train)
        names = list(train.label_columns)
        for position, name in enumerate(names):
            column = targets[:, position]
            if len(column) > 1 and np.all(column == column[0]):
                raise DataError(
                    f"{train.source}: column `{name}` has the same value ({float(column[0]):g}) in all "
                    f"{len(column)} training rows; there is nothing to learn."
                )
        scaler = TargetScaler.fit(targets).to_json() if config.task.scale_targets else None
        settings = {"labels": names, "loss": check_loss(config.task.loss), "scaler": scaler}
        if len(names) > 1:  # read again by `tfft evaluate` unless other columns are given
            settings["label_columns"] = ",".join(names)
        return settings

    def settings_from_args(self, label_names, num_labels, options) -> dict:
        options = dict(options)
        loss = check_loss(options.pop("loss", None))
        scaler = options.pop("target_scaler", None)
        check_no_options(self.name, options)
        if label_names is None:
            if num_labels is None or isinstance(num_labels, bool) or num_labels < 1:
                raise ConfigError(
                    "`num_labels` (the number of targets) must be at least 1. "
                    f"Received: num_labels={num_labels!r}"
                )
            label_names = ["score"] if num_labels == 1 else [f"score_{index}" for index in range(num_labels)]
        elif num_labels is not None and num_labels != len(label_names):
            raise ConfigError(
                f"`num_labels` ({num_labels}) does not match `label_names` ({len(label_names)} names). "
                f"Received: label_names={list(label_names)!r}"
            )
        names = list(LabelSet(list(label_names)).names)
        if scaler is not None:
            scaler = scaler if isinstance(scaler, TargetScaler) else TargetScaler.from_json(scaler)
            if len(scaler.mean) != len(names):
                raise ConfigError(
                    f"`target_scaler` has {len(scaler.mean)} target(s) but the model has {len(names)}: "
                    f"{', '.join(names)}. Received: target_scaler={scaler.to_json()!r}"
                )
            scaler = scaler.to_json()
        return {"labels": names, "loss": loss, "scaler": scaler}

    def targets(self, settings, examples) -> np.ndarray:
        names = settings["labels"]
        columns = examples.label_columns or ()
        if len(columns) != len(names):
            raise DataError(
                f"{examples.source}: the model predicts {len(names)} target(s) ({', '.join(names)}) but "
                f"{len(columns)} target column(s) were read ({', '.join(columns) or 'none'}); "
                "name them with --label-column or --label-columns."
            )
        return parse_targets(examples)

    def targets_from_api(self, settings, labels) -> np.ndarray:
        count = len(settings["labels"])
        try:
            targets = np.asarray(labels, np.float64)
        except (TypeError, ValueError) as error:
            raise DataError(f"`labels` must be numbers (one per target). {error}") from None
        if targets.ndim == 1 and count == 1:
            targets = targets[:, None]
        if targets.ndim != 2 or targets.shape[1] != count:
            raise DataError(
                f"`labels` must have {count} number(s) per example ({', '.join(settings['labels'])}). "
                f"Received shape: {list(targets.shape)}"
            )
        bad = np.flatnonzero(~np.all(np.isfinite(targets) & (np.abs(targets) <= _FLOAT32_MAX), axis=1))
        if len(bad):
            raise DataError(
                f"labels[{bad[0]}]: regression targets must be finite numbers. Received: {labels[bad[0]]!r}"
            )
        return targets.astype(np.float32)

    def output_layer(self, features, settings, dropout):
        scaler = None if settings.get("scaler") is None else TargetScaler.from_json(settings["scaler"])
        return regression_output(features, len(settings["labels"]), dropout, scaler)

    def loss(self, spec):
        scaler = spec.settings.get("scaler")
        return regression_loss(spec.settings.get("loss", "mse"), None if scaler is None else scaler["std"])

    def train_metrics(self, spec) -> list:
        return regression_train_metrics(len(spec.settings["labels"]))

    def answers(self, settings, outputs):
        return {"score": tf.cast(outputs, tf.float32)}

    def metrics(self, settings, targets, answers) -> dict:
        return regression_metrics(targets, answers["score"], settings["labels"])

    def row(self, settings, answers, index) -> dict:
        values = [round(float(v), 6) for v in answers["score"][index]]
        if len(values) == 1:
            return {"score": values[0]}
        return {"score": dict(zip(settings["labels"], values, strict=True))}

    def format_metrics(self, metrics) -> list[str]:
        def show(value):
            return "n/a" if value is None else f"{value:.4f}"

        lines = [f"{key:<10}{show(metrics[key])}" for key in ("mse", "mae", "pearson", "spearman")]
        if len(metrics["per_target"]) > 1:
            for name, scores in metrics["per_target"].items():
                lines.append(
                    f"  {name:<12} mse {show(scores['mse'])}  mae {show(scores['mae'])}  "
                    f"pearson {show(scores['pearson'])}  spearman {show(scores['spearman'])}"
                )
        return lines


TASK = RegressTask()
