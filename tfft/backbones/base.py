"""What every backbone offers the rest of tfft."""

from __future__ import annotations

import tensorflow as tf

from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.tokenization import TextEncoder

TOKEN_FEATURES = ("input_ids", "attention_mask", "token_type_ids")


class Backbone:
    """A pretrained network that turns a batch of inputs into one vector per example.

    Attributes:
        source: where it came from (a path, a URL or a Hugging Face name).
        kind: ``"hf"``, ``"hub-encoder"`` or ``"hub-text"``.
        encoder: the :class:`~tfft.tokenization.TextEncoder` that makes its token ids,
            or None when the backbone reads raw strings.
        poolings: the pooling modes it supports; the first one is its default.
        xla_by_default: whether ``--xla`` defaults to on with this backbone.
    """

    source: str
    kind: str
    encoder: TextEncoder | None = None
    poolings: tuple[str, ...] = ("cls", "mean")
    xla_by_default: bool = True

    @property
    def reads_text(self) -> bool:
        """True when the backbone takes raw strings rather than token ids."""
        return self.encoder is None

    def inputs(self, pair: bool) -> dict[str, keras.Input]:
        """Symbolic Keras inputs for the functional model."""
        if self.reads_text:
            names = ("text", "text_pair") if pair else ("text",)
            return {name: keras.Input(shape=(), dtype=tf.string, name=name) for name in names}
        return {name: keras.Input(shape=(None,), dtype=tf.int32, name=name) for name in TOKEN_FEATURES}

    def resolve_pooling(self, pooling: str) -> str:
        """Turn ``"auto"`` into this backbone's default and check the others."""
        if pooling == "auto":
            return self.poolings[0]
        if pooling not in self.poolings:
            raise ConfigError(
                f"`pooling` must be one of auto, {', '.join(self.poolings)} for a {self.kind} backbone. "
                f"Received: pooling={pooling!r}"
            )
        return pooling

    def pooled(self, inputs: dict, pooling: str) -> tf.Tensor:
        """``[batch, hidden]`` features for the head, built on symbolic ``inputs``."""
        raise NotImplementedError

    def sequence(self, inputs: dict) -> tf.Tensor:
        """``[batch, length, hidden]`` last hidden states, for token-level tasks (NER, QA)."""
        raise ConfigError(
            f"A {self.kind} backbone gives one vector per text, not per token: token-level tasks "
            "(ner, qa) need a token encoder (--hf-model, or a BERT-style --hub-url encoder)."
        )

    def describe(self) -> dict:
        """What exports and run folders record about the backbone."""
        info = {"kind": self.kind, "source": self.source}
        if self.encoder is not None:
            info["tokenizer"] = self.encoder.describe()
        return info


def pool_sequence(hidden: tf.Tensor, mask: tf.Tensor, pooling: str) -> tf.Tensor:
    """Pool ``[batch, length, hidden]`` states to ``[batch, hidden]``.

    Args:
        hidden: the backbone's last hidden states.
        mask: ``[batch, length]`` 1 for real tokens, 0 for padding (right padding).
        pooling: ``cls`` (first token), ``mean`` (over real tokens) or ``last``
            (the last real token, for decoders).
    """
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        weights = tf.cast(mask, hidden.dtype)[:, :, None]
        total = tf.reduce_sum(hidden * weights, axis=1)
        return total / tf.maximum(tf.reduce_sum(weights, axis=1), tf.cast(1.0, hidden.dtype))
    if pooling == "last":
        last = tf.maximum(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1) - 1, 0)
        return tf.gather(hidden, last, axis=1, batch_dims=1)
    raise ConfigError(f"Unknown pooling {pooling!r}")


class PoolSequence(keras.layers.Layer):
    """:func:`pool_sequence` as a Keras layer, so functional models stay serializable."""

    def __init__(self, pooling: str, **kwargs):
        super().__init__(**kwargs)
        self.pooling = pooling

    def call(self, hidden, mask):
        return pool_sequence(hidden, mask, self.pooling)

    def get_config(self):
        return {**super().get_config(), "pooling": self.pooling}
