"""BERT2BERT models: Hugging Face's ``TFEncoderDecoderModel`` with traced generation mended,
and a copy head (``--copy-attention``) that lets the decoder copy source tokens.

:class:`EncoderDecoder`: Hugging Face's TF generation inside a ``tf.function`` (tfft's
generation and exports) keeps a cache padded to the full output length and gives the
decoder the self-attention mask of that cache in ``decoder_attention_mask``. A BERT decoder
takes its positions from the cache's length and ``TFEncoderDecoderModel`` hands it the mask
of the new token alone, so from the second token on the decoder saw wrong positions and
attended to empty cache slots (eager generation was right). :class:`EncoderDecoder` passes
the cache's mask and the true positions.

:class:`CopyEncoderDecoder`: headlines and summaries reuse the source's words, names and
numbers; a decoder that must learn to *write* each of them from a few thousand pairs learns
slowly. The pointer-generator (See et al., 2017, "Get To The Point") mixes two
distributions at each target position::

    p(w) = g * p_vocab(w) + (1 - g) * sum_{s: source_s = w} a_s

where ``a`` is an attention of the decoder's last hidden state over the encoder's last
hidden states (one new head, masked to real source tokens), and the gate
``g = sigmoid(w . [h; context])`` decides between writing and copying. The model's logits
become ``log p`` (float32), so the token cross-entropy, label smoothing, greedy and beam
search all work on the mixture unchanged.

Copying needs the source ids at every decoding step, but Hugging Face's generation hands
the model only the encoder's outputs and the source attention mask. So the source ids ride
in the mask: :func:`id_mask` gives ``id + 1`` for real tokens and 0 for padding; the model
(and its encoder, through :meth:`CopyEncoderDecoder.get_encoder`) takes the real mask as
``id_mask > 0``. Beam search repeats the mask per beam like any mask. Only one vocabulary on
both sides can copy: a copied id must mean the same token on both sides.
"""

from __future__ import annotations

import tensorflow as tf
from transformers import TFEncoderDecoderModel
from transformers.modeling_tf_outputs import TFSeq2SeqLMOutput
from transformers.modeling_tf_utils import unpack_inputs

from tfft.keras import keras

TINY = 1e-9  # keeps log p finite where neither distribution puts any mass


def id_mask(input_ids: tf.Tensor, attention_mask: tf.Tensor) -> tf.Tensor:
    """The attention mask carrying the source ids: ``id + 1`` on real tokens, 0 on padding."""
    ids = tf.cast(input_ids, tf.int32) + 1
    return tf.where(tf.cast(attention_mask, tf.int32) > 0, ids, tf.zeros_like(ids))


def _real_mask(mask: tf.Tensor | None) -> tf.Tensor | None:
    return None if mask is None else tf.cast(mask > 0, tf.int32)


class _RealMaskEncoder:
    """The encoder as generation calls it: the id mask becomes a 0/1 mask first."""

    def __init__(self, encoder):
        self.encoder = encoder

    def call(self, input_ids=None, attention_mask=None, **kwargs):
        return self.encoder(input_ids=input_ids, attention_mask=_real_mask(attention_mask), **kwargs)

    __call__ = call


class EncoderDecoder(TFEncoderDecoderModel):
    """``TFEncoderDecoderModel`` whose cached generation is right inside a ``tf.function``.

    ``call`` takes ``decoder_position_ids`` (Hugging Face's drops unknown arguments before
    they reach the decoder) and does what Hugging Face's does otherwise. Subclasses change
    what the source mask carries (:meth:`split_mask`) and the logits (:meth:`output_logits`).
    """

    copies_source = False

    def split_mask(self, input_ids, attention_mask):
        """``(attention mask for encoder and cross-attention, source for output_logits)``."""
        return attention_mask, None

    def output_logits(self, logits, decoder_states, encoder_states, source):
        """The logits the model returns; ``decoder_states`` is given when :attr:`copies_source`."""
        return logits

    def prepare_inputs_for_generation(
        self,
        input_ids,
        past_key_values=None,
        attention_mask=None,
        use_cache=None,
        encoder_outputs=None,
        **kwargs,
    ):
        inputs = super().prepare_inputs_for_generation(
            input_ids,
            past_key_values=past_key_values,
            attention_mask=attention_mask,
            use_cache=use_cache,
            encoder_outputs=encoder_outputs,
            **kwargs,
        )
        padded = kwargs.get("decoder_attention_mask")
        if past_key_values is not None and padded is not None:
            # Traced generation: the mask of the padded cache (1 on filled slots and on the new
            # token, last); the new token's position is the number of tokens before it.
            inputs["decoder_attention_mask"] = padded
            inputs["decoder_position_ids"] = tf.reduce_sum(tf.cast(padded, tf.int32), -1, keepdims=True) - 1
        return inputs

    @unpack_inputs  # as Hugging Face's: Keras' SavedModel tracing passes the inputs as one dict
    def call(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        encoder_outputs=None,
        past_key_values=None,
        inputs_embeds=None,
        decoder_inputs_embeds=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        training=False,
        decoder_position_ids=None,
        **kwargs,
    ):
        if labels is not None:
            raise ValueError("tfft computes the loss itself; pass decoder_input_ids, not labels.")
        attention_mask, source = self.split_mask(input_ids, attention_mask)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
                training=training,
            )
        encoder_states = encoder_outputs[0]
        if (
            self.encoder.config.hidden_size != self.decoder.config.hidden_size
            and self.decoder.config.cross_attention_hidden_size is None
        ):
            encoder_states = self.enc_to_dec_proj(encoder_states)
        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            position_ids=decoder_position_ids,
            encoder_hidden_states=encoder_states,
            encoder_attention_mask=attention_mask,
            inputs_embeds=decoder_inputs_embeds,
            past_key_values=past_key_values,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states or self.copies_source,
            return_dict=True,
            training=training,
        )
        logits = self.output_logits(
            decoder_outputs.logits, decoder_outputs.hidden_states, encoder_outputs[0], source
        )
        return TFSeq2SeqLMOutput(
            logits=logits,
            past_key_values=decoder_outputs.past_key_values,
            decoder_hidden_states=decoder_outputs.hidden_states if output_hidden_states else None,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs[0],
            encoder_hidden_states=getattr(encoder_outputs, "hidden_states", None),
            encoder_attentions=getattr(encoder_outputs, "attentions", None),
        )


class CopyEncoderDecoder(EncoderDecoder):
    """:class:`EncoderDecoder` whose logits are ``log`` of the pointer-generator mixture.

    ``attention_mask`` must be an :func:`id_mask` (in training and in generation).
    """

    copies_source = True  # also read by Seq2SeqModel, which then passes an id_mask

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        hidden = self.encoder.config.hidden_size
        self.copy_query = keras.layers.Dense(hidden, use_bias=False, name="copy_query")
        self.copy_gate = keras.layers.Dense(1, name="copy_gate")

    def get_encoder(self):
        return _RealMaskEncoder(self.encoder)

    def split_mask(self, input_ids, attention_mask):
        """The real 0/1 mask, and ``(source ids, that mask)`` from the :func:`id_mask`."""
        if attention_mask is None:
            if input_ids is None:  # Keras' SavedModel tracing calls layers with no inputs given
                raise ValueError("CopyEncoderDecoder needs the source ids in attention_mask (see id_mask).")
            attention_mask = id_mask(input_ids, tf.ones_like(input_ids))
        mask = _real_mask(attention_mask)
        return mask, (tf.maximum(tf.cast(attention_mask, tf.int32) - 1, 0), mask)

    def output_logits(self, logits, decoder_states, encoder_states, source):
        source_ids, mask = source
        return self.mix(logits, decoder_states[-1], encoder_states, source_ids, mask)

    def mix(self, logits, decoder_states, encoder_states, source_ids, mask) -> tf.Tensor:
        """``log(g * softmax(logits) + (1 - g) * copy)``, float32 ``[batch, target, vocabulary]``."""
        encoder_states = tf.cast(encoder_states, decoder_states.dtype)
        query = self.copy_query(decoder_states)
        scale = tf.cast(tf.shape(encoder_states)[-1], tf.float32) ** -0.5
        scores = tf.einsum("bth,bsh->bts", tf.cast(query, tf.float32), tf.cast(encoder_states, tf.float32))
        scores = scores * scale + (1.0 - tf.cast(mask[:, None, :], tf.float32)) * -1e9
        attention = tf.nn.softmax(scores, axis=-1)
        context = tf.einsum("bts,bsh->bth", attention, tf.cast(encoder_states, tf.float32))
        features = tf.concat([decoder_states, tf.cast(context, decoder_states.dtype)], axis=-1)
        gate = tf.sigmoid(tf.cast(self.copy_gate(features), tf.float32))
        written = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        copied = _scatter_to_vocabulary(attention, source_ids, tf.shape(written)[-1])
        return tf.math.log(gate * written + (1.0 - gate) * copied + TINY)


def _scatter_to_vocabulary(attention: tf.Tensor, source_ids: tf.Tensor, vocabulary) -> tf.Tensor:
    """``[batch, target, vocabulary]``: each source position's attention added at its token id."""
    shape = tf.shape(attention)
    batch, target, source = shape[0], shape[1], shape[2]
    rows = tf.broadcast_to(tf.range(batch)[:, None, None], [batch, target, source])
    steps = tf.broadcast_to(tf.range(target)[None, :, None], [batch, target, source])
    ids = tf.broadcast_to(source_ids[:, None, :], [batch, target, source])
    indices = tf.stack([rows, steps, ids], axis=-1)
    return tf.scatter_nd(indices, attention, tf.stack([batch, target, vocabulary]))
