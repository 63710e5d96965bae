"""Texts and labels -> a tf.data pipeline for a tfft model: the public helper
(:func:`make_dataset`), and how ``tfft fit`` chooses its batches (:func:`run_dataset`:
XLA, bounded shapes, token budget, Poisson sampling)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import tensorflow as tf

from tfft.config import RunConfig
from tfft.errors import ConfigError
from tfft.model import spec_of
from tfft.preprocess import Batching, PoissonSampler
from tfft.token_budget import check_budget_applies

logger = logging.getLogger(__name__)


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
            False, for a model trained without them (what ``tfft fit`` does then): no filler
            rows, each batch padded to the fine length grid, rows grouped by length as the task
            chooses (:attr:`tfft.preprocess.Batching.groups`), so far less padding.

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


def training_compilation(config: RunConfig, chosen, model) -> tuple[bool, bool]:
    """``(xla, fixed_shapes)`` for training ``model`` under the runtime ``chosen``
    (:class:`tfft.execution.Runtime`): XLA as the runtime chose it, but off when it was not
    asked for and the backbone kind does not compile well by default
    (``backbone.xla_by_default``); ``fixed_shapes`` from :func:`fixed_training_shapes`.
    """
    xla = chosen.xla
    if config.runtime.xla is None and not model.tfft_spec.backbone.xla_by_default:
        xla = False
    return xla, fixed_training_shapes(config, xla, chosen.replicas)


def fixed_training_shapes(config: RunConfig, xla: bool, replicas: int) -> bool:
    """Whether training batches must keep a bounded set of shapes (:class:`tfft.preprocess.Batching`).

    They must with XLA (one compilation per shape), on several replicas (each takes an
    equal share of every batch) and with gradient accumulation (equal micro-batches);
    otherwise fixed-size batches have no filler rows and are padded to the fine length grid.
    """
    return bool(xla) or replicas > 1 or config.train.grad_accum_steps > 1


def run_dataset(
    model,
    examples,
    config: RunConfig,
    training: bool,
    sampler: PoissonSampler | None = None,
    fixed_shapes: bool = True,
    by_length: bool = False,
) -> tf.data.Dataset:
    """Training batches of ``grad_accum_steps x batch_size`` rows (one optimizer update each),
    of at most ``batch_tokens`` token slots (:mod:`tfft.token_budget`), or Poisson-sampled by
    ``sampler`` (DP-SGD, :func:`tfft.pipeline.poisson_sampler`); evaluation batches of ``batch_size``.
    ``fixed_shapes=False`` (see :func:`fixed_training_shapes`): fixed-size training batches
    without filler rows, padded to the fine length grid, and evaluation batches on the same grid.
    ``by_length``: evaluation rows ordered by length, not input order (Keras' validation pass).

    The choice reaches the task's ``dataset`` call as one :class:`tfft.preprocess.Batching`.

    Raises:
        ConfigError: ``batch_tokens`` for a task whose batches are not token-budget batches.
    """
    accumulation = config.train.grad_accum_steps if training else 1
    task = model.tfft_spec.task_object
    budget = config.train.batch_tokens if training else None
    check_budget_applies(task, budget, option="--batch-tokens", size_option="--batch-size")
    if training:
        batching = Batching(sampler=sampler, batch_tokens=budget, fixed_shapes=fixed_shapes)
    else:
        batching = Batching(fixed_shapes=fixed_shapes, by_length=by_length) if by_length else None
    return task.dataset(
        model,
        examples,
        batch_size=config.train.batch_size * accumulation,
        max_length=config.data.max_length,
        training=training,
        seed=config.train.seed,
        config=config,
        batching=batching,
    )


def batch_tokens_runtime(config: RunConfig, runtime_config):
    """The runtime settings with ``--batch-tokens``: XLA off (token-budget batches have many
    shapes, each would be compiled), with a log line when XLA was on by default.

    Raises:
        ConfigError: ``--xla`` asked for explicitly together with ``--batch-tokens``.
    """
    budget = config.train.batch_tokens
    if budget is None:
        return runtime_config
    if runtime_config.xla:
        raise ConfigError(
            "--batch-tokens does not combine with --xla: token-budget batches come in many shapes and XLA "
            "compiles each one; use --no-xla, or --batch-size for a bounded set of shapes. "
            f"Received: batch_tokens={budget!r}, xla=True"
        )
    if runtime_config.xla is None:
        logger.info("XLA is off with --batch-tokens (batches of many shapes; --batch-size keeps XLA).")
    return dataclasses.replace(runtime_config, xla=False)
