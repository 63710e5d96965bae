"""LoRA adapters in and out: ship the adapters and the head alone, put them back on the base.

A LoRA run trains a few hundred kilobytes of weights (the adapters and the task head) on a
frozen base model of tens or hundreds of megabytes. Every LoRA run folder holds them as
``adapters.weights.h5`` and ``adapters.json`` (:func:`tfft.backbones.lora.write_adapter_file`).

- :func:`export_adapters_only` (``tfft export RUN_DIR --adapters-only``) writes those two
  files from the run's best checkpoint into a folder of their own, with the run's
  ``config.yaml`` and ``task.json`` beside them: the recorded settings that rebuild the
  base model (backbone source, task, labels, pooling, LoRA settings, maximum length).
- :func:`build_with_adapters` (``--adapters PATH`` of ``tfft evaluate``, ``predict`` and
  ``export``) builds the base model from recorded settings and loads the adapters and the
  head into it. ``PATH`` is the adapter file (``adapters.weights.h5``, its
  ``adapters.json`` beside it) or a folder holding it: a LoRA run folder or a
  ``--adapters-only`` export. The settings come from the run folder given (``RUN_DIR``,
  ``MODEL_DIR``), else from the ``config.yaml`` and ``task.json`` beside the file.
  :func:`check_adapters` refuses adapters built for another base model (another family,
  or the same shapes with other weights), LoRA rank, alpha or targets, task or label set,
  naming the file and both values.

The backbone source recorded in ``config.yaml`` must still be reachable (as for
``tfft export RUN_DIR``); the model is rebuilt in float32, as ``tfft export RUN_DIR`` does.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tfft.backbones.lora import (
    ADAPTER_FILE,
    ADAPTER_INFO,
    base_fingerprint,
    load_adapter_file,
    lora_of,
    write_adapter_file,
)
from tfft.config import RunConfig, load_config
from tfft.errors import ConfigError, ExportError
from tfft.export import export_saved_model
from tfft.folders import check_export_dir
from tfft.lora_options import lora_roles
from tfft.pipeline import build_run_model

FORMAT = "tfft-lora/1"
#: the files of a run folder that rebuild its model
RECORDED = ("config.yaml", "task.json")


def adapter_file(path: str | os.PathLike) -> Path:
    """The adapter file ``PATH`` names: the file itself or the one in a folder.

    Raises:
        ConfigError: no such file or folder, no ``adapters.weights.h5`` in the folder, or no
            ``adapters.json`` beside the file.
    """
    given = Path(path)
    if given.is_dir():
        found = given / ADAPTER_FILE
        if not found.is_file():
            raise ConfigError(
                f"--adapters {path}: no {ADAPTER_FILE} in this folder. Give the adapter file, a LoRA run "
                "folder or a `tfft export --adapters-only` folder."
            )
    elif given.is_file():
        found = given
    else:
        raise ConfigError(f"--adapters {path}: no such file or folder.")
    if not (found.parent / ADAPTER_INFO).is_file():
        raise ConfigError(f"--adapters {path}: {ADAPTER_INFO} is missing beside {found.name}.")
    return found


def read_adapter_info(file: Path) -> dict:
    """The ``adapters.json`` beside an adapter file.

    Raises:
        ConfigError: not JSON, or not a tfft LoRA adapter description.
    """
    info_path = file.parent / ADAPTER_INFO
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{info_path}: not readable JSON ({error}).") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise ConfigError(f"{info_path}: field `format` must be {FORMAT!r}. Received: format={found!r}")
    return info


def recorded_run(folder: str | os.PathLike, option: str = "RUN_DIR") -> tuple[RunConfig, dict]:
    """The run configuration and task settings recorded in a folder (``config.yaml``, ``task.json``).

    Raises:
        ConfigError: a file is missing, or the run trained without LoRA.
    """
    folder = Path(folder)
    missing = [name for name in RECORDED if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"{option} {folder}: not a tfft run folder or adapters export (no {' or '.join(missing)}): "
            "the base model's settings are recorded there."
        )
    config = load_config(folder / "config.yaml")
    try:
        settings = json.loads((folder / "task.json").read_text(encoding="utf-8"))["settings"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ConfigError(f"{folder / 'task.json'}: no task settings ({error}).") from None
    if config.model.lora_rank is None:
        raise ConfigError(
            f"{option} {folder}: this run trained without LoRA (--lora-rank): it has no adapters."
        )
    return config, settings


def check_adapters(model, info: dict, file: Path) -> None:
    """Refuse adapters that were not built for ``model``'s base, LoRA settings, task and labels.

    Raises:
        ConfigError: the first field that differs, with the file's value and the model's.
    """
    spec = model.tfft_spec
    lora = lora_of(model)
    if lora is None:
        raise ConfigError(f"{file}: the model these adapters would go on has no LoRA (--lora-rank).")
    backbone = spec.backbone
    ours = {
        "model_type": backbone.model.config.model_type,
        "base_fingerprint": base_fingerprint(model),
        "lora.rank": lora.rank,
        "lora.alpha": float(lora.alpha),
        "lora.targets": sorted(lora.roles),
        "task": spec.task,
        "labels": list(spec.settings.get("labels") or []),
        "layers": [path for path, _ in backbone.lora_layers],
    }
    recorded = info.get("lora") or {}
    targets = recorded.get("targets")
    theirs = {
        "model_type": info.get("model_type"),
        "lora.rank": recorded.get("rank"),
        "lora.alpha": None if recorded.get("alpha") is None else float(recorded["alpha"]),
        "lora.targets": None if targets is None else sorted(lora_roles("lora_targets", targets)),
        "task": info.get("task"),
        "labels": None if info.get("settings") is None else list(info["settings"].get("labels") or []),
        "layers": info.get("layers"),
        "base_fingerprint": info.get("base_fingerprint"),
    }
    what = {
        "model_type": "another base model family",
        "base_fingerprint": f"another base checkpoint than {backbone.source} (same shapes, other weights)",
        "lora.rank": "another LoRA rank",
        "lora.alpha": "another LoRA alpha",
        "lora.targets": "other LoRA targets",
        "task": "another task",
        "labels": "another label set",
        "layers": "other adapted layers",
    }
    for key, value in theirs.items():  # the fingerprint last: it covers the adapted layers
        if value is not None and value != ours[key]:  # older files lack some fields
            raise ConfigError(
                f"{file}: these adapters were built for {what[key]}: `{key}` is {value!r} in "
                f"{ADAPTER_INFO}, {ours[key]!r} for this model. Received: --adapters {file}"
            )


def load_adapters(model, path: str | os.PathLike) -> Path:
    """Check and load an adapter file (or the one in a folder) into a LoRA model.

    Returns:
        The adapter file loaded.
    """
    file = adapter_file(path)
    check_adapters(model, read_adapter_info(file), file)
    load_adapter_file(model, file)
    return file


def build_with_adapters(adapters: str | os.PathLike, run_dir: str | os.PathLike | None = None):
    """The base model built from recorded settings, with the adapters and head of ``adapters``.

    Args:
        adapters: the adapter file or a folder holding it.
        run_dir: the run folder whose ``config.yaml`` and ``task.json`` build the model;
            None: the ones beside the adapter file.

    Returns:
        ``(model, config, file)``: the model, its run configuration and the adapter file.
    """
    file = adapter_file(adapters)
    option = "RUN_DIR" if run_dir is not None else "--adapters"
    config, settings = recorded_run(run_dir if run_dir is not None else file.parent, option)
    model = build_run_model(config, settings)
    load_adapters(model, file)
    return model, config, file


def export_with_adapters(
    adapters: str | os.PathLike,
    run_dir: str | os.PathLike | None = None,
    export_dir: str | os.PathLike | None = None,
) -> Path:
    """Export the base model with the adapters put back (merged, as every LoRA export is).

    Args:
        adapters: the adapter file or a folder holding it.
        run_dir: see :func:`build_with_adapters`.
        export_dir: the model folder in the serving root; default: the run's export folder.

    Returns:
        The version folder written.
    """
    model, config, file = build_with_adapters(adapters, run_dir)
    origin = Path(run_dir) if run_dir is not None else file.parent
    target = Path(export_dir or config.export.target() or Path(config.export.export_root) / origin.name)
    check_export_dir(target)
    data = config.data
    columns = {"text_column": data.text_column, "text_pair_column": data.text_pair_column}
    extra = {"adapters": str(file), "data": {**columns, "label_column": data.label_column}}
    if run_dir is not None:
        extra["run_dir"] = str(run_dir)
    return export_saved_model(model, target, max_length=data.max_length, extra=extra)


def export_adapters_only(run_dir: str | os.PathLike, export_dir: str | os.PathLike | None = None) -> Path:
    """Write the adapters and the head of a LoRA run's best checkpoint, and its recorded settings.

    ``export_dir`` (default: the run's export folder with ``-adapters`` appended, e.g.
    ``saved_models/sst2-adapters``) gets ``adapters.weights.h5``, ``adapters.json``,
    ``config.yaml`` and ``task.json``; an existing adapter file there is never replaced.

    Returns:
        The adapter file written.

    Raises:
        ConfigError: not a LoRA run folder.
        ExportError: no best checkpoint, an adapter file already there, or an unwritable folder.
    """
    run_dir = Path(run_dir)
    config, settings = recorded_run(run_dir)
    checkpoint = run_dir / "checkpoints" / "best"
    if not Path(f"{checkpoint}.index").is_file():
        raise ExportError(f"{run_dir}: no checkpoint to export (checkpoints/best is missing).")
    if export_dir is None:
        base = config.export.target() or Path(config.export.export_root) / run_dir.name
        export_dir = base.with_name(f"{base.name}-adapters")
    target = Path(export_dir)
    if (target / ADAPTER_FILE).exists():
        raise ExportError(f"{target}: already holds {ADAPTER_FILE}; give another --export-dir.")
    model = build_run_model(config, settings)
    model.load_weights(str(checkpoint)).expect_partial()
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in RECORDED:
            shutil.copyfile(run_dir / name, target / name)
        return write_adapter_file(model, target)
    except OSError as error:
        raise ExportError(f"Cannot write the adapters to {target}: {error.strerror or error}") from None
