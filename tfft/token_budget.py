"""Token-budget batching (``--batch-tokens N``): training batches of at most N token slots.

With a fixed batch size, a batch of 32 short rows and one of 32 long rows cost very
different compute, and the coarse power-of-two buckets (:func:`tfft.preprocess.bucket_lengths`)
plus the filler rows that keep the batch dimension fixed spend a large share of the token
slots on padding. With a token budget, each training batch holds ``rows x padded length <= N``
token slots instead: many short rows, or few long ones. The budget reaches the task's
training dataset as ``Batching(batch_tokens=N)`` (:class:`tfft.preprocess.Batching`), passed
through ``Task.dataset`` like the batch size.

**Buckets.** Rows are grouped by length into fine buckets (:func:`budget_lengths`): steps of
2 tokens up to 16, of 4 up to 32, then multiples of 8 (so the padding of a row is at most
about 1/8 of its length past 16 tokens). Multiples of 8 throughout would waste 20% of SST-2's
token slots (its rows average 13 tokens); this grid wastes about 7%.

**Batches of one epoch** (:func:`plan_batches`, in NumPy, before training): the rows of
each bucket of length ``L`` fill batches of ``N // L`` rows; the rows left over in every
bucket are then packed, longest first, into batches padded to their longest row, still
within ``N``. The number of batches, and the size and padded length of each, depend only on
the rows' lengths, not on the shuffle: ``steps_per_epoch`` is known before training and the
learning-rate schedule ends where it should. Every epoch (:func:`budget_dataset`) shuffles
the rows (which rows share a batch) and the order of the batches, seeded: no row is lost or
repeated within an epoch, and no filler rows are added.

**Loss.** tfft's losses (:mod:`tfft.losses`) are weighted means over a batch's real rows,
so a batch of 300 short rows and one of 20 long rows each give the mean loss per row, exactly
as fixed-size batches do; a row's gradient weighs ``1 / rows`` in its batch. We keep the
per-example mean rather than weighing by tokens: it is what the fixed-size recipe (and every
README figure) optimises, and a long row is not more informative about a sentence label than
a short one (dividing every batch by the epoch's mean rows per batch instead did no better on
SST-2: README, speed section). Per-token losses are means over the batch's labelled tokens,
which a budget keeps about the same in every batch; NER too (with fixed-size batches it
divides by real rows x the mean words per training sentence instead).

**Limits.** The batch shapes vary, so XLA (one compilation per shape) is not used with a
token budget (:func:`tfft.datasets.batch_tokens_runtime`); DP-SGD and gradient accumulation
need fixed-size batches and refuse it (:func:`tfft.config.check_batch_tokens`).

>>> budget_lengths(40)
[2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40]
>>> plan = plan_batches([3, 3, 5, 9, 30], budget=64, grid=budget_lengths(40))
>>> plan.steps, [int(n) for n in plan.sizes], [int(n) for n in plan.lengths]
(2, [2, 3], [32, 6])
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfft.errors import ConfigError

logger = logging.getLogger(__name__)


def check_budget_applies(task, budget: int | None, *, option: str, size_option: str) -> None:
    """Refuse a token budget for a task that builds its own batches.

    Args:
        task: the model's task object; its ``token_budget_batches`` says whether it takes one.
        budget: the token budget asked for, or None (always accepted).
        option, size_option: how the caller names the budget and the batch size in the error:
            ``"--batch-tokens"`` and ``"--batch-size"`` for the command line,
            ``"`batch_tokens`"`` and ``"`batch_size`"`` for :func:`tfft.make_dataset`.

    Raises:
        ConfigError: ``budget`` is set and the task's batches are not token-budget batches.
    """
    if budget is not None and not task.token_budget_batches:
        raise ConfigError(
            f"{option} does not apply to task {task.name!r} (it builds its own batches); "
            f"use {size_option}. Received: batch_tokens={budget!r}"
        )


def budget_lengths(max_length: int) -> list[int]:
    """The fine bucket lengths of token-budget batches, up to ``max_length``.

    Steps of 2 up to 16, of 4 up to 32, of 8 beyond; ``max_length`` closes the list.
    """
    lengths, length = [], 0
    while True:
        length += 2 if length < 16 else 4 if length < 32 else 8
        if length >= max_length:
            break
        lengths.append(length)
    return lengths + [int(max_length)]


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """How one epoch's rows form token-budget batches (see the module docstring).

    Attributes:
        budget: token slots per batch at most (``rows x padded length``).
        grid: the bucket lengths.
        bucket_of: per row, the index of its bucket in ``grid``.
        slots: positions in the bucket-sorted order of the rows, batch after batch.
        sizes: rows per batch.
        lengths: padded length per batch.
    """

    budget: int
    grid: np.ndarray
    bucket_of: np.ndarray
    slots: np.ndarray
    sizes: np.ndarray
    lengths: np.ndarray

    @property
    def steps(self) -> int:
        """Batches per epoch."""
        return len(self.sizes)

    @property
    def token_slots(self) -> int:
        """Token slots of one epoch's batches (rows x padded length, summed)."""
        return int(np.sum(self.sizes.astype(np.int64) * self.lengths))


def plan_batches(lengths: Sequence[int] | np.ndarray, budget: int, grid: Sequence[int]) -> BatchPlan:
    """The token-budget batches of one epoch for rows of these ``lengths`` (see the module docstring).

    Raises:
        ConfigError: a row is longer than ``budget`` after rounding to its bucket.
    """
    lengths = np.asarray(lengths, np.int64)
    grid = np.asarray(grid, np.int64)
    bucket_of = np.minimum(np.searchsorted(grid, lengths, side="left"), len(grid) - 1)
    counts = np.bincount(bucket_of, minlength=len(grid))
    longest = int(grid[bucket_of].max()) if len(lengths) else 0
    if longest > budget:
        raise ConfigError(
            f"--batch-tokens must hold at least one row of the longest padded length ({longest} tokens, "
            f"at most --max-length). Received: batch_tokens={budget!r}"
        )
    slots, sizes, padded = [], [], []
    leftovers = []  # (bucket length, positions), shortest bucket first
    start = 0
    for bucket, count in enumerate(counts):
        if not count:
            continue
        length, rows = int(grid[bucket]), budget // int(grid[bucket])
        full = int(count) // rows
        for batch in range(full):
            slots.append(np.arange(start + batch * rows, start + (batch + 1) * rows))
            sizes.append(rows)
            padded.append(length)
        if count % rows:
            leftovers.append((length, np.arange(start + full * rows, start + int(count))))
        start += int(count)
    # Left-over rows, longest first: a batch takes its first row's length and fills up to the budget.
    rest = [(length, int(p)) for length, positions in reversed(leftovers) for p in positions]
    batch: list[int] = []
    length = 0
    for row_length, position in rest:
        if batch and (len(batch) + 1) * length > budget:
            slots.append(np.asarray(batch))
            sizes.append(len(batch))
            padded.append(length)
            batch = []
        if not batch:
            length = row_length
        batch.append(position)
    if batch:
        slots.append(np.asarray(batch))
        sizes.append(len(batch))
        padded.append(length)
    return BatchPlan(
        budget=int(budget),
        grid=grid,
        bucket_of=bucket_of,
        slots=np.concatenate(slots).astype(np.int64) if slots else np.zeros([0], np.int64),
        sizes=np.asarray(sizes, np.int64),
        lengths=np.asarray(padded, np.int64),
    )


def budget_dataset(
    columns: Mapping[str, Any],
    example: Callable[[dict[str, tf.Tensor]], Any],
    padding: Any,
    *,
    lengths: Sequence[int] | np.ndarray,
    budget: int,
    max_length: int,
    seed: int | None = None,
    to_grid: bool = True,
) -> tf.data.Dataset:
    """Training batches of at most ``budget`` token slots, reshuffled every epoch.

    Args:
        columns, example, padding: as for :func:`tfft.preprocess.bucketed_dataset`.
        lengths: per row, the length that picks its bucket.
        budget: token slots per batch at most.
        max_length: the longest row (the last bucket).
        seed: shuffling seed (rows within buckets, and the order of the batches).
        to_grid: pad ``[batch, length]`` parts up to the bucket length; otherwise (rows with
            parts of different lengths, as seq2seq's source and target) each part is padded
            to its longest row, which is within the bucket length too.

    Returns:
        A dataset of ``(features, labels, weights)`` batches with a known cardinality.
    """
    plan = plan_batches(lengths, budget, budget_lengths(max_length))
    rows = len(plan.bucket_of)
    logger.info(
        "Token-budget batches: at most %d token slots, %d batches per epoch for %d rows "
        "(%.1f%% of the slots padding)",
        budget,
        plan.steps,
        rows,
        100.0 * (1.0 - float(np.minimum(lengths, max_length).sum()) / max(plan.token_slots, 1)),
    )
    bucket_of = tf.constant(plan.bucket_of, tf.int64)
    slots = tf.constant(plan.slots, tf.int64)
    sizes = tf.constant(plan.sizes, tf.int64)
    columns = dict(columns)

    def epoch(seeds):
        shuffled = tf.random.experimental.stateless_shuffle(tf.range(rows, dtype=tf.int64), seed=seeds[0])
        by_bucket = tf.gather(shuffled, tf.argsort(tf.gather(bucket_of, shuffled), stable=True))
        batches = tf.RaggedTensor.from_row_lengths(tf.gather(by_bucket, slots), sizes)
        order = tf.random.experimental.stateless_shuffle(tf.range(plan.steps, dtype=tf.int64), seed=seeds[1])
        return tf.data.Dataset.from_tensor_slices(tf.gather(batches, order))

    def one_batch(index):
        picked = {name: tf.gather(column, index) for name, column in columns.items()}
        elements = tf.data.Dataset.from_tensor_slices(picked).map(example)
        return elements.padded_batch(tf.size(index, out_type=tf.int64), padding_values=padding)

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(4).take(1)
    dataset = seeds.map(lambda s: tf.reshape(s, [2, 2])).flat_map(epoch).flat_map(one_batch)
    if to_grid:
        from tfft.preprocess import pad_length_to_bucket  # preprocess imports this module

        dataset = dataset.map(pad_length_to_bucket(plan.grid.tolist(), padding))
    return dataset.apply(tf.data.experimental.assert_cardinality(plan.steps)).prefetch(tf.data.AUTOTUNE)
