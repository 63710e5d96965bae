"""``tfft export --format hf``: a run's fine-tuned backbone as a Hugging Face checkpoint folder.

The folder holds ``config.json``, ``tf_model.h5`` and the tokenizer files, so
``tfft fit --hf-model FOLDER`` (or ``transformers``' ``from_pretrained``) starts from the
adapted weights. What it holds depends on the task:

- ``mlm``: the encoder with its masked-LM head (``TF...ForMaskedLM``).
- ``causal-lm``, ``summarize``, ``translate``: the whole language model (``TF...LMHeadModel``,
  ``TF...ForConditionalGeneration``).
- ``classify``, ``regress``, ``multilabel``, ``ner``, ``qa``: **the encoder only**
  (``TF...Model``). tfft's heads (mean pooling by default, dropout, a Dense layer in
  float32) are not the ``...ForSequenceClassification`` heads of transformers, so they are
  left out rather than mapped approximately; the tfft SavedModel export keeps them.

LoRA adapters are folded into the kernels first. ``tfft_export.json`` in the folder records
the run, the task and what was written. TF Hub backbones cannot be written this way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from tfft.backbones.lora import merged_lora
from tfft.errors import ExportError
from tfft.model import spec_of

logger = logging.getLogger(__name__)

#: what each backbone kind's Hugging Face folder holds
CONTENTS = {
    "hf-masked-lm": "encoder + masked-LM head",
    "hf-causal-lm": "causal language model (with its LM head)",
    "hf-seq2seq": "encoder-decoder language model (with its LM head)",
    "hf": "encoder only (tfft's task head is not part of a Hugging Face checkpoint)",
}


def save_hf_checkpoint(model, folder: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write the backbone of a model built by tfft as a Hugging Face checkpoint folder.

    The folder is written beside the target and renamed into place; it must not exist yet
    (or be empty).

    Returns:
        The folder written.

    Raises:
        ExportError: a backbone that is not a Hugging Face one, a non-empty target, or a
            folder that cannot be written.
    """
    spec = spec_of(model)
    backbone = spec.backbone
    hf = getattr(backbone, "model", None)
    tokenizer = getattr(getattr(backbone, "encoder", None), "tokenizer", None)
    if backbone.kind not in CONTENTS or hf is None or tokenizer is None:
        raise ExportError(
            f"--format hf needs a Hugging Face backbone (--hf-model); this model has a {backbone.kind} "
            "backbone. Use the SavedModel export (--format saved-model)."
        )
    target = Path(folder)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ExportError(f"--export-dir {target} exists and is not empty; give a new folder.")
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    contents = CONTENTS[backbone.kind]
    try:
        staging.mkdir(parents=True)
        with merged_lora(model):
            hf.save_pretrained(str(staging), safe_serialization=False)
        tokenizer.save_pretrained(str(staging))
        record = {
            "format": "tfft-hf/1",
            "task": spec.task,
            "contents": contents,
            "model_class": type(hf).__name__,
            **(extra or {}),
        }
        (staging / "tfft_export.json").write_text(json.dumps(record, indent=2))
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(
            f"Cannot write the Hugging Face folder {target}: {error.strerror or error}"
        ) from None
    logger.info("Wrote a Hugging Face checkpoint (%s, %s) to %s", type(hf).__name__, contents, target)
    return target


def run_export_hf(run_dir: str | os.PathLike, export_dir: str | os.PathLike | None = None) -> Path:
    """``tfft export --format hf RUN_DIR``: the best checkpoint of a run as a Hugging Face folder.

    Args:
        run_dir: a finished (or interrupted) run folder.
        export_dir: the folder to write (default ``<export root>/<run name>-hf``).

    Raises:
        ConfigError: not a run folder. ExportError: see :func:`save_hf_checkpoint`.
    """
    from tfft.pipeline import load_run_model

    run_dir = Path(run_dir)
    config, model = load_run_model(run_dir)
    target = Path(export_dir) if export_dir else Path(config.export.export_root) / f"{run_dir.name}-hf"
    return save_hf_checkpoint(model, target, extra={"run_dir": str(run_dir)})
