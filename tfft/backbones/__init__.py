"""Pretrained backbones: Hugging Face TF checkpoints and TF Hub SavedModels."""

from __future__ import annotations

from tfft.backbones.base import Backbone
from tfft.errors import ConfigError


def load_backbone(
    hf_model: str | None = None,
    hub_url: str | None = None,
    hub_preprocess_url: str | None = None,
    allow_pickle: bool = False,
) -> Backbone:
    """Load a backbone from exactly one source.

    Args:
        hf_model: a Hugging Face TF checkpoint folder, or a name in the local HF cache.
        hub_url: a TF Hub SavedModel: https URL (through the TF Hub cache) or local folder.
        hub_preprocess_url: for a BERT-style hub encoder, its preprocessor SavedModel.
            Without it, the vocab file the encoder carries is used.
        allow_pickle: let ``hf_model`` load pickle weights (``pytorch_model.bin``) when it
            has no safetensors or HDF5 weights. Only for checkpoints you trust.

    Returns:
        A :class:`Backbone` with its tokenizer (``backbone.encoder``).

    Raises:
        ConfigError: no source or both.
        BackboneError: the source cannot be found or loaded.
    """
    if bool(hf_model) == bool(hub_url):
        raise ConfigError(
            "Give exactly one backbone: hf_model (--hf-model) or hub_url (--hub-url). "
            f"Received: hf_model={hf_model!r}, hub_url={hub_url!r}"
        )
    if hf_model:
        if hub_preprocess_url:
            raise ConfigError("--hub-preprocess-url goes with --hub-url, not --hf-model.")
        from tfft.backbones.hf import load_hf_backbone  # imported on use: transformers is slow to load

        return load_hf_backbone(hf_model, allow_pickle=allow_pickle)
    if allow_pickle:
        raise ConfigError("--allow-pickle is for --hf-model checkpoints; TF Hub SavedModels hold no pickles.")
    from tfft.backbones.hub import load_hub_backbone  # imported on use: tensorflow_hub is slow to load

    return load_hub_backbone(hub_url, hub_preprocess_url)


__all__ = ["Backbone", "load_backbone"]
