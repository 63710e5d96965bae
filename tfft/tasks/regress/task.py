"""Regression: one or more float targets per text or text pair (``--task regress``).

The head is a dense layer with one output per target. With ``--scale-targets`` the targets
are standardized with the training mean and standard deviation: the model still outputs
(and serves) values in the original scale, through a fixed affine layer after the dense
one, and the loss is computed on the standardized residuals ``(prediction - target) / std``
— the same optimum as training on standardized targets, with the scaling kept inside the
model and in its settings.

Losses (:func:`tfft.losses.regression_loss`): mean squared error (default) or Huber (delta
1, in standardized units when the targets are scaled), averaged over the targets of an
example and over the real rows of a batch. Targets are parsed in :mod:`.targets`, scored in
:mod:`.metrics` (MSE, MAE, Pearson and Spearman correlation, per target and averaged).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.data import LabelSet, TableSpec
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.losses import regression_loss
from tfft.tasks.regress.metrics import regression_metrics, regression_train_metrics
from tfft.tasks.regress.options import RegressOptions
from tfft.tasks.regress.targets import TargetScaler, parse_targets, targets_from_values
from tfft.tasks.sequence import SequenceTask, label_names_from_args

# --- the head ------------------------------------------------------------------------------


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


def target_names(count: int) -> list[str]:
    """Names of ``count`` targets given by number only: ``score``, or ``score_0``, ``score_1``..."""
    return ["score"] if count == 1 else [f"score_{index}" for index in range(count)]


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
    slice_metric = "mse"  # a correlation is misleading on a slice of a narrow target range
    slice_higher_is_better = False

    def table_spec(self, config, labelled: bool) -> TableSpec:
        data = config.data
        columns = config.task.label_column_list()
        return TableSpec(
            text_column=data.text_column,
            text_pair_column=data.text_pair_column,
            label_column=data.label_column if labelled and columns is None else None,
            label_columns=columns if labelled else None,
            format=data.format,
        )

    def settings_from_data(self, train, config) -> dict:
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
        settings = {"labels": names, "loss": config.task.loss, "scaler": scaler}
        if len(names) > 1:  # read again by `tfft evaluate` unless other columns are given
            settings["label_columns"] = ",".join(names)
        return settings

    def settings_from_args(self, label_names, num_labels, options) -> dict:
        options = dict(options)
        scaler = options.pop("target_scaler", None)
        loss = RegressOptions.from_api(options, self.name).loss
        label_names = label_names_from_args(
            label_names, num_labels, default_names=target_names, counting=" (the number of targets)"
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
        return targets_from_values(labels, settings["labels"])

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
