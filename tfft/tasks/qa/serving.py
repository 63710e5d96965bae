"""The exported serving graph of ``--task qa``: raw text in, answers out (or window logits).

See :class:`tfft.tasks.qa.task.QATask` for the signatures.
"""

from __future__ import annotations

import tensorflow as tf

from tfft.errors import ConfigError
from tfft.tasks.qa.decode import graph_decode
from tfft.tasks.qa.windows import WindowPlan, graph_windows


class QAServing(tf.Module):
    """The serving graph of ``--task qa`` (see :class:`~tfft.tasks.qa.task.QATask` for the signatures)."""

    def __init__(self, model, max_length: int):
        super().__init__(name="tfft_serving")
        spec = model.tfft_spec
        encoder = spec.backbone.encoder
        if encoder is None:
            raise ConfigError("Question answering needs a token encoder backbone.")
        self.model = model
        self.max_length = max_length
        self._plan = WindowPlan.from_settings(encoder, spec.settings, max_length)
        self._type_id = encoder.template.pair_type_id if encoder.uses_token_types else 0
        self._max_answer_length = int(spec.settings["max_answer_length"])
        self._allow_no_answer = bool(spec.settings["allow_no_answer"])
        self.tokenizer = encoder.graph_word_tokenizer()

    @property
    def in_graph_tokenizer(self) -> bool:
        return self.tokenizer is not None

    def _logits(self, features: dict) -> tf.Tensor:
        return tf.cast(self.model(features, training=False), tf.float32)

    def from_ids(self, input_ids, attention_mask, token_type_ids) -> dict:
        logits = self._logits(
            {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        )
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}

    def from_text(self, question, context) -> dict:
        windows = graph_windows(self.tokenizer, self._plan, question, context, self._type_id)
        logits = self._logits(windows["features"])
        return graph_decode(
            windows,
            logits[..., 0],
            logits[..., 1],
            context,
            max_answer_length=self._max_answer_length,
            allow_no_answer=self._allow_no_answer,
        )

    def signatures(self) -> dict:
        """The concrete functions to save, by signature name."""
        signatures = {}
        if self.in_graph_tokenizer:
            function = tf.function(lambda question, context: self.from_text(question, context))
            signatures["serving_default"] = function.get_concrete_function(
                tf.TensorSpec([None], tf.string, name="question"),
                tf.TensorSpec([None], tf.string, name="context"),
            )
        ids = [
            tf.TensorSpec([None, None], tf.int32, name=name)
            for name in ("input_ids", "attention_mask", "token_type_ids")
        ]
        function = tf.function(
            lambda input_ids, attention_mask, token_type_ids: self.from_ids(
                input_ids, attention_mask, token_type_ids
            )
        )
        signatures["predict_ids"] = function.get_concrete_function(*ids)
        signatures.setdefault("serving_default", signatures["predict_ids"])
        return signatures
