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

Besides :func:`load_hf_tf_model` (the base model, no head), :func:`load_checkpoint` loads a
folder into any TF Auto class, for the loaders of other model classes (masked LM, causal LM,
seq2seq); :func:`load_tokenizer` and :func:`check_loading_info` are public too.
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

    model, tokenizer, _ = load_checkpoint(folder, found, allow_pickle=allow_pickle, optional=POOLER)
    return model, tokenizer


def load_checkpoint(
    folder: Path,
    found: list[str],
    auto_class=None,
    *,
    allow_pickle: bool = False,
    optional: tuple[str, ...] = (),
    kind: str = "a TensorFlow model",
):
    """Load a checkpoint folder into a transformers TF Auto class, whatever its weights' format.

    The one place that picks the loader from the files present (see the module docs for the
    order) and checks that every weight arrived. The files present are checked first, then the
    tokenizer is loaded (both fail fast), then the weights.

    Args:
        folder: the checkpoint folder (with ``config.json``).
        found: the names of its files (for the dispatch and the error messages).
        auto_class: the transformers TF Auto class, e.g. ``TFAutoModelForCausalLM``
            (default ``TFAutoModel``: no head).
        allow_pickle: load pickle weights through PyTorch when the folder has nothing safer.
        optional: weights the checkpoint may lack (name fragments); they keep their
            initialisation from the config.
        kind: what is being loaded, for error messages ("a TF causal LM").

    Returns:
        ``(model, tokenizer, skipped)``: the built and loaded model, the fast tokenizer and the
        names of the ``optional`` weights the checkpoint did not have.

    Raises:
        BackboneError: no loadable weights, only pickle weights (without ``allow_pickle``),
            unreadable files, a model type without that TF class, or missing or
            mismatched weights.
    """
    from transformers import TFAutoModel

    auto_class = auto_class or TFAutoModel
    shards: list[Path] = []
    if SAFETENSORS in found or SAFETENSORS_INDEX in found:
        shards = [folder / SAFETENSORS] if SAFETENSORS in found else shard_files(folder / SAFETENSORS_INDEX)
        fmt = safetensors_format(shards[0])
        if fmt not in ("pt", "tf"):
            raise BackboneError(
                f"{shards[0]} has metadata format={fmt!r}; tfft reads safetensors written by PyTorch "
                "('pt') or TensorFlow ('tf') with save_pretrained."
            )
        kwargs = {"use_safetensors": True}
        if fmt == "tf":
            shards = []  # transformers reads TF safetensors itself
    elif TF_H5 in found or TF_H5_INDEX in found:
        kwargs = {"use_safetensors": False}
    else:
        pickles = [name for name in found if name in PICKLE_NAMES or name.endswith(PICKLE_SUFFIXES)]
        if pickles and not allow_pickle:
            raise BackboneError(
                f"{folder} only has pickle weights ({', '.join(pickles)}). tfft does not load pickle "
                "files because loading them can execute arbitrary code. Convert the checkpoint to "
                f"{SAFETENSORS} (safetensors) or {TF_H5}, or pass --allow-pickle if you trust its "
                f"source. Files found: {found}"
            )
        if not pickles:
            raise BackboneError(
                f"{folder} has no model weights: expected {SAFETENSORS}, {SAFETENSORS_INDEX} or {TF_H5}. "
                f"Files found: {found}"
            )
        _require_torch(folder)
        logger.warning("Loading pickle weights from %s (--allow-pickle): %s", folder, ", ".join(pickles))
        kwargs = {"from_pt": True}
    tokenizer = load_tokenizer(folder, found)  # before the weights: it fails faster
    if shards:
        # PyTorch-format safetensors: transformers >= 4.55 needs torch for these, read them here.
        model, info = _load_pytorch_safetensors(folder, shards, auto_class)
    else:
        try:
            model, info = auto_class.from_pretrained(
                str(folder), local_files_only=True, output_loading_info=True, **kwargs
            )
        except (OSError, ValueError) as e:
            raise BackboneError(f"{folder} cannot be loaded as {kind}: {e}") from None
    return model, tokenizer, check_loading_info(folder, model, info, optional)


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


def _load_pytorch_safetensors(folder: Path, files: list[Path], auto_class):
    """PyTorch-named safetensors into a TF model, without torch: ``(model, loading info)``."""
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
    return model, info


def _require_torch(folder: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise BackboneError(
            f"{folder}: --allow-pickle needs PyTorch to read pickle weights, and it is not installed "
            "(pip install torch, or convert the checkpoint to safetensors)."
        )


#: weights an encoder checkpoint may lack: a masked-LM checkpoint (``tfft export --format hf``
#: of ``--task mlm``, ``BertForMaskedLM``) has no pooler; it starts untrained, as tfft's
#: default mean pooling does not use it.
POOLER = ("pooler",)


def check_loading_info(folder: Path, model, info: dict, optional: tuple[str, ...] = ()) -> list[str]:
    """Raise if transformers' loading ``info`` has missing (except ``optional``) or mismatched weights.

    Returns the missing ``optional`` weights' names (they keep their initialisation).
    """
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
    return skipped


def load_tokenizer(folder: Path, found: list[str]):
    """The fast tokenizer of a checkpoint folder (``found``: its file names, for the error message)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), use_fast=True, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise BackboneError(f"{folder} has no usable tokenizer files ({e}). Files found: {found}") from e
