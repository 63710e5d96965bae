"""The public data helper: texts and labels -> a tf.data pipeline for a tfft model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.errors import DataError
from tfft.model import spec_of
from tfft.preprocess import text_dataset, token_dataset


def label_ids(label_names: Sequence[str], labels: Sequence) -> np.ndarray:
    """Map labels (names, or ints that index ``label_names``) to int32 ids."""
    index = {name: position for position, name in enumerate(label_names)}
    ids = []
    for row, label in enumerate(labels):
        key = str(label).strip()
        if key not in index:
            raise DataError(
                f"labels[{row}]: label {label!r} is not one of the model's labels: {', '.join(label_names)}"
            )
        ids.append(index[key])
    return np.asarray(ids, dtype=np.int32)


def make_dataset(
    model,
    texts: Sequence[str],
    labels: Sequence | None = None,
    text_pairs: Sequence[str] | None = None,
    *,
    batch_size: int = 32,
    max_length: int = 128,
    training: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Tokenize, truncate and pad texts for a model built by :func:`tfft.build_model`.

    Args:
        model: the tfft model; its backbone's tokenizer is used.
        texts: the (first) texts.
        labels: label names (or ids as ints/strings) for training and evaluation.
        text_pairs: second segments, for sentence-pair models.
        batch_size: rows per batch.
        max_length: longest sequence in tokens, special tokens included.
        training: shuffle each epoch and bucket by length.
        seed: shuffling seed.

    Returns:
        ``(features, label_ids, sample_weight)`` batches, or features alone without labels.
    """
    spec = spec_of(model)
    if spec.pair != (text_pairs is not None):
        need = "needs" if spec.pair else "takes no"
        raise DataError(f"This model {need} `text_pairs` (it was built with pair={spec.pair}).")
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise DataError(f"`text_pairs` has {len(text_pairs)} entries for {len(texts)} texts.")
    ids = None if labels is None else label_ids(spec.label_names, labels)
    encoder = spec.backbone.encoder
    if encoder is None:
        return text_dataset(texts, text_pairs, ids, batch_size=batch_size, training=training, seed=seed)
    encoded = encoder.encode(texts, text_pairs, max_length)
    return token_dataset(
        encoded,
        ids,
        batch_size=batch_size,
        max_length=max_length,
        pad_id=encoder.template.pad_id,
        training=training,
        seed=seed,
    )
