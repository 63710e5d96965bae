"""How a tagging is judged: seqeval's entity-level precision, recall and F1, and its Keras twin.

:func:`entity_metrics` gives the final figures (overall micro averages and per entity
type) of ``tfft evaluate`` and the end of ``tfft fit``; :class:`EntityF1` is the overall F1
computed batch by batch during training (``val_entity_f1``) with the same chunking rules
(:mod:`tfft.tasks.ner.entities`). :func:`class_weights` weighs the tags of the loss by
their frequency in the training data (``--class-weights auto``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.keras import keras
from tfft.tasks.ner.entities import chunk_spans, chunks, tag_codes, tag_tables


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
