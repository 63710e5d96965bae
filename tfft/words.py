"""Raw text to words with offsets, the way BERT's basic tokenizer splits it, as TensorFlow ops.

Word-level tasks (named entities, extractive question answering) tokenize each word on its
own so that every word piece maps back to the characters of its word. This module holds
the one splitter they share; it runs eagerly (training data) and inside exported graphs
(raw-text serving signatures) alike, via ``tensorflow_text.regex_split_with_offsets``.

Words are runs of characters between whitespace; every punctuation character (Unicode
``P*`` and the ASCII symbols) and every CJK ideograph is a word of its own. The pure Python
twin of the default rules is :func:`tfft.data.conll.split_words`.

Example:
    >>> words, starts, ends = split_words(tf.constant(["Hello, New York!"]))
    >>> [word.decode() for word in words[0].numpy()]
    ['Hello', ',', 'New', 'York', '!']
    >>> starts.to_list(), ends.to_list()
    ([[0, 5, 7, 11, 15]], [[5, 6, 10, 15, 16]])
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import tensorflow as tf

from tfft.data.conll import CJK_CLASS, INVISIBLE_CLASS, PUNCTUATION_CLASS, WHITESPACE_CLASS

# Whitespace sets (bodies of an RE2 character class).
PYTHON_WHITESPACE = WHITESPACE_CLASS
"""The characters Python's ``str.isspace()`` accepts."""
RE2_WHITESPACE = r"\s\p{Z}"
"""RE2's ``\\s`` (tab, line feed, form feed, carriage return, space) and Unicode separators
(``Z*``): unlike :data:`PYTHON_WHITESPACE`, not U+000B, U+001C to U+001F nor U+0085."""

# Every punctuation character and every CJK ideograph is a word of its own.
_SPLITTERS = f"[{PUNCTUATION_CLASS}]|[{CJK_CLASS}]"
_NO_OFFSET = np.iinfo(np.int64).max


def split_words(
    texts: tf.Tensor,
    *,
    whitespace: str = PYTHON_WHITESPACE,
    drop_invisible: bool = True,
    offsets: Literal["char", "byte"] = "char",
) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
    """Split strings into words with their offsets, in the graph or eagerly.

    Args:
        texts: tf.string ``[batch]``, UTF-8.
        whitespace: the characters that separate words, as the body of an RE2 character
            class (:data:`PYTHON_WHITESPACE` or :data:`RE2_WHITESPACE`).
        drop_invisible: drop words made only of control or format characters (``Cc``,
            ``Cf``) and U+FFFD, which tokenizers delete, and read on past NUL characters.
            With False such words are kept and a text's words end at its first NUL (where
            ``regex_split_with_offsets`` stops).
        offsets: ``"char"`` for offsets in Unicode characters, ``"byte"`` for UTF-8 bytes.

    Returns:
        ``(words, starts, ends)``: ragged ``[batch, (words)]`` tf.string words and int64
        offsets of each word in its text (``end`` exclusive).

    Raises:
        ValueError: ``offsets`` is neither ``"char"`` nor ``"byte"``.

    Example:
        >>> words, starts, ends = split_words(tf.constant(["café, 中文"]), offsets="byte")
        >>> [word.decode() for word in words[0].numpy()], starts.to_list(), ends.to_list()
        (['café', ',', '中', '文'], [[0, 5, 7, 10]], [[5, 6, 10, 13]])
    """
    import tensorflow_text as text

    if offsets not in ("char", "byte"):
        raise ValueError(f"`offsets` must be 'char' or 'byte'. Received: offsets={offsets!r}")
    source = texts
    if drop_invisible:
        # The splitter stops at NUL bytes: swap them for another invisible byte (offsets stay put).
        source = tf.strings.regex_replace(texts, r"\x00", "\x01")
    words, starts, ends = text.regex_split_with_offsets(source, f"[{whitespace}]+|{_SPLITTERS}", _SPLITTERS)
    if drop_invisible:
        visible = tf.logical_not(tf.strings.regex_full_match(words, f"[{INVISIBLE_CLASS}]+"))
        words = tf.ragged.boolean_mask(words, visible)
        starts = tf.ragged.boolean_mask(starts, visible)
        ends = tf.ragged.boolean_mask(ends, visible)
    if offsets == "byte":
        return words, starts, ends
    # Byte offsets -> character offsets: count the characters that start before each offset.
    _, char_bytes = tf.strings.unicode_decode_with_offsets(texts, "UTF-8")
    sentinel = tf.fill([tf.shape(texts)[0], 1], tf.constant(_NO_OFFSET, tf.int64))
    char_bytes = tf.concat([char_bytes.to_tensor(default_value=_NO_OFFSET), sentinel], axis=1)

    def to_chars(byte_offsets: tf.RaggedTensor) -> tf.RaggedTensor:
        dense = tf.searchsorted(char_bytes, byte_offsets.to_tensor(), side="left")
        return tf.RaggedTensor.from_tensor(dense, lengths=byte_offsets.row_lengths())

    return words, to_chars(starts), to_chars(ends)
