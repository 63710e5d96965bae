"""Encoders with a masked-LM head: Hugging Face TF ``TFAutoModelForMaskedLM`` models wrapped for tfft.

:func:`load_masked_lm_backbone` loads any checkpoint that ``TFAutoModelForMaskedLM`` builds
(BERT family, RoBERTa, DistilBERT, ELECTRA, ...), safely (safetensors or ``tf_model.h5``;
pickles only with ``allow_pickle``; PyTorch safetensors without PyTorch, see
:mod:`tfft.backbones.hf_weights`). A checkpoint without the MLM head (a plain ``BertModel``,
sentence-transformers' MiniLM) gets the head initialised from the config, its output
projection tied to the word embeddings as in pretraining; a log line says so. Missing
weights of the encoder itself are still an error.

:class:`MaskedLMModel` is a plain tf_keras model around it: ``{input_ids, attention_mask}``
in, float32 token logits ``[batch, length, vocabulary]`` out.
"""

from __future__ import annotations

import logging

import tensorflow as tf

from tfft.backbones.base import Backbone
from tfft.backbones.hf import resolve_hf_source
from tfft.backbones.hf_weights import load_checkpoint
from tfft.errors import BackboneError
from tfft.keras import keras
from tfft.tokenization import HFTextEncoder

logger = logging.getLogger(__name__)


class MaskedLMBackbone(Backbone):
    """A Hugging Face TF masked language model and its tokenizer.

    Attributes:
        model: the ``TF...ForMaskedLM``.
        encoder: its :class:`~tfft.tokenization.HFTextEncoder`.
        tokenizer: the (fast) Hugging Face tokenizer.
        mask_id, pad_id: the mask and padding token ids.
        head_initialised: the checkpoint had no MLM head; it starts from the config.
    """

    kind = "hf-masked-lm"
    poolings = ("none",)

    def __init__(self, model, tokenizer, source: str, head_initialised: bool = False):
        self.model = model
        self.tokenizer = tokenizer
        self.encoder = HFTextEncoder(tokenizer)
        self.source = str(source)
        self.head_initialised = head_initialised
        if tokenizer.mask_token_id is None:
            raise BackboneError(f"{source}: the tokenizer has no mask token; --task mlm needs one.")
        if not getattr(tokenizer, "is_fast", False):
            raise BackboneError(f"{source}: --task mlm needs a fast tokenizer (tokenizer.json) for word ids.")
        self.mask_id = int(tokenizer.mask_token_id)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)

    @property
    def config(self):
        return self.model.config

    def describe(self) -> dict:
        return {
            **super().describe(),
            "model_type": self.model.config.model_type,
            "head_initialised": self.head_initialised,
        }


def head_names(model) -> tuple[str, ...]:
    """Name fragments of the MLM head's weights (TF layer names and their PyTorch spelling):
    every top-level layer of ``model`` but its encoder."""
    base = getattr(model, model.base_model_prefix, None)
    names = []
    for layer in model.layers:
        if layer is base or layer.name == model.base_model_prefix:
            continue
        names += [layer.name, layer.name.split("___")[-1]]
    return tuple(dict.fromkeys(names))


def load_masked_lm_backbone(hf_model: str, allow_pickle: bool = False) -> MaskedLMBackbone:
    """Load an encoder checkpoint with ``TFAutoModelForMaskedLM`` (no code from the folder runs).

    Raises:
        BackboneError: no loadable weights, only pickles, a model type without a TF masked-LM
            class, or encoder weights missing or of the wrong shape.
    """
    from transformers import AutoConfig, TFAutoModelForMaskedLM

    path = resolve_hf_source(hf_model)
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as error:
        raise BackboneError(f"{path / 'config.json'} cannot be read: {error}") from None
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "is_decoder", False):
        raise BackboneError(
            f"{path}: model_type={config.model_type!r} is not an encoder; --task mlm needs an encoder "
            "checkpoint (BERT, RoBERTa, DistilBERT, ELECTRA, ...)."
        )
    found = sorted(entry.name for entry in path.iterdir())
    try:
        optional = head_names(_built(TFAutoModelForMaskedLM.from_config(config)))
    except ValueError as error:
        raise BackboneError(
            f"{path}: model_type={config.model_type!r} has no TF masked-LM class in transformers: {error}"
        ) from None
    model, tokenizer, skipped = load_checkpoint(
        path,
        found,
        TFAutoModelForMaskedLM,
        allow_pickle=allow_pickle,
        optional=optional,
        kind="a TF masked LM",
    )
    initialised = bool(skipped)
    if initialised:
        logger.info(
            "%s has no masked-LM head: the head (%s) is initialised from the config, its output "
            "projection tied to the word embeddings.",
            path,
            ", ".join(optional),
        )
    return MaskedLMBackbone(model, tokenizer, hf_model, head_initialised=initialised)


def _built(model):
    model.build_in_name_scope()
    return model


class MaskedLMModel(keras.Model):
    """A tf_keras model around a Hugging Face TF masked LM.

    ``call`` takes ``{input_ids, attention_mask}`` and returns float32 logits
    ``[batch, length, vocabulary]`` (position t scores the original token at t).
    """

    def __init__(self, backbone: MaskedLMBackbone, **kwargs):
        super().__init__(name=kwargs.pop("name", "tfft_mlm"), **kwargs)
        self.hf = backbone.model

    def get_config(self) -> dict:
        return {"name": self.name}

    def call(self, features, training=False):
        outputs = self.hf(
            input_ids=features["input_ids"],
            attention_mask=features["attention_mask"],
            training=training,
            return_dict=True,
        )
        return tf.cast(outputs.logits, tf.float32)

    def build_weights(self) -> None:
        """Create every variable (before loading checkpoints)."""
        ids = tf.ones([1, 4], tf.int32)
        self({"input_ids": ids, "attention_mask": ids})
