"""Differentially private fine-tuning (DP-SGD, Abadi et al. 2016) and its privacy accounting.

With ``--dp-l2-clip C`` every optimizer update is made from a batch's *per-example*
gradients: each is clipped to L2 norm at most ``C`` (the global norm over all trainable
variables, in float32), the clipped gradients are summed, Gaussian noise of standard
deviation ``sigma * C`` is added once per global batch, and the sum is divided by the
batch size ``B`` (``--batch-size``, the expected batch size of Poisson sampling with rate
``q = B / N``). :func:`install_privacy` puts that step in place of Keras' ``train_step``,
the way :mod:`tfft.accumulation` does.

- **Per-example losses.** Every tfft loss is a per-example or per-token function wrapped in
  :class:`tfft.losses.WeightedMeanLoss`. An example's loss is ``w * loss`` for per-example
  tasks (classify, regress, multilabel, qa: one row is one window) and the weighted mean
  over its tokens for per-token tasks (ner, summarize, translate). Filler rows have weight 0,
  so their gradient is zero; they do not count in ``B`` either (``B`` is fixed).
- **Per-example gradients** come from ``tf.vectorized_map`` of one row's forward and backward
  pass (vectorized with ``pfor``, no Python loop over examples). A ``tape.jacobian`` of the
  batch's per-example losses gives the same numbers but runs the backward pass of the whole
  batch once per row, rows-squared work (measured: see README "Private fine-tuning").
  The pass runs over chunks of ``chunk_rows`` rows (default :data:`CHUNK_ROWS`), the rows
  with a nonzero weight gathered first, and stops after the last chunk that holds one: a
  Poisson batch's filler rows are not computed. Memory grows with ``chunk_rows x trainable
  parameters``. Every op of the pass is vectorized: embedding lookups gather from the
  variable's value (:func:`dense_gathers`), not with ``ResourceGather``, which pfor would run
  row by row in a ``while_loop``; and the chunk function is traced (and converted by pfor)
  once per trace of the step, not once for the first chunk and again for the loop's.
- **Noise once.** Under a distribution strategy each replica sums its own clipped gradients;
  only replica 0 adds the noise, and the optimizer's all-reduce sums the replicas.
- **Sampling.** By default (``--dp-sampling poisson``) every step's batch is a Poisson sample:
  each training row is in it independently with probability ``q = B / N``, and an epoch is
  ``ceil(N / B)`` steps (:class:`tfft.preprocess.PoissonSampler`). Batches have a fixed number
  of rows, the capacity, with filler rows of weight 0; the capacity is chosen so that the
  chance of any step sampling more rows than it holds is at most ``1e-12`` over the run.
  Were it to happen, the run would differ from true Poisson sampling only on that event, so
  the guarantee holds with ``delta + (1 + e^epsilon) * overflow`` (``delta_with_overflow``
  in the report). ``--dp-sampling shuffle`` keeps shuffled fixed-size batches: the epsilon is
  then computed *as if* they were Poisson samples, the common approximation.
- **Accounting.** :func:`epsilons` composes ``PoissonSampledDpEvent(q, GaussianDpEvent(sigma))``
  over the steps taken with dp_accounting's RDP and PLD accountants, with the ``q`` the
  sampler used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Iterator

import tensorflow as tf

# No public hook makes ``tf.gather(variable, ids)`` read the variable densely: see dense_gathers.
from tensorflow.python.ops.resource_variable_ops import BaseResourceVariable

from tfft.config import TrainConfig
from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.losses import WeightedMeanLoss

logger = logging.getLogger(__name__)

#: what the reported epsilon assumes about sampling, per ``--dp-sampling`` (written to
#: summary.json and the export)
ASSUMPTIONS = {
    "poisson": (
        "Poisson sampling with q = batch_size / train_rows, as accounted; batches of `capacity` rows "
        "(filler rows weigh 0), overflow chance over the run <= `overflow`"
    ),
    "shuffle": (
        "accounted as Poisson sampling with q = batch_size / train_rows; the batches are shuffled "
        "fixed-size batches (the common approximation, not a proven guarantee)"
    ),
}
#: the largest noise multiplier :func:`noise_for_epsilon` tries
MAX_NOISE_MULTIPLIER = 1e4
#: rows per chunk of the per-example pass (see :func:`private_gradients`)
CHUNK_ROWS = 8


@dataclasses.dataclass(frozen=True)
class PrivacyPlan:
    """The settings of one DP-SGD run, with the noise multiplier resolved.

    Attributes:
        clip: ``C``, the L2 bound of each example's gradient.
        noise_multiplier: ``sigma``; the noise has standard deviation ``sigma * C``.
        batch_size: ``B``, the global (expected) batch size the noisy sum is divided by.
        train_rows: ``N``, the training rows (examples; windows for qa).
        delta: the ``delta`` of the (epsilon, delta) guarantee.
        planned_steps: the optimizer steps the run is planned for.
        target_epsilon: the epsilon the noise was chosen for, or None when it was given.
        sampling: ``"poisson"`` or ``"shuffle"`` (see the module docstring).
        capacity: rows per Poisson batch (None with shuffled batches).
        overflow: the bound on the chance that some Poisson batch overflowed its capacity.
        chunk_rows: rows per chunk of the per-example pass: only the chunks that hold rows
            with a nonzero weight run (:func:`private_gradients`); 0: one vectorized pass
            over all rows, filler rows included.
    """

    clip: float
    noise_multiplier: float
    batch_size: int
    train_rows: int
    delta: float
    planned_steps: int
    target_epsilon: float | None = None
    sampling: str = "shuffle"
    capacity: int | None = None
    overflow: float = 0.0
    chunk_rows: int = CHUNK_ROWS

    @property
    def sampling_rate(self) -> float:
        """``q = min(1, B / N)``."""
        return min(1.0, self.batch_size / self.train_rows)


def default_delta(train_rows: int) -> float:
    """``1 / (10 N)``: well below ``1 / N``, the level at which a mechanism may leak a whole example."""
    return 1.0 / (10.0 * train_rows)


def epsilons(noise_multiplier: float, sampling_rate: float, steps: int, delta: float) -> dict[str, float]:
    """Epsilon of ``steps`` Poisson-sampled Gaussian steps, by the RDP and the PLD accountant.

    Args:
        noise_multiplier: ``sigma`` (0 gives infinite epsilon).
        sampling_rate: ``q``, the chance of each example to be in a step.
        steps: the number of steps composed.
        delta: the target delta.

    Returns:
        ``{"rdp": epsilon, "pld": epsilon}`` (``inf`` without noise, 0 for 0 steps).
    """
    import dp_accounting
    from dp_accounting import pld, rdp

    if steps <= 0:
        return {"rdp": 0.0, "pld": 0.0}
    if noise_multiplier <= 0:
        return {"rdp": math.inf, "pld": math.inf}
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier)),
        steps,
    )
    result = {}
    for name, accountant in (("rdp", rdp.RdpAccountant()), ("pld", pld.PLDAccountant())):
        accountant.compose(event)
        result[name] = float(accountant.get_epsilon(delta))
    return result


def _rdp_epsilon(noise_multiplier: float, sampling_rate: float, steps: int, delta: float) -> float:
    import dp_accounting
    from dp_accounting import rdp

    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier)),
        steps,
    )
    accountant = rdp.RdpAccountant()
    accountant.compose(event)
    return float(accountant.get_epsilon(delta))


def noise_for_epsilon(
    target_epsilon: float, sampling_rate: float, steps: int, delta: float, tolerance: float = 1e-3
) -> float:
    """The smallest noise multiplier (within ``tolerance``, relative) whose RDP epsilon is at most
    ``target_epsilon`` after ``steps`` steps, by bisection.

    The RDP bound is the looser of the two accountants, so the PLD epsilon of the result is
    at most the target too.

    Raises:
        ConfigError: even ``sigma = 1e4`` does not reach the target.
    """
    if steps <= 0:
        return 0.0
    high = 1.0
    while _rdp_epsilon(high, sampling_rate, steps, delta) > target_epsilon:
        high *= 2.0
        if high > MAX_NOISE_MULTIPLIER:
            raise ConfigError(
                "`dp_target_epsilon` cannot be reached with a noise multiplier up to "
                f"{MAX_NOISE_MULTIPLIER:g} "
                f"({steps} steps, sampling rate {sampling_rate:.4g}, delta {delta:.3g}): ask for a larger "
                f"epsilon, fewer epochs or a smaller batch. Received: dp_target_epsilon={target_epsilon!r}"
            )
    low = 0.0
    while high - low > tolerance * high:
        middle = (low + high) / 2.0
        if _rdp_epsilon(middle, sampling_rate, steps, delta) > target_epsilon:
            low = middle
        else:
            high = middle
    return high


def plan(config: TrainConfig, train_rows: int, planned_steps: int, sampler=None) -> PrivacyPlan | None:
    """The :class:`PrivacyPlan` of a training configuration (None when DP is off).

    With ``dp_target_epsilon`` the noise multiplier is found by :func:`noise_for_epsilon`
    for ``planned_steps``. ``sampler`` is the :class:`tfft.preprocess.PoissonSampler` that drew
    the batches (its rate is the one accounted), or None for shuffled batches.

    Raises:
        ConfigError: no training rows, or an unreachable target epsilon.
    """
    if config.dp_l2_clip is None:
        return None
    if train_rows < 1:
        raise ConfigError(f"DP-SGD needs training rows. Received: train_rows={train_rows!r}")
    delta = config.dp_delta if config.dp_delta is not None else default_delta(train_rows)
    rate = min(1.0, config.batch_size / train_rows) if sampler is None else sampler.sampling_rate
    sigma = config.dp_noise_multiplier
    if sigma is None:
        sigma = noise_for_epsilon(config.dp_target_epsilon, rate, planned_steps, delta)
        logger.info(
            "DP-SGD: noise multiplier %.4g gives epsilon <= %g (delta %.3g) after %d steps",
            sigma,
            config.dp_target_epsilon,
            delta,
            planned_steps,
        )
    elif sigma == 0:
        logger.warning("DP-SGD with --dp-noise-multiplier 0 clips but adds no noise: no privacy guarantee.")
    return PrivacyPlan(
        clip=float(config.dp_l2_clip),
        noise_multiplier=float(sigma),
        batch_size=config.batch_size,
        train_rows=int(train_rows),
        delta=float(delta),
        planned_steps=int(planned_steps),
        target_epsilon=config.dp_target_epsilon,
        sampling="shuffle" if sampler is None else "poisson",
        capacity=None if sampler is None else sampler.capacity,
        overflow=0.0 if sampler is None else sampler.overflow,
    )


def report(privacy: PrivacyPlan, steps: int, last_logs: dict | None = None) -> dict:
    """The ``privacy`` block of ``summary.json`` and the export: epsilons for ``steps`` steps taken.

    An infinite epsilon (no noise) is written as None. With ``last_logs`` (the training logs of
    the last epoch: ``dp_clipped`` and ``dp_grad_norm`` of its last batch, from
    :func:`clipping_statistics`) the block also says how the clip bit at the end of training,
    and a warning is logged when it clipped every row of gradients many times larger than ``C``.
    """
    found = epsilons(privacy.noise_multiplier, privacy.sampling_rate, steps, privacy.delta)

    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    with_overflow = privacy.delta
    if privacy.overflow > 0:
        with_overflow = privacy.delta + (1.0 + math.exp(min(found["rdp"], 700.0))) * privacy.overflow
    block = {
        "epsilon_rdp": finite(found["rdp"]),
        "epsilon_pld": finite(found["pld"]),
        "delta": privacy.delta,
        "noise_multiplier": privacy.noise_multiplier,
        "clip": privacy.clip,
        "sampling_rate": privacy.sampling_rate,
        "batch_size": privacy.batch_size,
        "train_rows": privacy.train_rows,
        "steps": int(steps),
        "target_epsilon": privacy.target_epsilon,
        "sampling": privacy.sampling,
        "capacity": privacy.capacity,
        "overflow": privacy.overflow,
        "delta_with_overflow": with_overflow,
        "assumption": ASSUMPTIONS[privacy.sampling],
    }
    if last_logs and "dp_clipped" in last_logs:
        block["clipped_share_last_batch"] = float(last_logs["dp_clipped"])
        block["mean_grad_norm_last_batch"] = float(last_logs["dp_grad_norm"])
        if (
            block["clipped_share_last_batch"] >= 0.99
            and block["mean_grad_norm_last_batch"] >= 3 * privacy.clip
        ):
            logger.warning(
                "DP-SGD: --dp-l2-clip %g clipped every row at the end of training (mean per-example "
                "gradient norm %.3g): each row then pushes equally however right it is, which learns "
                "poorly. Try a clip near the typical norm (README: Private fine-tuning).",
                privacy.clip,
                block["mean_grad_norm_last_batch"],
            )
    return block


def count_rows(dataset: tf.data.Dataset) -> int:
    """The real rows (any positive sample weight) in one pass over ``(x, y, weights)`` batches."""
    total = 0
    for batch in dataset:
        weights = batch[2] if len(batch) > 2 else None
        if weights is None:
            total += int(tf.shape(tf.nest.flatten(batch[0])[0])[0])
            continue
        weights = tf.reshape(tf.cast(weights, tf.float32), [tf.shape(weights)[0], -1])
        total += int(tf.math.count_nonzero(tf.reduce_sum(weights, axis=1) > 0))
    return total


def install_privacy(model: keras.Model, privacy: PrivacyPlan | None) -> None:
    """Make ``model.fit`` take DP-SGD steps (see the module docstring); None puts Keras' step back.

    Call it after ``model.compile`` (:func:`tfft.train.compile_model` does).

    Raises:
        ConfigError: the model's loss is not a :class:`tfft.losses.WeightedMeanLoss` (no
            per-example losses to clip).
    """
    if "train_step" in vars(model):
        delattr(model, "train_step")
    if privacy is not None:
        if not isinstance(model.loss, WeightedMeanLoss):
            task = getattr(getattr(model, "tfft_spec", None), "task", None)
            raise ConfigError(
                "DP-SGD (--dp-l2-clip) needs a per-example or per-token loss (tfft.losses.WeightedMeanLoss). "
                f"Received: task={task!r} with loss {type(model.loss).__name__}"
            )
        model.train_step = lambda data: private_train_step(model, data, privacy)
    model.train_function = None  # traced again with the new step


def per_example_losses(loss: WeightedMeanLoss, y, predictions, weights) -> tf.Tensor:
    """Each row's loss, float32 ``[rows]``: ``w * loss`` per example, or the ``w``-weighted mean
    over the row's tokens for per-token losses; 0 for filler rows (weight 0)."""
    losses = tf.cast(loss.per_example(y, predictions), tf.float32)
    if weights is None:
        weights = tf.ones_like(losses)
    weights = tf.reshape(tf.cast(weights, tf.float32), tf.shape(losses))
    if losses.shape.rank == 1:
        return losses * weights
    rows = tf.shape(losses)[0]
    losses = tf.reshape(losses * weights, [rows, -1])
    weights = tf.reshape(weights, [rows, -1])
    return tf.math.divide_no_nan(tf.reduce_sum(losses, axis=1), tf.reduce_sum(weights, axis=1))


def clip_and_sum(jacobians: list[tf.Tensor], clip: float) -> tuple[list[tf.Tensor], tf.Tensor]:
    """Clip each example's gradient to global L2 norm ``clip`` and sum over examples, in float32.

    Args:
        jacobians: per variable, the per-example gradients ``[rows, *variable.shape]``.
        clip: ``C``.

    Returns:
        The summed clipped gradients (one per variable) and the per-example norms ``[rows]``
        before clipping.
    """
    jacobians = [tf.cast(j, tf.float32) for j in jacobians]
    squares = tf.add_n(
        [tf.reduce_sum(tf.reshape(tf.square(j), [tf.shape(j)[0], -1]), axis=1) for j in jacobians]
    )
    norms = tf.sqrt(squares)
    factors = clip / tf.maximum(norms, clip)  # min(1, C / norm)
    return [tf.tensordot(factors, j, axes=1) for j in jacobians], norms


def gaussian_noise(like: list[tf.Tensor], stddev: float) -> list[tf.Tensor]:
    """Noise ``N(0, stddev^2)`` shaped like ``like``, drawn on replica 0 only (zeros elsewhere),
    so that the replicas' all-reduced sum carries it once."""
    context = tf.distribute.get_replica_context()
    replica = context.replica_id_in_sync_group if context is not None else 0
    first = tf.cast(tf.equal(replica, 0), tf.float32)
    return [tf.random.normal(tf.shape(t), stddev=stddev, dtype=tf.float32) * first for t in like]


def nonzero_rows(weights: tf.Tensor) -> tf.Tensor:
    """bool ``[rows]``: the rows with a nonzero sample weight (per-token weights: any token's).

    The other rows' per-example losses are 0 times a finite loss, so their gradients are exactly
    zero: leaving them out of the per-example pass changes no sum."""
    weights = tf.cast(weights, tf.float32)
    weights = tf.reshape(weights, [tf.shape(weights)[0], -1])
    return tf.reduce_any(tf.not_equal(weights, 0.0), axis=1)


@contextlib.contextmanager
def dense_gathers() -> Iterator[None]:
    """Within the block, gathers from resource variables read the whole variable, then gather.

    ``tf.gather(variable, ids)`` (every embedding lookup) runs the ``ResourceGather`` op, for
    which pfor has no converter: inside ``tf.vectorized_map`` it falls back to a
    ``tf.while_loop`` over the rows ("Using a while_loop for converting ResourceGather").
    ``tf.gather(variable.value(), ids)`` is a ``GatherV2`` on a loop-invariant tensor, which
    pfor turns into one gather for all rows. The values are the same, and so are the
    gradients (the rows looked up, as ``IndexedSlices``, through the read of the variable).

    The block swaps ``sparse_read`` on the resource-variable class (every variable wrapper,
    mirrored or autocast, ends in it) and puts it back on exit; it is entered only while one
    row's forward pass is traced.
    """
    original = BaseResourceVariable.sparse_read

    def sparse_read(variable, indices, name=None):
        return tf.gather(variable.value(), indices, name=name)

    BaseResourceVariable.sparse_read = sparse_read
    try:
        yield
    finally:
        BaseResourceVariable.sparse_read = original


def chunked_per_example_pass(one_row, rows_data, weights, real, chunk: int, finish):
    """``finish(*tf.vectorized_map(one_row, chunk_data))`` over the chunks of ``chunk`` rows
    that hold the ``real`` rows only, the real rows gathered first (in their order).

    Shapes stay static (XLA): every chunk has ``chunk`` rows (the last one padded with rows
    of weight 0), and a ``tf.while_loop`` runs the chunks after the first while they hold real
    rows (the first always runs: it gives the outputs' shapes). ``finish`` maps a chunk's
    per-example gradients and predictions to ``(summed gradients, norms [chunk], predictions)``.

    Returns:
        ``(summed gradients, norms [rows], predictions)``: norms and predictions in the
        batch's row order, zero for the rows that did not run.
    """
    rows = tf.shape(real)[0]
    count = tf.reduce_sum(tf.cast(real, tf.int32))
    # real rows first, each group in batch order; padded up to whole chunks
    order = tf.argsort(tf.cast(tf.logical_not(real), tf.int32), stable=True)
    slots = (rows + chunk - 1) // chunk * chunk
    order = tf.concat([order, tf.fill([slots - rows], order[rows - 1])], axis=0)
    # slots past the real rows (filler rows and the padding) get weight 0
    live = tf.cast(tf.range(slots) < count, tf.float32)
    slot_weights = tf.gather(tf.cast(weights, tf.float32), order)
    slot_weights *= tf.reshape(live, [-1] + [1] * (slot_weights.shape.rank - 1))
    slot_data = tf.nest.map_structure(lambda t: tf.gather(t, order), rows_data)

    @tf.function
    def pass_over(part):
        # One function for the first chunk and the loop's: the pfor conversion of ``one_row``
        # (seconds on a real model) runs once per trace of the step, not twice.
        return finish(*tf.vectorized_map(one_row, part))

    def run(index):
        positions = index * chunk + tf.range(chunk)  # static size (XLA)
        part = tf.nest.map_structure(lambda t: tf.gather(t, positions), (*slot_data, slot_weights))
        sums, norms, predictions = pass_over(part)
        return positions[:, None], sums, norms, predictions

    def place(buffer, positions, values):
        return tf.tensor_scatter_nd_update(buffer, positions, values)

    positions, sums, norms, predictions = run(0)
    flat = tf.nest.flatten(predictions)
    norms_buffer = place(tf.zeros([slots], tf.float32), positions, norms)
    buffers = [
        place(tf.zeros(tf.concat([[slots], tf.shape(p)[1:]], axis=0), p.dtype), positions, p) for p in flat
    ]

    def body(index, sums, norms_buffer, buffers):
        positions, more, norms, predictions = run(index)
        sums = [a + b for a, b in zip(sums, more)]
        norms_buffer = place(norms_buffer, positions, norms)
        buffers = [place(b, positions, p) for b, p in zip(buffers, tf.nest.flatten(predictions))]
        return index + 1, sums, norms_buffer, buffers

    needed = (count + chunk - 1) // chunk
    _, sums, norms_buffer, buffers = tf.while_loop(
        lambda index, *_: index < needed, body, (tf.constant(1), sums, norms_buffer, buffers)
    )
    back = tf.math.invert_permutation(order[:rows])  # batch row -> its slot
    norms = tf.gather(norms_buffer, back)
    predictions = tf.nest.pack_sequence_as(predictions, [tf.gather(b, back) for b in buffers])
    return sums, norms, predictions


def private_gradients(model: keras.Model, data, privacy: PrivacyPlan):
    """The DP-SGD gradient of one batch (per replica: its clipped sum, plus the noise on replica 0,
    divided by the global batch size), its variables, and the forward pass.

    Per-example gradients come from ``tf.vectorized_map`` of one row's forward and backward
    pass. With ``privacy.chunk_rows`` > 0 (the default) that pass runs over chunks of that many
    rows and only over the chunks holding rows with a nonzero weight
    (:func:`chunked_per_example_pass`): a Poisson batch's filler rows, 2-2.75x ``B`` rows of
    its capacity, cost nothing; their predictions are zeros (weight 0: no loss, no metric).

    Returns:
        ``(gradients, variables, predictions, norms)``: only variables that get a gradient;
        norms are the per-example gradient norms before clipping (0 for skipped rows).
    """
    x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
    variables = model.trainable_variables
    optimizer = model.optimizer
    scaling = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    if weights is None:
        weights = tf.ones([tf.shape(tf.nest.flatten(x)[0])[0]], tf.float32)
    used = []  # variables with a gradient (found while tracing); the optimizer skips the others

    def one_row(row_x, row_y, row_weights):
        row_x, row_y, row_weights = tf.nest.map_structure(lambda t: t[None], (row_x, row_y, row_weights))
        with tf.GradientTape() as tape, dense_gathers():
            row_predictions = model(row_x, training=True)
            loss = per_example_losses(model.loss, row_y, row_predictions, row_weights)[0]
            scaled = optimizer.get_scaled_loss(loss) if scaling else loss
        gradients = tape.gradient(scaled, variables)
        used[:] = [i for i, g in enumerate(gradients) if g is not None]
        dense = [tf.convert_to_tensor(gradients[i]) for i in used]
        return dense, tf.nest.map_structure(lambda t: t[0], row_predictions)

    def finish(jacobians, predictions):
        if scaling:
            jacobians = optimizer.get_unscaled_gradients(jacobians)
        sums, norms = clip_and_sum(jacobians, privacy.clip)
        return sums, norms, predictions

    # One row at a time, vectorized over the rows (pfor): each row's own forward and backward
    # pass, so the cost grows with rows, not rows squared as a jacobian of the batch loss does.
    if privacy.chunk_rows:
        sums, norms, predictions = chunked_per_example_pass(
            lambda row: one_row(*row), (x, y), weights, nonzero_rows(weights), privacy.chunk_rows, finish
        )
    else:
        sums, norms, predictions = finish(*tf.vectorized_map(lambda row: one_row(*row), (x, y, weights)))
    noise = gaussian_noise(sums, privacy.noise_multiplier * privacy.clip)
    gradients = [(s + n) / float(privacy.batch_size) for s, n in zip(sums, noise)]
    return gradients, [variables[i] for i in used], predictions, norms


def private_train_step(model: keras.Model, data, privacy: PrivacyPlan) -> dict:
    """One DP-SGD update (see the module docstring); the logged loss and metrics are Keras' own.

    Returns:
        The model's metric results, as Keras' ``train_step`` returns them.
    """
    x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
    gradients, variables, predictions, norms = private_gradients(model, data, privacy)
    loss = model.compute_loss(x, y, predictions, weights)
    model._validate_target_and_loss(y, loss)
    model.optimizer.apply_gradients(zip(gradients, variables))
    model.compiled_metrics.update_state(y, predictions, weights)
    return {**model.get_metrics_result(), **clipping_statistics(norms, weights, privacy.clip)}


def clipping_statistics(norms: tf.Tensor, weights, clip: float) -> dict[str, tf.Tensor]:
    """How the clip bit on one batch's real rows (filler rows left out).

    ``dp_clipped`` is the share of rows whose gradient norm exceeded ``C`` and ``dp_grad_norm``
    their mean norm before clipping: with every row clipped (``dp_clipped`` 1.0 while
    ``dp_grad_norm`` is many times ``C``) each row pushes equally however right it already is,
    the loss turns linear and training learns little (see the README: set ``C`` near the
    typical norm). Logged per step (``history.jsonl``, TensorBoard; the progress bar shows the
    epoch's running mean); an epoch's logs keep its last batch's values (:func:`report`).
    """
    norms = tf.cast(norms, tf.float32)
    if weights is None:
        real = tf.ones_like(norms)
    else:
        real = tf.cast(nonzero_rows(weights), tf.float32)
    rows = tf.maximum(tf.reduce_sum(real), 1.0)
    return {
        "dp_clipped": tf.reduce_sum(real * tf.cast(norms > clip, tf.float32)) / rows,
        "dp_grad_norm": tf.reduce_sum(real * norms) / rows,
    }
