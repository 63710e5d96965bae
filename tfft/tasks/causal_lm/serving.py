"""The exported serving graph of ``--task causal-lm``: raw text (or token ids) in, generated text out.

When the tokenizer is plain byte-level BPE (GPT-2's and kin), it runs in the graph
(:class:`tfft.text.bpe.ByteLevelBPETokenizer`), and the export takes raw text; ``tfft predict``
and ``tfft evaluate`` then need no Python tokenizer. It still travels in
``assets.extra/tokenizer/`` for exports read by older tfft versions and for id clients.
Signatures:

- ``generate`` (also ``serving_default`` when the tokenizer runs in the graph): ``text``
  (tf.string ``[batch]``, the prompts; the ``--template`` is applied in the graph) ->
  ``generated_text`` (tf.string ``[batch]``, cut at the first stop string) and
  ``generated_ids``. Equal to ``tfft predict`` / Python generation.
- ``generate_ids`` (``serving_default`` otherwise): ``input_ids``, ``attention_mask`` (int32
  ``[batch, length]``, prompts **left** padded, ``length <= prompt_length`` of the metadata
  settings) -> ``generated_ids`` (int32 ``[batch, max_new_tokens]``: the new tokens only,
  padded after the end token). Prompts are left padded to ``prompt_length`` in the graph, so
  generation (XLA-compiled when it compiles) always sees one shape. The generation settings
  (greedy / sampling and its seed / beams, ``max_new_tokens``) are fixed at export time.
- ``score_ids``: ``input_ids``, ``attention_mask``, ``labels`` (right padded) ->
  ``token_nll`` (float32) and ``token_correct`` (int32), ``[batch, length]``: the loss,
  perplexity and next-token accuracy of ``tfft evaluate``.
- ``tokenize`` (with the in-graph tokenizer only): ``text`` (tf.string ``[batch]``) ->
  ``token_ids`` (with the tokenizer's special tokens) and ``bare_token_ids`` (without), int32
  ``[batch, length]`` padded with -1, and ``token_count`` / ``bare_token_count`` (int32
  ``[batch]``). ``tfft evaluate`` packs documents across rows and weights prompt/response
  tokens in Python (:mod:`~tfft.tasks.causal_lm.batches`, the code training uses), so a
  raw-text scoring signature would have to repeat that packing; it tokenizes here instead
  and scores with ``score_ids``.
- ``decode`` (with the in-graph tokenizer only): ``generated_ids`` (int32 ``[batch, length]``)
  -> ``text`` (special tokens skipped, no stop cut): ``tfft predict --max-new-tokens / --stop``
  decode a shortened or differently cut generation with it.
"""

from __future__ import annotations

import logging

import tensorflow as tf

from tfft.tasks.causal_lm.batches import unescape
from tfft.tasks.causal_lm.metrics import stop_strings, token_nll_and_correct
from tfft.text.bpe import ByteLevelBPETokenizer, literal_pattern
from tfft.tokenization import pack_segments

logger = logging.getLogger(__name__)

GENERATE_CHUNK = 8  # rows per generation call in exports (beam search needs a static batch size)


class CausalLMServing(tf.Module):
    """The serving graph of a :class:`~tfft.backbones.causal_lm.CausalLMModel` (see the module docs).

    Args:
        model: the model built by tfft.
        prompt_length: the longest prompt in tokens (prompts are left padded to it).
        xla: compile generation with XLA; None tries it and falls back when it fails.
    """

    #: exports without the ``tokenize`` signature (older tfft) and id clients need it: keep it
    ships_python_tokenizer = True

    def __init__(self, model, prompt_length: int, xla: bool | None = None):
        super().__init__(name="tfft_serving")
        spec = model.tfft_spec
        self.model = model
        self.prompt_length = int(prompt_length)
        self.pad_id = int(spec.backbone.pad_id)
        self.settings = spec.task_object.generation_settings(spec.settings)
        self.xla = self._xla_works() if xla is None else xla
        self.tokenizer = ByteLevelBPETokenizer.from_hf_tokenizer(spec.backbone.tokenizer)
        self.template = spec.backbone.encoder.template
        template = spec.settings.get("template")
        self.prompt_parts = unescape(template).split("{prompt}") if template else ["", ""]
        stops = stop_strings(spec.settings.get("stop"))
        self.stop_pattern = (
            "(?s)^(.*?)(?:" + "|".join(literal_pattern(s) for s in stops) + ").*$" if stops else None
        )

    @property
    def in_graph_tokenizer(self) -> bool:
        return self.tokenizer is not None

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

    def from_text(self, text) -> dict:
        """Template, tokenize, keep the last ``prompt_length`` tokens, generate, decode, cut at stops."""
        parts = [tf.fill(tf.shape(text), part) for part in self.prompt_parts]
        pieces = [parts[0]]
        for part in parts[1:]:
            pieces += [text, part]
        ids, _ = pack_segments(self.tokenizer.tokenize(tf.strings.join(pieces)), None, self.template, 2**30)
        lengths = ids.row_lengths()
        check = tf.debugging.assert_positive(
            lengths, message="Every prompt needs at least one token; an empty prompt cannot be continued."
        )
        with tf.control_dependencies([check]):
            ids = tf.ragged.boolean_mask(
                ids, tf.ragged.range(lengths) >= tf.expand_dims(lengths - self.prompt_length, 1)
            )
        # left padding: reverse each row, pad on the right, reverse back
        rows = ids.value_rowids()
        first, stop = tf.gather(ids.row_splits[:-1], rows), tf.gather(ids.row_splits[1:], rows)
        flipped = ids.with_values(tf.gather(ids.values, first + stop - 1 - tf.range(tf.size(rows, tf.int64))))
        input_ids = tf.reverse(flipped.to_tensor(self.pad_id), axis=[1])
        attention_mask = tf.reverse(tf.ones_like(flipped).to_tensor(0), axis=[1])
        generated = self.from_ids(input_ids, attention_mask)["generated_ids"]
        texts = self.tokenizer.detokenize(generated)
        if self.stop_pattern:
            texts = tf.strings.regex_replace(texts, self.stop_pattern, r"\1", replace_global=False)
        return {"generated_text": texts, "generated_ids": generated}

    def tokenize_text(self, text) -> dict:
        """Token ids of raw texts, as the Python tokenizer gives them (``tfft evaluate`` packs and
        weights them in Python, then scores with ``score_ids``): with the special tokens
        (``token_ids``) and without (``bare_token_ids``), padded with -1, and their counts."""
        bare = tf.cast(self.tokenizer.tokenize(text), tf.int32)
        ids, _ = pack_segments(bare, None, self.template, 2**30)
        return {
            "token_ids": ids.to_tensor(-1),
            "token_count": tf.cast(ids.row_lengths(), tf.int32),
            "bare_token_ids": bare.to_tensor(-1),
            "bare_token_count": tf.cast(bare.row_lengths(), tf.int32),
        }

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
        signatures = {
            "serving_default": generate_ids,
            "generate_ids": generate_ids,
            "score_ids": score.get_concrete_function(
                *spec, tf.TensorSpec([None, None], tf.int32, name="labels")
            ),
        }
        if self.in_graph_tokenizer:
            text = tf.function(lambda text: self.from_text(text))
            signatures["generate"] = text.get_concrete_function(tf.TensorSpec([None], tf.string, name="text"))
            signatures["serving_default"] = signatures["generate"]
            tokenize = tf.function(lambda text: self.tokenize_text(text))
            signatures["tokenize"] = tokenize.get_concrete_function(
                tf.TensorSpec([None], tf.string, name="text")
            )
            decode = tf.function(lambda generated_ids: {"text": self.tokenizer.detokenize(generated_ids)})
            signatures["decode"] = decode.get_concrete_function(
                tf.TensorSpec([None, None], tf.int32, name="generated_ids")
            )
        return signatures
