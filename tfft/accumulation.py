"""Gradient accumulation: one optimizer update from K micro-batches, inside one train step.

With ``--grad-accum-steps K`` the training data comes in batches of ``K x batch_size`` rows
(length bucketing and filler rows unchanged). :func:`accumulating_train_step` splits each
batch (each replica's share of it) into K equal slices, runs forward and backward on one
slice at a time in a ``tf.while_loop`` and sums the gradients, then calls
``optimizer.apply_gradients`` once. Peak activation memory is that of one slice.

The update is that of the whole batch, exactly (up to float rounding): tfft's losses are
weighted sums divided by ``d(w)`` (:meth:`tfft.losses.WeightedMeanLoss.denominator`: ``sum(w)``,
or real rows x tokens per row), so slice ``i``'s loss is multiplied by ``d(w_i) / d(w)``
before its gradient is taken, and the scaled slice losses sum to the loss of the whole
batch, for per-example and per-token weights alike. The learning-rate schedule, weight
decay, ``optimizer.iterations`` and backups count updates; under ``mixed_float16`` the
loss-scale optimizer checks the summed gradient once, so a non-finite gradient in any slice
discards the whole update (the loss scale is halved, and ``optimizer.iterations``, which
Keras advances on skipped steps, is put back: it counts applied updates). Metrics are
updated on every slice (all examples); the training loss is recorded once per update, as
the loss of the whole batch.
"""

from __future__ import annotations

import tensorflow as tf

from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.losses import WeightedMeanLoss


def install_accumulation(model: keras.Model, steps: int) -> None:
    """Make ``model.fit`` accumulate the gradients of ``steps`` slices of each batch.

    Call it after ``model.compile`` (which :func:`tfft.train.compile_model` does). With
    ``steps == 1`` Keras' own ``train_step`` is put back.

    Args:
        model: a compiled tf_keras model.
        steps: micro-batches per optimizer update (``--grad-accum-steps``).

    Raises:
        ConfigError: ``steps`` is not a positive integer.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"`grad_accum_steps` must be an integer > 0. Received: grad_accum_steps={steps!r}")
    if "train_step" in vars(model):
        delattr(model, "train_step")
    if steps > 1:
        model.train_step = lambda data: accumulating_train_step(model, data, steps)
    model.train_function = None  # traced again with the new step


def _split(structure, steps: int):
    """Each tensor of ``structure`` reshaped to ``[steps, rows // steps, ...]``."""

    def split(tensor):
        if tensor is None:
            return None
        shape = tf.shape(tensor)
        return tf.reshape(tensor, tf.concat([[steps, shape[0] // steps], shape[1:]], axis=0))

    return tf.nest.map_structure(split, structure)


def _take(structure, index):
    """Slice ``index`` of a structure made by :func:`_split`."""
    return tf.nest.map_structure(
        lambda tensor: None if tensor is None else tf.gather(tensor, index), structure
    )


def _denominator(loss, weights, rows) -> tf.Tensor:
    """What ``loss`` divides a batch's weighted sum by (:meth:`WeightedMeanLoss.denominator`;
    the total sample weight for other losses, the number of rows without weights), float32."""
    if weights is None:
        return tf.cast(rows, tf.float32)
    total = loss.denominator if isinstance(loss, WeightedMeanLoss) else tf.reduce_sum
    return tf.add_n([total(tf.cast(w, tf.float32)) for w in tf.nest.flatten(weights)])


def _rows(x) -> tf.Tensor:
    return tf.shape(tf.nest.flatten(x)[0])[0]


def accumulating_train_step(model: keras.Model, data, steps: int) -> dict:
    """One optimizer update from ``steps`` slices of ``data`` (see the module docstring).

    Args:
        model: the compiled model.
        data: ``(x, y, sample_weight)`` with a row count divisible by ``steps`` (on each replica).
        steps: number of slices.

    Returns:
        The model's metric results, as Keras' ``train_step`` returns them.
    """
    x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
    rows = _rows(x)
    tf.debugging.assert_equal(
        rows % steps,
        0,
        message=f"--grad-accum-steps {steps}: the rows of a batch on a replica must split into {steps} equal "
        "micro-batches (make --batch-size a multiple of the number of replicas)",
    )
    total = _denominator(model.loss, weights, rows)
    xs, ys, ws = _split(x, steps), _split(y, steps), _split(weights, steps)
    variables = model.trainable_variables
    optimizer = model.optimizer
    scaling = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    # Keras' "loss" mean, which records each slice's loss; reset below to one value per update.
    tracker = getattr(model.compiled_loss, "_total_loss_mean", None)
    saved = [tf.identity(v) for v in tracker.variables] if tracker is not None else []

    def slice_gradients(index):
        xi, yi, wi = _take(xs, index), _take(ys, index), _take(ws, index)
        with tf.GradientTape() as tape:
            predictions = model(xi, training=True)
            loss = model.compute_loss(xi, yi, predictions, wi)
            share = tf.math.divide_no_nan(_denominator(model.loss, wi, _rows(xi)), total)
            loss = tf.cast(loss, tf.float32) * share
            scaled = optimizer.get_scaled_loss(loss) if scaling else loss
        gradients = tape.gradient(scaled, variables)
        model.compiled_metrics.update_state(yi, predictions, wi)
        return loss, [None if g is None else tf.convert_to_tensor(g) for g in gradients]

    first_loss, first = slice_gradients(0)
    model._validate_target_and_loss(y, first_loss)
    used = [i for i, g in enumerate(first) if g is not None]  # no gradient: the optimizer skips it

    def body(index, loss_sum, sums):
        loss, gradients = slice_gradients(index)
        return index + 1, loss_sum + loss, [s + gradients[i] for s, i in zip(sums, used)]

    _, loss_sum, sums = tf.while_loop(
        lambda index, *_: index < steps,
        body,
        (tf.constant(1), first_loss, [first[i] for i in used]),
        parallel_iterations=1,  # one micro-batch's activations at a time
    )
    if scaling:
        sums = optimizer.get_unscaled_gradients(sums)
    dynamic = scaling and optimizer.dynamic
    if dynamic:
        scale = tf.identity(optimizer.loss_scale)
    optimizer.apply_gradients(zip(sums, [variables[i] for i in used]))
    if dynamic:
        # A non-finite summed gradient (in any slice, on any replica) skipped the update and
        # halved the loss scale; Keras counts skipped steps in `iterations`: take it back.
        skipped = tf.cast(optimizer.loss_scale < scale, optimizer.iterations.dtype)
        optimizer.iterations.assign_sub(skipped)
    if tracker is not None:  # one loss per update: that of the whole batch
        for variable, value in zip(tracker.variables, saved):
            variable.assign(value)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        tracker.update_state(loss_sum * replicas, sample_weight=rows)
    return model.get_metrics_result()
