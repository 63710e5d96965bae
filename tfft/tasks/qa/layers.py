"""The Keras pieces of the QA model: the span-logits layer and the span-accuracy metric."""

from __future__ import annotations

import tensorflow as tf

from tfft.keras import keras
from tfft.tokenization import TextEncoder

#: the logit of positions that can neither start nor end an answer (and of padding)
MASKED_LOGIT = -1e9


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
