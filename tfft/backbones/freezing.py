"""Freezing a backbone: train the head only, or the head and the top transformer layers.

:func:`freeze` is the one place that decides which backbone weights train
(``--freeze-backbone``, ``--train-top-layers N``); :func:`tfft.build_model` calls it once the
head is built.

- Hugging Face backbones: the transformer blocks are found by structure, as the list
  ``encoder.layer`` (BERT, RoBERTa, ELECTRA, ...), ``transformer.layer`` (DistilBERT) or
  ``h`` (GPT-2) of the main layer; a final layer norm above the blocks (GPT-2's ``ln_f``)
  trains with the top layers, and so does the pooler when the pooling uses it. Embeddings,
  lower blocks and anything else stay frozen. Backbones without such a list (ALBERT shares
  one block between all its layers) get an error.
- TF Hub encoders: ``--freeze-backbone`` makes the ``hub.KerasLayer`` non-trainable;
  ``--train-top-layers`` reads the layer number from the SavedModel's variable names
  (``transformer/layer_N/`` as in the TF Model Garden BERTs on tfhub.dev, or
  ``encoder/layer_._N/`` as in encoders written by :mod:`tfft.backbones.hub_convert`).
"""

from __future__ import annotations

import re

from tfft.backbones.base import Backbone
from tfft.errors import BackboneError, ConfigError
from tfft.keras import keras

#: attribute paths, from the main layer, of a Hugging Face model's list of transformer blocks
HF_BLOCK_LISTS = ("encoder.layer", "transformer.layer", "h", "encoder.layers", "layers")
#: layers of the main layer above the blocks that train with the top layers (final layer norms)
HF_ABOVE_BLOCKS = ("ln_f", "final_layer_norm", "norm")
#: the layer number in a hub encoder's variable names
HUB_LAYER = re.compile(r"(?:^|/)(?:transformer/layer_|encoder/layer_\._|layer_\._)(\d+)/")


def freeze(
    backbone: Backbone,
    pooling: str,
    *,
    freeze_backbone: bool = False,
    train_top_layers: int | None = None,
) -> None:
    """Leave only the head (and the top ``train_top_layers`` transformer layers) trainable.

    Call it once the model is built on ``backbone``, before ``compile``.

    Args:
        backbone: the model's backbone.
        pooling: the resolved pooling (``"pooler"`` keeps the pooler trainable with top layers).
        freeze_backbone: train the head only.
        train_top_layers: train the head and this many top transformer layers.

    Raises:
        ConfigError: ``train_top_layers`` not a positive integer or more than the backbone
            has (:func:`tfft.lora_options.check_one_way_to_freeze` rejects both options together).
        BackboneError: a backbone whose layers cannot be told apart.
    """
    if train_top_layers is not None and (
        isinstance(train_top_layers, bool) or not isinstance(train_top_layers, int) or train_top_layers < 1
    ):
        raise ConfigError(
            f"`train_top_layers` must be an integer > 0. Received: train_top_layers={train_top_layers!r}"
        )
    if freeze_backbone:
        _backbone_layer(backbone).trainable = False
    elif train_top_layers is not None:
        if backbone.kind == "hf":
            _train_top_hf(backbone, train_top_layers, pooling)
        elif backbone.kind == "hub-encoder":
            _train_top_hub(backbone, train_top_layers, pooling)
        else:
            raise BackboneError(
                f"--train-top-layers: a {backbone.kind} backbone has no transformer layers tfft can tell "
                "apart; use --freeze-backbone or train it all. "
                f"Received: train_top_layers={train_top_layers!r}"
            )


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """``{"trainable": ..., "total": ...}``: the model's parameters (scalars in its weights)."""

    def count(weights) -> int:
        return int(sum(weight.shape.num_elements() or 0 for weight in weights))

    return {"trainable": count(model.trainable_weights), "total": count(model.weights)}


def _backbone_layer(backbone: Backbone) -> keras.layers.Layer:
    """The Keras layer holding the backbone's weights."""
    layer = getattr(backbone, "model", None)
    if layer is None:
        layer = getattr(backbone, "layer", None)
    if layer is None:
        raise BackboneError(f"--freeze-backbone: a {backbone.kind} backbone has no Keras layer to freeze.")
    return layer


def _sublayers(layer) -> list:
    """The direct sublayers of a Keras layer."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


def _attribute(root, path: str):
    for name in path.split("."):
        root = getattr(root, name, None)
    return root


def hf_blocks(backbone) -> tuple[keras.layers.Layer, list]:
    """The main layer of a Hugging Face model and its transformer blocks, bottom first.

    Raises:
        BackboneError: no list of blocks at the known places (:data:`HF_BLOCK_LISTS`).
    """
    model = backbone.model
    main = getattr(model, getattr(model, "base_model_prefix", ""), None) or model
    for path in HF_BLOCK_LISTS:
        blocks = _attribute(main, path)
        if (
            isinstance(blocks, (list, tuple))
            and blocks
            and all(isinstance(b, keras.layers.Layer) for b in blocks)
        ):
            return main, list(blocks)
    raise BackboneError(
        f"--train-top-layers: cannot find the transformer layers of a model_type={backbone.model_type!r} "
        f"backbone (looked for {', '.join(HF_BLOCK_LISTS)}; ALBERT-style shared layers cannot be split). "
        "Use --freeze-backbone, or train it all."
    )


def _check_count(count: int, available: int, source: str) -> None:
    if count > available:
        raise ConfigError(
            f"`train_top_layers` must be at most {available}, the transformer layers of {source}. "
            f"Received: train_top_layers={count!r}"
        )


def _train_top_hf(backbone, count: int, pooling: str) -> None:
    """Freeze all of a Hugging Face backbone but its top ``count`` blocks (and what sits above)."""
    main, blocks = hf_blocks(backbone)
    _check_count(count, len(blocks), backbone.source)
    keep = blocks[-count:] + [layer for layer in _sublayers(main) if layer.name in HF_ABOVE_BLOCKS]
    if pooling == "pooler":
        keep += [layer for layer in _sublayers(main) if layer.name == "pooler"]
    _freeze_all_but(main, {id(layer) for layer in keep})
    kept = {id(weight) for layer in keep for weight in layer.trainable_weights}
    stray = [weight.name for weight in backbone.model.trainable_weights if id(weight) not in kept]
    if stray:
        raise BackboneError(
            f"--train-top-layers: weights of {backbone.source} outside its layers cannot be frozen: "
            f"{', '.join(stray[:5])}"
        )


def _freeze_all_but(layer, keep: set[int]) -> None:
    """Make every sublayer of ``layer`` non-trainable except those in ``keep`` (by id)."""
    for child in _sublayers(layer):
        if id(child) in keep:
            child.trainable = True
        elif any(id(inner) in keep for inner in child._flatten_layers(include_self=False)):
            _freeze_all_but(child, keep)
        else:
            child.trainable = False


def _train_top_hub(backbone, count: int, pooling: str) -> None:
    """Keep trainable only the hub encoder variables of its top ``count`` layers (and its pooler)."""
    layer = backbone.layer
    numbers = {
        int(match.group(1)) for weight in layer.trainable_weights if (match := HUB_LAYER.search(weight.name))
    }
    if not numbers:
        raise BackboneError(
            f"--train-top-layers: the variables of {backbone.source} are not named by layer "
            "(transformer/layer_N/ or encoder/layer_._N/). Use --freeze-backbone, or train it all."
        )
    _check_count(count, len(numbers), backbone.source)
    lowest = max(numbers) + 1 - count

    def trained(weight) -> bool:
        match = HUB_LAYER.search(weight.name)
        if match:
            return int(match.group(1)) >= lowest
        return pooling == "pooler" and "pooler" in weight.name

    frozen = [weight for weight in layer._trainable_weights if not trained(weight)]
    layer._trainable_weights[:] = [weight for weight in layer._trainable_weights if trained(weight)]
    layer._non_trainable_weights[:] = frozen + list(layer._non_trainable_weights)
