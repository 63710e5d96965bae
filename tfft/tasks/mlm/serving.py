"""The exported serving graph of ``--task mlm``: token ids in, top predictions (or scores) out.

The export takes token ids (its tokenizer travels in ``assets.extra/tokenizer/``; ``tfft
predict`` and ``tfft evaluate`` use it). Signatures:

- ``fill_ids`` (also ``serving_default``): ``input_ids``, ``attention_mask`` (int32
  ``[batch, length]``) -> ``top_ids`` (int32) and ``top_probabilities`` (float32),
  ``[batch, length, TOP_K]``: the likeliest tokens at every position.
- ``score_ids``: ``input_ids`` (masked), ``attention_mask``, ``labels`` (the original ids) ->
  ``token_nll`` (float32) and ``token_correct`` (int32), ``[batch, length]``: the loss,
  perplexity and masked-token accuracy of ``tfft evaluate`` (weighted by the masks in Python).
"""

from __future__ import annotations

import tensorflow as tf

from tfft.tasks.causal_lm.metrics import token_nll_and_correct

TOP_K = 5


class MaskedLMServing(tf.Module):
    """The serving graph of a :class:`~tfft.backbones.masked_lm.MaskedLMModel` (see the module docs)."""

    in_graph_tokenizer = False

    def __init__(self, model, max_length: int):
        super().__init__(name="tfft_serving")
        self.model = model
        self.max_length = int(max_length)

    def _logits(self, input_ids, attention_mask):
        features = {
            "input_ids": input_ids[:, : self.max_length],
            "attention_mask": attention_mask[:, : self.max_length],
        }
        return self.model(features, training=False)

    def fill(self, input_ids, attention_mask) -> dict:
        probabilities = tf.nn.softmax(self._logits(input_ids, attention_mask), axis=-1)
        top = tf.math.top_k(probabilities, k=TOP_K)
        return {"top_ids": tf.cast(top.indices, tf.int32), "top_probabilities": top.values}

    def score(self, input_ids, attention_mask, labels) -> dict:
        nll, correct = token_nll_and_correct(
            labels[:, : self.max_length], self._logits(input_ids, attention_mask)
        )
        return {"token_nll": nll, "token_correct": correct}

    def signatures(self) -> dict:
        spec = [tf.TensorSpec([None, None], tf.int32, name=name) for name in ("input_ids", "attention_mask")]
        fill = tf.function(lambda input_ids, attention_mask: self.fill(input_ids, attention_mask))
        score = tf.function(
            lambda input_ids, attention_mask, labels: self.score(input_ids, attention_mask, labels)
        )
        fill_ids = fill.get_concrete_function(*spec)
        return {
            "serving_default": fill_ids,
            "fill_ids": fill_ids,
            "score_ids": score.get_concrete_function(
                *spec, tf.TensorSpec([None, None], tf.int32, name="labels")
            ),
        }
