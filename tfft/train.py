"""Optimizer, learning-rate schedule, callbacks and ``model.fit``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import shutil
from pathlib import Path

import tensorflow as tf

from tfft.accumulation import install_accumulation
from tfft.config import AUTO_LEARNING_RATE, LEARNING_RATE, TrainConfig
from tfft.errors import ConfigError, Interrupted, TfftError
from tfft.interrupt import StopRequest
from tfft.keras import keras
from tfft.model import loss_for, metrics_for, spec_of
from tfft.privacy import PrivacyPlan, install_privacy
from tfft.step_log import StepLog

logger = logging.getLogger(__name__)

NO_DECAY = ["bias", "LayerNorm", "layer_norm", "layernorm", "ln_"]


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then linear decay to 0.

    With ``decay=False`` the rate stays at ``peak`` after the warm-up (``--lr-schedule constant``).
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int, decay: bool = True):
        self.peak = peak
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = int(warmup_steps)
        self.decay = bool(decay)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(max(self.warmup_steps, 1), tf.float32)
        total = tf.cast(self.total_steps, tf.float32)
        rising = self.peak * (step + 1.0) / warmup
        # Decay over the steps after the warm-up: the first of them runs at ``peak`` (with no
        # warm-up, step 0), the last at ``peak / (total - warmup_steps)``; never above ``peak``.
        decay_steps = tf.cast(max(self.total_steps - self.warmup_steps, 1), tf.float32)
        falling = self.peak * tf.minimum(tf.maximum(total - step, 0.0) / decay_steps, 1.0)
        if not self.decay:
            falling = tf.constant(self.peak, tf.float32)
        return tf.where(step < self.warmup_steps, rising, falling)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
        }


class FusedAdamUpdate:
    """Adam's update of a variable as one fused kernel (``ResourceApplyAdam``: one pass over the
    weight, both moments and the gradient), the same formula as tf_keras' composed ops.

    A sparse gradient (``tf.IndexedSlices``, the embedding's, deduplicated by the optimizer
    first) is made dense: then the moments of the untouched rows decay as in tf_keras' sparse
    branch and PyTorch's dense one. MiniLM's steps (11.7M of its 22.7M weights in the
    embedding; bfloat16, 2 CPU cores) took 260-273 ms instead of 332-360 ms with tf_keras'
    composed ops, interleaved in one process. AMSGrad keeps the composed ops.

    AdamW's decoupled weight decay (``var -= var * weight_decay * lr``, before the update) is
    one multiply and one assignment, ``var = var * (1 - lr * weight_decay)``, in place of
    tf_keras' two multiplies and a subtraction: the same formula up to float rounding, and
    fewer passes over memory (all of MiniLM's updates: 28.8 ms instead of 34.3, median of 7
    interleaved rounds on an AMD Zen 4, bfloat16 policy, 2 cores).
    """

    def update_step(self, gradient, variable):
        if self.amsgrad:
            return super().update_step(gradient, variable)
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._index_dict[self._var_key(variable)]
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(self.learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=gradient,
        )

    def _apply_weight_decay(self, variables):
        """``var = var * (1 - lr * weight_decay)`` for every decayed weight, on every replica."""
        if self.weight_decay is None:
            return

        def decay_all(distribution, variables, **kwargs):
            rate = self.learning_rate * self.weight_decay  # the schedule evaluated once a step

            def decay(variable):
                if self._use_weight_decay(variable):
                    variable.assign(variable * (1 - tf.cast(rate, variable.dtype)))

            for variable in variables:
                distribution.extended.update(variable, decay, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(decay_all, self._distribution_strategy, variables)


class AdamW(FusedAdamUpdate, keras.optimizers.AdamW):
    """tf_keras' AdamW (decoupled weight decay first, then Adam) with the fused update."""


class Adam(FusedAdamUpdate, keras.optimizers.Adam):
    """tf_keras' Adam with the fused update."""


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    """The warm-up's length in optimizer steps: ``warmup_ratio`` of ``total_steps``, at most
    ``max_warmup_steps``."""
    steps = round(config.warmup_ratio * total_steps)
    return steps if config.max_warmup_steps is None else min(steps, config.max_warmup_steps)


def make_optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """The optimizer named by ``config.optimizer`` with warm-up, then linear decay (or constant).

    AdamW leaves biases and layer norms out of weight decay.
    """
    if config.learning_rate == AUTO_LEARNING_RATE:
        raise ConfigError(
            "learning_rate='auto' is picked by a range test first: tfft.fit and tfft.run_fit do that, "
            "or call tfft.lr_range.range_test and give its rate. Received: learning_rate='auto'"
        )
    schedule = WarmupLinearDecay(
        LEARNING_RATE if config.learning_rate is None else config.learning_rate,
        total_steps,
        warmup_steps(config, total_steps),
        decay=config.lr_schedule == "linear",
    )
    if config.optimizer == "adamw":
        optimizer = AdamW(learning_rate=schedule, weight_decay=config.weight_decay, epsilon=1e-6)
        optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
        return optimizer
    if config.optimizer == "adam":
        return Adam(learning_rate=schedule, epsilon=1e-6)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    raise ConfigError(f"Unknown optimizer {config.optimizer!r}")


def compile_model(
    model: keras.Model,
    config: TrainConfig,
    total_steps: int,
    xla: bool,
    privacy: PrivacyPlan | None = None,
) -> None:
    """Compile with the task's loss and metrics, the optimizer and XLA choice.

    With ``config.grad_accum_steps`` K > 1, each training batch (of K x ``batch_size`` rows)
    is one optimizer update from K micro-batches (see :mod:`tfft.accumulation`);
    ``total_steps`` counts updates. With ``privacy`` (:func:`tfft.privacy.plan`), every
    update is a DP-SGD step (see :mod:`tfft.privacy`).
    """
    model.compile(
        optimizer=make_optimizer(config, total_steps),
        loss=loss_for(model),
        weighted_metrics=metrics_for(model),
        jit_compile=xla,
        steps_per_execution=config.steps_per_execution,
    )
    install_accumulation(model, config.grad_accum_steps)
    if privacy is not None:
        install_privacy(model, privacy)
    # The optimizer's slots, created now: created inside the first training step instead, they
    # make tf.function trace that step twice (once to create them): 5.6 of 10.2 s on MiniLM.
    with model.distribute_strategy.scope():
        model.optimizer.build(model.trainable_variables)


class EpochLog(keras.callbacks.Callback):
    """Writes the metrics of every finished epoch to ``metrics.json`` as training goes.

    A resumed run keeps the epochs already recorded before the interruption.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.epochs: list[dict] = []
        if path.is_file():
            try:
                self.epochs = list(json.loads(path.read_text()).get("epochs", []))
            except (ValueError, AttributeError):
                self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        self.epochs = [e for e in self.epochs if e.get("epoch", 0) < epoch + 1] + [record]
        self.path.write_text(json.dumps({"epochs": self.epochs}, indent=2))


class NonFiniteLoss(TfftError):
    """Training produced a NaN or infinite loss."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops at the first non-finite training loss and remembers the optimizer step."""

    def __init__(self):
        super().__init__()
        self.bad_step: int | None = None
        self.bad_loss: float | None = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad_step = int(self.model.optimizer.iterations.numpy())
            self.bad_loss = float(loss)
            self.model.stop_training = True


def resolved_monitor(monitor: str | None, default: str, has_eval: bool) -> str:
    """The metric that picks the best epoch: ``monitor`` (else the task's ``default``) as a
    ``val_`` metric with evaluation data, ``loss`` without."""
    if not has_eval:
        return "loss"
    monitor = monitor or default
    return monitor if monitor.startswith("val_") else f"val_{monitor}"


LOWER_IS_BETTER = ("loss", "mae", "mse", "error", "perplexity")


def monitor_mode(monitor: str) -> str:
    """``"min"`` for metrics where lower is better (losses, errors, perplexity), else ``"max"``."""
    return "min" if monitor.endswith(LOWER_IS_BETTER) else "max"


class StopWhenAsked(keras.callbacks.Callback):
    """Ends training at a clean point once a signal asked for it (:mod:`tfft.interrupt`).

    After a training step (not the epoch's last): writes the backup at that step and raises
    :class:`~tfft.errors.Interrupted`; resuming continues with the next step. After the
    epoch's last step the epoch is finished first (validation, checkpoint, ``metrics.json``:
    this callback comes last) and the backup marks it done. Needs ``backup`` to save every
    N steps (an integer ``save_freq``): only such backups record the step.
    """

    def __init__(self, request: StopRequest, backup: keras.callbacks.BackupAndRestore):
        super().__init__()
        self.request, self.backup = request, backup

    def on_train_batch_end(self, batch, logs=None):
        if self.request.signum is not None and batch < self.params["steps"] - 1:
            self._stop(self.backup._current_epoch, batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.request.signum is not None:
            self._stop(epoch, self.params["steps"] - 1)

    def _stop(self, epoch: int, batch: int) -> None:
        """Back up as done with ``batch`` of ``epoch`` and raise :class:`Interrupted`."""
        state = self.backup._training_state
        state._ckpt_saved_epoch.assign(epoch)
        state._ckpt_saved_batch.assign(batch)
        state.back_up(epoch=epoch, batch=batch)
        raise Interrupted(self.request.signum, step=int(self.model.optimizer.iterations.numpy()))


@contextlib.contextmanager
def random_states_in_checkpoints(model: keras.Model):
    """Save the random generators of the model's layers in its checkpoints while training.

    Under ``--deterministic`` dropout draws from ``tf.random.Generator`` objects
    (:func:`tfft.execution.runtime` turns them on); Keras keeps their states out of
    checkpoints, so a resumed run would start its dropout masks over. While training they are
    part of the model's checkpoints (the backup, ``checkpoints/best``); afterwards not, so
    exports do not carry them.
    """
    generators = {}
    for layer in model._flatten_layers(include_self=False):
        generator = getattr(getattr(layer, "_random_generator", None), "_generator", None)
        if isinstance(generator, tf.random.Generator):
            generators[f"layer_{len(generators)}"] = generator
    if not generators:
        yield
        return
    model._track_trackable(tf.train.Checkpoint(**generators), RANDOM_STATES, overwrite=True)
    try:
        yield
    finally:
        model._delete_tracking(RANDOM_STATES)


#: the name of the random generator states in checkpoints written during training
RANDOM_STATES = "tfft_random_states"


def steps_done(backup_dir: Path, steps_per_epoch: int) -> int:
    """The optimizer steps a backup of ``BackupAndRestore`` accounts for (0 without one).

    Keras saves the epoch and the last finished batch of that epoch with the weights; it
    resumes at the next batch (the next epoch's first after an epoch's last batch).
    """
    latest = tf.train.latest_checkpoint(str(backup_dir / "chief"))
    if latest is None:
        return 0
    reader = tf.train.load_checkpoint(latest)
    names = reader.get_variable_to_shape_map()

    def saved(name: str) -> int:
        key = next((key for key in names if key.startswith(f"{name}/")), None)
        return -1 if key is None else int(reader.get_tensor(key))

    epoch, batch = saved("ckpt_saved_epoch"), saved("ckpt_saved_batch")
    if epoch < 0:
        return 0
    return epoch * steps_per_epoch + (batch + 1 if batch >= 0 else steps_per_epoch)


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
    callbacks: list | None = None,
    privacy: PrivacyPlan | None = None,
    stop: StopRequest | None = None,
    tokens_per_example: float | None = None,
) -> keras.callbacks.History:
    """Compile and train; keep the best weights by ``config.monitor``; resume after a crash.

    Writes into ``run_dir``: ``checkpoints/best`` (weights), ``logs/`` (TensorBoard),
    ``metrics.json`` (per epoch), ``history.jsonl`` (loss, learning rate and throughput every
    ``config.log_every_steps`` steps, also in ``logs/steps``: :mod:`tfft.step_log`) and,
    while training, ``backup/`` (weights, optimizer state,
    epoch and step, every ``config.backup_every_steps`` steps or every epoch). When
    ``backup/`` holds a backup, training continues from it: a run killed at any point and
    started again with the same run folder ends with the same number of optimizer steps.
    With ``config.early_stopping_patience``, training stops after that many epochs without
    improvement. The model ends with the best weights.

    Args:
        model: a model from :func:`tfft.build_model`, built in the strategy scope.
        train_data: ``(features, labels, weights)`` batches from :func:`tfft.make_dataset`;
            with ``config.grad_accum_steps`` K, batches of K x ``config.batch_size`` rows.
        eval_data: the same for evaluation, or None.
        config: optimizer and loop settings.
            With ``config.learning_rate == "auto"`` a range test picks the rate first
            (:mod:`tfft.lr_range`; ``lr_range.json`` and ``.png`` in ``run_dir``; a resumed
            run reuses its pick; the fixed default when the curve gives none); ``history.learning_rate``
            is the peak rate used.
        run_dir: the run folder.
        steps_per_epoch: batches (optimizer updates) in one epoch (sets the schedule length).
        xla: compile the train step with XLA.
        verbose: Keras progress output.
        callbacks: more Keras callbacks.
        privacy: DP-SGD settings (:func:`tfft.privacy.plan`), or None.
        stop: a SIGINT/SIGTERM request (:func:`tfft.interrupt.stop_on_signals`): when set,
            training stops after the current step with a backup there.
        tokens_per_example: mean real tokens per training row, for the tokens/s scalar.

    Returns:
        The Keras ``History``, with ``optimizer_steps``: the steps taken in all, a resumed
        run's earlier ones included.

    Raises:
        ConfigError: ``config.resume`` without a backup in ``run_dir``.
        NonFiniteLoss: the loss became NaN or infinite (the backup is discarded;
            ``checkpoints/best`` keeps the last good weights).
        Interrupted: ``stop`` was set (the backup is kept).
    """
    run_dir = Path(run_dir)
    backup_dir = run_dir / "backup"
    if config.resume and not any(backup_dir.glob("**/*.index")):
        raise ConfigError(f"--resume: no backup to resume from in {backup_dir}.")
    monitor = resolved_monitor(
        config.monitor, spec_of(model).task_object.default_monitor, eval_data is not None
    )
    if eval_data is None and config.early_stopping_patience:
        raise ConfigError("--early-stopping-patience needs evaluation data (--eval or --eval-split).")
    mode = monitor_mode(monitor)
    if config.learning_rate == AUTO_LEARNING_RATE:
        from tfft import lr_range  # it imports this module

        rate = lr_range.reused_rate(run_dir)
        if rate is None:
            picked = lr_range.resolve_rate(
                model, train_data, config, run_dir, xla=xla, write=True, fallback=LEARNING_RATE
            )
            rate = picked["rate"]
        config = dataclasses.replace(config, learning_rate=rate)
    compile_model(model, config, steps_per_epoch * config.epochs, xla, privacy)

    best = run_dir / "checkpoints" / "best"
    non_finite = StopOnNonFiniteLoss()
    epoch_log = EpochLog(run_dir / "metrics.json")
    # A resumed run only replaces the best checkpoint with a better one.
    earlier = [e[monitor] for e in epoch_log.epochs if monitor in e and math.isfinite(e[monitor])]
    threshold = (
        (min if mode == "min" else max)(earlier) if earlier and Path(f"{best}.index").exists() else None
    )
    # Every N steps, never "epoch": only step backups record the step, which a stop by
    # signal needs (an epoch's worth of steps backs up at the end of each epoch's steps).
    backup = keras.callbacks.BackupAndRestore(
        str(backup_dir), save_freq=config.backup_every_steps or steps_per_epoch
    )
    all_callbacks = [
        StepLog(  # first: its step timings leave out the other callbacks' work
            run_dir,
            config.log_every_steps,
            rows_per_step=config.batch_size * config.grad_accum_steps,
            tokens_per_example=tokens_per_example,
        ),
        backup,
        non_finite,
        keras.callbacks.ModelCheckpoint(
            str(best),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=threshold,
        ),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs"), write_graph=False),
        epoch_log,
        *(callbacks or []),
    ]
    if config.early_stopping_patience:
        all_callbacks.append(
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=config.early_stopping_patience)
        )
    if stop is not None:
        all_callbacks.append(StopWhenAsked(stop, backup))  # last: an epoch is recorded before it stops
    done = steps_done(backup_dir, steps_per_epoch)
    if done:
        logger.info("Resuming from the backup in %s after optimizer step %d", backup_dir, done)
    with random_states_in_checkpoints(model):
        history = model.fit(
            # One stream of batches for the whole run (each epoch reshuffled from the seed), so a
            # resumed run skips exactly the batches the backup has seen: it continues where the
            # killed run was, in the same order (Keras would restart the epoch's data instead).
            train_data.repeat(config.epochs).skip(done),
            steps_per_epoch=steps_per_epoch,
            validation_data=eval_data,
            epochs=config.epochs,
            callbacks=all_callbacks,
            verbose=verbose,
        )
        if non_finite.bad_step is not None:
            shutil.rmtree(backup_dir, ignore_errors=True)  # it may hold the broken weights
            kept = f" {best} keeps the best weights so far." if Path(f"{best}.index").exists() else ""
            raise NonFiniteLoss(
                f"Training stopped: the loss became {non_finite.bad_loss} "
                f"at optimizer step {non_finite.bad_step}. "
                "Likely causes: a learning rate too high for this model (--learning-rate), or float16 "
                f"overflow (--precision float32 or mixed_bfloat16).{kept} Nothing was exported."
            )
        # Loading the best checkpoint also rewinds the optimizer: count the steps first.
        history.optimizer_steps = int(model.optimizer.iterations.numpy())
        history.learning_rate = LEARNING_RATE if config.learning_rate is None else config.learning_rate
        if Path(f"{best}.index").exists():
            model.load_weights(str(best))
            logger.info("Restored the best weights by %s from %s", monitor, best)
    return history
