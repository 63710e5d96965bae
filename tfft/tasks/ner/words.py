"""Words and their word pieces: sentences packed as model inputs, per-token labels, per-word predictions.

Words are tokenized one by one; the first piece of each word carries the word's tag and
the other pieces are left out of the loss (label :data:`IGNORE`, weight 0). Sentences
longer than ``max_length`` pieces lose their last words; those words are counted
(:attr:`PackedWords.truncated`) and get no tag. Exported models do the same in the graph:
:func:`graph_pack_words` and :func:`graph_word_predictions` sit next to their Python twins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.errors import ConfigError
from tfft.tokenization import SequenceTemplate, TextEncoder, pack_segments, to_dense_inputs

IGNORE = -100  # label of tokens that are not the first piece of a word


def text_encoder(model) -> TextEncoder:
    """The text encoder of ``model``'s backbone, which tokenizes the words.

    Raises:
        ConfigError: the backbone has no tokenizer.
    """
    encoder = model.tfft_spec.backbone.encoder
    if encoder is None:
        raise ConfigError(
            "--task ner needs a backbone with a tokenizer (--hf-model or a BERT-style --hub-url)."
        )
    return encoder


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


def graph_pack_words(tokenizer, template: SequenceTemplate, words: tf.RaggedTensor, max_length: int) -> dict:
    """:func:`pack_words` as TensorFlow ops.

    Args:
        tokenizer: a :class:`~tfft.tokenization.GraphTokenizer` (``tokenize``: strings ->
            ragged piece ids).
        template: the special tokens around each sentence.
        words: tf.string ragged ``[batch, (words)]``.
        max_length: the longest packed sequence.

    Returns:
        A dict: ``features`` (dense ``input_ids``, ``attention_mask``, ``token_type_ids``
        ``[batch, length]``), ``positions`` (int32 ``[batch, max_words]``: the position of
        each word's first piece, 0 for words not kept), ``kept`` (bool ``[batch,
        max_words]``) and ``truncated`` (int32 ``[batch]``: words cut by ``max_length``).
    """
    budget = word_budget(template, max_length)
    splits = words.row_splits
    pieces = tokenizer.tokenize(words.flat_values)  # [words, (pieces)]
    counts = tf.cast(pieces.row_lengths(), tf.int64)
    ends = tf.cumsum(counts)
    before_row = tf.gather(tf.concat([[0], ends], axis=0), splits[:-1])
    offsets = ends - counts - tf.repeat(before_row, words.row_lengths())
    has_pieces = counts > 0
    kept = has_pieces & (offsets < budget)
    truncated = tf.RaggedTensor.from_row_splits(tf.cast(has_pieces & ~kept, tf.int32), splits)
    sentences = tf.RaggedTensor.from_row_splits(pieces, splits).merge_dims(1, 2)
    ids, types = pack_segments(sentences, None, template, max_length)
    positions = tf.where(kept, offsets + len(template.prefix), 0)
    return {
        "features": to_dense_inputs(ids, types, template.pad_id),
        "positions": tf.RaggedTensor.from_row_splits(tf.cast(positions, tf.int32), splits).to_tensor(0),
        "kept": tf.RaggedTensor.from_row_splits(kept, splits).to_tensor(False),
        "truncated": tf.reduce_sum(truncated, axis=1),
    }


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


def graph_word_predictions(
    probabilities: tf.Tensor, positions: tf.Tensor, kept: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """:func:`word_predictions` as TensorFlow ops, for a batch.

    Args:
        probabilities: float32 ``[batch, tokens, tags]`` softmax outputs.
        positions, kept: from :func:`graph_pack_words`.

    Returns:
        ``(tag_ids, scores)``: int32 and float32 ``[batch, max_words]``; -1 and 0.0 for
        words without a prediction.
    """
    chosen = tf.gather(probabilities, positions, batch_dims=1)  # [batch, words, tags]
    tag_id = tf.where(kept, tf.argmax(chosen, axis=-1, output_type=tf.int32), -1)
    score = tf.where(kept, tf.reduce_max(chosen, axis=-1), 0.0)
    return tag_id, score


def word_row(ids: np.ndarray, scores: np.ndarray, names: Sequence[str], truncated: int) -> dict:
    """One sentence's prediction as ``{"tags": [tag or None], "scores": [...], "truncated_words": n}``.

    Args:
        ids: the tag id of each word (-1: no prediction, the tag is None).
        scores: the probability of each word's tag.
        names: the tags, in id order.
        truncated: how many words of the sentence were cut by ``max_length``.
    """
    return {
        "tags": [names[i] if i >= 0 else None for i in ids.tolist()],
        "scores": [float(s) for s in scores.tolist()],
        "truncated_words": truncated,
    }
