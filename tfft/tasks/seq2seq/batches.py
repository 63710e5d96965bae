"""Batches of ``--task summarize|translate``: token ids of both sides, bucketed and padded.

Training is teacher forcing: the decoder reads the target shifted right behind the start
token; the labels are the target ids (end token last), each real target token weighing 1.
Both sides are padded to bucket lengths (16, 32, ... up to ``max_length`` for the source
and ``max_target_length`` for the target), so XLA compiles few shapes; training batches
that need not keep a bounded set of shapes (``Batching(fixed_shapes=False)``) have no filler
rows and are padded to the fine grid of :func:`tfft.token_budget.budget_lengths` instead,
but are still grouped on the power-of-two buckets of the longer side, as every task's rows
are (batches of pairs of nearly one length slowed the Multi30k Marian down: see
:mod:`tfft.preprocess`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.preprocess import Batching, bucket_lengths, bucketed_dataset, ragged_rows


def encode_sources(model, texts: Sequence[str], max_length: int) -> list[np.ndarray]:
    """Source ids of each text (behind the ``source_prefix`` setting), truncated to ``max_length``."""
    spec = model.tfft_spec
    prefix = spec.settings.get("source_prefix") or ""
    return spec.backbone.encoder.encode([prefix + text for text in texts], None, max_length).input_ids


def encode_targets(model, texts: Sequence[str]) -> list[np.ndarray]:
    """Label ids (end token last, no start token), truncated to ``max_target_length``."""
    backbone = model.tfft_spec.backbone
    tokenizer = backbone.target_tokenizer
    start = model.decoder_start_token_id
    limit = int(model.tfft_spec.settings["max_target_length"])
    ids = tokenizer(text_target=list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    rows = []
    for row in ids:
        if len(row) > 1 and row[0] == start and start not in (tokenizer.eos_token_id, tokenizer.pad_token_id):
            row = row[1:]  # BERT-style [CLS]: it is the decoder's start token, not a label
        if len(row) > limit:
            row = row[: limit - 1] + row[-1:]  # keep the end token
        rows.append(np.asarray(row, np.int32))
    return rows


def seq2seq_example(row):
    """One example's features; with targets, also its labels and a weight of 1 per target token."""
    features = {"input_ids": row["input_ids"], "attention_mask": tf.ones_like(row["input_ids"])}
    if "labels" not in row:
        return features
    features["decoder_input_ids"] = row["decoder_input_ids"]
    features["decoder_attention_mask"] = tf.ones_like(row["decoder_input_ids"])
    return features, row["labels"], tf.ones_like(row["labels"], tf.float32)


def pad_sides(source_buckets: list[int], target_buckets: list[int] | None, source_pad: int, target_pad: int):
    """Pad each side of a batch (padded to its longest row) up to its next bucket length."""
    source_bounds = tf.constant(source_buckets, tf.int32)
    target_bounds = None if target_buckets is None else tf.constant(target_buckets, tf.int32)

    def to_bucket(value, bounds, pad):
        length = tf.shape(value)[1]
        target = bounds[tf.argmax(tf.cast(bounds >= length, tf.int32))]
        return tf.pad(value, [[0, 0], [0, tf.maximum(target - length, 0)]], constant_values=pad)

    def pad(features, *rest):
        padded = {"input_ids": to_bucket(features["input_ids"], source_bounds, source_pad)}
        padded["attention_mask"] = to_bucket(features["attention_mask"], source_bounds, 0)
        if target_bounds is None:
            return padded
        labels, weights = rest
        padded["decoder_input_ids"] = to_bucket(features["decoder_input_ids"], target_bounds, target_pad)
        padded["decoder_attention_mask"] = to_bucket(features["decoder_attention_mask"], target_bounds, 0)
        return padded, to_bucket(labels, target_bounds, target_pad), to_bucket(weights, target_bounds, 0.0)

    return pad


def seq2seq_batches(
    model,
    sources: Sequence[str],
    targets: Sequence[str] | None,
    batch_size: int,
    max_length: int,
    training: bool,
    seed: int | None,
    batching: Batching | None = None,
) -> tf.data.Dataset:
    """``(features, labels, weights)`` batches, or features alone when ``targets`` is None;
    ``batching`` draws the training batches as :func:`tfft.preprocess.bucketed_dataset` says."""
    spec = model.tfft_spec
    source_pad = spec.backbone.encoder.template.pad_id
    target_pad = int(model.hf.generation_config.pad_token_id)
    source_ids = encode_sources(model, sources, max_length)
    source_buckets = bucket_lengths(max_length)
    columns = {"input_ids": ragged_rows(source_ids)}
    if targets is None:
        return bucketed_dataset(
            columns,
            seq2seq_example,
            {"input_ids": source_pad, "attention_mask": 0},
            batch_size=batch_size,
            buckets=source_buckets,
            to_buckets=pad_sides(source_buckets, None, source_pad, target_pad),
        )
    labels = encode_targets(model, targets)
    start = model.decoder_start_token_id
    decoder_ids = [np.concatenate([[start], row[:-1]]).astype(np.int32) for row in labels]
    columns["decoder_input_ids"] = ragged_rows(decoder_ids)
    columns["labels"] = ragged_rows(labels)
    max_target_length = int(spec.settings["max_target_length"])
    padding = (
        {
            "input_ids": source_pad,
            "attention_mask": 0,
            "decoder_input_ids": target_pad,
            "decoder_attention_mask": 0,
        },
        target_pad,
        0.0,
    )
    # Training groups examples on the power-of-two buckets of their longer side; each side is
    # padded to its own lengths (Batching.grid: powers of two for bounded shapes, the fine
    # grid when batches need not keep them).
    grid = (batching or Batching()).grid
    return bucketed_dataset(
        columns,
        seq2seq_example,
        padding,
        batch_size=batch_size,
        buckets=bucket_lengths(max(max_length, max_target_length)),
        lengths=np.maximum([len(s) for s in source_ids], [len(y) for y in labels]),
        training=training,
        seed=seed,
        to_buckets=pad_sides(grid(max_length), grid(max_target_length), source_pad, target_pad),
        batching=batching,
    )
