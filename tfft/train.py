"""Optimizer, learning-rate schedule, callbacks and ``model.fit``."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import tensorflow as tf

from tfft.config import TrainConfig
from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.model import loss_for, metrics_for

logger = logging.getLogger(__name__)

NO_DECAY = ["bias", "LayerNorm", "layer_norm", "layernorm", "ln_"]


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then linear decay to 0."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        self.peak = peak
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(max(self.warmup_steps, 1), tf.float32)
        total = tf.cast(self.total_steps, tf.float32)
        rising = self.peak * (step + 1.0) / warmup
        falling = self.peak * tf.maximum(total - step, 0.0) / tf.maximum(total - warmup, 1.0)
        return tf.where(step < self.warmup_steps, rising, falling)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def make_optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """The optimizer named by ``config.optimizer`` with warm-up + linear decay.

    AdamW leaves biases and layer norms out of weight decay.
    """
    schedule = WarmupLinearDecay(config.learning_rate, total_steps, round(config.warmup_ratio * total_steps))
    if config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(
            learning_rate=schedule, weight_decay=config.weight_decay, epsilon=1e-6
        )
        optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
        return optimizer
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=schedule, epsilon=1e-6)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    raise ConfigError(f"Unknown optimizer {config.optimizer!r}")


def compile_model(model: keras.Model, config: TrainConfig, total_steps: int, xla: bool) -> None:
    """Compile with the task's loss and metrics, the optimizer and XLA choice."""
    model.compile(
        optimizer=make_optimizer(config, total_steps),
        loss=loss_for(model),
        weighted_metrics=metrics_for(model),
        jit_compile=xla,
        steps_per_execution=config.steps_per_execution,
    )


class EpochLog(keras.callbacks.Callback):
    """Writes the metrics of every finished epoch to ``metrics.json`` as training goes."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.epochs: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        self.path.write_text(json.dumps({"epochs": self.epochs}, indent=2))


def fit(
    model: keras.Model,
    train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset | None,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    steps_per_epoch: int,
    xla: bool = False,
    verbose: int | str = "auto",
) -> keras.callbacks.History:
    """Compile and train; keep the best weights by ``config.monitor``.

    Writes into ``run_dir``: ``checkpoints/best`` (weights), ``logs/`` (TensorBoard) and
    ``metrics.json`` (per epoch). With ``config.early_stopping_patience``, training stops
    after that many epochs without improvement. The model ends with the best weights.

    Args:
        model: a model from :func:`tfft.build_model`, built in the strategy scope.
        train_data: ``(features, labels, weights)`` batches from :func:`tfft.make_dataset`.
        eval_data: the same for evaluation, or None.
        config: optimizer and loop settings.
        run_dir: the run folder.
        steps_per_epoch: batches in one epoch (sets the schedule length).
        xla: compile the train step with XLA.

    Returns:
        The Keras ``History``.
    """
    run_dir = Path(run_dir)
    monitor = config.monitor if eval_data is not None else "loss"
    if eval_data is None and config.early_stopping_patience:
        raise ConfigError("--early-stopping-patience needs evaluation data (--eval or --eval-split).")
    if eval_data is not None and not monitor.startswith("val_"):
        monitor = f"val_{monitor}"
    mode = "min" if monitor.endswith("loss") else "max"
    compile_model(model, config, steps_per_epoch * config.epochs, xla)

    best = run_dir / "checkpoints" / "best"
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(best), monitor=monitor, mode=mode, save_best_only=True, save_weights_only=True
        ),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs"), write_graph=False),
        EpochLog(run_dir / "metrics.json"),
        keras.callbacks.TerminateOnNaN(),
    ]
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=config.early_stopping_patience)
        )
    history = model.fit(
        train_data,
        validation_data=eval_data,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=verbose,
    )
    losses = history.history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        from tfft.errors import TfftError

        raise TfftError(
            f"Training stopped: the loss became {losses[-1]} in epoch {len(losses)}. "
            "Try a lower --learning-rate or --precision float32. Nothing was exported."
        )
    if Path(f"{best}.index").exists():
        model.load_weights(str(best))
        logger.info("Restored the best weights by %s from %s", monitor, best)
    return history
