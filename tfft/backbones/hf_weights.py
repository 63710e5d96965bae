"""Load a Hugging Face checkpoint folder as a transformers TensorFlow model, without PyTorch.

A checkpoint folder holds ``config.json``, tokenizer files and weights in one of these
formats, tried in this order:

- ``model.safetensors`` or sharded ``model.safetensors.index.json``, written by PyTorch
  (``{"format": "pt"}`` metadata, the usual case on the Hub) or by TensorFlow;
- ``tf_model.h5`` or sharded ``tf_model.h5.index.json``.

Pickle files (``pytorch_model.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``) are refused: loading
them can run arbitrary code. ``allow_pickle=True`` (``--allow-pickle``) loads a folder that
has nothing else, through PyTorch (``from_pt``), for checkpoints the user trusts.

transformers >= 4.55 cannot load PyTorch-format safetensors into a TF model unless PyTorch
is installed, so those are read here and handed to
``transformers.modeling_tf_pytorch_utils.load_pytorch_state_dict_in_tf2_model``.

Besides :func:`load_hf_tf_model`, the steps are public for loaders of other model classes
(:mod:`tfft.backbones.seq2seq`): :func:`load_tokenizer`, :func:`shard_files`,
:func:`safetensors_format`, :func:`load_pytorch_safetensors` and :func:`check_loading_info`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tfft.errors import BackboneError
from tfft.keras import keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before transformers loads TF)

logger = logging.getLogger(__name__)

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TF_H5 = "tf_model.h5"
TF_H5_INDEX = "tf_model.h5.index.json"
PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def load_hf_tf_model(path: str | os.PathLike, allow_pickle: bool = False):
    """Load a local Hugging Face checkpoint as a TF model (``TFAutoModel``) and its fast tokenizer.

    Never runs code from the folder: ``trust_remote_code`` stays off and pickle weights are
    refused unless ``allow_pickle``.

    Args:
        path: a folder with ``config.json``, tokenizer files and weights (see module docs).
        allow_pickle: load ``pytorch_model.bin``-style pickle weights when the folder has no
            safe format (needs PyTorch; loading a pickle can execute code).

    Returns:
        ``(model, tokenizer)``: the transformers TF base model (no task head), built and
        loaded, and ``AutoTokenizer.from_pretrained(path)``.

    Raises:
        BackboneError: the folder is missing, lacks ``config.json`` or weights, holds only
            pickle weights, its model type has no TensorFlow implementation, or some of
            the model's weights are not in the checkpoint.

    Example:
        >>> model, tokenizer = load_hf_tf_model("tiny-bert")  # doctest: +SKIP
        >>> model(**tokenizer(["hello"], return_tensors="tf")).last_hidden_state.shape  # doctest: +SKIP
        TensorShape([1, 3, 32])
    """
    folder = Path(path)
    if not folder.is_dir():
        raise BackboneError(
            "The Hugging Face checkpoint must be a local folder with config.json, tokenizer files "
            f"and weights. Received: path={str(path)!r}"
        )
    found = sorted(entry.name for entry in folder.iterdir())
    if "config.json" not in found:
        raise BackboneError(f"{folder} has no config.json. Files found: {found}")

    if SAFETENSORS in found:
        shards = [folder / SAFETENSORS]
    elif SAFETENSORS_INDEX in found:
        shards = shard_files(folder / SAFETENSORS_INDEX)
    elif TF_H5 in found or TF_H5_INDEX in found:
        shards = []
    else:
        pickles = [name for name in found if name in PICKLE_NAMES or name.endswith(PICKLE_SUFFIXES)]
        if pickles and allow_pickle:
            logger.warning("Loading pickle weights from %s (--allow-pickle): %s", folder, ", ".join(pickles))
            tokenizer = load_tokenizer(folder, found)
            return _from_pickle(folder), tokenizer
        if pickles:
            raise BackboneError(
                f"{folder} only has pickle weights ({', '.join(pickles)}). tfft does not load pickle "
                "files because loading them can execute arbitrary code. Convert the checkpoint to "
                f"{SAFETENSORS} (safetensors) or {TF_H5}, or pass --allow-pickle if you trust its "
                f"source. Files found: {found}"
            )
        raise BackboneError(
            f"{folder} has no model weights: expected {SAFETENSORS}, {SAFETENSORS_INDEX} or {TF_H5}. "
            f"Files found: {found}"
        )
    tokenizer = load_tokenizer(folder, found)  # first: it fails faster than the weights
    model = _load_safetensors(folder, shards) if shards else _from_pretrained(folder, use_safetensors=False)
    return model, tokenizer


def shard_files(index_file: Path) -> list[Path]:
    """The shard files listed by a sharded-checkpoint index, in order."""
    try:
        weight_map = json.loads(index_file.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BackboneError(f"{index_file} is not a valid checkpoint index: {e}") from e
    shards = [index_file.parent / name for name in dict.fromkeys(weight_map.values())]
    missing = [shard.name for shard in shards if not shard.is_file()]
    if missing:
        raise BackboneError(f"{index_file} lists shards that are not in the folder: {missing}")
    return shards


def safetensors_format(file: Path) -> str | None:
    """The ``format`` metadata of a safetensors file: ``"pt"`` (PyTorch), ``"tf"`` or None."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="np") as handle:
            return (handle.metadata() or {}).get("format")
    except Exception as e:  # safetensors raises its own (Rust) error types
        raise BackboneError(f"{file} is not a readable safetensors file: {e}") from e


def _load_safetensors(folder: Path, files: list[Path]):
    fmt = safetensors_format(files[0])
    if fmt == "tf":
        return _from_pretrained(folder, use_safetensors=True)
    if fmt != "pt":
        raise BackboneError(
            f"{files[0]} has metadata format={fmt!r}; tfft reads safetensors written by PyTorch "
            "('pt') or TensorFlow ('tf') with save_pretrained."
        )
    return load_pytorch_safetensors(folder, files, optional=POOLER)


def _build_from_config(folder: Path, auto_class=None):
    from transformers import AutoConfig, TFAutoModel

    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise BackboneError(f"{folder / 'config.json'} cannot be read: {e}") from e
    try:
        return (auto_class or TFAutoModel).from_config(config)
    except ValueError as e:
        raise BackboneError(
            f"{folder}: model_type={config.model_type!r} has no TensorFlow implementation in transformers."
        ) from e


def load_pytorch_safetensors(
    folder: Path, files: list[Path], auto_class=None, optional: tuple[str, ...] = ()
):
    """PyTorch-named safetensors into a TF model, without torch (transformers needs torch here).

    Args:
        folder: the checkpoint folder.
        files: its safetensors files (one, or the shards of an index).
        auto_class: the transformers TF Auto class to build (default ``TFAutoModel``: no head).
        optional: weights the checkpoint may lack (name fragments), e.g. BART's
            ``final_logits_bias``, which starts at zero.
    """
    from safetensors import safe_open
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    model = _build_from_config(folder, auto_class)
    model.build_in_name_scope()
    state = {}
    for file in files:
        # Read as TF tensors: numpy has no bfloat16.
        try:
            with safe_open(str(file), framework="tf") as handle:
                state.update({key: handle.get_tensor(key) for key in handle.keys()})
        except Exception as e:  # safetensors raises its own (Rust) error types
            raise BackboneError(f"{file} is not a readable safetensors file: {e}") from e
    try:
        model, info = load_pytorch_state_dict_in_tf2_model(
            model,
            state,
            tf_inputs=False,  # already built
            allow_missing_keys=True,
            output_loading_info=True,
            tf_to_pt_weight_rename=getattr(model, "tf_to_pt_weight_rename", None),
        )
    except Exception as e:  # shape mismatches arrive as InvalidArgumentError, AttributeError ...
        raise BackboneError(f"The weights in {folder} do not fit {type(model).__name__}: {e}") from e
    check_loading_info(folder, model, info, optional)
    return model


def _from_pretrained(folder: Path, use_safetensors: bool):
    from transformers import TFAutoModel

    try:
        model, info = TFAutoModel.from_pretrained(
            str(folder), use_safetensors=use_safetensors, local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError) as e:
        raise BackboneError(f"{folder} cannot be loaded as a TensorFlow model: {e}") from e
    check_loading_info(folder, model, info, POOLER)
    return model


def _from_pickle(folder: Path):
    """Load PyTorch pickle weights (only with ``allow_pickle``); PyTorch reads them."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise BackboneError(
            f"{folder}: --allow-pickle needs PyTorch to read pickle weights, and it is not installed "
            "(pip install torch, or convert the checkpoint to safetensors)."
        )
    from transformers import TFAutoModel

    try:
        model, info = TFAutoModel.from_pretrained(
            str(folder), from_pt=True, local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError) as e:
        raise BackboneError(f"{folder} cannot be loaded from its pickle weights: {e}") from e
    check_loading_info(folder, model, info)
    return model


#: weights an encoder checkpoint may lack: a masked-LM checkpoint (``tfft export --format hf``
#: of ``--task mlm``, ``BertForMaskedLM``) has no pooler; it starts untrained, as tfft's
#: default mean pooling does not use it.
POOLER = ("pooler",)


def check_loading_info(folder: Path, model, info: dict, optional: tuple[str, ...] = ()) -> None:
    """Raise if transformers' loading ``info`` has missing (except ``optional``) or mismatched weights."""
    skipped = [key for key in info.get("missing_keys") or [] if any(part in key for part in optional)]
    if skipped:
        logger.info("%s has no weights for %s: initialised from the config.", folder, skipped[:10])
    missing = [key for key in info.get("missing_keys") or [] if not any(part in key for part in optional)]
    mismatched = list(info.get("mismatched_keys") or [])
    if missing or mismatched:
        raise BackboneError(
            f"The checkpoint in {folder} does not hold every weight of {type(model).__name__}: "
            f"missing={missing[:10]}{' ...' if len(missing) > 10 else ''}, mismatched={mismatched[:10]}"
        )
    unexpected = list(info.get("unexpected_keys") or [])
    if unexpected:
        logger.info(
            "Ignored %d checkpoint weights not used by %s: %s",
            len(unexpected),
            type(model).__name__,
            unexpected[:10],
        )


def load_tokenizer(folder: Path, found: list[str]):
    """The fast tokenizer of a checkpoint folder (``found``: its file names, for the error message)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), use_fast=True, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise BackboneError(f"{folder} has no usable tokenizer files ({e}). Files found: {found}") from e
