"""TF Hub backbones: BERT-style encoders and text-embedding modules."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import tensorflow as tf

from tfft.backbones.base import Backbone, PoolSequence
from tfft.errors import BackboneError
from tfft.keras import keras
from tfft.tokenization import (
    GraphTextEncoder,
    HubPreprocessorTokenizer,
    SequenceTemplate,
    WordPieceGraphTokenizer,
)

logger = logging.getLogger(__name__)

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


def _tensorflow_hub():
    """``tensorflow_hub``, imported without its pkg_resources deprecation warning.

    (tensorflow_hub 0.16 imports ``pkg_resources`` at import time; the warning would land in
    the middle of command output.)
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import tensorflow_hub

    return tensorflow_hub


def load_hub_object(handle: str, option: str = "--hub-url"):
    """``hub.load`` a local SavedModel folder or an https URL (through the TF Hub cache).

    Raises:
        BackboneError: another scheme, a missing folder, or a URL that is neither cached
            nor downloadable.
    """
    hub = _tensorflow_hub()
    import tensorflow_text  # noqa: F401 - registers the ops that BERT preprocessors use

    handle = str(handle)
    if "://" in handle:
        if not handle.startswith("https://"):
            raise BackboneError(f"{option} takes an https:// URL or a local path. Received: {handle}")
        try:
            path = hub.resolve(handle)
        except Exception as error:  # noqa: BLE001 - network errors come in many types
            cache = os.environ.get("TFHUB_CACHE_DIR", "the TF Hub cache (TFHUB_CACHE_DIR)")
            raise BackboneError(
                f"{option} {handle}: not in {cache} and it cannot be downloaded here "
                f"({type(error).__name__}). Download and unpack it where there is internet, then pass the "
                "local folder (or set TFHUB_CACHE_DIR to a cache that holds it)."
            ) from None
    else:
        path = Path(handle).expanduser()
        if not path.is_dir():
            raise BackboneError(f"{option}: no such folder: {handle}")
        if not (path / "saved_model.pb").is_file():
            found = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
            raise BackboneError(f"{option}: {handle} holds no saved_model.pb (found: {found}).")
    try:
        return hub.load(str(path))
    except Exception as error:  # noqa: BLE001 - TF raises many types for a broken SavedModel
        raise BackboneError(
            f"{option}: cannot load the SavedModel at {handle}: {str(error).splitlines()[0]}"
        ) from None


def _call_input_spec(obj):
    """The structure the SavedModel's ``__call__`` takes, from its first traced function."""
    call = getattr(obj, "__call__", None)
    concrete = list(getattr(call, "concrete_functions", None) or [])
    if not concrete and hasattr(call, "_list_all_concrete_functions_for_serialization"):
        concrete = call._list_all_concrete_functions_for_serialization()
    for function in concrete:
        args, kwargs = function.structured_input_signature
        if args:
            return args[0]
        if kwargs:
            return next(iter(kwargs.values()))
    signature = getattr(obj, "signatures", {}).get("serving_default")
    if signature is not None:
        _, kwargs = signature.structured_input_signature
        return kwargs
    return None


def hub_input_kind(obj, handle: str) -> str:
    """``"encoder"`` for BERT-style dict inputs, ``"text"`` for a batch of strings."""
    spec = _call_input_spec(obj)
    if isinstance(spec, dict) and set(ENCODER_INPUTS) <= set(spec):
        return "encoder"
    if isinstance(spec, tf.TensorSpec) and spec.dtype == tf.string:
        return "text"
    raise BackboneError(
        f"--hub-url {handle}: unsupported TF Hub model. tfft takes BERT-style encoders (dict inputs "
        f"{', '.join(ENCODER_INPUTS)}) and text-embedding modules (a batch of strings). "
        f"Received inputs: {spec!r}"
    )


def _encoder_text_encoder(encoder, preprocessor, handle: str) -> GraphTextEncoder:
    """Tokenization for a hub encoder: its preprocessor, else the vocab file it carries."""
    if preprocessor is not None:
        tokenize = getattr(preprocessor, "tokenize", None)
        if tokenize is None or not hasattr(tokenize, "get_special_tokens_dict"):
            raise BackboneError(
                "--hub-preprocess-url: the SavedModel has no `tokenize` with `get_special_tokens_dict()`; "
                "it does not look like a BERT preprocessor."
            )
        special = {name: int(value.numpy()) for name, value in tokenize.get_special_tokens_dict().items()}
        template = SequenceTemplate.bert(
            special["start_of_sequence_id"], special["end_of_segment_id"], special["padding_id"]
        )
        return GraphTextEncoder(HubPreprocessorTokenizer(preprocessor), template)

    vocab_file = getattr(encoder, "vocab_file", None)
    if vocab_file is None:
        raise BackboneError(
            f"--hub-url {handle}: the encoder carries no vocab_file asset; give its preprocessor with "
            "--hub-preprocess-url."
        )
    vocab_path = vocab_file.asset_path.numpy().decode()
    vocab = Path(vocab_path).read_text(encoding="utf-8").splitlines()
    lower_case = bool(encoder.do_lower_case.numpy()) if hasattr(encoder, "do_lower_case") else True
    missing = [token for token in ("[CLS]", "[SEP]", "[PAD]", "[UNK]") if token not in vocab]
    if missing:
        raise BackboneError(f"--hub-url {handle}: vocab file {vocab_path} lacks {', '.join(missing)}.")
    template = SequenceTemplate.bert(vocab.index("[CLS]"), vocab.index("[SEP]"), vocab.index("[PAD]"))
    return GraphTextEncoder(WordPieceGraphTokenizer(vocab, lower_case), template)


class HubEncoderBackbone(Backbone):
    """A BERT-style TF Hub encoder (``pooled_output`` / ``sequence_output``)."""

    kind = "hub-encoder"
    poolings = ("mean", "pooler", "cls")  # mean by default, as for Hugging Face encoders
    # Measured on MiniLM (2 CPU cores, batch 32 x 32 tokens): 9.1 s per train step with XLA
    # against 0.62 s without; restored SavedModel functions do not compile well.
    xla_by_default = False

    def __init__(self, encoder, handle: str, preprocessor=None, preprocess_handle: str | None = None):
        hub = _tensorflow_hub()

        self.source = str(handle)
        self.preprocess_source = preprocess_handle
        self.encoder = _encoder_text_encoder(encoder, preprocessor, handle)
        self.layer = hub.KerasLayer(encoder, trainable=True, name="hub_encoder")

    def _outputs(self, inputs: dict) -> dict:
        return self.layer(
            {
                "input_word_ids": inputs["input_ids"],
                "input_mask": inputs["attention_mask"],
                "input_type_ids": inputs["token_type_ids"],
            }
        )

    def sequence(self, inputs: dict) -> tf.Tensor:
        return self._outputs(inputs)["sequence_output"]

    def pooled(self, inputs: dict, pooling: str) -> tf.Tensor:
        pooling = self.resolve_pooling(pooling)
        outputs = self._outputs(inputs)
        if pooling == "pooler":
            return outputs["pooled_output"]
        return PoolSequence(pooling, name=f"{pooling}_pool")(
            outputs["sequence_output"], inputs["attention_mask"]
        )

    def describe(self) -> dict:
        return {**super().describe(), "preprocess_source": self.preprocess_source}


class PairFeatures(keras.layers.Layer):
    """``[u, v, |u - v|, u * v]`` for two sentence embeddings (Sentence-BERT style)."""

    def call(self, first, second):
        return tf.concat([first, second, tf.abs(first - second), first * second], axis=-1)


class HubTextBackbone(Backbone):
    """A TF Hub text-embedding module: strings in, one vector per string out."""

    kind = "hub-text"
    poolings = ("embedding",)
    xla_by_default = False  # like hub encoders; string ops cannot be XLA-compiled anyway

    def __init__(self, module, handle: str):
        hub = _tensorflow_hub()

        self.source = str(handle)
        self.encoder = None
        self.layer = hub.KerasLayer(module, trainable=True, name="hub_embedding")

    def pooled(self, inputs: dict, pooling: str) -> tf.Tensor:
        self.resolve_pooling(pooling)
        first = self.layer(inputs["text"])
        if "text_pair" not in inputs:
            return first
        return PairFeatures(name="pair_features")(first, self.layer(inputs["text_pair"]))


def load_hub_backbone(handle: str, preprocess_handle: str | None = None) -> Backbone:
    """Load a TF Hub encoder (with its preprocessor or vocab) or text-embedding module."""
    obj = load_hub_object(handle)
    if hub_input_kind(obj, handle) == "text":
        if preprocess_handle:
            raise BackboneError(
                f"--hub-preprocess-url is for BERT-style encoders; {handle} is a text-embedding module that "
                "takes raw strings."
            )
        return HubTextBackbone(obj, handle)
    preprocessor = load_hub_object(preprocess_handle, "--hub-preprocess-url") if preprocess_handle else None
    return HubEncoderBackbone(obj, handle, preprocessor, preprocess_handle)
