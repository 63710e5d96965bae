"""The exported serving graph of ``--task summarize|translate``: text or ids in, generated text or ids out.

:class:`Seq2SeqServing` has ``serving_default`` take ``text`` (tf.string ``[batch]``, the
source prefix added in the graph) and return ``generated_text`` when both vocabularies can
run in the graph (WordPiece; SentencePiece whose ids are the model's, as T5's) and
reproduce the Python tokenizers on :data:`PROBE_TEXTS`. Otherwise ``serving_default`` is
``generate_ids``: ``input_ids``, ``attention_mask`` (int32 ``[batch, length]``) in,
``generated_ids`` out. Generation settings (beams, lengths, penalties) are fixed at export time.
"""

from __future__ import annotations

import logging

import tensorflow as tf

from tfft.backbones.graph_text import graph_detokenizer, graph_source_tokenizer
from tfft.errors import ExportError
from tfft.preprocess import bucket_lengths
from tfft.tasks.seq2seq.options import generation_settings
from tfft.tokenization import pack_segments

logger = logging.getLogger(__name__)

# Texts on which an export's in-graph tokenization is checked against the Python tokenizer.
PROBE_TEXTS = (
    "Two young, White males are outside near many bushes.",
    "The movie wasn't good -- it's 3.5/10 (at best)!",
    "Zwei junge Männer sind im Freien in der Nähe vieler Büsche.",
    "Café déjà vu: naïve façade, price $5.",
)
GENERATE_CHUNK = 8  # rows per generation call in exports (generation needs a static batch size)


class Seq2SeqServing(tf.Module):
    """The serving graph: (in-graph tokenizer +) XLA-compiled generation (+ in-graph detokenizer).

    Signatures: ``serving_default`` (``text`` -> ``generated_text``) where both vocabularies
    run in the graph; ``generate_ids`` (``input_ids``, ``attention_mask`` -> ``generated_ids``)
    always, and as ``serving_default`` otherwise.
    """

    def __init__(self, model, max_length: int, xla: bool | None = None):
        super().__init__(name="tfft_serving")
        spec = model.tfft_spec
        backbone = spec.backbone
        self.model = model
        self.max_length = max_length
        settings = spec.settings
        self.prefix = settings.get("source_prefix") or ""
        self.template = backbone.encoder.template
        self.buckets = tf.constant(bucket_lengths(max_length), tf.int32)
        self.pad_id = int(model.hf.generation_config.pad_token_id)
        self.tokenizer = graph_source_tokenizer(backbone.encoder)
        self.detokenizer = graph_detokenizer(backbone.target_encoder)
        self.in_graph_tokenizer = (
            self.tokenizer is not None
            and self.detokenizer is not None
            and self._graph_matches_python(backbone)
        )
        if not self.in_graph_tokenizer and backbone.target_encoder is not backbone.encoder:
            raise ExportError(
                "This encoder-decoder has its own target tokenizer, and one of the two cannot run in the "
                "graph (only WordPiece, T5-style SentencePiece and byte-level BPE can); tfft cannot "
                "export it."
            )
        self.generation = generation_settings(settings)
        self.xla = self._xla_works() if xla is None else xla

    def _graph_matches_python(self, backbone) -> bool:
        """Whether the in-graph tokenizer and detokenizer reproduce the Python ones on probe texts.

        SentencePiece in tensorflow-text and a converted Hugging Face tokenizer can segment
        differently; such exports take token ids instead.
        """
        probe = [self.prefix + text for text in PROBE_TEXTS]
        graph = self.tokenizer.tokenize(tf.constant(probe)).to_list()
        python = backbone.encoder.tokenizer(probe, add_special_tokens=False)["input_ids"]
        target = backbone.target_tokenizer(text_target=PROBE_TEXTS, add_special_tokens=True)["input_ids"]
        decoded = backbone.target_tokenizer.batch_decode(target, skip_special_tokens=True)
        width = max(len(row) for row in target)
        padded = [row + [self.pad_id] * (width - len(row)) for row in target]
        detokenized = [
            value.decode("utf-8") for value in self.detokenizer.detokenize(tf.constant(padded)).numpy()
        ]
        if graph != python or detokenized != decoded:
            logger.warning(
                "The in-graph tokenizer does not reproduce %s on probe texts; the export takes token ids.",
                type(backbone.encoder.tokenizer).__name__,
            )
            return False
        return True

    def _generate(self, input_ids, attention_mask, xla: bool | None = None):
        use_xla = self.xla if xla is None else xla
        return self.model.generator(self.generation, xla=use_xla)(input_ids, attention_mask)

    def _xla_works(self) -> bool:
        """Try the XLA-compiled generation once; fall back to plain graph mode when it fails."""
        ids = tf.constant([list(self.template.prefix) + list(self.template.suffix) or [0]], tf.int32)
        try:
            self._generate(ids, tf.ones_like(ids), xla=True)
            return True
        except (tf.errors.OpError, ValueError, NotImplementedError) as error:
            logger.warning("Exporting generation without XLA: %s", str(error).splitlines()[0][:200])
            return False

    def _generate_batch(self, input_ids, attention_mask):
        """Generate for a batch of any size.

        Beam search and some logits processors (BART's forced end token) in Hugging Face's TF
        generation need a static batch size, so generation runs over chunks of
        ``GENERATE_CHUNK`` rows (the last one filled with copies of the first row).
        """
        rows = GENERATE_CHUNK
        width = self.generation["max_new_tokens"] + 1  # the start token, then the new tokens
        count = tf.shape(input_ids)[0]
        chunks = (count + rows - 1) // rows
        fill = chunks * rows - count

        def chunked(value):
            value = tf.concat([value, tf.repeat(value[:1], fill, axis=0)], 0)
            return tf.reshape(value, [chunks, rows, -1])

        def one(chunk):
            ids, mask = chunk
            ids = tf.ensure_shape(ids, [rows, None])
            mask = tf.ensure_shape(mask, [rows, None])
            output = tf.cast(self._generate(ids, mask), tf.int32)
            output = tf.pad(output, [[0, 0], [0, width - tf.shape(output)[1]]], constant_values=self.pad_id)
            return tf.ensure_shape(output, [rows, width])

        outputs = tf.map_fn(
            one,
            (chunked(input_ids), chunked(attention_mask)),
            fn_output_signature=tf.TensorSpec([rows, width], tf.int32),
        )
        return tf.reshape(outputs, [-1, width])[:count]

    def from_ids(self, input_ids, attention_mask) -> dict:
        return {"generated_ids": tf.cast(self._generate_batch(input_ids, attention_mask), tf.int32)}

    def from_text(self, text) -> dict:
        if self.prefix:
            text = tf.strings.join([tf.constant(self.prefix), text])
        ids, _ = pack_segments(self.tokenizer.tokenize(text), None, self.template, self.max_length)
        longest = tf.cast(tf.reduce_max(tf.concat([ids.row_lengths(), [1]], 0)), tf.int32)
        length = self.buckets[tf.argmax(tf.cast(self.buckets >= longest, tf.int32))]
        input_ids = ids.to_tensor(default_value=self.template.pad_id)
        mask = tf.ones_like(ids).to_tensor(default_value=0)
        extra = [[0, 0], [0, length - tf.shape(input_ids)[1]]]
        input_ids = tf.pad(input_ids, extra, constant_values=self.template.pad_id)
        mask = tf.pad(mask, extra)
        generated = self._generate_batch(input_ids, mask)
        return {"generated_text": self.detokenizer.detokenize(generated)}

    def signatures(self) -> dict:
        ids = [tf.TensorSpec([None, None], tf.int32, name=name) for name in ("input_ids", "attention_mask")]
        function = tf.function(lambda input_ids, attention_mask: self.from_ids(input_ids, attention_mask))
        signatures = {"generate_ids": function.get_concrete_function(*ids)}
        if self.in_graph_tokenizer:
            text = tf.function(lambda text: self.from_text(text))
            signatures["serving_default"] = text.get_concrete_function(
                tf.TensorSpec([None], tf.string, name="text")
            )
        else:
            signatures["serving_default"] = signatures["generate_ids"]
        return signatures
