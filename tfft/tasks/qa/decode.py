"""From start and end logits to answers, in Python and in the exported graph.

**Decoding.** Over all windows of a question, the span with the highest
``start_logit + end_logit`` among context pieces with ``start <= end`` and at most
``max_answer_length`` pieces wins: an exact search over the band of allowed spans (no
top-k shortcut), so the exported graph (:func:`graph_decode`) and Python
(:func:`decode_spans`) find the same answer. ``n_best`` spans are listed, duplicates (the
same characters from two windows) merged. The answer text is ``context[start:end]``
(character offsets, ``end`` exclusive). Its ``score`` is the model's probability of that
start times that end within its window. With ``allow_no_answer`` the empty answer wins when
the smallest ``[CLS]`` score over the windows beats the best span.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.errors import ConfigError
from tfft.tasks.qa.windows import TokenizedText, Windows


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


#: ``start`` and ``end`` of the empty answer
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
        windows: what :func:`~tfft.tasks.qa.windows.graph_windows` returned.
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
