"""Jobs on an export: ``tfft evaluate`` (metrics, slice reports) and ``tfft predict``.

The data is read the way the model was trained: options given explicitly win, else the
columns and task options recorded in the export's metadata.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence

from tfft.config import RunConfig
from tfft.errors import ConfigError
from tfft.exported import ExportedModel


def run_evaluate(
    model_dir: str | os.PathLike | ExportedModel,
    data: str,
    config: RunConfig | None = None,
    *,
    batch_size: int = 64,
    max_examples: int | None = None,
    slice_columns: Sequence[str] = (),
    slice_by: Sequence[str] = (),
) -> dict:
    """Metrics of an exported model on labelled data.

    Args:
        model_dir: a version, model or run folder (or an :class:`ExportedModel`).
        data: the labelled data (file or ``tfds:NAME:SPLIT``).
        config: which columns/fields to read (``data`` and ``task`` sections); the
            defaults otherwise.
        slice_columns, slice_by: slice report (a ``slices`` key, see
            :mod:`tfft.reports.predictions`) by these data columns and built-in slicings
            (``length``, ``label``).

    Raises:
        DataError: unreadable data, or labels the model does not know.
    """
    model = model_dir if isinstance(model_dir, ExportedModel) else ExportedModel(model_dir)
    config = _config_for_export(model, config)
    model.task.check_headerless(config)
    if model.pair and config.data.text_pair_column is None:
        raise ConfigError(f"{model.path} is a sentence-pair model: give --text-pair-column.")
    if slice_columns or slice_by:
        return _evaluate_slices(model, data, config, batch_size, max_examples, slice_columns, slice_by)
    examples = model.task.read(data, config, option="--data", max_examples=max_examples)
    metrics = model.task.evaluate_export(model, examples, batch_size=batch_size)
    return {"model": str(model.path), "task": model.task.name, "data": examples.source, **metrics}


def _evaluate_slices(model, data, config, batch_size, max_examples, slice_columns, slice_by) -> dict:
    """:func:`run_evaluate` with a slice report (``slices``)."""
    from tfft.reports.predictions import check_sliceable, evaluate_slices

    check_sliceable(model.task)
    examples = model.task.read(
        data, config, option="--data", max_examples=max_examples, extra_columns=tuple(slice_columns)
    )
    metrics, report = evaluate_slices(
        model, examples, slice_columns=slice_columns, slice_by=slice_by, batch_size=batch_size
    )
    head = {"model": str(model.path), "task": model.task.name, "data": examples.source}
    return {**head, **metrics, "slices": report}


def _config_for_export(model: ExportedModel, config: RunConfig | None) -> RunConfig:
    """The reading configuration for an export: its task; task options given explicitly,
    else the ones it was trained with (e.g. multi-label columns); likewise the text, pair
    and label columns (recorded in exports since tfft fit writes ``data`` in the metadata)."""
    config = (config or RunConfig()).with_task(model.task.name)
    config = dataclasses.replace(config, data=_trained_columns(model, config.data))
    defaults = type(config.task)()
    names = {field.name for field in dataclasses.fields(config.task)}

    def given(name: str) -> bool:
        return name in names and getattr(config.task, name) != getattr(defaults, name)

    # Options that answer one question together: re-apply the stored ones only when the
    # user gave none of the group (a list-format file can score a 0/1-column model).
    groups = [("label_columns", "label_separator")]
    trained = {}
    for field in dataclasses.fields(config.task):
        group = next((g for g in groups if field.name in g), (field.name,))
        if field.name in model.settings and not any(given(name) for name in group):
            trained[field.name] = model.settings[field.name]
    return dataclasses.replace(config, task=dataclasses.replace(config.task, **trained))


def _trained_columns(model: ExportedModel, data):
    """``data`` with the columns the model was trained with where it has the defaults."""
    recorded = model.metadata.get("data") or {}
    defaults = type(data)()
    columns = {
        name: recorded[name]
        for name in ("text_column", "text_pair_column", "label_column")
        if recorded.get(name) is not None and getattr(data, name) == getattr(defaults, name)
    }
    return dataclasses.replace(data, **columns) if columns else data


def read_inputs(model: ExportedModel, source: str, config: RunConfig | None = None):
    """Unlabelled examples for :func:`predict_rows` from a file."""
    config = _config_for_export(model, config)
    model.task.check_headerless(config)
    return model.task.read(source, config, labelled=False, option="--input")


def predict_rows(
    model_dir: str | os.PathLike | ExportedModel,
    texts: Sequence[str] | None = None,
    pairs: Sequence[str] | None = None,
    batch_size: int = 64,
    *,
    examples=None,
    config: RunConfig | None = None,
) -> Iterator[dict]:
    """One JSON-ready dict per input: the task's answer (and scores).

    Give ``texts`` (and ``pairs``), or ``examples`` read with :func:`read_inputs`. ``config``:
    the options ``tfft predict`` was given; task options that apply to predictions (causal-lm:
    ``max_new_tokens``, ``stop``) replace the export's for this call.
    """
    model = model_dir if isinstance(model_dir, ExportedModel) else ExportedModel(model_dir)
    if config is not None:
        model = model.with_settings(**model.task.predict_settings(_config_for_export(model, config)))
    if examples is None:
        examples = model.task.examples_from_cli(list(texts or []), None if pairs is None else list(pairs))
    yield from model.task.predict_export(model, examples, batch_size=batch_size)
