"""Sequence-to-sequence models: Hugging Face TF encoder-decoders wrapped for tfft.

Two ways to get one:

- a checkpoint whose ``config.json`` is an encoder-decoder (T5, BART, Marian, mBART,
  Pegasus, ...) loads through ``TFAutoModelForSeq2SeqLM``; its tokenizer reads the source
  and writes the target;
- an *encoder* checkpoint (BERT-family) becomes a ``TFEncoderDecoderModel`` (BERT2BERT):
  the encoder is warm-started from it, the decoder from ``decoder_model`` (another
  encoder checkpoint, possibly with its own, target-language vocabulary and size; the
  same checkpoint when not given) with causal self-attention and new cross-attention
  layers. The decoder's tokenizer writes the target.

:class:`Seq2SeqModel` is a plain tf_keras model around the Hugging Face one: features
``{input_ids, attention_mask, decoder_input_ids, decoder_attention_mask}`` in, float32
logits ``[batch, target length, target vocabulary]`` out (teacher forcing), so ``fit``,
checkpoints, strategies and XLA work as for the other tasks. :meth:`Seq2SeqModel.generate_ids`
runs Hugging Face's TF generation (greedy or beam search, with a minimum length and a
repetition penalty when asked), compiled with XLA where it can.
The in-graph tokenizers and detokenizers of seq2seq exports are in :mod:`tfft.backbones.graph_text`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfft.backbones.base import Backbone
from tfft.backbones.hf import resolve_hf_source
from tfft.backbones.hf_weights import load_checkpoint, load_hf_tf_model
from tfft.errors import BackboneError, ConfigError
from tfft.keras import keras
from tfft.tokenization import HFTextEncoder

logger = logging.getLogger(__name__)


class Seq2SeqBackbone(Backbone):
    """The pretrained parts of a seq2seq model and their tokenizers.

    Attributes:
        model: the Hugging Face TF encoder-decoder (``TF...ForConditionalGeneration`` or
            ``TFEncoderDecoderModel``).
        encoder: the source-side :class:`~tfft.tokenization.HFTextEncoder`.
        target_tokenizer: the Hugging Face tokenizer of the target side.
        architecture: ``"seq2seq"`` (one checkpoint) or ``"encoder-decoder"`` (BERT2BERT).
    """

    kind = "hf-seq2seq"
    poolings = ("none",)

    def __init__(
        self, model, source_tokenizer, target_tokenizer, source: str, architecture: str, decoder=None
    ):
        self.model = model
        self.encoder = HFTextEncoder(source_tokenizer)
        self.target_tokenizer = target_tokenizer
        self.target_encoder = (
            self.encoder if target_tokenizer is source_tokenizer else HFTextEncoder(target_tokenizer)
        )
        self.source = str(source)
        self.decoder_source = None if decoder is None else str(decoder)
        self.architecture = architecture

    @property
    def config(self):
        return self.model.config

    def describe(self) -> dict:
        info = {
            **super().describe(),
            "architecture": self.architecture,
            "model_type": self.model.config.model_type,
            "target_tokenizer": self.target_encoder.describe(),
        }
        if self.decoder_source:
            info["decoder_source"] = self.decoder_source
        return info


def _target_ids(tokenizer, names: tuple[str, ...]) -> list[int]:
    return [getattr(tokenizer, name) for name in names if getattr(tokenizer, name, None) is not None]


def load_seq2seq_backbone(
    hf_model: str, decoder_model: str | None = None, allow_pickle: bool = False, copy: bool = False
) -> Seq2SeqBackbone:
    """Load an encoder-decoder checkpoint, or build BERT2BERT from encoder checkpoints.

    Args:
        hf_model: a folder (or cached name) holding a seq2seq checkpoint, or an encoder checkpoint.
        decoder_model: for an encoder checkpoint, the encoder checkpoint that initializes the
            decoder (its vocabulary is the target vocabulary); default ``hf_model``.
        allow_pickle: as for :func:`tfft.load_backbone`.
        copy: BERT2BERT with a copy head (:mod:`tfft.backbones.bert2bert`).

    Raises:
        BackboneError: the checkpoints cannot be loaded or combined.
        ConfigError: ``decoder_model`` or ``copy`` with a checkpoint that is already an
            encoder-decoder; ``copy`` with two vocabularies.
    """
    from transformers import AutoConfig

    path = resolve_hf_source(hf_model)
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as error:
        raise BackboneError(f"{path / 'config.json'} cannot be read: {error}") from None
    if getattr(config, "is_encoder_decoder", False):
        for given, option in ((decoder_model, "--decoder-model"), (copy, "--copy-attention")):
            if given:
                raise ConfigError(
                    f"{option} is for encoder checkpoints (BERT2BERT); {hf_model} is already an "
                    f"encoder-decoder ({config.model_type})."
                )
        return _load_auto_seq2seq(path, hf_model, allow_pickle)
    return _build_encoder_decoder(path, hf_model, decoder_model, allow_pickle, copy)


# Weights a seq2seq checkpoint may lack: BART-family output biases start at zero.
OPTIONAL_WEIGHTS = ("final_logits_bias",)


def _load_auto_seq2seq(path: Path, name: str, allow_pickle: bool) -> Seq2SeqBackbone:
    from transformers import TFAutoModelForSeq2SeqLM

    found = sorted(entry.name for entry in path.iterdir())
    model, tokenizer, _ = load_checkpoint(
        path,
        found,
        TFAutoModelForSeq2SeqLM,
        allow_pickle=allow_pickle,
        optional=OPTIONAL_WEIGHTS,
        kind="a TF seq2seq model",
    )
    _complete_generation_config(model, tokenizer)
    _mixed_precision_fixes(model)
    return Seq2SeqBackbone(model, tokenizer, tokenizer, name, "seq2seq")


def _mixed_precision_fixes(model) -> None:
    """Make BART-family TF models (BART, Marian, mBART, Pegasus, Blenderbot) run under mixed precision.

    - ``scale_embedding``: their encoders and decoders keep ``sqrt(d_model)`` as a float32
      tensor and multiply the float16/bfloat16 token embeddings by it, which fails ("expected
      to be a bfloat16 tensor but is a float tensor"); the same number as a Python float
      takes the embeddings' dtype.
    - ``final_logits_bias``: the layer that adds it gives the logits, which generation's logits
      processors (forced end token, ...) combine with float32 scores; it computes in float32.
    """
    for layer in model._flatten_layers(include_self=False):
        scale = getattr(layer, "embed_scale", None)
        if isinstance(scale, tf.Tensor):
            layer.embed_scale = float(scale.numpy())
        if layer.name == "final_logits_bias" and layer.compute_dtype != "float32":
            layer._set_dtype_policy(keras.mixed_precision.Policy("float32"))


def _build_encoder_decoder(
    path: Path, name: str, decoder_model: str | None, allow_pickle: bool, copy: bool = False
) -> Seq2SeqBackbone:
    """BERT2BERT: encoder from ``path``, decoder warm-started from ``decoder_model`` (with a
    copy head when ``copy``)."""
    from transformers import AutoConfig, TFAutoModelForCausalLM

    encoder, source_tokenizer = load_hf_tf_model(path, allow_pickle=allow_pickle)
    decoder_path = resolve_hf_source(decoder_model) if decoder_model else path
    base, target_tokenizer = (
        (encoder, source_tokenizer) if decoder_path == path else load_hf_tf_model(decoder_path, allow_pickle)
    )
    decoder_config = AutoConfig.from_pretrained(str(decoder_path), local_files_only=True)
    decoder_config.is_decoder = True
    decoder_config.add_cross_attention = True
    try:
        decoder = TFAutoModelForCausalLM.from_config(decoder_config)
    except ValueError:
        raise BackboneError(
            f"{decoder_path}: model_type={decoder_config.model_type!r} has no TF causal-LM class to "
            "warm-start a decoder from."
        ) from None
    decoder(decoder.dummy_inputs)
    copied = _copy_matching_weights(base, decoder)
    logger.info("Warm-started %d decoder weights from %s", copied, decoder_path)
    if copied == 0:
        raise BackboneError(f"No weight of {decoder_path} fits the decoder {type(decoder).__name__}.")
    start = _first_id(target_tokenizer, ("cls_token_id", "bos_token_id"))
    end = _first_id(target_tokenizer, ("sep_token_id", "eos_token_id"))
    if start is None or end is None or target_tokenizer.pad_token_id is None:
        raise BackboneError(
            f"{decoder_path}: the decoder tokenizer needs start ([CLS]/<s>), end ([SEP]/</s>) and pad tokens."
        )
    if copy and target_tokenizer.get_vocab() != source_tokenizer.get_vocab():
        raise ConfigError(
            f"--copy-attention copies source tokens into the target, so both sides need one vocabulary; "
            f"{decoder_path} (the decoder) has another vocabulary than {path}."
        )
    _freeze_pooler(encoder)
    _dynamic_batch_generation(decoder)
    from tfft.backbones.bert2bert import CopyEncoderDecoder, EncoderDecoder

    model = (CopyEncoderDecoder if copy else EncoderDecoder)(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id = start
    model.config.eos_token_id = end
    model.config.pad_token_id = target_tokenizer.pad_token_id
    model.config.vocab_size = decoder_config.vocab_size
    _complete_generation_config(model, target_tokenizer)
    return Seq2SeqBackbone(
        model, source_tokenizer, target_tokenizer, name, "encoder-decoder", decoder=decoder_model or name
    )


def _freeze_pooler(encoder) -> None:
    """The encoder's pooler gets no gradients in a seq2seq model: keep it out of training."""
    for layer in encoder._flatten_layers(include_self=False):
        if layer.name == "pooler":
            layer.trainable = False


def _dynamic_batch_generation(decoder) -> None:
    """Let the decoder generate for a batch of unknown size in a traced function.

    BERT-family ``prepare_inputs_for_generation`` builds the decoder attention mask from the
    static shape (``tf.ones(input_ids.shape)``), which fails in a SavedModel signature whose
    batch dimension is None; the mask built here from the dynamic shape is the same.
    """
    original = decoder.prepare_inputs_for_generation

    def prepare(input_ids, past_key_values=None, attention_mask=None, **kwargs):
        if attention_mask is None:
            attention_mask = tf.ones(tf.shape(input_ids), tf.float32)
        return original(input_ids, past_key_values=past_key_values, attention_mask=attention_mask, **kwargs)

    decoder.prepare_inputs_for_generation = prepare


def _first_id(tokenizer, names: tuple[str, ...]) -> int | None:
    ids = _target_ids(tokenizer, names)
    return ids[0] if ids else None


def _copy_matching_weights(source_model, target_model) -> int:
    """Assign ``source_model``'s weights to same-named, same-shaped weights of ``target_model``.

    Names are compared without their first scope (the model's own name).
    """

    def key(weight) -> str:
        return weight.name.split("/", 1)[-1]

    sources = {key(weight): weight for weight in source_model.weights}
    copied = 0
    for weight in target_model.weights:
        match = sources.get(key(weight))
        if match is not None and match.shape == weight.shape:
            weight.assign(match)
            copied += 1
    return copied


def _complete_generation_config(model, target_tokenizer) -> None:
    """Make sure generation knows the start, end and pad tokens."""
    generation = model.generation_config
    config = model.config
    if generation.decoder_start_token_id is None:
        generation.decoder_start_token_id = config.decoder_start_token_id
    if generation.eos_token_id is None:
        generation.eos_token_id = config.eos_token_id or target_tokenizer.eos_token_id
    if generation.pad_token_id is None:
        generation.pad_token_id = config.pad_token_id or target_tokenizer.pad_token_id
    if generation.decoder_start_token_id is None:
        raise BackboneError(f"{type(model).__name__}: the checkpoint names no decoder_start_token_id.")


class Seq2SeqModel(keras.Model):
    """A tf_keras model around a Hugging Face TF encoder-decoder (teacher forcing in ``call``).

    Args:
        backbone: the loaded :class:`Seq2SeqBackbone`.
    """

    def __init__(self, backbone: Seq2SeqBackbone, **kwargs):
        super().__init__(name=kwargs.pop("name", "tfft_seq2seq"), **kwargs)
        self.hf = backbone.model
        # Not tracked: tf.function caches are no part of checkpoints or exports.
        object.__setattr__(self, "_generators", {})

    def get_config(self) -> dict:
        return {"name": self.name}

    def _source_mask(self, input_ids, attention_mask):
        """The attention mask the Hugging Face model takes: a copy head reads the source ids in it."""
        if getattr(self.hf, "copies_source", False):
            from tfft.backbones.bert2bert import id_mask

            return id_mask(input_ids, attention_mask)
        return attention_mask

    def call(self, features, training=False):
        outputs = self.hf(
            input_ids=features["input_ids"],
            attention_mask=self._source_mask(features["input_ids"], features["attention_mask"]),
            decoder_input_ids=features["decoder_input_ids"],
            decoder_attention_mask=features["decoder_attention_mask"],
            training=training,
            return_dict=True,
        )
        return tf.cast(outputs.logits, tf.float32)

    def build_weights(self) -> None:
        """Create every variable (before loading checkpoints)."""
        ids = tf.ones([1, 4], tf.int32)
        self(
            {
                "input_ids": ids,
                "attention_mask": ids,
                "decoder_input_ids": ids,
                "decoder_attention_mask": ids,
            }
        )

    @property
    def decoder_start_token_id(self) -> int:
        return int(self.hf.generation_config.decoder_start_token_id)

    def generate_ids(self, input_ids: tf.Tensor, attention_mask: tf.Tensor, **settings) -> tf.Tensor:
        """Generated ids ``[batch, length]`` (start token first); traceable inside a tf.function.

        ``settings``: ``max_new_tokens`` (required), ``num_beams`` (1: greedy), ``length_penalty``
        (beam search only), ``min_new_tokens`` and ``repetition_penalty`` (1: none), as the
        summarize / translate options name them.
        """
        num_beams = int(settings.get("num_beams", 1))
        kwargs = {
            "max_new_tokens": int(settings["max_new_tokens"]),
            "num_beams": num_beams,
            "do_sample": False,
        }
        if num_beams > 1:
            kwargs["length_penalty"] = float(settings.get("length_penalty", 1.0))
        min_new_tokens = int(settings.get("min_new_tokens", 0))
        if min_new_tokens:
            # Hugging Face's TF generation counts the decoder's start token in min_length.
            kwargs["min_length"] = min_new_tokens + 1
        repetition_penalty = float(settings.get("repetition_penalty", 1.0))
        if repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = repetition_penalty
        mask = self._source_mask(input_ids, attention_mask)
        return self.hf.generate(input_ids=input_ids, attention_mask=mask, **kwargs)

    def generator(self, settings: dict, xla: bool):
        """A (cached) tf.function generating with ``settings`` (as :meth:`generate_ids` takes
        them); ``xla`` compiles it (fixed shapes recompile rarely)."""
        key = (*sorted(settings.items()), xla)
        if key not in self._generators:
            fixed = dict(settings)

            def generate(input_ids, attention_mask):
                return self.generate_ids(input_ids, attention_mask, **fixed)

            self._generators[key] = tf.function(generate, jit_compile=xla, reduce_retracing=False)
        return self._generators[key]


def generate_ids_batched(
    model: Seq2SeqModel,
    encoded: list[np.ndarray],
    *,
    pad_id: int,
    buckets: list[int],
    batch_size: int,
    settings: dict,
    xla: bool | None = None,
) -> list[np.ndarray]:
    """Generate for unpadded source ids, in fixed-shape batches (XLA sees few shapes).

    Sources are sorted by length, padded to the next bucket length, and every batch has
    ``batch_size`` rows (the last one is filled with copies that are thrown away);
    ``settings``: as :meth:`Seq2SeqModel.generate_ids` takes them. With
    ``xla`` None, XLA is tried first and generation falls back to plain graph mode when it
    fails to compile.

    Returns:
        Generated ids per source (start token first, padding after the end included), in input order.
    """
    order = np.argsort([len(row) for row in encoded], kind="stable")
    results: list[np.ndarray | None] = [None] * len(encoded)
    use_xla = True if xla is None else xla
    bounds = np.asarray(buckets)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        rows = [encoded[i] for i in chosen]
        longest = max(len(row) for row in rows)
        length = int(bounds[np.searchsorted(bounds, longest)]) if longest <= bounds[-1] else longest
        filled = rows + [rows[0]] * (batch_size - len(rows))
        ids = np.full([batch_size, length], pad_id, np.int32)
        mask = np.zeros([batch_size, length], np.int32)
        for r, row in enumerate(filled):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        try:
            output = model.generator(settings, xla=use_xla)(tf.constant(ids), tf.constant(mask))
        except (tf.errors.OpError, ValueError, NotImplementedError) as error:
            if not use_xla or xla is not None:
                raise
            logger.warning(
                "XLA generation failed (%s); generating without XLA.", str(error).splitlines()[0][:200]
            )
            use_xla = False
            output = model.generator(settings, xla=False)(tf.constant(ids), tf.constant(mask))
        output = output.numpy()
        for r, index in enumerate(chosen):
            results[index] = output[r]
    return results  # type: ignore[return-value]
