"""Token rows with word numbers, and whole-word masking in the tf.data pipeline (``--task mlm``).

**Rows** (:func:`word_rows`): each document is tokenized with the tokenizer's special tokens;
a document longer than ``max_length`` tokens is cut into several rows (nothing is dropped).
Alongside the ids, each row carries its **word numbers**: 1, 2, ... for the tokens of the
row's first, second, ... word (the fast tokenizer's ``word_ids``: WordPiece ``##``
continuations and byte-level BPE pieces belong to their word), 0 for special tokens. Batches
are bucketed by length (:func:`tfft.preprocess.bucketed_dataset`); padding has word number 0.

**Masking** (:func:`mask_batch`, a map on batches): in a row of ``n`` words,
``k = floor(p * n + u)`` words (``u`` uniform in [0, 1), so ``k`` is ``p * n`` on average;
at least one word when the row has any) are chosen uniformly at random, and every token of
a chosen word becomes a prediction target: 80% of them are replaced by the mask token, 10%
by a random ordinary token (special tokens are never drawn), 10% stay unchanged. Tokens with
word number 0 (special tokens, padding, filler rows) are never chosen. The loss weight is 1
on the chosen tokens, 0 elsewhere. Masks come from stateless random ops seeded by a stream of
``tf.data.Dataset.random(seed)``: training draws new masks every epoch (the same ones for the
same seed), evaluation the same masks every time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.preprocess import Batching, bucket_lengths, bucketed_dataset, ragged_rows

#: of the chosen tokens: below MASK_SHARE -> mask token, below MASK_SHARE + RANDOM_SHARE -> random token
MASK_SHARE = 0.8
RANDOM_SHARE = 0.1


def word_rows(
    tokenizer, texts: Sequence[str], max_length: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """``(ids, words, document)`` rows of ``texts``: token ids, word numbers (0 = special token)
    and the index of the document each row comes from (long documents give several rows).

    >>> from transformers import BertTokenizerFast  # doctest: +SKIP
    >>> ids, words, docs = word_rows(tokenizer, ["playing well"], 16)  # doctest: +SKIP
    >>> words[0].tolist()  # [CLS] play ##ing well [SEP]  # doctest: +SKIP
    [0, 1, 1, 2, 0]
    """
    if not texts:
        return [], [], []
    encoded = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        return_overflowing_tokens=True,
        add_special_tokens=True,
    )
    documents = encoded.get("overflow_to_sample_mapping", list(range(len(texts))))
    ids, words = [], []
    for index, row in enumerate(encoded["input_ids"]):
        numbers = np.zeros([len(row)], np.int32)
        previous, count = None, 0
        for position, word in enumerate(encoded.word_ids(index)):
            if word is None:
                continue
            if word != previous:
                count += 1
                previous = word
            numbers[position] = count
        ids.append(np.asarray(row, np.int32))
        words.append(numbers)
    return ids, words, [int(d) for d in documents]


def ordinary_ids(tokenizer) -> np.ndarray:
    """The token ids random replacements are drawn from: every id but the special tokens."""
    special = set(tokenizer.all_special_ids)
    return np.asarray([i for i in range(len(tokenizer)) if i not in special], np.int32)


def mask_batch(
    input_ids: tf.Tensor,
    words: tf.Tensor,
    seed: tf.Tensor,
    *,
    probability: float,
    mask_id: int,
    candidates: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Whole-word masking of a batch (see the module docs).

    Args:
        input_ids: int32 ``[batch, length]``.
        words: int32 ``[batch, length]`` word numbers (0: never masked).
        seed: a stateless seed, shape ``[2]``.
        probability: the share of words chosen.
        mask_id: the mask token id.
        candidates: int32 ids random replacements are drawn from (:func:`ordinary_ids`).

    Returns:
        ``(masked_ids, labels, weights)``: the ids the model reads, the original ids, and
        float32 weights (1 on chosen tokens).
    """
    input_ids = tf.cast(input_ids, tf.int32)
    words = tf.cast(words, tf.int32)
    batch, length = tf.shape(words)[0], tf.shape(words)[1]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
    n_words = tf.maximum(tf.reduce_max(words, axis=1), 0)
    # One random score per word number 0..length; invalid numbers score 2 and rank last.
    number = tf.range(length + 1)[tf.newaxis, :]
    valid = (number >= 1) & (number <= n_words[:, tf.newaxis])
    scores = tf.where(valid, tf.random.stateless_uniform([batch, length + 1], seeds[0]), 2.0)
    rank = tf.argsort(tf.argsort(scores, axis=1), axis=1)
    count_float = tf.floor(
        probability * tf.cast(n_words, tf.float32) + tf.random.stateless_uniform([batch], seeds[1])
    )
    count = tf.maximum(tf.cast(count_float, tf.int32), tf.minimum(n_words, 1))
    chosen_word = rank < count[:, tf.newaxis]
    chosen = tf.gather(chosen_word, words, batch_dims=1) & (words > 0)
    choice = tf.random.stateless_uniform([batch, length], seeds[2])
    to_mask = chosen & (choice < MASK_SHARE)
    to_random = chosen & (choice >= MASK_SHARE) & (choice < MASK_SHARE + RANDOM_SHARE)
    picks = tf.random.stateless_uniform(
        [batch, length], seeds[3], minval=0, maxval=tf.shape(candidates)[0], dtype=tf.int32
    )
    random_ids = tf.gather(candidates, picks)
    masked = tf.where(to_mask, tf.cast(mask_id, tf.int32), tf.where(to_random, random_ids, input_ids))
    return masked, input_ids, tf.cast(chosen, tf.float32)


def seed_stream(seed: int | None, fresh_each_epoch: bool) -> tf.data.Dataset:
    """Stateless seeds, one ``[2]`` int64 per batch: new ones every iteration of the
    dataset when ``fresh_each_epoch`` (training), the same ones otherwise."""
    stream = tf.data.Dataset.random(
        seed=0 if seed is None else int(seed), rerandomize_each_iteration=fresh_each_epoch
    )
    return stream.batch(2, drop_remainder=True)


def masked_batches(
    tokenizer,
    texts: Sequence[str],
    *,
    probability: float,
    batch_size: int,
    max_length: int,
    training: bool = False,
    seed: int | None = None,
    batching: Batching | None = None,
) -> tf.data.Dataset:
    """``(features, labels, weights)`` batches of documents with whole-word masks (see the module docs).

    Training batches are shuffled, bucketed by length, filled up to ``batch_size`` rows (filler
    rows have no words, so weight 0) and masked afresh every epoch (or drawn as ``batching``
    says, :func:`tfft.preprocess.bucketed_dataset`); evaluation batches keep the input order
    and the same masks every time.
    """
    ids, words, _ = word_rows(tokenizer, texts, max_length)
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    columns = {"input_ids": ragged_rows(ids), "words": ragged_rows(words)}

    def example(row):
        features = {"input_ids": row["input_ids"], "attention_mask": tf.ones_like(row["input_ids"])}
        return features, row["input_ids"], row["words"]

    padding = ({"input_ids": pad_id, "attention_mask": 0}, pad_id, 0)
    batches = bucketed_dataset(
        columns,
        example,
        padding,
        batch_size=batch_size,
        buckets=bucket_lengths(max_length),
        lengths=[len(row) for row in ids],
        training=training,
        seed=seed,
        batching=batching,
    )
    candidates = tf.constant(ordinary_ids(tokenizer))
    mask_id = int(tokenizer.mask_token_id)

    def mask(batch, batch_seed):
        features, labels, batch_words = batch
        masked, labels, weights = mask_batch(
            labels, batch_words, batch_seed, probability=probability, mask_id=mask_id, candidates=candidates
        )
        return {"input_ids": masked, "attention_mask": features["attention_mask"]}, labels, weights

    zipped = tf.data.Dataset.zip((batches, seed_stream(seed, fresh_each_epoch=training)))
    return zipped.map(mask, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
