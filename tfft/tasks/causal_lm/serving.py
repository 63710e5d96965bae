"""The exported serving graph of ``--task causal-lm``: token ids in, generated ids (or scores) out.

Byte-level BPE (GPT-2's) cannot be tokenized in the graph here yet, so the export takes
token ids and its tokenizer travels in ``assets.extra/tokenizer/`` (``tfft predict`` and
``tfft evaluate`` use it). Signatures:

- ``generate_ids`` (also ``serving_default``): ``input_ids``, ``attention_mask`` (int32
  ``[batch, length]``, prompts **left** padded, ``length <= prompt_length`` of the metadata
  settings) -> ``generated_ids`` (int32 ``[batch, max_new_tokens]``: the new tokens only,
  padded after the end token). Prompts are left padded to ``prompt_length`` in the graph, so
  generation (XLA-compiled when it compiles) always sees one shape. The generation settings
  (greedy / sampling and its seed / beams, ``max_new_tokens``) are fixed at export time.
- ``score_ids``: ``input_ids``, ``attention_mask``, ``labels`` (right padded) ->
  ``token_nll`` (float32) and ``token_correct`` (int32), ``[batch, length]``: the loss,
  perplexity and next-token accuracy of ``tfft evaluate``.
"""

from __future__ import annotations

import logging

import tensorflow as tf

from tfft.tasks.causal_lm.metrics import token_nll_and_correct

logger = logging.getLogger(__name__)

GENERATE_CHUNK = 8  # rows per generation call in exports (beam search needs a static batch size)


class CausalLMServing(tf.Module):
    """The serving graph of a :class:`~tfft.backbones.causal_lm.CausalLMModel` (see the module docs).

    Args:
        model: the model built by tfft.
        prompt_length: the longest prompt in tokens (prompts are left padded to it).
        xla: compile generation with XLA; None tries it and falls back when it fails.
    """

    in_graph_tokenizer = False

    def __init__(self, model, prompt_length: int, xla: bool | None = None):
        super().__init__(name="tfft_serving")
        spec = model.tfft_spec
        self.model = model
        self.prompt_length = int(prompt_length)
        self.pad_id = int(spec.backbone.pad_id)
        self.settings = spec.task_object.generation_settings(spec.settings)
        self.xla = self._xla_works() if xla is None else xla

    def _generate(self, input_ids, attention_mask, xla: bool):
        return self.model.generator(self.settings, xla=xla)(input_ids, attention_mask)

    def _xla_works(self) -> bool:
        """Try the XLA-compiled generation once on the serving shape; fall back when it fails."""
        ids = tf.fill([GENERATE_CHUNK, self.prompt_length], self.pad_id)
        mask = tf.concat(
            [
                tf.zeros([GENERATE_CHUNK, self.prompt_length - 1], tf.int32),
                tf.ones([GENERATE_CHUNK, 1], tf.int32),
            ],
            1,
        )
        try:
            self._generate(ids, mask, xla=True)
            return True
        except (tf.errors.OpError, ValueError, NotImplementedError, TypeError) as error:
            logger.warning("Exporting generation without XLA: %s", str(error).splitlines()[0][:200])
            return False

    def from_ids(self, input_ids, attention_mask) -> dict:
        """Left pad to ``prompt_length``, generate in chunks of ``GENERATE_CHUNK`` rows, keep the new ids."""
        rows, length = GENERATE_CHUNK, self.prompt_length
        width = int(self.settings["max_new_tokens"])
        input_ids = tf.cast(input_ids, tf.int32)[:, -length:]
        attention_mask = tf.cast(attention_mask, tf.int32)[:, -length:]
        extra = [[0, 0], [length - tf.shape(input_ids)[1], 0]]
        input_ids = tf.pad(input_ids, extra, constant_values=self.pad_id)
        attention_mask = tf.pad(attention_mask, extra)
        count = tf.shape(input_ids)[0]
        chunks = (count + rows - 1) // rows
        fill = chunks * rows - count

        def chunked(value):
            value = tf.concat([value, tf.repeat(value[:1], fill, axis=0)], 0)
            return tf.reshape(value, [chunks, rows, length])

        def one(chunk):
            ids, mask = chunk
            output = tf.cast(self._generate(ids, mask, self.xla), tf.int32)[:, length:]
            output = tf.pad(output, [[0, 0], [0, width - tf.shape(output)[1]]], constant_values=self.pad_id)
            return tf.ensure_shape(output, [rows, width])

        outputs = tf.map_fn(
            one,
            (chunked(input_ids), chunked(attention_mask)),
            fn_output_signature=tf.TensorSpec([rows, width], tf.int32),
        )
        return {"generated_ids": tf.reshape(outputs, [-1, width])[:count]}

    def score(self, input_ids, attention_mask, labels) -> dict:
        logits = self.model({"input_ids": input_ids, "attention_mask": attention_mask}, training=False)
        nll, correct = token_nll_and_correct(labels, logits)
        return {"token_nll": nll, "token_correct": correct}

    def signatures(self) -> dict:
        spec = [tf.TensorSpec([None, None], tf.int32, name=name) for name in ("input_ids", "attention_mask")]
        generate = tf.function(lambda input_ids, attention_mask: self.from_ids(input_ids, attention_mask))
        score = tf.function(
            lambda input_ids, attention_mask, labels: self.score(input_ids, attention_mask, labels)
        )
        generate_ids = generate.get_concrete_function(*spec)
        return {
            "serving_default": generate_ids,
            "generate_ids": generate_ids,
            "score_ids": score.get_concrete_function(
                *spec, tf.TensorSpec([None, None], tf.int32, name="labels")
            ),
        }
