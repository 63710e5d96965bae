"""What the sequence-level tasks (classify, regress, multilabel) share.

They read one text (or a text pair) per example from a table, pool the backbone's
features into one vector, put a dense head on it, and serve ``text[, text_pair]`` in,
task-level answers out. A subclass says how raw labels become targets, what the head
outputs, how outputs become answers (:meth:`SequenceTask.answers`, run in the serving
graph and for in-memory evaluation alike) and how answers are scored.
:func:`label_names_from_args` and :func:`per_name_lines` are helpers the subclasses share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from tfft.data import TableSpec, TextExamples, read_examples
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.preprocess import by_length, text_dataset, token_dataset
from tfft.tasks.base import Task
from tfft.tokenization import pack_segments, to_dense_inputs


class SequenceTask(Task):
    """A task with one output vector per text or text pair."""

    headerless_tables = True
    token_budget_batches = True

    # --- data ---------------------------------------------------------------------------
    def table_spec(self, config, labelled: bool) -> TableSpec:
        """Which columns to read; subclasses with several label columns override this."""
        data = config.data
        return TableSpec(
            text_column=data.text_column,
            text_pair_column=data.text_pair_column,
            label_column=data.label_column if labelled else None,
            format=data.format,
        )

    def read(
        self, source, config, *, labelled=True, option="--train", max_examples=None, extra_columns=()
    ) -> TextExamples:
        """See :meth:`Task.read`; ``extra_columns`` are read too (slice reports)."""
        spec = dataclasses.replace(self.table_spec(config, labelled), header=config.data.header())
        if extra_columns:
            spec = dataclasses.replace(spec, extra_columns=tuple(extra_columns))
        return read_examples(
            source,
            spec,
            max_examples=max_examples,
            data_dir=config.data.tfds_data_dir,
            option=option,
        )

    def examples_from_cli(self, texts, pairs) -> TextExamples:
        return TextExamples(
            texts=list(texts),
            pairs=None if pairs is None else list(pairs),
            labels=None,
            source="--text",
            rows=list(range(1, len(texts) + 1)),
        )

    def targets(self, settings: dict, examples: TextExamples) -> np.ndarray:
        """Targets of labelled examples; errors name the file and line."""
        raise NotImplementedError

    def targets_from_api(self, settings: dict, labels: Sequence) -> np.ndarray:
        """Targets from the ``labels`` argument of :func:`tfft.make_dataset`."""
        raise NotImplementedError

    def sample_weights(self, settings: dict, targets: np.ndarray, config) -> np.ndarray | None:
        """Per-example training weights (e.g. ``--class-weights auto``); None = all 1."""
        return None

    # --- model ----------------------------------------------------------------------------
    def head(self, backbone, inputs, settings, pooling, dropout):
        return self.output_layer(backbone.pooled(inputs, pooling), settings, dropout)

    def output_layer(self, features: tf.Tensor, settings: dict, dropout: float) -> tf.Tensor:
        """Dropout and a dense layer to ``len(settings["labels"])`` float32 outputs."""
        features = keras.layers.Dropout(dropout, name="head_dropout")(features)
        outputs = keras.layers.Dense(
            len(settings["labels"]),
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="classifier",
        )(features)
        return keras.layers.Activation("linear", dtype="float32", name="logits")(outputs)

    def dataset(
        self,
        model,
        examples,
        *,
        batch_size,
        max_length,
        training=False,
        seed=None,
        labelled=True,
        config=None,
        batching=None,
    ) -> tf.data.Dataset:
        settings = model.tfft_spec.settings
        targets = weights = None
        if labelled:
            targets = self.targets(settings, examples)
            if training and config is not None:
                weights = self.sample_weights(settings, targets, config)
        return self._batches(
            model,
            examples.texts,
            examples.pairs,
            targets,
            weights,
            batch_size,
            max_length,
            training,
            seed,
            batching,
        )

    def make_dataset(
        self,
        model,
        texts,
        labels,
        text_pairs,
        *,
        batch_size=32,
        max_length=128,
        training=False,
        seed=None,
        batching=None,
    ) -> tf.data.Dataset:
        targets = None if labels is None else self.targets_from_api(model.tfft_spec.settings, labels)
        if targets is not None and len(targets) != len(texts):
            raise DataError(f"`labels` has {len(targets)} entries for {len(texts)} texts.")
        return self._batches(
            model, texts, text_pairs, targets, None, batch_size, max_length, training, seed, batching
        )

    @staticmethod
    def _batches(model, texts, pairs, targets, weights, batch_size, max_length, training, seed, batching):
        spec = model.tfft_spec
        if spec.pair != (pairs is not None):
            need = "needs" if spec.pair else "takes no"
            raise DataError(f"This model {need} `text_pairs` (it was built with pair={spec.pair}).")
        if pairs is not None and len(pairs) != len(texts):
            raise DataError(f"`text_pairs` has {len(pairs)} entries for {len(texts)} texts.")
        encoder = spec.backbone.encoder
        if batching is not None:  # rows weighed as a whole: grouped on the fine grid (tfft.preprocess)
            batching = dataclasses.replace(batching, groups="fine")
        if encoder is None:
            return text_dataset(
                texts,
                pairs,
                targets,
                batch_size=batch_size,
                training=training,
                seed=seed,
                weights=weights,
                batching=batching,
            )
        return token_dataset(
            encoder.encode(texts, pairs, max_length),
            targets,
            batch_size=batch_size,
            max_length=max_length,
            pad_id=encoder.template.pad_id,
            training=training,
            seed=seed,
            weights=weights,
            batching=batching,
        )

    # --- answers and metrics ----------------------------------------------------------------
    def answers(self, settings: dict, outputs: tf.Tensor) -> dict[str, tf.Tensor]:
        """The served answers for model outputs (TF ops: runs in the serving graph)."""
        raise NotImplementedError

    def metrics(self, settings: dict, targets: np.ndarray, answers: dict[str, np.ndarray]) -> dict:
        """Final metrics from targets and answers (NumPy)."""
        raise NotImplementedError

    def row(self, settings: dict, answers: dict[str, np.ndarray], index: int) -> dict:
        """The JSON-ready prediction of example ``index``."""
        raise NotImplementedError

    def evaluate_model(self, model, examples, config) -> dict:
        # The metrics do not depend on the rows' order: rows ordered by length (characters, a
        # proxy for tokens) make batches that pad far less than the input order.
        examples = examples.select(by_length(examples.texts, examples.pairs))
        settings = model.tfft_spec.settings
        targets = self.targets(settings, examples)
        data = self.dataset(
            model,
            examples,
            batch_size=config.train.batch_size,
            max_length=config.data.max_length,
            labelled=False,
        )
        outputs = model.predict(data, verbose=0)
        answers = {k: _numpy(v) for k, v in self.answers(settings, tf.constant(outputs)).items()}
        return self.metrics(settings, targets, answers)

    # --- export ---------------------------------------------------------------------------
    def serving(self, model, max_length) -> tf.Module:
        return SequenceServing(model, max_length, self)

    def evaluate_export(self, exported, examples, batch_size=64) -> dict:
        targets = self.targets(exported.settings, examples)
        answers = exported.run_sequence(examples.texts, examples.pairs, batch_size)
        return self.metrics(exported.settings, targets, answers)

    def slice_inputs(self, exported, examples, batch_size=64):
        settings = exported.settings
        targets = self.targets(settings, examples)
        answers = exported.run_sequence(examples.texts, examples.pairs, batch_size)
        return targets, answers, lambda rows, answered: self.metrics(settings, rows, answered)

    def predict_export(self, exported, examples, batch_size=64) -> Iterator[dict]:
        answers = exported.run_sequence(examples.texts, examples.pairs, batch_size)
        for index, text in enumerate(examples.texts):
            row = {"text": text}
            if examples.pairs is not None:
                row["text_pair"] = examples.pairs[index]
            row.update(self.row(exported.settings, answers, index))
            yield row


def _numpy(value: tf.Tensor) -> np.ndarray:
    array = value.numpy()
    if array.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array) if array.size else array
    return array


def label_names_from_args(
    label_names: Sequence[str] | None,
    num_labels: int | None,
    *,
    minimum: int = 1,
    default_names: Callable[[int], list[str]] | None = None,
    counting: str = "",
) -> list[str]:
    """The output names of a :func:`tfft.build_model` call: ``label_names``, or names made up
    for ``num_labels`` outputs.

    Args:
        label_names: The names given, if any.
        num_labels: The number of outputs given, if any; must match ``label_names``.
        minimum: The fewest outputs ``num_labels`` may ask for.
        default_names: ``count -> names`` when only ``num_labels`` is given; default
            ``"0"``, ``"1"``, ...
        counting: What ``num_labels`` counts, for the message, e.g. ``" (the number of targets)"``.

    Raises:
        ConfigError: ``num_labels`` is missing or too small without ``label_names``, or
            does not match them.

    >>> label_names_from_args(None, 3)
    ['0', '1', '2']
    >>> label_names_from_args(["a", "b"], 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfft.errors.ConfigError: `num_labels` (3) does not match `label_names` (2 names). Received: ...
    """
    if label_names is None:
        if num_labels is None or isinstance(num_labels, bool) or num_labels < minimum:
            raise ConfigError(
                f"`num_labels`{counting} must be at least {minimum}. Received: num_labels={num_labels!r}"
            )
        return default_names(num_labels) if default_names else [str(index) for index in range(num_labels)]
    if num_labels is not None and num_labels != len(label_names):
        raise ConfigError(
            f"`num_labels` ({num_labels}) does not match `label_names` ({len(label_names)} names). "
            f"Received: label_names={list(label_names)!r}"
        )
    return list(label_names)


def per_name_lines(per_name: dict[str, dict]) -> list[str]:
    """``tfft evaluate`` lines of per-class (or per-label) precision, recall, F1 and support."""
    return [
        f"  {name:<12} precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
        f"f1 {scores['f1']:.4f}  support {scores['support']}"
        for name, scores in per_name.items()
    ]


class SequenceServing(tf.Module):
    """The serving graph of a sequence-level task: tokenizer (when in-graph) + model + answers.

    Signatures: ``serving_default`` takes ``text`` (and ``text_pair`` for pair models),
    tf.string ``[batch]``; ``predict_ids`` takes ``input_ids``, ``attention_mask``,
    ``token_type_ids`` (int32 ``[batch, length]``). Both return the task's answers. A
    backbone whose tokenizer cannot run in the graph (e.g. BPE dropout) gets ``predict_ids``
    only, as ``serving_default``.
    """

    def __init__(self, model, max_length: int, task: SequenceTask):
        super().__init__(name="tfft_serving")
        spec = model.tfft_spec
        self.model = model
        self.max_length = max_length
        self.pair = spec.pair
        self._task = task
        self._settings = spec.settings
        self.label_names = tf.constant(list(spec.label_names) or [""])
        encoder = spec.backbone.encoder
        self.reads_text = encoder is None
        self.tokenizer = None if encoder is None else encoder.graph_tokenizer()
        self.template = None if encoder is None else encoder.template

    @property
    def in_graph_tokenizer(self) -> bool:
        return self.reads_text or self.tokenizer is not None

    def _answers(self, features: dict) -> dict:
        outputs = tf.cast(self.model(features, training=False), tf.float32)
        return self._task.answers(self._settings, outputs)

    def from_ids(self, input_ids, attention_mask, token_type_ids) -> dict:
        return self._answers(
            {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        )

    def from_text(self, text, text_pair=None) -> dict:
        if self.reads_text:
            features = {"text": text} if text_pair is None else {"text": text, "text_pair": text_pair}
            return self._answers(features)
        first = self.tokenizer.tokenize(text)
        second = None if text_pair is None else self.tokenizer.tokenize(text_pair)
        ids, types = pack_segments(first, second, self.template, self.max_length)
        return self._answers(to_dense_inputs(ids, types, self.template.pad_id))

    def signatures(self) -> dict:
        """The concrete functions to save, by signature name."""
        text = tf.TensorSpec([None], tf.string, name="text")
        signatures = {}
        if self.in_graph_tokenizer:
            if self.pair:
                pair = tf.TensorSpec([None], tf.string, name="text_pair")
                function = tf.function(lambda text, text_pair: self.from_text(text, text_pair))
                signatures["serving_default"] = function.get_concrete_function(text, pair)
            else:
                function = tf.function(lambda text: self.from_text(text))
                signatures["serving_default"] = function.get_concrete_function(text)
        if not self.reads_text:
            ids = [
                tf.TensorSpec([None, None], tf.int32, name=name)
                for name in ("input_ids", "attention_mask", "token_type_ids")
            ]
            function = tf.function(
                lambda input_ids, attention_mask, token_type_ids: self.from_ids(
                    input_ids, attention_mask, token_type_ids
                )
            )
            signatures["predict_ids"] = function.get_concrete_function(*ids)
            if "serving_default" not in signatures:
                signatures["serving_default"] = signatures["predict_ids"]
        return signatures
