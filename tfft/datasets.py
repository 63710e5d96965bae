"""The public data helper: texts and labels -> a tf.data pipeline for a tfft model."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfft.errors import ConfigError
from tfft.model import spec_of
from tfft.preprocess import Batching
from tfft.token_budget import check_budget_applies


def make_dataset(
    model,
    texts: Sequence,
    labels: Sequence | None = None,
    text_pairs: Sequence[str] | None = None,
    *,
    batch_size: int = 32,
    max_length: int = 128,
    training: bool = False,
    seed: int | None = None,
    batch_tokens: int | None = None,
    fixed_shapes: bool = True,
) -> tf.data.Dataset:
    """Tokenize, truncate and pad examples for a model built by :func:`tfft.build_model`.

    What ``texts`` and ``labels`` hold depends on the model's task:

    - ``classify``: texts; labels are label names (or ints/strings that name them).
    - ``regress``: texts; labels are numbers (or one list of numbers per text).
    - ``multilabel``: texts; labels are lists of label names.
    - ``ner``: lists of words; labels are lists of tags.
    - ``qa``: questions, with the contexts as ``text_pairs``; labels are SQuAD-style
      answers ``{"text": [...], "answer_start": [...]}``.

    Args:
        model: the tfft model; its backbone's tokenizer is used.
        texts: the (first) inputs.
        labels: targets for training and evaluation, or None for prediction.
        text_pairs: second segments, for sentence-pair models.
        batch_size: rows per batch.
        max_length: longest sequence in tokens, special tokens included.
        training: shuffle each epoch and bucket by length.
        seed: shuffling seed.
        batch_tokens: with ``training``, batches of at most this many token slots (rows x
            padded length) in place of ``batch_size`` rows (:mod:`tfft.token_budget`; run
            such a model without XLA).
        fixed_shapes: with ``training``, keep a bounded set of batch shapes (power-of-two
            length buckets, partial batches filled up with rows of weight 0), as
            ``jit_compile=True`` (XLA), several replicas and gradient accumulation need.
            False, for a model trained without them (what ``tfft fit`` does then): fine
            length buckets and no filler rows, so far less padding.

    Returns:
        ``(features, targets, sample_weight)`` batches, or features alone without labels.
    """
    spec = spec_of(model)
    task = spec.task_object
    budget = batch_tokens if training else None
    if budget is not None and not (isinstance(budget, int) and budget > 0):
        raise ConfigError(f"`batch_tokens` must be a positive int. Received: batch_tokens={budget!r}")
    check_budget_applies(task, budget, option="`batch_tokens`", size_option="`batch_size`")
    return task.make_dataset(
        model,
        texts,
        labels,
        text_pairs,
        batch_size=batch_size,
        max_length=max_length,
        training=training,
        seed=seed,
        batching=Batching(batch_tokens=budget, fixed_shapes=fixed_shapes),
    )
