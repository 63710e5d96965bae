"""Hugging Face TensorFlow backbones (the ``TFAutoModel`` family)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import tensorflow as tf

from tfft.backbones.base import Backbone, PoolSequence
from tfft.backbones.hf_weights import load_hf_tf_model
from tfft.errors import BackboneError
from tfft.tokenization import HFTextEncoder

logger = logging.getLogger(__name__)

# Causal language models: pool at the last real token, not the first.
DECODER_TYPES = frozenset(
    {"gpt2", "openai-gpt", "gptj", "gpt_neo", "ctrl", "opt", "xglm", "mistral", "llama"}
)


def resolve_hf_source(name_or_path: str | os.PathLike) -> Path:
    """A local folder, or a model name already in the local Hugging Face cache.

    Raises:
        BackboneError: neither a folder nor a cached name; nothing is downloaded.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise BackboneError(f"--hf-model must be a folder or a model name. Received a file: {name_or_path}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(str(name_or_path), local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError) as error:
        raise BackboneError(
            f"--hf-model {name_or_path!r} is not a local folder and is not in the local Hugging Face cache "
            f"({os.environ.get('HF_HUB_CACHE') or os.environ.get('HF_HOME') or '~/.cache/huggingface'}); "
            "tfft does not download models. Download it where there is internet "
            "(huggingface-cli download NAME) or pass a folder with config.json, weights and tokenizer files. "
            f"({type(error).__name__})"
        ) from None


class HFBackbone(Backbone):
    """A ``TFAutoModel`` (BERT, DistilBERT, RoBERTa, ALBERT, ELECTRA, MPNet, GPT-2, ...).

    Args:
        model: the Hugging Face TF main model (a tf_keras model).
        tokenizer: its (fast) tokenizer.
        source: where it was loaded from.
    """

    kind = "hf"

    def __init__(self, model, tokenizer, source: str):
        self.model = model
        self.source = str(source)
        self.encoder = HFTextEncoder(tokenizer)
        self.model_type = getattr(model.config, "model_type", "")
        self.is_decoder = self.model_type in DECODER_TYPES
        has_pooler = any("pooler" in weight.name for weight in model.weights)
        # Default: mean over real tokens for encoders. Many checkpoints (sentence-transformers,
        # distilled models) ship an untrained pooler, and mean pooling learns fastest there.
        if self.is_decoder:
            self.poolings = ("last", "mean")
        elif has_pooler:
            self.poolings = ("mean", "cls", "pooler")
        else:
            self.poolings = ("mean", "cls")

    def _outputs(self, inputs: dict):
        kwargs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        if self.encoder.uses_token_types:
            kwargs["token_type_ids"] = inputs["token_type_ids"]
        return self.model(kwargs)

    def sequence(self, inputs: dict) -> tf.Tensor:
        self._freeze_pooler()
        return self._outputs(inputs).last_hidden_state

    def pooled(self, inputs: dict, pooling: str) -> tf.Tensor:
        pooling = self.resolve_pooling(pooling)
        if pooling != "pooler":
            self._freeze_pooler()
        outputs = self._outputs(inputs)
        if pooling == "pooler":
            return outputs.pooler_output
        return PoolSequence(pooling, name=f"{pooling}_pool")(
            outputs.last_hidden_state, inputs["attention_mask"]
        )

    def _freeze_pooler(self) -> None:
        """An unused pooler gets no gradients: keep it out of training and the optimizer."""
        for layer in self.model._flatten_layers(include_self=False):
            if layer.name == "pooler":
                layer.trainable = False

    def describe(self) -> dict:
        return {**super().describe(), "model_type": self.model_type, "config": self.model.config.to_dict()}


def load_hf_backbone(name_or_path: str | os.PathLike, allow_pickle: bool = False) -> HFBackbone:
    """Load a Hugging Face TF backbone and its tokenizer from a folder or the local cache."""

    path = resolve_hf_source(name_or_path)
    model, tokenizer = load_hf_tf_model(path, allow_pickle=allow_pickle)
    return HFBackbone(model, tokenizer, source=str(name_or_path))
