"""Extractive question answering (SQuAD): windows over long contexts, span decoding, EM/F1.

How a question and its context become model inputs, and how logits become an answer:

* **Words with offsets.** The context is split into words the way BERT's basic tokenizer
  does it (whitespace, every punctuation character and every CJK character on its own),
  with :func:`tfft.words.split_words`, in Python and in exported graphs alike.
  Each word is tokenized on its own (:meth:`~tfft.tokenization.TextEncoder.tokenize_words`),
  so every word piece maps back to the character span of its word. Answers are therefore
  found at word granularity: ``"1990"`` inside ``"1990s"`` comes out as ``"1990s"``.
* **Windows.** A sequence is ``[CLS] question [SEP] context-window [SEP]`` (the model's own
  special tokens). The question keeps at most ``min(64, budget // 2)`` pieces, where
  ``budget = max_length - special tokens``; the rest of the budget (the window's *room*)
  holds context pieces. A context longer than the room is cut into windows that overlap by
  ``doc_stride`` pieces (consecutive windows start ``room - doc_stride`` pieces apart).
* **Labels.** A training window whose room holds the whole (first) reference answer points
  its start and end at the answer's first and last pieces; any other window (and every
  window of an unanswerable question) points both at position 0, the ``[CLS]`` token.
* **Decoding.** Over all windows of a question, the span with the highest
  ``start_logit + end_logit`` among context pieces with ``start <= end`` and at most
  ``max_answer_length`` pieces wins: an exact search over the band of allowed spans (no
  top-k shortcut), so the exported graph and Python find the same answer. ``n_best`` spans
  are listed, duplicates (the same characters from two windows) merged. The answer text is
  ``context[start:end]`` (character offsets, ``end`` exclusive). Its ``score`` is the model's
  probability of that start times that end within its window. With ``allow_no_answer`` the
  empty answer wins when the smallest ``[CLS]`` score over the windows beats the best span.
* **Metrics.** Exact match and F1 in percent, with the official SQuAD normalization
  (lower case, no punctuation, no articles ``a an the``, single spaces), the maximum over
  the reference answers; a question without references counts as answered correctly only
  by the empty answer (SQuAD 2.0).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import re
import string
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfft.data.squad import QA_FORMATS, Answer, QAExamples, read_qa_examples
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.preprocess import token_dataset
from tfft.tasks.base import Task
from tfft.tokenization import Encoded, SequenceTemplate, TextEncoder
from tfft.words import split_words

logger = logging.getLogger(__name__)

MAX_QUESTION_TOKENS = 64

_SPLIT_CHUNK = 1024


# --- words and word pieces -------------------------------------------------------------------


def _split_words(texts: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
    """:func:`tfft.words.split_words` with byte offsets (the exported graph cuts answers by bytes).

    Args:
        texts: tf.string ``[batch]``.

    Returns:
        ``(words, begins, ends)``: ragged ``[batch, (words)]`` strings and int64 byte offsets
        (``end`` exclusive).
    """
    return split_words(texts, offsets="byte")


def _byte_to_char(text: str, offsets: np.ndarray) -> np.ndarray:
    """Character offsets of UTF-8 byte offsets (each on a character boundary) of ``text``."""
    if text.isascii():
        return offsets.astype(np.int64)
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    leads = np.concatenate([[0], np.cumsum((data & 0xC0) != 0x80)])
    return leads[offsets].astype(np.int64)


@dataclasses.dataclass
class TokenizedText:
    """A text as word pieces, each with the character span of the word it came from.

    Attributes:
        ids: int32 ``[pieces]`` word-piece ids (no special tokens).
        starts: int64 ``[pieces]`` character offset of each piece's word.
        ends: int64 ``[pieces]`` character offset just past each piece's word.
    """

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def tokenize_texts(encoder: TextEncoder, texts: Sequence[str]) -> list[TokenizedText]:
    """Word pieces with character spans for each text (each distinct text tokenized once).

    Args:
        encoder: the backbone's text encoder.
        texts: the texts (contexts or questions).

    Returns:
        One :class:`TokenizedText` per text, in order.
    """
    unique = list(dict.fromkeys(texts))
    words: list[str] = []
    spans: list[tuple[np.ndarray, np.ndarray]] = []
    for first in range(0, len(unique), _SPLIT_CHUNK):
        chunk = unique[first : first + _SPLIT_CHUNK]
        tokens, begins, ends = _split_words(tf.constant(chunk))
        splits = tokens.row_splits.numpy()
        words.extend(word.decode("utf-8") for word in tokens.flat_values.numpy())
        begins, ends = begins.flat_values.numpy(), ends.flat_values.numpy()
        for i, text in enumerate(chunk):
            row = slice(splits[i], splits[i + 1])
            spans.append((_byte_to_char(text, begins[row]), _byte_to_char(text, ends[row])))
    pieces = encoder.tokenize_words(words)
    counts = np.array([len(p) for p in pieces], dtype=np.int64)
    flat = np.concatenate(pieces).astype(np.int32) if pieces else np.zeros([0], np.int32)
    piece_splits = np.concatenate([[0], np.cumsum(counts)])
    result: dict[str, TokenizedText] = {}
    word_index = 0
    for text, (begins, ends) in zip(unique, spans, strict=True):
        n = len(begins)
        per_word = counts[word_index : word_index + n]
        ids = flat[piece_splits[word_index] : piece_splits[word_index + n]]
        result[text] = TokenizedText(
            ids=ids, starts=np.repeat(begins, per_word), ends=np.repeat(ends, per_word)
        )
        word_index += n
    return [result[text] for text in texts]


# --- windows ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """How questions and contexts are packed into sequences of at most ``max_length`` tokens.

    Args:
        template: the model's special tokens.
        max_length: the longest sequence, special tokens included.
        doc_stride: how many context pieces consecutive windows share.

    Raises:
        ConfigError: ``doc_stride`` leaves no room to move on, or ``max_length`` is too short.
    """

    template: SequenceTemplate
    max_length: int
    doc_stride: int

    def __post_init__(self) -> None:
        if self.budget < 2:
            raise ConfigError(
                f"`max_length` {self.max_length} is too short for question answering: it must hold "
                f"{self.template.num_special(True)} special tokens, a question and a context. "
                f"Received: max_length={self.max_length}"
            )
        if isinstance(self.doc_stride, bool) or not isinstance(self.doc_stride, int) or self.doc_stride < 0:
            raise ConfigError(
                f"`doc_stride` must be an integer >= 0. Received: doc_stride={self.doc_stride!r}"
            )
        if self.doc_stride >= self.min_room:
            raise ConfigError(
                f"`doc_stride` (the overlap of context windows) must be smaller than the context pieces "
                f"every window holds: max_length {self.max_length} - "
                f"{self.template.num_special(True)} special tokens - up to {self.question_cap} question "
                f"tokens = {self.min_room}. Lower --doc-stride or raise --max-length. "
                f"Received: doc_stride={self.doc_stride}"
            )

    @property
    def budget(self) -> int:
        """Tokens for the question and the context together."""
        return self.max_length - self.template.num_special(True)

    @property
    def question_cap(self) -> int:
        """The most question pieces a sequence keeps."""
        return min(MAX_QUESTION_TOKENS, self.budget // 2)

    @property
    def min_room(self) -> int:
        """Context pieces per window with the longest question."""
        return self.budget - self.question_cap

    def room(self, question_length: int) -> int:
        """Context pieces per window after a question of ``question_length`` pieces."""
        return self.budget - min(question_length, self.question_cap)

    def window_starts(self, context_length: int, question_length: int) -> list[int]:
        """The first context piece of each window (one window at least)."""
        room = self.room(question_length)
        step = room - self.doc_stride
        if context_length <= room:
            return [0]
        count = 1 + -(-(context_length - room) // step)
        return [i * step for i in range(count)]


@dataclasses.dataclass
class Windows:
    """Model inputs for every window of a batch of questions, with what decoding needs.

    Attributes:
        input_ids: one int32 array per window, special tokens included, unpadded.
        token_type_ids: the same for token types.
        example: int64 ``[windows]`` index of the question each window belongs to.
        context_offset: position in the sequence of the window's first context piece.
        context_start: index (among the context's pieces) of that piece.
        context_length: context pieces in the window.
        start_positions: int32 label of each window (0: the answer is not in it), or None.
        end_positions: the same for the end.
    """

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    example: np.ndarray
    context_offset: np.ndarray
    context_start: np.ndarray
    context_length: np.ndarray
    start_positions: np.ndarray | None = None
    end_positions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids], dtype=np.int64)


def answer_pieces(context: TokenizedText, answer: Answer) -> tuple[int, int] | None:
    """First and last context piece whose word overlaps the answer's characters, or None."""
    overlap = np.nonzero((context.ends > answer.start) & (context.starts < answer.end))[0]
    if not len(overlap):
        return None
    return int(overlap[0]), int(overlap[-1])


def make_windows(
    plan: WindowPlan,
    questions: Sequence[TokenizedText],
    contexts: Sequence[TokenizedText],
    answers: Sequence[tuple[Answer, ...]] | None = None,
    where: Sequence[str] | None = None,
    uses_token_types: bool = True,
) -> Windows:
    """Cut each question's context into windows and pack them with the question.

    Args:
        plan: the packing geometry.
        questions: tokenized questions.
        contexts: tokenized contexts, one per question.
        answers: reference answers per question (the first one is the training target; an
            empty tuple: no answer), or None for unlabelled data.
        where: the location of each question, for errors.
        uses_token_types: False when the backbone ignores token types (they are then all 0).

    Returns:
        The windows, grouped by question, in order.

    Raises:
        DataError: an answer covers no word piece of its context.
    """
    template = plan.template
    type_id = template.pair_type_id if uses_token_types else 0
    ids, types, example, offsets, starts, lengths, start_labels, end_labels = ([] for _ in range(8))
    for index, (question, context) in enumerate(zip(questions, contexts, strict=True)):
        q = question.ids[: plan.question_cap]
        head = np.concatenate([template.prefix, q, template.middle]).astype(np.int32)
        room = plan.room(len(question))
        target = None
        if answers is not None and answers[index]:
            answer = answers[index][0]
            target = answer_pieces(context, answer)
            if target is None:
                place = where[index] if where is not None else f"question {index}"
                raise DataError(
                    f"{place}: the answer {answer.text!r} at {answer.start} covers no word piece of the "
                    "context after tokenization (only control or unknown characters?)."
                )
        for start in plan.window_starts(len(context), len(question)):
            piece = context.ids[start : start + room]
            sequence = np.concatenate([head, piece, template.suffix]).astype(np.int32)
            ids.append(sequence)
            types.append(
                np.concatenate(
                    [np.zeros(len(head), np.int32), np.full(len(sequence) - len(head), type_id, np.int32)]
                )
            )
            example.append(index)
            offsets.append(len(head))
            starts.append(start)
            lengths.append(len(piece))
            if answers is not None:
                if target is not None and start <= target[0] and target[1] < start + len(piece):
                    start_labels.append(len(head) + target[0] - start)
                    end_labels.append(len(head) + target[1] - start)
                else:
                    start_labels.append(0)
                    end_labels.append(0)
    as_array = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
    return Windows(
        input_ids=ids,
        token_type_ids=types,
        example=as_array(example),
        context_offset=as_array(offsets),
        context_start=as_array(starts),
        context_length=as_array(lengths),
        start_positions=None if answers is None else np.asarray(start_labels, np.int32),
        end_positions=None if answers is None else np.asarray(end_labels, np.int32),
    )


# --- decoding ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Span:
    """A candidate answer.

    Attributes:
        text: ``context[start:end]`` ("" for no answer).
        start: character offset of the first character (-1 for no answer).
        end: character offset just past the last character (-1 for no answer).
        score: the model's probability of this start and end within the window.
        logit: ``start_logit + end_logit``, what candidates are ranked by.
    """

    text: str
    start: int
    end: int
    score: float
    logit: float

    def to_json(self) -> dict:
        return {"answer": self.text, "start": self.start, "end": self.end, "score": self.score}


NO_ANSWER_START = -1


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    top = logits.max()
    return logits - top - np.log(np.exp(logits - top).sum())


def span_scores(start_logits: np.ndarray, end_logits: np.ndarray, max_answer_length: int) -> np.ndarray:
    """``[n, max_answer_length]`` scores of the span from piece ``i`` to piece ``i + k``.

    Spans that run past the last piece get ``-inf``.
    """
    n = len(start_logits)
    # float32 sums, as in the exported graph, so both rank candidates alike.
    padded = np.concatenate(
        [end_logits.astype(np.float32), np.full([max_answer_length - 1], -np.inf, np.float32)]
    )
    band = padded[np.arange(n)[:, None] + np.arange(max_answer_length)[None, :]]
    return start_logits.astype(np.float32)[:, None] + band


def decode_spans(
    windows: Windows,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    contexts: Sequence[str],
    tokenized: Sequence[TokenizedText],
    *,
    max_answer_length: int,
    n_best: int = 1,
    allow_no_answer: bool = False,
) -> list[list[Span]]:
    """The ``n_best`` answers of each question, best first, from the logits of its windows.

    Args:
        windows: the windows the logits belong to.
        start_logits: float ``[windows, length]`` (``length`` >= each window's length).
        end_logits: the same for ends.
        contexts: the context of each question.
        tokenized: the tokenized context of each question.
        max_answer_length: the most pieces an answer spans.
        n_best: how many distinct answers to list per question.
        allow_no_answer: let the empty answer compete (SQuAD 2.0).

    Returns:
        One list per question (never empty: a question whose windows hold no context piece
        gets the empty answer).
    """
    if max_answer_length < 1 or n_best < 1:
        raise ConfigError(
            "`max_answer_length` and `n_best` must be >= 1. "
            f"Received: max_answer_length={max_answer_length}, n_best={n_best}"
        )
    start_logits = np.asarray(start_logits)
    end_logits = np.asarray(end_logits)
    candidates: list[list[tuple]] = [[] for _ in contexts]
    nulls: list[tuple | None] = [None for _ in contexts]
    for w in range(len(windows)):
        index = int(windows.example[w])
        length = len(windows.input_ids[w])
        starts, ends = start_logits[w, :length], end_logits[w, :length]
        log_p_start, log_p_end = _log_softmax(starts), _log_softmax(ends)
        null = float(np.float32(starts[0]) + np.float32(ends[0]))
        if nulls[index] is None or null < nulls[index][0]:
            nulls[index] = (null, float(np.exp(log_p_start[0] + log_p_end[0])))
        offset, count, first = (
            int(windows.context_offset[w]),
            int(windows.context_length[w]),
            int(windows.context_start[w]),
        )
        if count == 0:
            continue
        scores = span_scores(
            starts[offset : offset + count], ends[offset : offset + count], max_answer_length
        )
        flat = scores.ravel()
        top = min(n_best, int(np.count_nonzero(np.isfinite(flat))))
        if top == 0:
            continue
        for position in np.argpartition(-flat, top - 1)[:top]:
            i, k = divmod(int(position), max_answer_length)
            score = float(np.exp(log_p_start[offset + i] + log_p_end[offset + i + k]))
            candidates[index].append(
                (float(flat[position]), w, int(position), first + i, first + i + k, score)
            )
    results = []
    for index, found in enumerate(candidates):
        found.sort(key=lambda c: (-c[0], c[1], c[2]))
        context, pieces = contexts[index], tokenized[index]
        spans: list[Span] = []
        seen: set[tuple[int, int]] = set()
        for logit, _, _, first, last, score in found:
            start, end = int(pieces.starts[first]), int(pieces.ends[last])
            if (start, end) in seen:
                continue
            seen.add((start, end))
            spans.append(Span(context[start:end], start, end, score, logit))
            if len(spans) == n_best:
                break
        null = nulls[index]
        if allow_no_answer and null is not None:
            # A stable sort: the empty answer must beat the best span, not tie with it.
            spans.append(Span("", NO_ANSWER_START, NO_ANSWER_START, null[1], null[0]))
            spans = sorted(spans, key=lambda span: -span.logit)[:n_best]
        results.append(spans or [Span("", NO_ANSWER_START, NO_ANSWER_START, 0.0, float("-inf"))])
    return results


# --- the same in the graph (exports) --------------------------------------------------------


def _regroup(words: tf.RaggedTensor, pieces: tf.RaggedTensor) -> tf.RaggedTensor:
    """``[batch, (words)]`` words and ``[words, (pieces)]`` pieces -> ``[batch, (pieces)]``."""
    return words.with_flat_values(tf.cast(pieces, tf.int32)).merge_dims(1, 2)


def graph_windows(
    tokenizer, plan: WindowPlan, questions: tf.Tensor, contexts: tf.Tensor, type_id: int
) -> dict:
    """:func:`tokenize_texts` and :func:`make_windows` as TensorFlow ops.

    Args:
        tokenizer: a :class:`~tfft.tokenization.GraphTokenizer` (``tokenize``: strings ->
            ragged piece ids).
        plan: the packing geometry.
        questions: tf.string ``[batch]``.
        contexts: tf.string ``[batch]``.
        type_id: the token type of the context segment.

    Returns:
        A dict: ``features`` (dense ``input_ids``, ``attention_mask``, ``token_type_ids``
        ``[windows, length]``), ``example``, ``context_offset``, ``context_start``,
        ``context_length`` (int64 ``[windows]``) and ``begins``, ``ends`` (int64 ragged
        ``[batch, (pieces)]``: byte offsets of each context piece's word).
    """
    template = plan.template
    question_words, _, _ = _split_words(questions)
    question_ids = _regroup(question_words, tokenizer.tokenize(question_words.flat_values))
    question_ids = question_ids[:, : plan.question_cap]
    words, word_begins, word_ends = _split_words(contexts)
    pieces = tokenizer.tokenize(words.flat_values)
    per_word = pieces.row_lengths()
    context_ids = _regroup(words, pieces)
    splits = context_ids.row_splits
    begins = tf.RaggedTensor.from_row_splits(tf.repeat(word_begins.flat_values, per_word), splits)
    ends = tf.RaggedTensor.from_row_splits(tf.repeat(word_ends.flat_values, per_word), splits)

    question_length = question_ids.row_lengths()
    room = plan.budget - question_length
    step = room - plan.doc_stride
    total = context_ids.row_lengths()
    count = 1 + (tf.maximum(total - room, 0) + step - 1) // step
    example = tf.repeat(tf.range(tf.shape(contexts, out_type=tf.int64)[0]), count)
    start = tf.ragged.range(count).flat_values * tf.gather(step, example)
    length = tf.minimum(tf.gather(room, example), tf.gather(total, example) - start)
    first = tf.gather(splits[:-1], example) + start
    window = tf.gather(context_ids.flat_values, tf.ragged.range(first, first + length))

    windows = tf.shape(example)[0]

    def specials(ids: tuple[int, ...]) -> tf.RaggedTensor:
        row = tf.constant(ids, dtype=tf.int32, shape=[len(ids)])
        return tf.RaggedTensor.from_tensor(tf.tile(row[None], [windows, 1]))

    head = tf.concat(
        [specials(template.prefix), tf.gather(question_ids, example), specials(template.middle)], 1
    )
    tail = tf.concat([window, specials(template.suffix)], 1)
    ids = tf.concat([head, tail], 1)
    types = tf.concat([tf.zeros_like(head), tf.ones_like(tail) * type_id], 1)
    features = {
        "input_ids": ids.to_tensor(default_value=template.pad_id),
        "attention_mask": tf.ones_like(ids).to_tensor(),
        "token_type_ids": types.to_tensor(),
    }
    return {
        "features": features,
        "example": example,
        "context_offset": head.row_lengths(),
        "context_start": start,
        "context_length": length,
        "begins": begins,
        "ends": ends,
    }


def graph_decode(
    windows: dict,
    start_logits: tf.Tensor,
    end_logits: tf.Tensor,
    contexts: tf.Tensor,
    *,
    max_answer_length: int,
    allow_no_answer: bool,
) -> dict:
    """The best answer of each question, as :func:`decode_spans` finds it, with TensorFlow ops.

    Args:
        windows: what :func:`graph_windows` returned.
        start_logits: float32 ``[windows, length]``.
        end_logits: the same for ends.
        contexts: tf.string ``[batch]``.
        max_answer_length: the most pieces an answer spans.
        allow_no_answer: let the empty answer compete.

    Returns:
        ``answer`` (tf.string), ``start``, ``end`` (int32 character offsets, -1 for no answer)
        and ``score`` (float32), each ``[batch]``.
    """
    start_logits = tf.cast(start_logits, tf.float32)
    end_logits = tf.cast(end_logits, tf.float32)
    example = windows["example"]
    batch = tf.shape(contexts, out_type=tf.int64)[0]
    count = tf.shape(example, out_type=tf.int64)[0]
    length = tf.shape(start_logits, out_type=tf.int64)[1]
    span = max_answer_length
    offset = windows["context_offset"][:, None]
    stop = offset + windows["context_length"][:, None]
    position = tf.range(length)[None, :]
    is_context = (position >= offset) & (position < stop)  # [windows, length]
    last = position[:, :, None] + tf.range(span, dtype=tf.int64)[None, None, :]  # [1, length, span]
    neg_inf = tf.constant(-np.inf, tf.float32)
    padded_ends = tf.concat([end_logits, tf.fill([count, span - 1], neg_inf)], axis=1)
    band = tf.gather(padded_ends, last[0], axis=1)  # [windows, length, span]
    valid = is_context[:, :, None] & (last < stop[:, :, None])
    scores = tf.where(valid, start_logits[:, :, None] + band, neg_inf)
    flat = tf.reshape(scores, [count, -1])
    best_index = tf.argmax(flat, axis=1, output_type=tf.int64)
    best = tf.reduce_max(flat, axis=1)
    window_index = tf.range(count)

    def first_window(values, pick):
        """Per question: the first window whose value equals the question's ``pick`` of them."""
        chosen = pick(values, example, num_segments=batch)
        hits = tf.where(values == tf.gather(chosen, example), window_index, count)
        return chosen, tf.math.unsorted_segment_min(hits, example, num_segments=batch)

    # Segment maxima turn -inf into the lowest float32: compare on finite values.
    finite = best > neg_inf
    best = tf.where(finite, best, tf.float32.min)
    best_score, best_window = first_window(best, tf.math.unsorted_segment_max)
    has_span = tf.math.unsorted_segment_max(tf.cast(finite, tf.int32), example, num_segments=batch) > 0
    best_window = tf.minimum(best_window, tf.maximum(count - 1, 0))
    real = tf.cast(windows["features"]["attention_mask"], tf.bool)  # padding has no probability
    log_p_start = tf.nn.log_softmax(tf.where(real, start_logits, neg_inf), axis=1)
    log_p_end = tf.nn.log_softmax(tf.where(real, end_logits, neg_inf), axis=1)
    flat_index = tf.gather(best_index, best_window)
    start_position = flat_index // span
    end_position = start_position + flat_index % span
    window_rows = tf.stack([best_window, start_position], 1)
    score = tf.exp(
        tf.gather_nd(log_p_start, window_rows)
        + tf.gather_nd(log_p_end, tf.stack([best_window, end_position], 1))
    )
    to_piece = tf.gather(windows["context_start"] - windows["context_offset"], best_window)
    base = windows["begins"].row_starts()
    first_piece = tf.clip_by_value(
        base + to_piece + start_position,
        0,
        tf.maximum(tf.size(windows["begins"].flat_values, tf.int64) - 1, 0),
    )
    last_piece = tf.clip_by_value(
        base + to_piece + end_position, 0, tf.maximum(tf.size(windows["ends"].flat_values, tf.int64) - 1, 0)
    )
    begins = tf.concat([windows["begins"].flat_values, tf.zeros([1], tf.int64)], 0)
    ends = tf.concat([windows["ends"].flat_values, tf.zeros([1], tf.int64)], 0)
    byte_start = tf.where(has_span, tf.gather(begins, first_piece), 0)
    byte_end = tf.where(has_span, tf.gather(ends, last_piece), 0)
    no_span = tf.logical_not(has_span)
    score = tf.where(has_span, score, 0.0)
    if allow_no_answer:
        null = start_logits[:, 0] + end_logits[:, 0]
        null_score, null_window = first_window(null, tf.math.unsorted_segment_min)
        null_window = tf.minimum(null_window, tf.maximum(count - 1, 0))
        null_p = tf.exp(tf.gather(log_p_start[:, 0] + log_p_end[:, 0], null_window))
        use_null = null_score > best_score
        no_span = no_span | use_null
        score = tf.where(use_null, null_p, score)
        byte_start = tf.where(use_null, tf.zeros_like(byte_start), byte_start)
        byte_end = tf.where(use_null, tf.zeros_like(byte_end), byte_end)
    answer = tf.strings.substr(contexts, byte_start, byte_end - byte_start)
    char_start = tf.strings.length(
        tf.strings.substr(contexts, tf.zeros_like(byte_start), byte_start), unit="UTF8_CHAR"
    )
    char_end = char_start + tf.strings.length(answer, unit="UTF8_CHAR")
    missing = tf.fill(tf.shape(char_start), NO_ANSWER_START)
    return {
        "answer": answer,
        "start": tf.where(no_span, missing, char_start),
        "end": tf.where(no_span, missing, char_end),
        "score": tf.cast(score, tf.float32),
    }


# --- metrics -------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalization: lower case, no punctuation, articles or extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalized prediction equals the normalized reference, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1(prediction: str, reference: str) -> float:
    """Token-level F1 of the normalized answers (SQuAD 2.0 rule: empty vs empty is 1)."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = collections.Counter(predicted) & collections.Counter(expected)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """Exact match and F1 in percent, each the maximum over a question's references.

    Args:
        predictions: the predicted answer of each question ("" for no answer).
        references: the reference answer texts of each question (empty: no answer).

    Returns:
        ``{"exact_match", "f1", "examples"}``, plus ``has_answer_*`` and ``no_answer_*``
        figures when some questions have no reference answer.
    """
    if len(predictions) != len(references):
        raise ValueError(f"squad_metrics: {len(predictions)} predictions but {len(references)} references.")
    exact, overlap, answerable = [], [], []
    for prediction, texts in zip(predictions, references, strict=True):
        texts = list(texts) or [""]
        exact.append(max(exact_match(prediction, text) for text in texts))
        overlap.append(max(f1(prediction, text) for text in texts))
        answerable.append(any(normalize_answer(text) for text in texts))
    exact_arr, f1_arr, has = np.array(exact), np.array(overlap), np.array(answerable, bool)
    percent = lambda values: float(100.0 * values.mean()) if len(values) else 0.0  # noqa: E731
    metrics = {"exact_match": percent(exact_arr), "f1": percent(f1_arr), "examples": len(predictions)}
    if not has.all():
        metrics.update(
            {
                "has_answer_exact_match": percent(exact_arr[has]),
                "has_answer_f1": percent(f1_arr[has]),
                "has_answer_examples": int(has.sum()),
                "no_answer_exact_match": percent(exact_arr[~has]),
                "no_answer_f1": percent(f1_arr[~has]),
                "no_answer_examples": int((~has).sum()),
            }
        )
    return metrics


def reference_texts(examples: QAExamples) -> list[list[str]]:
    """The reference answer texts of each labelled example."""
    if examples.answers is None:
        raise ConfigError(f"{examples.source}: the examples have no reference answers to score against.")
    return [[answer.text for answer in answers] for answers in examples.answers]


# --- the task -------------------------------------------------------------------------------

MASKED_LOGIT = -1e9
# Task options that travel with the model (names of TaskConfig fields) and their defaults.
OPTIONS = {"doc_stride": 128, "max_answer_length": 30, "n_best": 20, "allow_no_answer": False}


def masks_question(encoder: TextEncoder) -> bool:
    """Whether token types tell the context from the question for this tokenizer's models."""
    return bool(encoder.uses_token_types) and encoder.template.pair_type_id != 0


class SpanLogits(keras.layers.Layer):
    """Start and end logits ``[batch, length, 2]`` with the impossible positions masked.

    Padding (and, when the model takes token types, the question and its special tokens)
    get :data:`MASKED_LOGIT`; position 0 (``[CLS]``, "no answer in this window") never does.
    """

    def __init__(self, mask_question: bool, **kwargs):
        super().__init__(**kwargs)
        self.mask_question = mask_question

    def call(self, logits, attention_mask, token_type_ids):
        valid = tf.cast(attention_mask, tf.bool)
        if self.mask_question:
            valid &= tf.cast(token_type_ids, tf.bool)
        first = tf.range(tf.shape(valid)[1]) == 0
        valid = (valid | first[None, :])[:, :, None]
        return tf.where(valid, logits, tf.constant(MASKED_LOGIT, logits.dtype))

    def get_config(self):
        return {**super().get_config(), "mask_question": self.mask_question}


def span_loss() -> keras.losses.Loss:
    """Mean of the start and end cross-entropies over each window's positions.

    ``y_true`` is int ``[batch, 2]`` (start, end positions), ``y_pred`` the float32 logits
    ``[batch, length, 2]``; rows are averaged with their sample weights (see
    :class:`~tfft.tasks.classify.WeightedMeanLoss`).
    """
    from tfft.tasks.classify import WeightedMeanLoss

    def per_example(positions, logits):
        positions = tf.cast(positions, tf.int32)
        logits = tf.transpose(tf.cast(logits, tf.float32), [0, 2, 1])  # [batch, 2, length]
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(positions, logits)
        return tf.reduce_mean(losses, axis=-1)

    return WeightedMeanLoss(per_example, name="span_crossentropy")


class SpanAccuracy(keras.metrics.Metric):
    """Share of windows whose most likely start and end are both the labelled ones."""

    def __init__(self, name: str = "span_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.hits = self.add_weight(name="hits", initializer="zeros", dtype=tf.float32)
        self.total = self.add_weight(name="total", initializer="zeros", dtype=tf.float32)

    def update_state(self, y_true, y_pred, sample_weight=None):
        predicted = tf.argmax(tf.cast(y_pred, tf.float32), axis=1, output_type=tf.int32)  # [batch, 2]
        hits = tf.cast(tf.reduce_all(predicted == tf.cast(y_true, tf.int32), axis=-1), tf.float32)
        weights = (
            tf.ones_like(hits)
            if sample_weight is None
            else tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
        )
        self.hits.assign_add(tf.reduce_sum(hits * weights))
        self.total.assign_add(tf.reduce_sum(weights))

    def result(self):
        return tf.math.divide_no_nan(self.hits, self.total)

    def reset_state(self):
        self.hits.assign(0.0)
        self.total.assign(0.0)


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validated task options, with defaults for the missing ones."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"task='qa' takes the options {', '.join(OPTIONS)}; not {', '.join(unknown)}.")
    settings = {**OPTIONS, **options}
    for name in ("max_answer_length", "n_best"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    stride = settings["doc_stride"]
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
        raise ConfigError(f"`doc_stride` must be an integer >= 0. Received: doc_stride={stride!r}")
    if not isinstance(settings["allow_no_answer"], bool):
        raise ConfigError(
            "`allow_no_answer` must be true or false. "
            f"Received: allow_no_answer={settings['allow_no_answer']!r}"
        )
    return settings


@dataclasses.dataclass
class Prepared:
    """Examples turned into windows for one encoder and plan."""

    windows: Windows
    contexts: list[TokenizedText]


def prepare(encoder: TextEncoder, plan: WindowPlan, examples: QAExamples, labelled: bool) -> Prepared:
    """Tokenize questions and contexts and cut the windows (cached on ``examples``)."""
    cache = examples.__dict__.setdefault("_qa_cache", {})
    tokens_key = ("tokens", id(encoder))
    if tokens_key not in cache:
        cache[tokens_key] = (
            tokenize_texts(encoder, examples.contexts),
            tokenize_texts(encoder, examples.questions),
        )
    contexts, questions = cache[tokens_key]
    key = ("windows", id(encoder), plan, labelled)
    if key not in cache:
        answers = examples.answers if labelled else None
        windows = make_windows(
            plan, questions, contexts, answers, examples.locations, encoder.uses_token_types
        )
        cache[key] = Prepared(windows, contexts)
    return cache[key]


def _window_batches(windows: Windows, batch_size: int, max_length: int, pad_id: int) -> tf.data.Dataset:
    return token_dataset(
        Encoded(windows.input_ids, windows.token_type_ids),
        batch_size=batch_size,
        max_length=max_length,
        pad_id=pad_id,
    )


def _logits_of(call, batches: tf.data.Dataset, count: int, max_length: int) -> np.ndarray:
    """``[windows, max_length, 2]`` float32 logits of every window (padding: MASKED_LOGIT)."""
    logits = np.full([count, max_length, 2], MASKED_LOGIT, np.float32)
    row = 0
    for features in batches:
        output = np.asarray(call(features), np.float32)
        logits[row : row + len(output), : output.shape[1]] = output
        row += len(output)
    return logits


class QATask(Task):
    """``--task qa``: extractive question answering (SQuAD v1.1/v2.0), EM and F1.

    Settings: ``doc_stride``, ``max_answer_length``, ``n_best`` and ``allow_no_answer``
    (see the module docstring); ``labels`` is empty.

    Serving (raw text in, when the tokenizer runs in the graph): ``serving_default`` takes
    ``question`` and ``context`` (tf.string ``[batch]``) and returns ``answer`` (tf.string),
    ``start`` and ``end`` (int32 character offsets into the context, ``end`` exclusive, -1
    for no answer) and ``score`` (float32). The windowing happens in the graph: a long
    context becomes several windows, all scored in one model call. ``predict_ids`` takes
    the windows' ``input_ids``, ``attention_mask``, ``token_type_ids`` and returns
    ``start_logits`` and ``end_logits`` (float32 ``[windows, length]``); exports whose
    tokenizer cannot run in the graph (byte-level BPE) have only that signature, and
    ``tfft predict``/``evaluate`` cut the windows and decode in Python.
    """

    name = "qa"
    default_monitor = "val_loss"
    headline = ("examples", "exact_match", "f1")
    token_level = True

    # --- data -----------------------------------------------------------------------------
    def read(self, source, config, *, labelled=True, option="--train", max_examples=None) -> QAExamples:
        source = str(source)
        if source.startswith("tfds:"):
            raise ConfigError(
                f"{option} {source}: question answering reads SQuAD JSON or JSON Lines files, not TFDS."
            )
        data_format = config.data.format
        if data_format is not None and data_format not in QA_FORMATS:
            raise ConfigError(
                f"--format {data_format} cannot hold question-answering data; use squad or jsonl. "
                f"Received: format={data_format!r}"
            )
        task = config.task
        return read_qa_examples(
            source,
            labelled=labelled,
            allow_no_answer=task.allow_no_answer,
            format=data_format,
            question_field=task.question_column,
            context_field=task.context_column,
            answers_field=task.answers_column,
            max_examples=max_examples,
            option=option,
        )

    def settings_from_data(self, train, config) -> dict:
        task = config.task
        options = {name: getattr(task, name) for name in OPTIONS}
        return {"labels": [], **_check_options(options)}

    def settings_from_args(self, label_names, num_labels, options) -> dict:
        if label_names or num_labels:
            raise ConfigError(
                "task='qa' has no labels: give no `label_names` or `num_labels`. "
                f"Received: label_names={label_names!r}, num_labels={num_labels!r}"
            )
        return {"labels": [], **_check_options(dict(options))}

    def examples_from_cli(self, texts, pairs) -> QAExamples:
        if pairs is None or len(pairs) != len(texts):
            raise ConfigError(
                "Question answering needs a context for every question: --text QUESTION --text-pair CONTEXT."
            )
        count = len(texts)
        return QAExamples(
            questions=[str(text).strip() for text in texts],
            contexts=list(pairs),
            answers=None,
            ids=[str(i) for i in range(1, count + 1)],
            articles=[str(i) for i in range(1, count + 1)],
            source="--text",
            rows=list(range(1, count + 1)),
            locations=[f"--text {i}" for i in range(1, count + 1)],
        )

    # --- model ------------------------------------------------------------------------------
    def head(self, backbone, inputs, settings, pooling, dropout):
        hidden = backbone.sequence(inputs)
        hidden = keras.layers.Dropout(dropout, name="head_dropout")(hidden)
        logits = keras.layers.Dense(
            2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="qa_outputs"
        )(hidden)
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
        return SpanLogits(masks_question(backbone.encoder), dtype="float32", name="span_logits")(
            logits, inputs["attention_mask"], inputs["token_type_ids"]
        )

    def loss(self, spec):
        return span_loss()

    def train_metrics(self, spec) -> list:
        return [SpanAccuracy()]

    def plan(self, encoder: TextEncoder, settings: dict, max_length: int) -> WindowPlan:
        return WindowPlan(encoder.template, max_length, int(settings["doc_stride"]))

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
        encoder = model.tfft_spec.backbone.encoder
        prepared = prepare(
            encoder, self.plan(encoder, model.tfft_spec.settings, max_length), examples, labelled
        )
        windows = prepared.windows
        if training:
            logger.info(
                "%d questions -> %d windows (%d hold the answer)",
                len(examples),
                len(windows),
                int(np.count_nonzero(windows.start_positions)) if labelled else 0,
            )
        targets = np.stack([windows.start_positions, windows.end_positions], 1) if labelled else None
        return token_dataset(
            Encoded(windows.input_ids, windows.token_type_ids),
            targets,
            batch_size=batch_size,
            max_length=max_length,
            pad_id=encoder.template.pad_id,
            training=training,
            seed=seed,
        )

    def make_dataset(
        self, model, texts, labels, text_pairs, *, batch_size=32, max_length=128, training=False, seed=None
    ) -> tf.data.Dataset:
        examples = self.examples_from_cli(list(texts), None if text_pairs is None else list(text_pairs))
        examples.source = "make_dataset"
        examples.locations = [f"texts[{i}]" for i in range(len(examples))]
        if labels is not None:
            if len(labels) != len(examples):
                raise DataError(f"`labels` has {len(labels)} entries for {len(examples)} questions.")
            examples.answers = [
                _api_answers(label, context, f"labels[{i}]")
                for i, (label, context) in enumerate(zip(labels, examples.contexts, strict=True))
            ]
        return self.dataset(
            model,
            examples,
            batch_size=batch_size,
            max_length=max_length,
            training=training,
            seed=seed,
            labelled=labels is not None,
        )

    def predict_model(
        self, model, examples: QAExamples, max_length: int, batch_size: int = 32
    ) -> list[list[Span]]:
        """The n-best answers of an in-memory model for each question."""
        settings = model.tfft_spec.settings
        encoder = model.tfft_spec.backbone.encoder
        prepared = prepare(encoder, self.plan(encoder, settings, max_length), examples, labelled=False)
        windows = prepared.windows
        batches = _window_batches(windows, batch_size, max_length, encoder.template.pad_id)
        logits = _logits_of(model.predict_on_batch, batches, len(windows), max_length)
        return decode_spans(
            windows,
            logits[..., 0],
            logits[..., 1],
            examples.contexts,
            prepared.contexts,
            max_answer_length=int(settings["max_answer_length"]),
            n_best=int(settings["n_best"]),
            allow_no_answer=bool(settings["allow_no_answer"]),
        )

    def evaluate_model(self, model, examples, config) -> dict:
        spans = self.predict_model(model, examples, config.data.max_length, config.train.batch_size)
        return squad_metrics([best[0].text for best in spans], reference_texts(examples))

    # --- export ---------------------------------------------------------------------------
    def serving(self, model, max_length) -> tf.Module:
        return QAServing(model, max_length, self)

    def run_export(self, exported, examples: QAExamples, batch_size: int = 64) -> list[dict]:
        """The best answer of an export for each question (``answer``, ``start``, ``end``, ``score``)."""
        settings = exported.settings
        if exported.encoder is None:
            signature = exported.loaded.signatures["serving_default"]
            rows = []
            for first in range(0, len(examples), batch_size):
                out = signature(
                    question=tf.constant(examples.questions[first : first + batch_size], tf.string),
                    context=tf.constant(examples.contexts[first : first + batch_size], tf.string),
                )
                for i in range(len(out["answer"])):
                    rows.append(
                        {
                            "answer": out["answer"][i].numpy().decode("utf-8"),
                            "start": int(out["start"][i]),
                            "end": int(out["end"][i]),
                            "score": float(out["score"][i]),
                        }
                    )
            return rows
        encoder = exported.encoder
        max_length = exported.max_length
        prepared = prepare(encoder, self.plan(encoder, settings, max_length), examples, labelled=False)
        signature = exported.loaded.signatures["predict_ids"]

        def call(features):
            out = signature(**{name: tf.cast(value, tf.int32) for name, value in features.items()})
            return np.stack([out["start_logits"].numpy(), out["end_logits"].numpy()], -1)

        batches = _window_batches(prepared.windows, batch_size, max_length, encoder.template.pad_id)
        logits = _logits_of(call, batches, len(prepared.windows), max_length)
        spans = decode_spans(
            prepared.windows,
            logits[..., 0],
            logits[..., 1],
            examples.contexts,
            prepared.contexts,
            max_answer_length=int(settings["max_answer_length"]),
            n_best=1,
            allow_no_answer=bool(settings["allow_no_answer"]),
        )
        return [best[0].to_json() for best in spans]

    def evaluate_export(self, exported, examples, batch_size=64) -> dict:
        rows = self.run_export(exported, examples, batch_size)
        return squad_metrics([row["answer"] for row in rows], reference_texts(examples))

    def predict_export(self, exported, examples, batch_size=64) -> Iterator[dict]:
        rows = self.run_export(exported, examples, batch_size)
        for index, row in enumerate(rows):
            yield {"id": examples.ids[index], "question": examples.questions[index], **row}

    def format_metrics(self, metrics) -> list[str]:
        lines = [f"exact_match  {metrics['exact_match']:.2f}", f"f1           {metrics['f1']:.2f}"]
        for part in ("has_answer", "no_answer"):
            if f"{part}_examples" in metrics:
                lines.append(
                    f"  {part:<10} exact_match {metrics[f'{part}_exact_match']:.2f}  "
                    f"f1 {metrics[f'{part}_f1']:.2f}  ({metrics[f'{part}_examples']} questions)"
                )
        return lines


def _api_answers(label: Any, context: str, where: str) -> tuple[Answer, ...]:
    """Answers from :func:`tfft.make_dataset` labels: ``{"text": [...], "answer_start": [...]}``
    (or a list of ``{"text", "answer_start"}``), checked against the context."""
    if isinstance(label, dict):
        texts, starts = label.get("text"), label.get("answer_start")
        if (
            not isinstance(texts, (list, tuple))
            or not isinstance(starts, (list, tuple))
            or len(texts) != len(starts)
        ):
            raise DataError(
                f'{where}: expected {{"text": [...], "answer_start": [...]}} with lists of the same length. '
                f"Received: {label!r}"
            )
        pairs = list(zip(texts, starts, strict=True))
    elif isinstance(label, (list, tuple)) and all(isinstance(item, dict) for item in label):
        pairs = [(item.get("text"), item.get("answer_start")) for item in label]
    else:
        raise DataError(f'{where}: expected {{"text": [...], "answer_start": [...]}}. Received: {label!r}')
    answers = []
    for i, (text, start) in enumerate(pairs):
        if not isinstance(text, str) or isinstance(start, bool) or not isinstance(start, int):
            raise DataError(
                f"{where}: answer {i} needs a string text and an integer answer_start. "
                f"Received: {text!r}, {start!r}"
            )
        if context[start : start + len(text)] != text or not text:
            raise DataError(
                f"{where}: answer {i} {text!r} is not at answer_start {start} of the context "
                f"(found {context[start : start + len(text)]!r})."
            )
        answers.append(Answer(text, start))
    return tuple(answers)


class QAServing(tf.Module):
    """The serving graph of ``--task qa`` (see :class:`QATask` for the signatures)."""

    def __init__(self, model, max_length: int, task: QATask):
        super().__init__(name="tfft_serving")
        spec = model.tfft_spec
        encoder = spec.backbone.encoder
        if encoder is None:
            raise ConfigError("Question answering needs a token encoder backbone.")
        self.model = model
        self.max_length = max_length
        self._plan = task.plan(encoder, spec.settings, max_length)
        self._type_id = encoder.template.pair_type_id if encoder.uses_token_types else 0
        self._max_answer_length = int(spec.settings["max_answer_length"])
        self._allow_no_answer = bool(spec.settings["allow_no_answer"])
        self.tokenizer = encoder.graph_tokenizer()

    @property
    def in_graph_tokenizer(self) -> bool:
        return self.tokenizer is not None

    def _logits(self, features: dict) -> tf.Tensor:
        return tf.cast(self.model(features, training=False), tf.float32)

    def from_ids(self, input_ids, attention_mask, token_type_ids) -> dict:
        logits = self._logits(
            {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        )
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}

    def from_text(self, question, context) -> dict:
        windows = graph_windows(self.tokenizer, self._plan, question, context, self._type_id)
        logits = self._logits(windows["features"])
        return graph_decode(
            windows,
            logits[..., 0],
            logits[..., 1],
            context,
            max_answer_length=self._max_answer_length,
            allow_no_answer=self._allow_no_answer,
        )

    def signatures(self) -> dict:
        """The concrete functions to save, by signature name."""
        signatures = {}
        if self.in_graph_tokenizer:
            function = tf.function(lambda question, context: self.from_text(question, context))
            signatures["serving_default"] = function.get_concrete_function(
                tf.TensorSpec([None], tf.string, name="question"),
                tf.TensorSpec([None], tf.string, name="context"),
            )
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
        signatures.setdefault("serving_default", signatures["predict_ids"])
        return signatures


TASK = QATask()
