"""The export of ``--task ner``: its serving graph, and the calls that read its signatures back.

:class:`NerServing` builds the signatures (raw text in and entities out, pre-split words in
and tags out, token ids in and probabilities out); :func:`export_entities` and
:func:`export_word_rows` call them from Python for ``tfft predict`` and ``tfft evaluate``
on an export, tokenizing in Python when the export's tokenizer does not run in the graph.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from tfft.data.conll import TaggedExamples
from tfft.tasks.ner.entities import graph_entities, tag_tables
from tfft.tasks.ner.words import (
    graph_pack_words,
    graph_word_predictions,
    pack_words,
    text_encoder,
    word_budget,
    word_predictions,
    word_row,
)
from tfft.words import split_words


class NerServing(tf.Module):
    """The serving graph of an NER model.

    Signatures (when the tokenizer runs in the graph):

    - ``serving_default``: ``text`` tf.string ``[batch]`` -> ``entity_text``,
      ``entity_type`` (tf.string), ``entity_start``, ``entity_end`` (int32 character
      offsets, end exclusive), ``entity_score`` (float32, the mean probability of the
      entity's word tags), all ``[batch, max_entities]`` and padded with ``""`` / -1 / 0;
      ``num_entities`` and ``truncated_words`` (int32 ``[batch]``: words cut by
      ``max_length``, which get no tag).
    - ``predict_words``: ``words`` tf.string ``[batch, max_words]`` (padded with anything)
      and ``num_words`` int32 ``[batch]`` -> ``tags`` (tf.string ``[batch, max_words]``,
      ``""`` for padding and truncated words), ``scores`` (float32) and ``truncated_words``.
    - ``predict_ids``: ``input_ids``, ``attention_mask``, ``token_type_ids`` (int32
      ``[batch, length]``) -> ``probabilities`` (float32 ``[batch, length, tags]``) and
      ``tag_ids`` (int32 ``[batch, length]``). Tokenizers with no graph twin have only this one
      (also as ``serving_default``); ``tfft predict`` tokenizes for them in Python.
    """

    def __init__(self, model, max_length: int):
        super().__init__(name="tfft_ner_serving")
        spec = model.tfft_spec
        self.model = model
        self.max_length = max_length
        encoder = text_encoder(model)
        self.tokenizer = encoder.graph_word_tokenizer()
        self.template = encoder.template
        self.budget = word_budget(self.template, max_length)  # a max_length too small fails here
        prefixes, kinds, types = tag_tables(spec.settings["labels"])
        self.tag_names = tf.constant(list(spec.settings["labels"]))
        self.type_names = tf.constant(types)
        self.prefixes = tf.constant(prefixes)
        self.kinds = tf.constant(kinds)

    @property
    def in_graph_tokenizer(self) -> bool:
        return self.tokenizer is not None

    def _probabilities(self, features: dict) -> tf.Tensor:
        return tf.nn.softmax(tf.cast(self.model(features, training=False), tf.float32), axis=-1)

    def from_ids(self, input_ids, attention_mask, token_type_ids) -> dict:
        probabilities = self._probabilities(
            {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        )
        return {
            "probabilities": probabilities,
            "tag_ids": tf.argmax(probabilities, axis=-1, output_type=tf.int32),
        }

    def word_tags(self, words: tf.RaggedTensor):
        """Tag ids (-1: none), scores and kept flags ``[batch, max_words]``; truncated counts."""
        packed = graph_pack_words(self.tokenizer, self.template, words, self.max_length)
        probabilities = self._probabilities(packed["features"])
        tag_id, score = graph_word_predictions(probabilities, packed["positions"], packed["kept"])
        return tag_id, score, packed["kept"], packed["truncated"]

    def from_words(self, words, num_words) -> dict:
        ragged = tf.RaggedTensor.from_tensor(words, lengths=tf.cast(num_words, tf.int64))
        tag_id, score, kept, truncated = self.word_tags(ragged)
        tags = tf.where(kept, tf.gather(self.tag_names, tf.maximum(tag_id, 0)), "")
        width = tf.shape(words)[1]
        pad = width - tf.shape(tags)[1]  # rows shorter than the padded input width
        return {
            "tags": tf.pad(tags, [[0, 0], [0, pad]], constant_values=""),
            "scores": tf.pad(score, [[0, 0], [0, pad]]),
            "truncated_words": truncated,
        }

    def from_text(self, text) -> dict:
        words, starts, ends = split_words(text)
        tag_id, score, kept, truncated = self.word_tags(words)
        return {
            **graph_entities(
                text,
                starts,
                ends,
                tag_id,
                score,
                kept,
                prefixes=self.prefixes,
                kinds=self.kinds,
                type_names=self.type_names,
            ),
            "truncated_words": truncated,
        }

    def signatures(self) -> dict:
        """The concrete functions to save, by signature name."""
        signatures = {}
        if self.in_graph_tokenizer:
            text = tf.TensorSpec([None], tf.string, name="text")
            signatures["serving_default"] = tf.function(self.from_text).get_concrete_function(text)
            words = tf.TensorSpec([None, None], tf.string, name="words")
            num_words = tf.TensorSpec([None], tf.int32, name="num_words")
            signatures["predict_words"] = tf.function(self.from_words).get_concrete_function(words, num_words)
        ids = [
            tf.TensorSpec([None, None], tf.int32, name=name)
            for name in ("input_ids", "attention_mask", "token_type_ids")
        ]
        signatures["predict_ids"] = tf.function(self.from_ids).get_concrete_function(*ids)
        if "serving_default" not in signatures:
            signatures["serving_default"] = signatures["predict_ids"]
        return signatures


def export_entities(exported, examples: TaggedExamples, batch_size: int) -> Iterator[dict]:
    """Entities of raw texts from the ``serving_default`` signature (splitting in the graph).

    Returns:
        For each text ``{"text", "entities": [{"text", "type", "start", "end", "score"}],
        "truncated_words"}``, scores rounded to 6 digits.
    """
    for start in range(0, len(examples), batch_size):
        texts = examples.texts[start : start + batch_size]
        out = exported.loaded.signatures["serving_default"](text=tf.constant(texts, tf.string))
        out = {name: value.numpy() for name, value in out.items()}
        for row, text in enumerate(texts):
            count = int(out["num_entities"][row])
            found = [
                {
                    "text": out["entity_text"][row, k].decode("utf-8"),
                    "type": out["entity_type"][row, k].decode("utf-8"),
                    "start": int(out["entity_start"][row, k]),
                    "end": int(out["entity_end"][row, k]),
                    "score": round(float(out["entity_score"][row, k]), 6),
                }
                for k in range(count)
            ]
            yield {
                "text": text,
                "entities": found,
                "truncated_words": int(out["truncated_words"][row]),
            }


def export_word_rows(exported, examples: TaggedExamples, batch_size: int) -> Iterator[dict]:
    """Per-word predictions of an export for pre-split (or Python-split) sentences.

    Uses the ``predict_words`` signature, or ``predict_ids`` with Python tokenization when
    the export's tokenizer does not run in the graph.

    Returns:
        For each sentence ``{"tags": [tag or None], "scores": [...], "truncated_words": n}``
        (:func:`~tfft.tasks.ner.words.word_row`).
    """
    names = list(exported.settings["labels"])
    if exported.encoder is None:
        signature = exported.loaded.signatures["predict_words"]
        for start in range(0, len(examples), batch_size):
            chunk = examples.words[start : start + batch_size]
            width = max((len(words) for words in chunk), default=0)
            words = tf.constant([list(words) + [""] * (width - len(words)) for words in chunk], tf.string)
            words = tf.reshape(words, [len(chunk), width])
            out = signature(words=words, num_words=tf.constant([len(w) for w in chunk], tf.int32))
            tags, scores, truncated = (out[k].numpy() for k in ("tags", "scores", "truncated_words"))
            for row, sentence in enumerate(chunk):
                decoded = [tags[row, k].decode("utf-8") for k in range(len(sentence))]
                yield {
                    "tags": [tag or None for tag in decoded],
                    "scores": [float(s) for s in scores[row, : len(sentence)]],
                    "truncated_words": int(truncated[row]),
                }
        return
    # The tokenizer does not run in the graph: tokenize here, run the ids signature.
    encoder = exported.encoder
    signature = exported.loaded.signatures["predict_ids"]
    for start in range(0, len(examples), batch_size):
        chunk = examples.words[start : start + batch_size]
        packed = pack_words(encoder, chunk, exported.max_length)
        length = int(packed.lengths().max())

        def padded(rows, value):
            return tf.constant(
                np.stack([np.pad(row, (0, length - len(row)), constant_values=value) for row in rows]),
                tf.int32,
            )

        out = signature(
            input_ids=padded(packed.input_ids, encoder.template.pad_id),
            attention_mask=padded([np.ones_like(row) for row in packed.input_ids], 0),
            token_type_ids=padded(packed.token_type_ids, 0),
        )
        probabilities = out["probabilities"].numpy()
        for row in range(len(chunk)):
            ids, scores = word_predictions(probabilities[row], packed.positions[row])
            yield word_row(ids, scores, names, int(packed.truncated[row]))
