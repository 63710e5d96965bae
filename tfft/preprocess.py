"""tf.data pipelines: token ids -> length-bucketed, padded batches.

Training batches are grouped by length (``bucket_by_sequence_length``) and padded to the
bucket's length, so that little compute goes to padding and XLA only ever sees a handful
of shapes: one per bucket. Partial training batches are padded up to the full batch size
with rows whose sample weight is 0, so the batch dimension never changes either.

Elements are ``(features, labels, sample_weight)`` with features
``{"input_ids", "attention_mask", "token_type_ids"}`` (int32 ``[batch, length]``), or
``{"text"[, "text_pair"]}`` strings for backbones that read raw text.

:func:`bucketed_dataset` is that pipeline for any variable-length examples. :func:`token_batches`
feeds it token ids with labels of any shape (per example in :func:`token_dataset`, per token
for NER); seq2seq builds on it directly (two sides with their own buckets).

**How training batches are drawn** is one :class:`Batching` handed down explicitly, from
:func:`tfft.datasets.run_dataset` (or :func:`tfft.make_dataset`) through each task's
``dataset`` call to :func:`bucketed_dataset` and :func:`text_dataset`:

- **Poisson sampling** (DP-SGD, :mod:`tfft.privacy`): with ``Batching(sampler=...)`` the
  training batches are Poisson samples instead of shuffled buckets: see :class:`PoissonSampler`.
- **Token budget** (``--batch-tokens``, :mod:`tfft.token_budget`): with
  ``Batching(batch_tokens=N)`` the training batches of :func:`bucketed_dataset` hold at most
  N token slots, on fine length buckets, without filler rows.
- Otherwise (``batching=None``): shuffled, length-bucketed batches of ``batch_size`` rows.
  With ``Batching(fixed_shapes=False)`` (what ``tfft fit`` uses when the model runs without
  XLA, on one replica, without gradient accumulation) partial batches keep their real rows
  only (no filler rows) and each batch is padded to the fine grid of its longest row
  (:func:`tfft.token_budget.budget_lengths`). How the rows are grouped by length is the
  task's choice (``Batching.groups``): classify, regress and multilabel on the fine grid
  (``"fine"``: 7% of SST-2's token slots are padding instead of 40%, at the same accuracy);
  NER not at all (``"none"``: random rows, as PyTorch's recipe draws them: better entity F1);
  QA, seq2seq and the language models on the power-of-two buckets (``"buckets"``): grouped
  on the fine grid, NER, QA and the Multi30k example learned measurably worse (README, "How
  the pipeline works", Padding, has the figures).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfft.errors import ConfigError
from tfft.token_budget import budget_dataset, budget_lengths
from tfft.tokenization import Encoded

logger = logging.getLogger(__name__)

MIN_BUCKET = 16
#: how training rows without fixed shapes are grouped by length (:attr:`Batching.groups`)
GROUPS = ("buckets", "fine", "none")
#: default bound on the probability that any step of a run has more Poisson-sampled rows
#: than the batch capacity (those rows would be dropped)
MAX_OVERFLOW = 1e-12


def poisson_capacity(
    rows: int, batch_size: int, steps: int, max_overflow: float = MAX_OVERFLOW
) -> tuple[int, float]:
    """The rows a Poisson-sampled batch is given room for, and the overflow bound it leaves.

    The capacity is the smallest multiple of 8 such that, over ``steps`` steps, the chance
    that some step samples more rows than it holds is at most ``max_overflow`` (a union
    bound over the steps of the binomial tail of ``rows + 1`` rows, the larger neighbouring
    data set, at rate ``q = batch_size / rows``).

    Returns:
        ``(capacity, overflow)``: ``overflow`` is that bound for the capacity chosen.
    """
    from scipy.stats import binom

    rate = min(1.0, batch_size / rows)
    candidates = rows + 1
    capacity = batch_size
    while capacity < candidates and steps * binom.sf(capacity, candidates, rate) > max_overflow:
        capacity += 1
    capacity = -(-capacity // 8) * 8
    overflow = 0.0 if capacity >= candidates else float(steps * binom.sf(capacity, candidates, rate))
    return capacity, overflow


@dataclasses.dataclass
class PoissonSampler:
    """Poisson-sampled training batches for DP-SGD, with bounded shapes.

    Every step includes each of the ``N`` training rows independently with probability
    ``q = batch_size / N`` (``batch_size`` is the *expected* batch size ``B``); an epoch is
    ``ceil(N / B)`` steps. Each batch has a fixed number of rows, the ``capacity``
    (:func:`poisson_capacity`): the sampled rows, then filler rows of weight 0 (copies of
    the shortest row). A step that samples more rows than the capacity keeps a random
    ``capacity`` of them; the capacity makes that chance at most ``max_overflow`` over the
    whole run (``overflow`` is the bound reached), which :func:`tfft.privacy.report` adds to delta.
    Batches are padded to the bucket length of their longest row.

    Handed to a task's ``dataset`` call in a :class:`Batching`; :func:`bucketed_dataset` and
    :func:`text_dataset` fill in ``rows``, ``capacity``, ``steps_per_epoch`` and ``overflow``
    when they build the training dataset (once per sampler).
    """

    batch_size: int
    epochs: int
    seed: int | None = None
    max_overflow: float = MAX_OVERFLOW
    rows: int | None = None
    capacity: int | None = None
    steps_per_epoch: int | None = None
    overflow: float | None = None

    @property
    def sampling_rate(self) -> float:
        """``q = min(1, B / N)`` (once the rows are known)."""
        return min(1.0, self.batch_size / self.rows)

    def dataset(
        self,
        columns: Mapping[str, Any],
        example: Callable[[dict[str, tf.Tensor]], Any],
        batch: Callable[[tf.data.Dataset, int], tf.data.Dataset],
        filler: int = 0,
    ) -> tf.data.Dataset:
        """One epoch of Poisson-sampled batches of ``(features, labels, weights)``.

        Args:
            columns: per-example data by name (as for :func:`bucketed_dataset`).
            example: one example's columns to ``(features, labels, weights)``.
            batch: batches a dataset of ``(element, flag)`` into one batch of ``capacity`` rows.
            filler: the row that fills unused slots (its weight is set to 0).
        """
        if self.rows is not None:
            raise ValueError("A PoissonSampler builds one training dataset; this one is already used.")
        rows = int(tf.nest.flatten(columns, expand_composites=False)[0].shape[0])
        if rows < 1:
            raise ValueError("Poisson sampling needs at least one training row.")
        self.rows = rows
        self.steps_per_epoch = -(-rows // self.batch_size)
        capacity, self.overflow = poisson_capacity(
            rows, self.batch_size, self.steps_per_epoch * self.epochs, self.max_overflow
        )
        self.capacity = capacity
        rate = self.sampling_rate
        logger.info(
            "Poisson sampling: q = %d / %d = %.4g, %d steps per epoch, batches of %d rows "
            "(overflow chance over the run <= %.2g)",
            self.batch_size,
            rows,
            rate,
            self.steps_per_epoch,
            capacity,
            self.overflow,
        )

        def indices(seeds):
            chosen = tf.where(tf.random.stateless_uniform([rows], seed=seeds[0]) < rate)[:, 0]
            chosen = tf.random.experimental.stateless_shuffle(chosen, seed=seeds[1])[:capacity]
            count = tf.shape(chosen)[0]
            filled = tf.fill([capacity - count], tf.constant(filler, tf.int64))
            flags = tf.concat([tf.ones([count]), tf.zeros([capacity - count])], axis=0)
            return tf.concat([chosen, filled], axis=0), flags

        def one_batch(index, flags):
            picked = tf.nest.map_structure(lambda column: tf.gather(column, index), dict(columns))
            rows_ = tf.data.Dataset.from_tensor_slices(picked).map(example)
            pairs = tf.data.Dataset.zip((rows_, tf.data.Dataset.from_tensor_slices(flags)))
            return batch(pairs, capacity)

        def weigh(element, flags):
            features, labels, weights = element
            shaped = tf.reshape(flags, [-1] + [1] * (len(weights.shape) - 1))
            return features, labels, weights * tf.cast(shaped, weights.dtype)

        seeds = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True).batch(4)
        dataset = seeds.map(lambda s: tf.reshape(s, [2, 2])).take(self.steps_per_epoch).map(indices)
        dataset = dataset.flat_map(one_batch).map(weigh)
        return dataset.apply(tf.data.experimental.assert_cardinality(self.steps_per_epoch)).prefetch(
            tf.data.AUTOTUNE
        )


@dataclasses.dataclass(frozen=True)
class Batching:
    """How a training dataset's batches are drawn: handed down explicitly through
    ``Task.dataset`` (see the module docstring); ``Batching()`` (or None) is shuffled batches
    of ``batch_size`` rows with bounded shapes.

    Evaluation and prediction batches ignore it, except ``by_length``. At most one of
    ``sampler`` and ``batch_tokens`` is set.

    Attributes:
        sampler: Poisson-sample every batch with this :class:`PoissonSampler` (DP-SGD); it
            records the rows, capacity and steps of the dataset it draws.
        batch_tokens: batches of at most this many token slots (:mod:`tfft.token_budget`).
        fixed_shapes: batches of ``batch_size`` rows keep a bounded set of shapes (power-of-two
            length buckets, partial batches filled up with rows of weight 0), as XLA, several
            replicas and gradient accumulation need. False: no filler rows, each batch padded
            to the fine :meth:`grid`, rows grouped as ``groups`` says. Token-budget and Poisson
            batches ignore it.
        groups: without fixed shapes, how rows are grouped by length into batches:
            ``"buckets"`` on the power-of-two buckets (a batch mixes lengths), ``"fine"`` on the
            fine :meth:`grid` (rows of nearly one length: classify, regress and multilabel),
            ``"none"`` not at all (random rows, as the standard PyTorch recipe draws them: NER).
            With fixed shapes the rows are always grouped on the power-of-two buckets (random
            rows would pad most batches to the longest bucket). See the module docstring.
        by_length: evaluation batches hold the rows ordered by length (shortest first,
            :func:`length_order`), each padded to :meth:`grid`, not in input order: far less
            padding, for consumers that do not need the order (Keras' validation pass in
            ``fit``) or put it back (NER's ``predict_model``). Training ignores it.
    """

    sampler: PoissonSampler | None = None
    batch_tokens: int | None = None
    fixed_shapes: bool = True
    by_length: bool = False
    groups: str = "buckets"

    def grid(self, max_length: int) -> list[int]:
        """The lengths training batches are padded to, up to ``max_length``: the fine grid of
        :func:`tfft.token_budget.budget_lengths` for token-budget batches and batches without
        fixed shapes; powers of two (:func:`bucket_lengths`) for fixed shapes and Poisson samples.

        >>> Batching().grid(64), Batching(fixed_shapes=False).grid(40)
        ([16, 32, 64], [2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40])
        """
        if self.sampler is None and (self.batch_tokens is not None or not self.fixed_shapes):
            return budget_lengths(max_length)
        return bucket_lengths(max_length)

    def __post_init__(self):
        if self.groups not in GROUPS:
            raise ValueError(f"Batching.groups must be one of {GROUPS}. Received: groups={self.groups!r}")
        if self.sampler is not None and self.batch_tokens is not None:
            raise ConfigError(
                "Poisson-sampled batches (DP-SGD) have a fixed number of rows: they do not combine "
                f"with a token budget. Received: batch_tokens={self.batch_tokens!r}"
            )


def bucket_lengths(max_length: int, min_bucket: int = MIN_BUCKET) -> list[int]:
    """Padded lengths used for batches: powers of two from ``min_bucket``, then ``max_length``.

    >>> bucket_lengths(128)
    [16, 32, 64, 128]
    >>> bucket_lengths(100)
    [16, 32, 64, 100]
    """
    lengths = []
    length = min_bucket
    while length < max_length:
        lengths.append(length)
        length *= 2
    lengths.append(max_length)
    return lengths


def training_steps(encoded: Encoded | Sequence[int] | np.ndarray, batch_size: int, buckets: list[int]) -> int:
    """Batches in one training epoch: per bucket, its examples divided by the batch size, rounded up.

    Args:
        encoded: the examples (their :meth:`~tfft.tokenization.Encoded.lengths`), or the
            length of each example that picks its bucket (as ``lengths`` of :func:`bucketed_dataset`).
        batch_size: rows per batch.
        buckets: the bucket lengths.
    """
    lengths = encoded.lengths() if hasattr(encoded, "lengths") else np.asarray(encoded, np.int64)
    bucket_of = np.searchsorted(np.asarray(buckets), lengths, side="left")
    counts = np.bincount(bucket_of, minlength=len(buckets) + 1)
    return int(sum(-(-int(count) // batch_size) for count in counts))


def ragged_rows(rows: Sequence[np.ndarray], dtype=np.int32) -> tf.RaggedTensor:
    """Variable-length rows (one 1-D array each) as one ``tf.RaggedTensor`` of ``dtype`` values."""
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    values = np.concatenate(rows).astype(dtype) if len(rows) else np.zeros([0], dtype)
    return tf.RaggedTensor.from_row_lengths(values, lengths)


def by_length(texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[int]:
    """The rows' indices ordered by their characters (text and pair; a proxy for tokens),
    shortest first: batches of neighbouring rows then pad little.

    >>> by_length(["a long one", "short", "mid size"])
    [1, 2, 0]
    """
    return sorted(range(len(texts)), key=lambda i: len(texts[i]) + (len(pairs[i]) if pairs else 0))


def length_order(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """The order in which ``Batching(by_length=True)`` evaluation batches hold the rows of
    these (token) ``lengths``: shortest first, ties in input order.

    >>> length_order([5, 2, 9, 2]).tolist()
    [1, 3, 0, 2]
    """
    return np.argsort(np.asarray(lengths), kind="stable")


def pad_batch_dim(batch_size: int):
    """A map padding ``(features, labels, weights)`` batches to ``batch_size`` rows of weight 0."""

    def pad(features, labels, weights):
        missing = batch_size - tf.shape(weights)[0]

        def fill(tensor):
            paddings = [[0, missing]] + [[0, 0]] * (len(tensor.shape) - 1)
            return tf.pad(tensor, paddings, constant_values=tf.zeros([], tensor.dtype))

        features = {name: fill(value) for name, value in features.items()}
        return features, fill(labels), fill(weights)

    return pad


def pad_length_to_bucket(buckets: Sequence[int], padding: Any):
    """A map that pads a batch padded to its longest row further, up to the next bucket length.

    Args:
        buckets: the bucket lengths.
        padding: the padding value of each component, a structure like the batch's elements.
            Only variable-length ``[batch, length]`` components are padded; per-example labels
            and weights of fixed shape stay as they are.
    """
    bounds = tf.constant(list(buckets), dtype=tf.int32)

    def to_bucket(value, fill):
        if value.shape.rank != 2 or value.shape[1] is not None:
            return value
        length = tf.shape(value)[1]
        target = bounds[tf.argmax(tf.cast(bounds >= length, tf.int32))]
        return tf.pad(value, [[0, 0], [0, target - length]], constant_values=tf.cast(fill, value.dtype))

    def pad(*batch):
        return tf.nest.map_structure(to_bucket, batch[0] if len(batch) == 1 else batch, padding)

    return pad


def bucketed_dataset(
    columns: Mapping[str, Any],
    example: Callable[[dict[str, tf.Tensor]], Any],
    padding: Any,
    *,
    batch_size: int,
    buckets: Sequence[int],
    lengths: Sequence[int] | np.ndarray | None = None,
    training: bool = False,
    seed: int | None = None,
    to_buckets: Callable[..., Any] | None = None,
    batching: Batching | None = None,
) -> tf.data.Dataset:
    """Length-bucketed, padded batches of variable-length examples: the pipeline of every token task.

    Training (labelled examples): shuffled every epoch, grouped by ``lengths`` into
    ``buckets`` (``bucket_by_sequence_length``), padded to the bucket length and to
    ``batch_size`` rows (filler rows of weight 0), with a known number of batches
    (:func:`training_steps`); or drawn as ``batching`` says (``fixed_shapes=False``: without
    filler rows, grouped as ``batching.groups`` says, each batch padded to the fine grid of its
    longest row, or by ``to_buckets`` on ``buckets``). Otherwise
    (evaluation, prediction): in input order, each batch padded to its longest row, then up
    to the next bucket length; the last batch may be partial. With ``batching.by_length``
    the rows come shortest first instead, padded up to ``batching.grid``.

    Args:
        columns: per-example data by name: ragged rows (:func:`ragged_rows`) or arrays with
            one entry per example.
        example: one example's columns (dict of tensors) to a dataset element:
            ``(features, labels, weights)``, or ``features`` alone for prediction (batched
            in order whatever ``training`` says).
        padding: the padding value of each component of an element (the same structure).
        batch_size: rows per batch (global, across replicas).
        buckets: the bucket lengths (:func:`bucket_lengths`).
        lengths: per example, the length that picks its training bucket (needed for training).
        training: shuffle (with ``seed``), bucket and fill up batches as above.
        to_buckets: pads a batch padded to its longest row up to its bucket lengths, for
            examples with parts of different lengths (seq2seq's source and target); training
            batches are then padded by it too. Default: :func:`pad_length_to_bucket`.
        batching: Poisson-sampled or token-budget training batches (:class:`Batching`);
            None: shuffled batches of ``batch_size`` rows.

    Returns:
        A dataset of batched elements.
    """
    if not training and batching is not None and batching.by_length and lengths is not None:
        order = length_order(lengths)
        columns = tf.nest.map_structure(lambda column: tf.gather(column, order), dict(columns))
        buckets = batching.grid(max(buckets))
    dataset = tf.data.Dataset.from_tensor_slices(dict(columns)).map(example)
    if not (training and isinstance(dataset.element_spec, tuple)):
        dataset = dataset.padded_batch(batch_size, padding_values=padding)
        if to_buckets is None:
            to_buckets = pad_length_to_bucket(buckets, padding)
        return dataset.map(to_buckets).prefetch(tf.data.AUTOTUNE)

    if lengths is None:
        raise ValueError("bucketed_dataset(training=True) needs the `lengths` of the examples.")
    lengths = np.asarray(lengths, np.int32)
    batching = batching or Batching()
    sampler = batching.sampler
    if sampler is not None:
        pad = to_buckets or pad_length_to_bucket(buckets, padding)

        def batch(pairs, capacity):
            return pairs.padded_batch(capacity, padding_values=(padding, 0.0)).map(
                lambda element, flags: (pad(*element), flags)
            )

        return sampler.dataset(columns, example, batch, filler=int(np.argmin(lengths)))
    budget = batching.batch_tokens
    if budget is not None:
        return budget_dataset(
            columns,
            example,
            padding,
            lengths=lengths,
            budget=budget,
            max_length=int(max(buckets)),
            seed=seed,
            to_grid=to_buckets is None,
        )
    if not batching.fixed_shapes and to_buckets is None:
        grid = batching.grid(int(max(buckets)))
        if batching.groups == "fine":
            buckets = grid
        else:  # grouped on the coarse buckets (or one), each batch padded to the fine grid
            to_buckets = pad_length_to_bucket(grid, padding)
            if batching.groups == "none":
                buckets = [max(buckets)]
    dataset = tf.data.Dataset.zip((dataset, tf.data.Dataset.from_tensor_slices(lengths)))
    dataset = dataset.shuffle(len(lengths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda element, length: length,
        bucket_boundaries=[length + 1 for length in buckets],
        bucket_batch_sizes=[batch_size] * (len(buckets) + 1),
        padding_values=(padding, 0),
        pad_to_bucket_boundary=to_buckets is None,
    )
    dataset = dataset.map(lambda batch, batch_lengths: batch)
    if to_buckets is not None:
        dataset = dataset.map(to_buckets)
    if batching.fixed_shapes:  # keep the batch dimension fixed for XLA; padded rows weigh 0
        dataset = dataset.map(pad_batch_dim(batch_size))
    # The number of batches does not depend on the shuffle: one partial batch per bucket.
    steps = training_steps(lengths, batch_size, list(buckets))
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)


def _token_example(row: Mapping[str, tf.Tensor]):
    ids = row["input_ids"]
    features = {
        "input_ids": ids,
        "attention_mask": tf.ones_like(ids),
        "token_type_ids": row["token_type_ids"],
    }
    return features if "labels" not in row else (features, row["labels"], row["weights"])


def _token_padding(pad_id: int) -> dict[str, int]:
    return {"input_ids": pad_id, "attention_mask": 0, "token_type_ids": 0}


def token_batches(
    encoded: Encoded,
    labels: Any = None,
    weights: Any = None,
    *,
    label_padding: Any = 0,
    batch_size: int,
    max_length: int,
    pad_id: int = 0,
    training: bool = False,
    seed: int | None = None,
    batching: Batching | None = None,
) -> tf.data.Dataset:
    """:func:`bucketed_dataset` of token ids with labels and weights in any shape.

    Args:
        encoded: unpadded ids (an :class:`~tfft.tokenization.Encoded`, or any object with
            ``input_ids``, ``token_type_ids`` and ``lengths()``).
        labels: one entry per example (an array with one label each, or :func:`ragged_rows`
            of per-token labels), or None for prediction.
        weights: sample weights in the same shape as ``labels``.
        label_padding: the padding value of the labels (weights are padded with 0).
        batch_size, max_length, pad_id, training, seed, batching: as for :func:`token_dataset`.
    """
    columns = {
        "input_ids": ragged_rows(encoded.input_ids),
        "token_type_ids": ragged_rows(encoded.token_type_ids),
    }
    padding = _token_padding(pad_id)
    if labels is not None:
        columns.update(labels=labels, weights=weights)
        padding = (padding, label_padding, 0.0)
    return bucketed_dataset(
        columns,
        _token_example,
        padding,
        batch_size=batch_size,
        buckets=bucket_lengths(max_length),
        lengths=encoded.lengths(),
        training=training,
        seed=seed,
        batching=batching,
    )


def token_dataset(
    encoded: Encoded,
    labels: np.ndarray | None = None,
    *,
    batch_size: int,
    max_length: int,
    pad_id: int = 0,
    training: bool = False,
    seed: int | None = None,
    weights: np.ndarray | None = None,
    batching: Batching | None = None,
) -> tf.data.Dataset:
    """Batches of token ids for ``model.fit``, ``evaluate`` or ``predict``.

    Args:
        encoded: unpadded ids from a :class:`~tfft.tokenization.TextEncoder`.
        labels: one label per example (any numeric dtype), or None for prediction.
        batch_size: rows per batch (global, across replicas).
        max_length: the longest sequence; sets the largest bucket.
        pad_id: the padding token id.
        training: shuffle every epoch and group by length; otherwise keep the order.
        seed: shuffling seed.
        weights: per-example sample weights (default 1).
        batching: how training batches are drawn (:class:`Batching`; None: shuffled buckets).

    Returns:
        A dataset of ``(features, labels, sample_weight)``; without labels, of
        ``features`` alone, in the original order.
    """
    label_padding = None
    if labels is not None:
        labels = np.asarray(labels)
        weights = np.ones([len(encoded)], np.float32) if weights is None else np.asarray(weights, np.float32)
        label_padding = tf.cast(0, labels.dtype)
    return token_batches(
        encoded,
        labels,
        weights,
        label_padding=label_padding,
        batch_size=batch_size,
        max_length=max_length,
        pad_id=pad_id,
        training=training,
        seed=seed,
        batching=batching,
    )


def text_dataset(
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    labels: np.ndarray | None = None,
    *,
    batch_size: int,
    training: bool = False,
    seed: int | None = None,
    weights: np.ndarray | None = None,
    batching: Batching | None = None,
) -> tf.data.Dataset:
    """Batches of raw strings, for backbones that tokenize inside (text-embedding modules).

    ``batching`` may Poisson-sample the training batches (:class:`Batching`); a token budget
    is refused (the model tokenizes, so tfft does not know the lengths)."""
    features = {"text": tf.constant(list(texts), dtype=tf.string)}
    if pairs is not None:
        features["text_pair"] = tf.constant(list(pairs), dtype=tf.string)
    if labels is None:
        return tf.data.Dataset.from_tensor_slices(features).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    labels = np.asarray(labels)
    weights = np.ones([len(texts)], np.float32) if weights is None else np.asarray(weights, np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels, weights))
    if not training:
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    batching = batching or Batching()
    if batching.batch_tokens is not None:
        raise ConfigError(
            "--batch-tokens needs a backbone whose tokenizer tfft runs (token ids); this one reads raw "
            f"text and tokenizes inside the model. Received: batch_tokens={batching.batch_tokens!r}"
        )
    sampler = batching.sampler
    if sampler is not None:
        columns = {"features": features, "labels": labels, "weights": weights}
        return sampler.dataset(
            columns,
            lambda row: (row["features"], row["labels"], row["weights"]),
            lambda pairs, capacity: pairs.batch(capacity),
        )
    dataset = dataset.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if batching.fixed_shapes:
        dataset = dataset.map(pad_batch_dim(batch_size))
    return dataset.prefetch(tf.data.AUTOTUNE)
