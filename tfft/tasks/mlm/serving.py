"""The exported serving graph of ``--task mlm``: raw text with mask tokens in, filled tokens out.

When the tokenizer runs in the graph (WordPiece, byte-level BPE, ALBERT-style SentencePiece:
:meth:`~tfft.tokenization.HFTextEncoder.graph_tokenizer`), the export fills masks in raw text.
The Python tokenizer still travels in ``assets.extra/tokenizer/`` (``tfft predict`` and
``tfft evaluate`` use it). Signatures:

- ``fill_text`` (also ``serving_default`` when the tokenizer runs in the graph): ``text``
  (tf.string ``[batch]``, with the tokenizer's mask token, e.g. ``[MASK]`` or ``<mask>``) ->
  ``tokens`` (tf.string), ``token_ids`` (int32) and ``scores`` (float32 probabilities), each
  ``[batch, masks, TOP_K]``: the likeliest tokens at each mask token of the text, in order,
  best first; ``mask_positions`` (int32 ``[batch, masks]``, the token positions, special tokens
  counted) and ``mask_count`` (int32 ``[batch]``). Rows with fewer masks than the batch's most
  are padded with ``""``, id -1, score 0 and position -1; masks past ``max_length`` tokens are
  cut off with the text. ``filled_text`` (tf.string ``[batch]``, each mask replaced by its
  likeliest token, decoded as ``tokenizer.decode(skip_special_tokens=True)``) is there when
  the decoder also runs in the graph (WordPiece, byte-level BPE). The text is split at the
  mask token as Hugging Face does (the mask token's ``lstrip``/``rstrip`` swallow the white
  space beside it) and each part is tokenized on its own, so the ids are the Python
  tokenizer's.
- ``fill_ids`` (``serving_default`` otherwise): ``input_ids``, ``attention_mask`` (int32
  ``[batch, length]``) -> ``top_ids`` (int32) and ``top_probabilities`` (float32),
  ``[batch, length, TOP_K]``: the likeliest tokens at every position.
- ``score_ids``: ``input_ids`` (masked), ``attention_mask``, ``labels`` (the original ids) ->
  ``token_nll`` (float32) and ``token_correct`` (int32), ``[batch, length]``: the loss,
  perplexity and masked-token accuracy of ``tfft evaluate`` (weighted by the masks in Python).
"""

from __future__ import annotations

import tensorflow as tf

from tfft.backbones.graph_text import graph_detokenizer
from tfft.tasks.causal_lm.metrics import token_nll_and_correct
from tfft.text.bpe import WS
from tfft.tokenization import pack_segments, to_dense_inputs

TOP_K = 5


class MaskedLMServing(tf.Module):
    """The serving graph of a :class:`~tfft.backbones.masked_lm.MaskedLMModel` (see the module docs)."""

    #: ``tfft predict`` / ``tfft evaluate`` use the Python tokenizer: keep it in every export
    ships_python_tokenizer = True

    def __init__(self, model, max_length: int):
        super().__init__(name="tfft_serving")
        self.model = model
        self.max_length = int(max_length)
        backbone = model.tfft_spec.backbone
        encoder = backbone.encoder
        tokenizer = backbone.tokenizer
        self.tokenizer = encoder.graph_tokenizer()
        self.template = encoder.template
        self.mask_id, self.pad_id = int(backbone.mask_id), int(backbone.pad_id)
        self.mask_token = str(tokenizer.mask_token)
        added = tokenizer.added_tokens_decoder.get(self.mask_id)
        self.mask_lstrip = bool(getattr(added, "lstrip", False))
        self.mask_rstrip = bool(getattr(added, "rstrip", False))
        size = max(len(tokenizer), int(getattr(backbone.model.config, "vocab_size", 0) or 0))
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        vocab = ["" if token is None else token for token in vocab]
        self.vocab = tf.constant(vocab + [""] * (size - len(vocab)))  # ids past the tokenizer's: ""
        self.detokenizer = graph_detokenizer(encoder) if self.tokenizer is not None else None

    @property
    def in_graph_tokenizer(self) -> bool:
        return self.tokenizer is not None

    @property
    def example_inputs(self) -> dict:
        """The model card's example (``tfft.json``'s ``example``): a text with the real mask token."""
        return {"text": f"a {self.mask_token} film"}

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

    def _text_ids(self, text) -> tf.RaggedTensor:
        """Raw texts -> packed ids ``[batch, (length)]``: split at the mask token, each part
        tokenized on its own, the mask id between the parts (as the Python tokenizer does)."""
        parts = tf.strings.split(text, sep=self.mask_token)  # [batch, (parts)]
        lengths = parts.row_lengths()
        index = tf.ragged.range(lengths).flat_values
        last = tf.repeat(lengths - 1, lengths)
        flat = parts.flat_values
        if self.mask_lstrip:  # the mask token swallows the white space before it
            flat = tf.where(index < last, tf.strings.regex_replace(flat, f"{WS}+$", ""), flat)
        if self.mask_rstrip:
            flat = tf.where(index > 0, tf.strings.regex_replace(flat, f"^{WS}+", ""), flat)
        pieces = tf.cast(self.tokenizer.tokenize(flat), tf.int32)
        masks = tf.ragged.boolean_mask(
            tf.fill([tf.size(flat), 1], self.mask_id), tf.expand_dims(index < last, 1)
        )
        rows = tf.RaggedTensor.from_row_lengths(tf.concat([pieces, masks], axis=1), lengths)
        ids, _ = pack_segments(rows.merge_dims(1, 2), None, self.template, self.max_length)
        return ids

    def fill_text(self, text) -> dict:
        ids = self._text_ids(text)
        features = to_dense_inputs(ids, tf.zeros_like(ids), self.pad_id)
        input_ids = features["input_ids"]
        is_mask = tf.logical_and(tf.equal(input_ids, self.mask_id), features["attention_mask"] > 0)
        probabilities = tf.nn.softmax(
            tf.cast(self._logits(input_ids, features["attention_mask"]), tf.float32), axis=-1
        )
        at_masks = tf.ragged.boolean_mask(probabilities, is_mask)  # [batch, (masks), vocab]
        top = tf.math.top_k(at_masks.flat_values, k=TOP_K)
        top_ids = tf.cast(top.indices, tf.int32)
        positions = tf.ragged.boolean_mask(
            tf.broadcast_to(tf.range(tf.shape(input_ids)[1]), tf.shape(input_ids)), is_mask
        )
        outputs = {
            "tokens": at_masks.with_flat_values(tf.gather(self.vocab, top_ids)).to_tensor(""),
            "token_ids": at_masks.with_flat_values(top_ids).to_tensor(-1),
            "scores": at_masks.with_flat_values(top.values).to_tensor(0.0),
            "mask_positions": positions.to_tensor(-1),
            "mask_count": tf.cast(positions.row_lengths(), tf.int32),
        }
        if self.detokenizer is not None:  # padding is a special token: the decoder skips it
            best = tf.tensor_scatter_nd_update(input_ids, tf.where(is_mask), top_ids[:, 0])
            outputs["filled_text"] = self.detokenizer.detokenize(best)
        return outputs

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
        signatures = {
            "serving_default": fill_ids,
            "fill_ids": fill_ids,
            "score_ids": score.get_concrete_function(
                *spec, tf.TensorSpec([None, None], tf.int32, name="labels")
            ),
        }
        if self.in_graph_tokenizer:
            fill_text = tf.function(lambda text: self.fill_text(text)).get_concrete_function(
                tf.TensorSpec([None], tf.string, name="text")
            )
            signatures.update(serving_default=fill_text, fill_text=fill_text)
        return signatures
