"""SavedModel exports laid out for TF Serving, taking raw text.

An export lives in ``<export_dir>/<version>/`` (``export_dir`` is usually
``saved_models/<name>``); the version is the next integer and an existing version is
never overwritten. Signatures:

- ``serving_default``: raw text in, the task's answers out. For classification: ``text``
  (and ``text_pair`` for pair models), tf.string ``[batch]`` -> ``label`` (string),
  ``label_id`` (int32), ``probabilities`` (float32); each task module documents its own.
  Tokenization runs in the graph (tensorflow-text), so the export needs
  ``import tensorflow_text`` before loading.
- ``predict_ids``: ``input_ids``, ``attention_mask``, ``token_type_ids`` (int32
  ``[batch, length]``) -> the same outputs. Byte-level BPE (GPT-2, RoBERTa, BART) is
  tokenized in the graph by :mod:`tfft.text.bpe`; tokenizers no graph twin exists for
  get id signatures only and carry the Python tokenizer in ``assets.extra/tokenizer/``.

``assets.extra/tfft.json`` records the task, its settings (labels, ...) and how to feed
the model; ``README.md`` is a model card made from it (:mod:`tfft.model_card`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

import tensorflow as tf

from tfft.backbones.lora import lora_of, merged_lora
from tfft.config import STAGING_PREFIX
from tfft.errors import ExportError
from tfft.model import spec_of
from tfft.model_card import model_card

logger = logging.getLogger(__name__)

METADATA = "tfft.json"


def next_version(export_dir: Path) -> int:
    """One more than the largest integer-named folder in ``export_dir`` (1 when none)."""
    versions = (
        [int(p.name) for p in export_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        if export_dir.is_dir()
        else []
    )
    return max(versions, default=0) + 1


def export_saved_model(
    model, export_dir: str | os.PathLike, *, max_length: int = 128, extra: dict | None = None
) -> Path:
    """Export a tfft model as ``<export_dir>/<next version>/`` for TF Serving.

    The SavedModel is written to a temporary folder beside the target and renamed into
    place, so a version folder is either complete or absent.

    Args:
        model: a model built by :func:`tfft.build_model` (trained or not).
        export_dir: the model's folder in the serving root, e.g. ``saved_models/sst2``.
        max_length: in-graph truncation length, special tokens included.
        extra: more fields for ``assets.extra/tfft.json``.

    Returns:
        The version folder written.

    Raises:
        ExportError: the folder cannot be created or written.
    """
    spec = spec_of(model)
    export_dir = Path(export_dir)
    try:
        export_dir.mkdir(parents=True, exist_ok=True)
        remove_abandoned_staging(export_dir)
        staging = export_dir / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
        staging.mkdir()
    except OSError as error:
        raise ExportError(f"Cannot write the export folder {export_dir}: {error.strerror or error}") from None
    try:
        # LoRA adapters folded into the kernels (the base model's graph), and no optimizer state
        with merged_lora(model), _without_optimizer(model):
            serving = spec.task_object.serving(model, max_length)
            signatures = serving.signatures()
            tf.saved_model.save(serving, str(staging), signatures=signatures)
        encoder = spec.backbone.encoder
        metadata = {
            "format": "tfft-export/1",
            "task": spec.task,
            "labels": list(spec.label_names),
            "settings": spec.settings,
            "pair": spec.pair,
            "max_length": max_length,
            "pooling": spec.pooling,
            "in_graph_tokenizer": bool(serving.in_graph_tokenizer),
            "signatures": sorted(signatures),
            "backbone": {k: v for k, v in spec.backbone.describe().items() if k != "config"},
            # the model card's example inputs, when the task needs its own (mlm: a mask token)
            **({"example": example} if (example := getattr(serving, "example_inputs", None)) else {}),
            **({"lora": {**lora.to_dict(), "merged": True}} if (lora := lora_of(model)) else {}),
            **(extra or {}),
        }
        extra_dir = staging / "assets.extra"
        extra_dir.mkdir(exist_ok=True)
        ships_tokenizer = not serving.in_graph_tokenizer or getattr(serving, "ships_python_tokenizer", False)
        if encoder is not None and ships_tokenizer and hasattr(encoder, "tokenizer"):
            encoder.tokenizer.save_pretrained(str(extra_dir / "tokenizer"))
        (extra_dir / METADATA).write_text(json.dumps(metadata, indent=2))
        (staging / "README.md").write_text(model_card(metadata, str(export_dir / "VERSION")))
        target = _publish(staging, export_dir)
        try:  # the card's example commands with the real version folder
            (target / "README.md").write_text(model_card(metadata, str(target)))
        except OSError:
            pass
        return target
    except (OSError, tf.errors.OpError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        reason = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
        raise ExportError(
            f"Cannot write the export in {export_dir}: {' '.join(str(reason).split())[:300]}. "
            "Earlier versions are untouched."
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def _without_optimizer(model):
    """Leave the optimizer (2 slots per weight with Adam) out of what is saved with ``model``.

    A compiled Keras model tracks its optimizer, so a serving module holding the model
    would save the optimizer's variables too: three times the weights' size with Adam.
    Setting ``model.optimizer = None`` does not untrack it; deleting the dependency does.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        yield
        return
    model._delete_tracking("optimizer")
    try:
        yield
    finally:
        model._track_trackable(optimizer, "optimizer", overwrite=True)


def remove_abandoned_staging(export_dir: Path) -> None:
    """Delete staging folders left by exports whose process died (e.g. killed mid-export).

    Staging folders are named ``.tmp-<pid>-<random>``; one whose process no longer runs on
    this machine can never be published.
    """
    for staging in export_dir.glob(f"{STAGING_PREFIX}*"):
        pid = staging.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            logger.info("Removing %s, left by an interrupted export", staging)
            shutil.rmtree(staging, ignore_errors=True)
        except PermissionError:  # the process exists (another user's)
            continue


def _publish(staging: Path, export_dir: Path) -> Path:
    """Rename the finished export to the next free version; retry when another export won."""
    for _ in range(100):
        target = export_dir / str(next_version(export_dir))
        try:
            os.rename(staging, target)  # fails if target exists and is not empty
        except OSError:
            if target.exists():
                continue
            raise
        logger.info("Exported %s", target)
        return target
    raise ExportError(f"Could not find a free version number in {export_dir}.")


def resolve_export(path: str | os.PathLike) -> Path:
    """A version folder: the folder itself, or the latest version inside a model folder.

    Raises:
        ExportError: no SavedModel there.
    """
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    if path.is_dir():
        versions = sorted(
            int(p.name) for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()
        )
        if versions:
            return path / str(versions[-1])
        summary = path / "summary.json"
        if summary.is_file():
            exported = json.loads(summary.read_text()).get("export_path")
            if exported and (Path(exported) / "saved_model.pb").is_file():
                return Path(exported)
    raise ExportError(
        f"{path}: not a tfft export (no saved_model.pb there, no numbered version folder, no run summary "
        "naming an export)."
    )


def load_metadata(version_dir: Path) -> dict:
    meta_path = version_dir / "assets.extra" / METADATA
    if not meta_path.is_file():
        raise ExportError(f"{version_dir}: no assets.extra/{METADATA}; it was not exported by tfft.")
    return json.loads(meta_path.read_text())
