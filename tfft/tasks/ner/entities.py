"""Entities from word tags, in Python and, next to each step, its TensorFlow twin.

Entities are read from the tags with the chunking rules of seqeval's default mode (the
conlleval rules), in Python (:func:`chunks`, :func:`entities`) and in TensorFlow
(:func:`chunk_starts`, :func:`chunk_spans`, :func:`graph_entities`) for exported models and
the training metric, so that exports, ``tfft predict`` and the metrics agree on what an
entity is. In the graph, tags are handled as two int32 codes per word (:func:`tag_tables`,
:func:`tag_codes`): a prefix code (:data:`PREFIX_CODES`) and an entity type id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.data.conll import OUTSIDE, entity_types, parse_tag

# Prefix codes used in the graph.
PREFIX_CODES = {OUTSIDE: 0, "B": 1, "I": 2, "E": 3, "S": 4}


# --- tags as codes, for the graph -----------------------------------------------------------------


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


def tag_codes(tag_ids: tf.Tensor, valid: tf.Tensor, prefixes: tf.Tensor, kinds: tf.Tensor):
    """Prefix codes and type ids of tag ids; words that are not ``valid`` read as ``O``."""
    safe = tf.maximum(tag_ids, 0)
    prefix = tf.where(valid, tf.gather(prefixes, safe), 0)
    kind = tf.where(valid, tf.gather(kinds, safe), -1)
    return prefix, kind


# --- which words form an entity -------------------------------------------------------------------


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


# --- entities with character offsets --------------------------------------------------------------


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


def graph_entities(
    text: tf.Tensor,
    starts: tf.RaggedTensor,
    ends: tf.RaggedTensor,
    tag_id: tf.Tensor,
    score: tf.Tensor,
    kept: tf.Tensor,
    *,
    prefixes: tf.Tensor,
    kinds: tf.Tensor,
    type_names: tf.Tensor,
) -> dict:
    """:func:`entities` in TensorFlow, for a batch of sentences padded to ``[batch, entities]``.

    Args:
        text: tf.string ``[batch]``, the sentences.
        starts, ends: ragged ``[batch, (words)]`` character offsets of each word in its
            sentence (:func:`tfft.words.split_words`).
        tag_id: int32 ``[batch, words]`` tag id of each word.
        score: float32 ``[batch, words]`` probability of each word's tag.
        kept: bool ``[batch, words]``: the word has a prediction (others read as ``O``).
        prefixes, kinds, type_names: the tables of :func:`tag_tables`.

    Returns:
        ``entity_text``, ``entity_type`` (tf.string), ``entity_start``, ``entity_end``
        (int32 character offsets, end exclusive), ``entity_score`` (float32, the mean
        probability of the entity's word tags), all ``[batch, max_entities]`` and padded with
        ``""`` / -1 / 0; ``num_entities`` (int32 ``[batch]``).
    """
    prefix, kind = tag_codes(tag_id, kept, prefixes, kinds)
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
    entity_type = tf.gather(type_names, tf.gather_nd(kind, where))
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
    }
