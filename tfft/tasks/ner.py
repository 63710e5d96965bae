"""Named-entity recognition: one tag per word (IOB1, IOB2 or BIOES), entities as text spans.

Words are tokenized one by one; the first piece of each word carries the word's tag and
the other pieces are left out of the loss (label -100, weight 0). Sentences longer than
``max_length`` pieces lose their last words; those words are counted and reported
(``truncated_words``) rather than dropped silently, and get no tag.

Entities are read from the tags with the chunking rules of seqeval's default mode (the
conlleval rules), in Python (:func:`chunks`) and in TensorFlow (:func:`chunk_starts`) for
exported models, so that exports, ``tfft predict`` and the metrics agree on what an entity
is. Metrics are seqeval's entity-level precision, recall and F1, overall (micro) and per
entity type.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfft.data import TableSpec, read_examples
from tfft.data.conll import (
    OUTSIDE,
    TaggedExamples,
    detect_scheme,
    entity_types,
    parse_tag,
    read_tagged,
    sort_tags,
    split_words,
    tag_ids,
)
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.preprocess import _pad_batch_dim, _pad_length_to_bucket, _ragged, bucket_lengths, training_steps
from tfft.tasks.base import Task, check_no_options
from tfft.tasks.classify import WeightedMeanLoss
from tfft.tokenization import SequenceTemplate, TextEncoder, pack_segments, to_dense_inputs
from tfft.words import split_words as split_words_graph

logger = logging.getLogger(__name__)

IGNORE = -100  # label of tokens that are not the first piece of a word
# Prefix codes used in the graph.
PREFIX_CODES = {OUTSIDE: 0, "B": 1, "I": 2, "E": 3, "S": 4}


# --- words -> pieces ------------------------------------------------------------------------------


@dataclasses.dataclass
class PackedWords:
    """Sentences as model inputs, with the token position of each word's first piece.

    Attributes:
        input_ids: token ids of each sentence, special tokens included.
        token_type_ids: all zeros, one per token.
        positions: for each word, the position of its first piece in ``input_ids``; -1
            when the word was cut by truncation or has no pieces.
        truncated: for each sentence, how many words were cut by ``max_length``.
    """

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    positions: list[np.ndarray]
    truncated: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids], dtype=np.int64)

    def token_labels(
        self, tag_ids: Sequence[Sequence[int]], tag_weights: np.ndarray | None = None
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-token labels and loss weights.

        Args:
            tag_ids: the tag id of each word of each sentence.
            tag_weights: a loss weight per tag id (``--class-weights``); None weighs all 1.

        Returns:
            ``(labels, weights)``: for each sentence an int32 array with the word's tag id at
            the first piece of each kept word and -100 elsewhere, and a float32 array with
            the tag's weight there and 0 elsewhere.
        """
        labels, weights = [], []
        for ids, positions, tags in zip(self.input_ids, self.positions, tag_ids, strict=True):
            row = np.full(len(ids), IGNORE, np.int32)
            weight = np.zeros(len(ids), np.float32)
            kept = positions >= 0
            tags = np.asarray(tags, np.int32)
            row[positions[kept]] = tags[kept]
            weight[positions[kept]] = 1.0 if tag_weights is None else tag_weights[tags[kept]]
            labels.append(row)
            weights.append(weight)
        return labels, weights


def word_budget(template: SequenceTemplate, max_length: int) -> int:
    """Pieces of words that fit in ``max_length`` tokens beside the special tokens.

    Raises:
        ConfigError: ``max_length`` leaves no room for any piece.
    """
    budget = max_length - template.num_special(False)
    if budget < 1:
        raise ConfigError(
            f"`max_length` must leave room for words beside the {template.num_special(False)} special "
            f"tokens. Received: max_length={max_length}"
        )
    return budget


def pack_words(encoder: TextEncoder, sentences: Sequence[Sequence[str]], max_length: int) -> PackedWords:
    """Tokenize pre-split sentences word by word and pack them with the special tokens.

    Pieces are kept up to the budget (``max_length`` less the special tokens); a word is
    kept when its first piece fits (its later pieces may be cut), otherwise it counts as
    truncated.

    Args:
        encoder: the backbone's text encoder (:meth:`~TextEncoder.tokenize_words`).
        sentences: the words of each sentence.
        max_length: the longest packed sequence.

    Returns:
        The packed sentences.
    """
    template = encoder.template
    budget = word_budget(template, max_length)
    flat = [word for words in sentences for word in words]
    pieces = encoder.tokenize_words(flat)
    prefix = np.asarray(template.prefix, np.int32)
    suffix = np.asarray(template.suffix, np.int32)
    ids_out, types_out, positions_out = [], [], []
    truncated = np.zeros(len(sentences), np.int64)
    start = 0
    for index, words in enumerate(sentences):
        sentence = pieces[start : start + len(words)]
        start += len(words)
        counts = np.array([len(p) for p in sentence], np.int64)
        offsets = np.cumsum(counts) - counts
        kept = (counts > 0) & (offsets < budget)
        truncated[index] = int(np.sum((counts > 0) & (offsets >= budget)))
        body = np.concatenate(sentence).astype(np.int32)[:budget] if sentence else np.zeros(0, np.int32)
        ids = np.concatenate([prefix, body, suffix])
        ids_out.append(ids)
        types_out.append(np.zeros_like(ids))
        positions_out.append(np.where(kept, offsets + len(prefix), -1).astype(np.int64))
    return PackedWords(ids_out, types_out, positions_out, truncated)


def word_predictions(probabilities: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tag ids and scores of each word from one sentence's token probabilities.

    Args:
        probabilities: ``[tokens, tags]`` softmax outputs (padding allowed at the end).
        positions: the first-piece position of each word (-1: no prediction).

    Returns:
        ``(tag_ids, scores)``; -1 and 0.0 for words without a prediction.
    """
    kept = positions >= 0
    chosen = probabilities[np.where(kept, positions, 0)]
    tag_ids = np.where(kept, np.argmax(chosen, axis=-1), -1)
    scores = np.where(kept, np.max(chosen, axis=-1), 0.0)
    return tag_ids.astype(np.int64), scores.astype(np.float32)


# --- entities -------------------------------------------------------------------------------------


def chunks(tags: Sequence[str | None]) -> list[tuple[str, int, int]]:
    """Entities in a tag sequence as ``(type, first word, last word)``.

    The rules of seqeval's default mode (``get_entities``, as conlleval): an entity starts
    at a ``B-``/``S-`` tag, at an ``I-``/``E-`` tag after ``O``, ``E-`` or ``S-``, or where the
    type changes, and runs over the following tagged words that start nothing. This reads
    IOB1, IOB2 and BIOES alike. ``None`` (a word without a prediction) counts as ``O``.

    Example:
        >>> chunks(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"])
        [('PER', 0, 1), ('LOC', 3, 3), ('LOC', 4, 4)]
    """
    found: list[tuple[str, int, int]] = []
    previous_prefix, previous_type = OUTSIDE, ""
    for index, tag in enumerate(tags):
        prefix, kind = parse_tag(tag or OUTSIDE)
        if prefix != OUTSIDE:
            starts = prefix in ("B", "S") or previous_prefix in (OUTSIDE, "E", "S") or previous_type != kind
            if starts:
                found.append((kind, index, index))
            else:
                found[-1] = (kind, found[-1][1], index)
        previous_prefix, previous_type = prefix, kind
    return found


def entities(
    tags: Sequence[str | None],
    scores: Sequence[float],
    text: str,
    spans: Sequence[tuple[int, int]],
) -> list[dict]:
    """Entities of one sentence as JSON-ready dicts with character offsets.

    Args:
        tags: the tag of each word (None: no prediction).
        scores: the probability of each word's tag.
        text: the sentence's text.
        spans: ``(start, end)`` character offsets of each word in ``text``.

    Returns:
        ``{"text", "type", "start", "end", "score"}`` per entity; ``text[start:end]`` is
        the entity's text and ``score`` the mean probability of its words' tags.
    """
    out = []
    for kind, first, last in chunks(tags):
        start, end = spans[first][0], spans[last][1]
        out.append(
            {
                "text": text[start:end],
                "type": kind,
                "start": int(start),
                "end": int(end),
                "score": float(np.mean(scores[first : last + 1])),
            }
        )
    return out


def entity_metrics(true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]) -> dict:
    """Entity-level precision, recall and F1 as seqeval computes them (default mode).

    Args:
        true_tags: the gold tags of each sentence.
        predicted_tags: the predicted tags, the same shape (``O`` for words without a
            prediction).

    Returns:
        ``{"precision", "recall", "f1", "token_accuracy", "entities", "per_type": {TYPE:
        {"precision", "recall", "f1", "support"}}}``; overall figures are micro averages.
    """
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    true_tags = [list(tags) for tags in true_tags]
    predicted_tags = [list(tags) for tags in predicted_tags]
    any_entity = any(chunks(tags) for tags in true_tags + predicted_tags)
    report = (
        classification_report(true_tags, predicted_tags, output_dict=True, zero_division=0)
        if any_entity
        else {}
    )
    per_type = {
        kind: {
            "precision": float(values["precision"]),
            "recall": float(values["recall"]),
            "f1": float(values["f1-score"]),
            "support": int(values["support"]),
        }
        for kind, values in sorted(report.items())
        if not kind.endswith(" avg")
    }
    return {
        "precision": float(precision_score(true_tags, predicted_tags, zero_division=0)),
        "recall": float(recall_score(true_tags, predicted_tags, zero_division=0)),
        "f1": float(f1_score(true_tags, predicted_tags, zero_division=0)),
        "token_accuracy": float(accuracy_score(true_tags, predicted_tags)) if true_tags else 0.0,
        "entities": int(sum(values["support"] for values in per_type.values())),
        "per_type": per_type,
    }


def class_weights(counts: dict[str, int], tag_names: Sequence[str]) -> np.ndarray:
    """Inverse-frequency loss weights of the tags: ``total / (tags * count)``.

    A tag that never occurs gets weight 1.
    """
    total = sum(counts.get(tag, 0) for tag in tag_names)
    weights = [total / (len(tag_names) * counts[tag]) if counts.get(tag, 0) > 0 else 1.0 for tag in tag_names]
    return np.asarray(weights, np.float32)


# --- the same in TensorFlow -----------------------------------------------------------------------


def tag_tables(tag_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Prefix code (:data:`PREFIX_CODES`) and type id of each tag, and the type names.

    ``O`` has type id -1.
    """
    types = entity_types(tag_names)
    prefixes, kinds = [], []
    for tag in tag_names:
        prefix, kind = parse_tag(tag)
        prefixes.append(PREFIX_CODES[prefix])
        kinds.append(types.index(kind) if kind else -1)
    return np.asarray(prefixes, np.int32), np.asarray(kinds, np.int32), types


def _previous(values: tf.Tensor, fill: int) -> tf.Tensor:
    """``values`` shifted one word to the right along axis 1, ``fill`` first."""
    first = tf.fill([tf.shape(values)[0], 1], tf.constant(fill, values.dtype))
    return tf.concat([first, values], axis=1)[:, :-1]


def chunk_starts(prefix: tf.Tensor, kind: tf.Tensor) -> tf.Tensor:
    """Where entities start, by the rules of :func:`chunks`, on dense ``[batch, words]`` codes.

    Args:
        prefix: int32 prefix codes (:data:`PREFIX_CODES`; 0 = ``O``, padding must be 0).
        kind: int32 type ids (-1 for ``O``).

    Returns:
        bool ``[batch, words]``.
    """
    previous_prefix = _previous(prefix, 0)
    previous_kind = _previous(kind, -1)
    tagged = prefix != 0
    opens = (prefix == 1) | (prefix == 4)
    after_end = (previous_prefix == 0) | (previous_prefix == 3) | (previous_prefix == 4)
    return tagged & (opens | after_end | (previous_kind != kind))


def chunk_spans(prefix: tf.Tensor, kind: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Entity starts and, at each start, the entity's last word.

    Only static shapes and segment ops: runs under XLA (the training metric) too.

    Args:
        prefix: int32 ``[batch, words]`` prefix codes (0 = ``O`` and padding).
        kind: int32 ``[batch, words]`` type ids.

    Returns:
        ``(starts, last)``: bool ``[batch, words]`` and int32 ``[batch, words]`` (the
        index of the entity's last word at each start, -1 elsewhere).
    """
    starts = chunk_starts(prefix, kind)
    size = tf.size(prefix)
    flat_starts = tf.reshape(starts, [-1])
    flat_tagged = tf.reshape(prefix != 0, [-1])
    # Every tagged word belongs to the entity begun at the latest start (a row's first
    # tagged word is always a start); untagged words go to an extra, unused segment.
    chunk = tf.cumsum(tf.cast(flat_starts, tf.int32)) - 1
    segment = tf.where(flat_tagged, chunk, size)
    position = tf.reshape(tf.tile(tf.range(tf.shape(prefix)[1])[None, :], [tf.shape(prefix)[0], 1]), [-1])
    ends = tf.math.unsorted_segment_max(position, segment, size + 1)
    last = tf.where(flat_starts, tf.gather(ends, tf.maximum(chunk, 0)), -1)
    return starts, tf.reshape(last, tf.shape(prefix))


def tag_codes(tag_ids: tf.Tensor, valid: tf.Tensor, prefixes: tf.Tensor, kinds: tf.Tensor):
    """Prefix codes and type ids of tag ids; words that are not ``valid`` read as ``O``."""
    safe = tf.maximum(tag_ids, 0)
    prefix = tf.where(valid, tf.gather(prefixes, safe), 0)
    kind = tf.where(valid, tf.gather(kinds, safe), -1)
    return prefix, kind


class EntityF1(keras.metrics.Metric):
    """Entity-level F1 (micro, seqeval default rules) from token labels and logits.

    Only tokens with a label (>= 0; the first piece of each word) count; they are read
    in order as the sentence's word tags.

    Args:
        tag_names: the tags, in id order.
    """

    def __init__(self, tag_names: Sequence[str], name: str = "entity_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.tag_names = list(tag_names)
        prefixes, kinds, _ = tag_tables(self.tag_names)
        self._prefixes = tf.constant(prefixes)
        self._kinds = tf.constant(kinds)
        self.true_positives = self.add_weight(name="true_positives", initializer="zeros", dtype=tf.float32)
        self.predicted = self.add_weight(name="predicted", initializer="zeros", dtype=tf.float32)
        self.actual = self.add_weight(name="actual", initializer="zeros", dtype=tf.float32)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.cast(y_true, tf.int32)
        labelled = y_true >= 0
        if sample_weight is not None:
            labelled &= tf.reshape(tf.cast(sample_weight, tf.float32), tf.shape(y_true)) > 0
        predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
        # Move the labelled tokens (one per word) to the front of each row, in order: a
        # static-shape compaction (a sort), so the metric also runs under XLA.
        width = tf.shape(y_true)[1]
        position = tf.range(width)[None, :]
        order = tf.argsort(tf.where(labelled, position, position + width), axis=1, stable=True)
        labelled = tf.gather(labelled, order, batch_dims=1)
        spans = []
        for tags in (y_true, predicted):
            prefix, kind = tag_codes(
                tf.gather(tags, order, batch_dims=1), labelled, self._prefixes, self._kinds
            )
            starts, last = chunk_spans(prefix, kind)
            spans.append((starts, last, kind))
        (true_starts, true_last, true_kind), (pred_starts, pred_last, pred_kind) = spans
        match = true_starts & pred_starts & (true_last == pred_last) & (true_kind == pred_kind)
        self.true_positives.assign_add(tf.reduce_sum(tf.cast(match, tf.float32)))
        self.predicted.assign_add(tf.reduce_sum(tf.cast(pred_starts, tf.float32)))
        self.actual.assign_add(tf.reduce_sum(tf.cast(true_starts, tf.float32)))

    def result(self):
        return tf.math.divide_no_nan(2.0 * self.true_positives, self.predicted + self.actual)

    def reset_state(self):
        for variable in (self.true_positives, self.predicted, self.actual):
            variable.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "tag_names": self.tag_names}


# --- the task -------------------------------------------------------------------------------------


def token_loss() -> keras.losses.Loss:
    """Cross-entropy of each word's first piece, averaged over the labelled tokens.

    Tokens labelled -100 (later pieces, special tokens, padding) have weight 0 and their
    label is clamped so the loss stays finite.
    """

    def per_token(labels, logits):
        labels = tf.maximum(tf.cast(labels, tf.int32), 0)
        return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)

    return WeightedMeanLoss(per_token, name="token_crossentropy")


def _padding_values(pad_id: int):
    return ({"input_ids": pad_id, "attention_mask": 0, "token_type_ids": 0}, IGNORE, 0.0)


def token_label_dataset(
    packed: PackedWords,
    labels: list[np.ndarray] | None,
    weights: list[np.ndarray] | None,
    *,
    batch_size: int,
    max_length: int,
    pad_id: int,
    training: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of packed sentences with per-token labels and weights.

    Like :func:`tfft.preprocess.token_dataset` (length buckets, fixed training batch size,
    evaluation and prediction in input order), with one label and one weight per token.

    Returns:
        ``(features, labels, weights)`` batches (int32 and float32 ``[batch, length]``
        targets), or features alone when ``labels`` is None.
    """
    buckets = bucket_lengths(max_length)
    ids = _ragged(packed.input_ids)
    types = _ragged(packed.token_type_ids)

    def features(i, t):
        return {"input_ids": i, "attention_mask": tf.ones_like(i), "token_type_ids": t}

    if labels is None:
        dataset = tf.data.Dataset.from_tensor_slices((ids, types)).map(features)
        dataset = dataset.padded_batch(batch_size, padding_values=_padding_values(pad_id)[0])
        return dataset.map(lambda f: _pad_length_to_bucket(buckets)(f)[0]).prefetch(tf.data.AUTOTUNE)

    label_rows = _ragged(labels)
    weight_rows = tf.RaggedTensor.from_row_lengths(
        np.concatenate(weights).astype(np.float32) if weights else np.zeros([0], np.float32),
        [len(row) for row in weights],
    )
    dataset = tf.data.Dataset.from_tensor_slices((ids, types, label_rows, weight_rows))
    dataset = dataset.map(lambda i, t, y, w: (features(i, t), y, w))
    padding = _padding_values(pad_id)
    if training:
        dataset = dataset.shuffle(len(packed), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=lambda f, y, w: tf.shape(f["input_ids"])[0],
            bucket_boundaries=[length + 1 for length in buckets],
            bucket_batch_sizes=[batch_size] * (len(buckets) + 1),
            padding_values=padding,
            pad_to_bucket_boundary=True,
        )
        # Fixed batch size for XLA; the filler rows have weight 0 on every token.
        dataset = dataset.map(_pad_batch_dim(batch_size))
        dataset = dataset.apply(
            tf.data.experimental.assert_cardinality(training_steps(packed, batch_size, buckets))
        )
    else:
        dataset = dataset.padded_batch(batch_size, padding_values=padding)

        def pad_length(f, y, w):
            length = tf.shape(f["input_ids"])[1]
            bounds = tf.constant(buckets, tf.int32)
            extra = bounds[tf.argmax(tf.cast(bounds >= length, tf.int32))] - length
            f = {name: tf.pad(value, [[0, 0], [0, extra]]) for name, value in f.items()}
            y = tf.pad(y, [[0, 0], [0, extra]], constant_values=IGNORE)
            return f, y, tf.pad(w, [[0, 0], [0, extra]])

        dataset = dataset.map(pad_length)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _check_settings(tag_names: Sequence[str], where: str) -> list[str]:
    names = list(tag_names)
    if not names or isinstance(tag_names, str):
        raise ConfigError(f"{where} must be a non-empty list of tags. Received: {tag_names!r}")
    for tag in names:
        try:
            if not isinstance(tag, str):
                raise ValueError(tag)
            parse_tag(tag)
        except ValueError:
            raise ConfigError(
                f"{where}: {tag!r} is not a tag; tags are O or B-, I-, E-, S- followed by a type "
                f"(IOB1, IOB2, BIOES). Received: {names!r}"
            ) from None
    duplicates = sorted({tag for tag in names if names.count(tag) > 1})
    if duplicates:
        raise ConfigError(f"{where}: tags must be unique. Received duplicates: {', '.join(duplicates)}")
    if not entity_types(names):
        raise ConfigError(f"{where}: no entity tags (only O); NER needs at least one B-/I-/E-/S- tag.")
    return names


class NerTask(Task):
    """``--task ner``: one tag per word, entity-level metrics, entities with character offsets.

    Data: CoNLL files or JSON Lines with ``tokens`` and ``tags`` (``--tag-column`` for
    multi-column CoNLL files); for prediction also raw text (``--text``, or a CSV/TSV/JSON
    Lines column ``--text-column``), split into words by
    :func:`tfft.data.conll.split_words`.

    Settings: ``labels`` (the tags, id order), ``scheme`` (IOB1, IOB2 or BIOES),
    ``tag_column``, ``tokens_field``, ``tags_field``.

    Export signatures (see :class:`NerServing`): ``serving_default`` (text in, entities
    out), ``predict_words`` (pre-split words in, per-word tags out) and ``predict_ids``.
    """

    name = "ner"
    default_monitor = "val_entity_f1"
    headline = ("examples", "precision", "recall", "f1", "truncated_words")
    token_level = True

    # --- data ---------------------------------------------------------------------------
    def read(self, source, config, *, labelled=True, option="--train", max_examples=None):
        file_format = config.data.format
        source = str(source)
        suffix = Path(source).suffix.lower()
        if file_format is None:
            if suffix in (".csv", ".tsv", ".tab"):
                file_format = "tsv" if suffix != ".csv" else "csv"
            elif suffix in (".jsonl", ".json", ".ndjson"):
                file_format = "jsonl"
            else:
                file_format = "conll"
        if file_format not in ("conll", "jsonl", "csv", "tsv"):
            raise ConfigError(
                f"--task ner reads CoNLL or JSON Lines files (csv/tsv text columns for prediction). "
                f"Received: format={file_format!r}"
            )
        if file_format in ("csv", "tsv") or (
            file_format == "jsonl" and not labelled and not _has_field(source, config.task.tokens_field)
        ):
            if labelled:
                raise ConfigError(
                    f"{source}: tagged NER data must be CoNLL or JSON Lines ({config.task.tokens_field}/"
                    f"{config.task.tags_field} lists), not {file_format}."
                )
            texts = read_examples(
                source,
                TableSpec(text_column=config.data.text_column, format=file_format),
                max_examples=max_examples,
                option=option,
            )
            return TaggedExamples.from_texts(texts.texts, texts.source, texts.rows)
        return read_tagged(
            source,
            file_format=file_format,
            labelled=labelled,
            tag_column=-1 if config.task.tag_column is None else config.task.tag_column,
            tokens_field=config.task.tokens_field,
            tags_field=config.task.tags_field,
            max_examples=max_examples,
            option=option,
        )

    def settings_from_data(self, train, config) -> dict:
        if config.data.text_pair_column is not None:
            raise ConfigError("--task ner tags single sentences; --text-pair-column does not apply.")
        tags = sort_tags(train.tag_counts())
        if not entity_types(tags):
            raise DataError(f"{train.source}: every tag is O; NER needs entity tags (B-PER, I-LOC, ...).")
        return {
            "labels": tags,
            "scheme": detect_scheme(train.tags),
            "tag_column": config.task.tag_column,
            "tokens_field": config.task.tokens_field,
            "tags_field": config.task.tags_field,
        }

    def settings_from_args(self, label_names, num_labels, options) -> dict:
        check_no_options(self.name, options)
        if label_names is None:
            raise ConfigError(
                "task='ner' needs `label_names`: the tags, e.g. ['O', 'B-PER', 'I-PER']. "
                f"Received: num_labels={num_labels!r}"
            )
        names = _check_settings(label_names, "`label_names`")
        if num_labels is not None and num_labels != len(names):
            raise ConfigError(
                f"`num_labels` ({num_labels}) does not match `label_names` ({len(names)} tags). "
                f"Received: label_names={names!r}"
            )
        scheme = "BIOES" if any(parse_tag(tag)[0] in ("E", "S") for tag in names) else "IOB2"
        return {"labels": names, "scheme": scheme}

    def examples_from_cli(self, texts, pairs) -> TaggedExamples:
        if pairs is not None:
            raise ConfigError("--task ner tags single sentences; --text-pair does not apply.")
        return TaggedExamples.from_texts(list(texts), source="--text")

    # --- model ----------------------------------------------------------------------------
    def head(self, backbone, inputs, settings, pooling, dropout):
        hidden = backbone.sequence(inputs)
        hidden = keras.layers.Dropout(dropout, name="head_dropout")(hidden)
        logits = keras.layers.Dense(
            len(settings["labels"]),
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="tagger",
        )(hidden)
        return keras.layers.Activation("linear", dtype="float32", name="logits")(logits)

    def loss(self, spec):
        return token_loss()

    def train_metrics(self, spec) -> list:
        return [EntityF1(spec.label_names)]

    def _encoder(self, model) -> TextEncoder:
        encoder = model.tfft_spec.backbone.encoder
        if encoder is None:
            raise ConfigError(
                "--task ner needs a backbone with a tokenizer (--hf-model or a BERT-style --hub-url)."
            )
        return encoder

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
    ) -> tf.data.Dataset:
        settings = model.tfft_spec.settings
        encoder = self._encoder(model)
        packed = pack_words(encoder, examples.words, max_length)
        _log_truncation(packed, examples.source, max_length)
        labels = weights = None
        if labelled:
            tag_weights = None
            if training and config is not None and config.task.class_weights == "auto":
                tag_weights = class_weights(examples.tag_counts(), settings["labels"])
                shown = {
                    tag: round(float(w), 3) for tag, w in zip(settings["labels"], tag_weights, strict=True)
                }
                logger.info("Tag weights: %s", shown)
            labels, weights = packed.token_labels(tag_ids(examples, settings["labels"]), tag_weights)
        return token_label_dataset(
            packed,
            labels,
            weights,
            batch_size=batch_size,
            max_length=max_length,
            pad_id=encoder.template.pad_id,
            training=training,
            seed=seed,
        )

    def make_dataset(
        self, model, texts, labels, text_pairs, *, batch_size=32, max_length=128, training=False, seed=None
    ) -> tf.data.Dataset:
        if text_pairs is not None:
            raise DataError("task='ner' tags single sentences; `text_pairs` does not apply.")
        words = [
            [w for w, _, _ in split_words(t)] if isinstance(t, str) else [str(w) for w in t] for t in texts
        ]
        tags = None
        if labels is not None:
            if len(labels) != len(words):
                raise DataError(f"`labels` has {len(labels)} entries for {len(words)} sentences.")
            tags = [[str(tag) for tag in row] for row in labels]
            known = set(model.tfft_spec.settings["labels"])
            for index, (row_words, row_tags) in enumerate(zip(words, tags, strict=True)):
                if len(row_words) != len(row_tags):
                    raise DataError(
                        f"labels[{index}]: {len(row_tags)} tags for {len(row_words)} words; "
                        "give one tag per word."
                    )
                for position, tag in enumerate(row_tags):
                    if tag not in known:
                        raise DataError(
                            f"labels[{index}][{position}]: tag {tag!r} is not one of the model's tags: "
                            f"{', '.join(model.tfft_spec.settings['labels'])}"
                        )
        examples = TaggedExamples(words=words, tags=tags, source="labels", rows=list(range(len(words))))
        return self.dataset(
            model,
            examples,
            batch_size=batch_size,
            max_length=max_length,
            training=training,
            seed=seed,
            labelled=labels is not None,
        )

    def predict_model(self, model, examples, batch_size: int = 64, max_length: int = 128) -> list[dict]:
        """Per-word tags and scores of an in-memory model (Python tokenization).

        Returns:
            For each sentence ``{"tags": [tag or None], "scores": [...], "truncated_words": n}``.
        """
        encoder = self._encoder(model)
        names = list(model.tfft_spec.settings["labels"])
        packed = pack_words(encoder, examples.words, max_length)
        data = token_label_dataset(
            packed, None, None, batch_size=batch_size, max_length=max_length, pad_id=encoder.template.pad_id
        )
        out = []
        index = 0
        for features in data:
            logits = model.predict_on_batch(features)
            probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1).numpy()
            for row in probabilities:
                ids, scores = word_predictions(row, packed.positions[index])
                out.append(_word_row(ids, scores, names, int(packed.truncated[index])))
                index += 1
        return out

    def evaluate_model(self, model, examples, config) -> dict:
        tag_ids(examples, model.tfft_spec.settings["labels"])  # unknown tags: a clear error first
        rows = self.predict_model(model, examples, config.train.batch_size, config.data.max_length)
        return _metrics(examples, rows)

    # --- export ---------------------------------------------------------------------------
    def serving(self, model, max_length) -> tf.Module:
        return NerServing(model, max_length)

    def evaluate_export(self, exported, examples, batch_size=64) -> dict:
        tag_ids(examples, exported.settings["labels"])
        return _metrics(examples, list(_export_word_rows(exported, examples, batch_size)))

    def predict_export(self, exported, examples, batch_size=64):
        if not examples.presplit and exported.encoder is None:
            # Raw text through the graph: splitting, tokenization and entities in the export.
            for start in range(0, len(examples), batch_size):
                texts = examples.texts[start : start + batch_size]
                out = exported.loaded.signatures["serving_default"](text=tf.constant(texts, tf.string))
                out = {name: value.numpy() for name, value in out.items()}
                for row, text in enumerate(texts):
                    count = int(out["num_entities"][row])
                    found = [
                        {
                            "text": out["entity_text"][row, k].decode("utf-8"),
                            "type": out["entity_type"][row, k].decode("utf-8"),
                            "start": int(out["entity_start"][row, k]),
                            "end": int(out["entity_end"][row, k]),
                            "score": round(float(out["entity_score"][row, k]), 6),
                        }
                        for k in range(count)
                    ]
                    yield {
                        "text": text,
                        "entities": found,
                        "truncated_words": int(out["truncated_words"][row]),
                    }
            return
        for index, row in enumerate(_export_word_rows(exported, examples, batch_size)):
            found = entities(row["tags"], row["scores"], examples.texts[index], examples.spans[index])
            for entity in found:
                entity["score"] = round(entity["score"], 6)
            result = {"text": examples.texts[index]}
            if examples.presplit:
                result["words"] = examples.words[index]
                result["tags"] = [tag or "" for tag in row["tags"]]
            result.update({"entities": found, "truncated_words": row["truncated_words"]})
            yield result

    def format_metrics(self, metrics) -> list[str]:
        lines = [
            f"precision {metrics['precision']:.4f}",
            f"recall    {metrics['recall']:.4f}",
            f"f1        {metrics['f1']:.4f}",
            f"sentences {metrics['examples']}  words {metrics['words']}  entities {metrics['entities']}  "
            f"truncated words {metrics['truncated_words']}",
        ]
        for kind, scores in metrics["per_type"].items():
            lines.append(
                f"  {kind:<12} precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
                f"f1 {scores['f1']:.4f}  support {scores['support']}"
            )
        return lines


def _has_field(source: str, field_name: str) -> bool:
    """Whether the first JSON object of a JSON Lines file has ``field_name`` (best effort)."""
    try:
        with open(source, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    obj = json.loads(line)
                    return isinstance(obj, dict) and field_name in obj
    except (OSError, ValueError):
        return True  # let the tagged reader report the problem
    return True


def _log_truncation(packed: PackedWords, source: str, max_length: int) -> None:
    cut = int(packed.truncated.sum())
    if cut:
        logger.warning(
            "%s: %d words in %d sentences do not fit in max_length=%d and get no tag",
            source,
            cut,
            int(np.count_nonzero(packed.truncated)),
            max_length,
        )


def _word_row(ids: np.ndarray, scores: np.ndarray, names: Sequence[str], truncated: int) -> dict:
    return {
        "tags": [names[i] if i >= 0 else None for i in ids.tolist()],
        "scores": [float(s) for s in scores.tolist()],
        "truncated_words": truncated,
    }


def _metrics(examples: TaggedExamples, rows: list[dict]) -> dict:
    predicted = [[tag or OUTSIDE for tag in row["tags"]] for row in rows]
    metrics = entity_metrics(examples.tags, predicted)
    return {
        "examples": len(examples),
        "words": int(sum(len(words) for words in examples.words)),
        "truncated_words": int(sum(row["truncated_words"] for row in rows)),
        **metrics,
    }


def _export_word_rows(exported, examples: TaggedExamples, batch_size: int):
    """Per-word predictions of an export for pre-split (or Python-split) sentences."""
    names = list(exported.settings["labels"])
    if exported.encoder is None:
        signature = exported.loaded.signatures["predict_words"]
        for start in range(0, len(examples), batch_size):
            chunk = examples.words[start : start + batch_size]
            width = max((len(words) for words in chunk), default=0)
            words = tf.constant([list(words) + [""] * (width - len(words)) for words in chunk], tf.string)
            words = tf.reshape(words, [len(chunk), width])
            out = signature(words=words, num_words=tf.constant([len(w) for w in chunk], tf.int32))
            tags, scores, truncated = (out[k].numpy() for k in ("tags", "scores", "truncated_words"))
            for row, sentence in enumerate(chunk):
                decoded = [tags[row, k].decode("utf-8") for k in range(len(sentence))]
                yield {
                    "tags": [tag or None for tag in decoded],
                    "scores": [float(s) for s in scores[row, : len(sentence)]],
                    "truncated_words": int(truncated[row]),
                }
        return
    # The tokenizer does not run in the graph: tokenize here, run the ids signature.
    encoder = exported.encoder
    signature = exported.loaded.signatures["predict_ids"]
    for start in range(0, len(examples), batch_size):
        chunk = examples.words[start : start + batch_size]
        packed = pack_words(encoder, chunk, exported.max_length)
        length = int(packed.lengths().max())

        def padded(rows, value):
            return tf.constant(
                np.stack([np.pad(row, (0, length - len(row)), constant_values=value) for row in rows]),
                tf.int32,
            )

        out = signature(
            input_ids=padded(packed.input_ids, encoder.template.pad_id),
            attention_mask=padded([np.ones_like(row) for row in packed.input_ids], 0),
            token_type_ids=padded(packed.token_type_ids, 0),
        )
        probabilities = out["probabilities"].numpy()
        for row in range(len(chunk)):
            ids, scores = word_predictions(probabilities[row], packed.positions[row])
            yield _word_row(ids, scores, names, int(packed.truncated[row]))


class NerServing(tf.Module):
    """The serving graph of an NER model.

    Signatures (when the tokenizer runs in the graph):

    - ``serving_default``: ``text`` tf.string ``[batch]`` -> ``entity_text``,
      ``entity_type`` (tf.string), ``entity_start``, ``entity_end`` (int32 character
      offsets, end exclusive), ``entity_score`` (float32, the mean probability of the
      entity's word tags), all ``[batch, max_entities]`` and padded with ``""`` / -1 / 0;
      ``num_entities`` and ``truncated_words`` (int32 ``[batch]``: words cut by
      ``max_length``, which get no tag).
    - ``predict_words``: ``words`` tf.string ``[batch, max_words]`` (padded with anything)
      and ``num_words`` int32 ``[batch]`` -> ``tags`` (tf.string ``[batch, max_words]``,
      ``""`` for padding and truncated words), ``scores`` (float32) and ``truncated_words``.
    - ``predict_ids``: ``input_ids``, ``attention_mask``, ``token_type_ids`` (int32
      ``[batch, length]``) -> ``probabilities`` (float32 ``[batch, length, tags]``) and
      ``tag_ids`` (int32 ``[batch, length]``). Byte-level BPE models have only this one
      (also as ``serving_default``); ``tfft predict`` tokenizes for them in Python.
    """

    def __init__(self, model, max_length: int):
        super().__init__(name="tfft_ner_serving")
        spec = model.tfft_spec
        self.model = model
        self.max_length = max_length
        encoder = spec.backbone.encoder
        if encoder is None:
            raise ConfigError(
                "--task ner needs a backbone with a tokenizer (--hf-model or a BERT-style --hub-url)."
            )
        self.tokenizer = encoder.graph_tokenizer()
        self.template = encoder.template
        self.budget = word_budget(self.template, max_length)
        prefixes, kinds, types = tag_tables(spec.settings["labels"])
        self.tag_names = tf.constant(list(spec.settings["labels"]))
        self.type_names = tf.constant(types)
        self.prefixes = tf.constant(prefixes)
        self.kinds = tf.constant(kinds)

    @property
    def in_graph_tokenizer(self) -> bool:
        return self.tokenizer is not None

    def _probabilities(self, features: dict) -> tf.Tensor:
        return tf.nn.softmax(tf.cast(self.model(features, training=False), tf.float32), axis=-1)

    def from_ids(self, input_ids, attention_mask, token_type_ids) -> dict:
        probabilities = self._probabilities(
            {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        )
        return {
            "probabilities": probabilities,
            "tag_ids": tf.argmax(probabilities, axis=-1, output_type=tf.int32),
        }

    def word_tags(self, words: tf.RaggedTensor):
        """Tag ids (-1: none), scores and kept flags ``[batch, max_words]``; truncated counts."""
        splits = words.row_splits
        pieces = self.tokenizer.tokenize(words.flat_values)  # [words, (pieces)]
        counts = tf.cast(pieces.row_lengths(), tf.int64)
        ends = tf.cumsum(counts)
        before_row = tf.gather(tf.concat([[0], ends], axis=0), splits[:-1])
        offsets = ends - counts - tf.repeat(before_row, words.row_lengths())
        has_pieces = counts > 0
        kept = has_pieces & (offsets < self.budget)
        truncated = tf.RaggedTensor.from_row_splits(tf.cast(has_pieces & ~kept, tf.int32), splits)
        sentences = tf.RaggedTensor.from_row_splits(pieces, splits).merge_dims(1, 2)
        ids, types = pack_segments(sentences, None, self.template, self.max_length)
        probabilities = self._probabilities(to_dense_inputs(ids, types, self.template.pad_id))
        positions = tf.where(kept, offsets + len(self.template.prefix), 0)
        positions = tf.RaggedTensor.from_row_splits(tf.cast(positions, tf.int32), splits).to_tensor(0)
        kept = tf.RaggedTensor.from_row_splits(kept, splits).to_tensor(False)
        chosen = tf.gather(probabilities, positions, batch_dims=1)  # [batch, words, tags]
        tag_id = tf.where(kept, tf.argmax(chosen, axis=-1, output_type=tf.int32), -1)
        score = tf.where(kept, tf.reduce_max(chosen, axis=-1), 0.0)
        return tag_id, score, kept, tf.reduce_sum(truncated, axis=1)

    def from_words(self, words, num_words) -> dict:
        ragged = tf.RaggedTensor.from_tensor(words, lengths=tf.cast(num_words, tf.int64))
        tag_id, score, kept, truncated = self.word_tags(ragged)
        tags = tf.where(kept, tf.gather(self.tag_names, tf.maximum(tag_id, 0)), "")
        width = tf.shape(words)[1]
        pad = width - tf.shape(tags)[1]  # rows shorter than the padded input width
        return {
            "tags": tf.pad(tags, [[0, 0], [0, pad]], constant_values=""),
            "scores": tf.pad(score, [[0, 0], [0, pad]]),
            "truncated_words": truncated,
        }

    def from_text(self, text) -> dict:
        words, starts, ends = split_words_graph(text)
        tag_id, score, kept, truncated = self.word_tags(words)
        prefix, kind = tag_codes(tag_id, kept, self.prefixes, self.kinds)
        is_start, last = chunk_spans(prefix, kind)
        where = tf.where(is_start)  # [entities, 2]: (row, first word), row-major
        rows = tf.cast(where[:, 0], tf.int32)
        first = tf.cast(where[:, 1], tf.int32)
        last = tf.gather_nd(last, where)
        pairs_last = tf.stack([rows, last], axis=1)
        totals = tf.cumsum(score, axis=1)
        sums = tf.gather_nd(totals, pairs_last) - tf.gather_nd(totals, where) + tf.gather_nd(score, where)
        mean_score = sums / tf.cast(last - first + 1, tf.float32)
        char_start = tf.cast(tf.gather_nd(starts.to_tensor(0), where), tf.int32)
        char_end = tf.cast(tf.gather_nd(ends.to_tensor(0), pairs_last), tf.int32)
        entity_text = tf.strings.substr(
            tf.gather(text, rows), char_start, char_end - char_start, unit="UTF8_CHAR"
        )
        entity_type = tf.gather(self.type_names, tf.gather_nd(kind, where))
        batch = tf.shape(text, out_type=tf.int64)[0]

        def padded(values, default):
            return tf.RaggedTensor.from_value_rowids(values, tf.cast(rows, tf.int64), nrows=batch).to_tensor(
                default
            )

        return {
            "entity_text": padded(entity_text, ""),
            "entity_type": padded(entity_type, ""),
            "entity_start": padded(char_start, -1),
            "entity_end": padded(char_end, -1),
            "entity_score": padded(mean_score, 0.0),
            "num_entities": tf.math.bincount(rows, minlength=tf.cast(batch, tf.int32), dtype=tf.int32),
            "truncated_words": truncated,
        }

    def signatures(self) -> dict:
        """The concrete functions to save, by signature name."""
        signatures = {}
        if self.in_graph_tokenizer:
            text = tf.TensorSpec([None], tf.string, name="text")
            signatures["serving_default"] = tf.function(self.from_text).get_concrete_function(text)
            words = tf.TensorSpec([None, None], tf.string, name="words")
            num_words = tf.TensorSpec([None], tf.int32, name="num_words")
            signatures["predict_words"] = tf.function(self.from_words).get_concrete_function(words, num_words)
        ids = [
            tf.TensorSpec([None, None], tf.int32, name=name)
            for name in ("input_ids", "attention_mask", "token_type_ids")
        ]
        signatures["predict_ids"] = tf.function(self.from_ids).get_concrete_function(*ids)
        if "serving_default" not in signatures:
            signatures["serving_default"] = signatures["predict_ids"]
        return signatures


TASK = NerTask()
