"""Questions and contexts as model inputs: words with offsets, word pieces and windows.

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

:func:`tokenize_texts` and :func:`make_windows` do it in Python (training, evaluation,
exports without an in-graph tokenizer); :func:`graph_windows` does the same with TensorFlow
ops for the exported ``serving_default`` signature.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.data.squad import Answer
from tfft.errors import ConfigError, DataError
from tfft.tokenization import SequenceTemplate, TextEncoder
from tfft.words import split_words

MAX_QUESTION_TOKENS = 64

_SPLIT_CHUNK = 1024


# --- words and word pieces -------------------------------------------------------------------


def split_words_in_bytes(texts: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
    """:func:`tfft.words.split_words` with byte offsets (the exported graph cuts answers by bytes).

    The one word splitter of question answering: :func:`tokenize_texts` (which turns the
    byte offsets into character offsets) and :func:`graph_windows` both call it.

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
        tokens, begins, ends = split_words_in_bytes(tf.constant(chunk))
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

    >>> plan = WindowPlan(SequenceTemplate.bert(2, 3, 0), max_length=32, doc_stride=5)
    >>> plan.room(question_length=4), plan.window_starts(70, question_length=4)
    (25, [0, 20, 40, 60])
    """

    template: SequenceTemplate
    max_length: int
    doc_stride: int

    @classmethod
    def from_settings(cls, encoder: TextEncoder, settings: dict, max_length: int) -> WindowPlan:
        """The plan of a model: its encoder's special tokens and its ``doc_stride`` setting."""
        return cls(encoder.template, max_length, int(settings["doc_stride"]))

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
    question_words, _, _ = split_words_in_bytes(questions)
    question_ids = _regroup(question_words, tokenizer.tokenize(question_words.flat_values))
    question_ids = question_ids[:, : plan.question_cap]
    words, word_begins, word_ends = split_words_in_bytes(contexts)
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
