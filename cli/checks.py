"""Checks of a ``tfft fit`` that need no model, made before TensorFlow is imported.

Bad options, a missing file or column, an evaluation label never seen in training, a
folder that is not a model, a finished run folder: all reported in a second or two instead
of after TensorFlow and the backbone have loaded. :func:`tfft.pipeline.run_fit` makes the
same checks again (the library does not depend on the command line); reading the data
twice is the price of the early answer.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tfft.errors import BackboneError, ConfigError, DataError
from tfft.folders import check_export_dir, plan_run_dir


def check_fit(config, overwrite: bool = False, run_folder: bool = True) -> None:
    """Everything about a fit of ``config`` that can be checked without TensorFlow
    (the run folder only when ``run_folder``: ``--dry-run`` writes none).

    Raises:
        TfftError: the first problem found, as :func:`tfft.pipeline.run_fit` would report it.
    """
    config.model.check_source()
    if config.model.hf_model:
        check_hf_folder(config.model.hf_model)
    if config.data.eval and config.data.eval_split:
        raise ConfigError("Give --eval or --eval-split, not both.")
    export_dir = config.export.target()
    if export_dir is not None:
        check_export_dir(export_dir)
    if config.runtime.strategy == "multi-worker" and not config.export.run_dir:
        raise ConfigError("--strategy multi-worker needs --run-dir, the same folder on every worker.")
    if run_folder:
        plan_run_dir(config, overwrite=overwrite)
    check_data(config)


def check_hf_folder(hf_model: str) -> None:
    """A local ``--hf-model`` must be a folder with ``config.json`` (names in the Hugging Face
    cache are looked up later, by the backbone loader).

    Raises:
        BackboneError: a file, or a folder without ``config.json``.
    """
    path = Path(hf_model).expanduser()
    if path.exists() and not path.is_dir():
        raise BackboneError(f"--hf-model must be a folder or a model name. Received a file: {hf_model}")
    if path.is_dir() and not (path / "config.json").is_file():
        raise BackboneError(
            f"--hf-model {hf_model}: no config.json in the folder; expected a Hugging Face checkpoint "
            "(config.json, weights, tokenizer files)."
        )


def check_data(config) -> None:
    """Read ``--train`` and ``--eval`` of the table tasks (classify, regress, multilabel)
    without TensorFlow: files, formats, columns, empty cells; classify's label set too.
    Other tasks' readers need TensorFlow: their data is checked by ``run_fit``.

    Raises:
        ConfigError, DataError: as the task's own reader would.
    """
    from tfft.reports.reading import TABLE_TASKS, read_for_report

    data = config.data
    if config.model.task not in TABLE_TASKS:
        return
    if not data.train:
        raise ConfigError("--train is required: a CSV, TSV, JSON Lines file, or tfds:NAME:SPLIT.")
    readers = logging.getLogger("tfft.data")
    level, readers.level = readers.level, logging.WARNING  # run_fit logs the reading
    try:
        train = read_for_report(data.train, config, "--train", data.max_train_examples)
        evaluation = None
        if data.eval:
            evaluation = read_for_report(data.eval, config, "--eval", data.max_eval_examples)
    finally:
        readers.setLevel(level)
    if config.model.task == "classify":
        check_classify_labels(train, evaluation, data.label_column)


def check_classify_labels(train, evaluation, column: str) -> None:
    """At least two labels in training; every evaluation label seen in training.

    Raises:
        DataError: naming the file, line and label (the messages of ``tfft.tasks.classify``).
    """
    from tfft.data import LabelSet

    labels = LabelSet.from_labels(train.labels)
    if len(labels) < 2:
        raise DataError(
            f"{train.source}: column `{column}` has a single label "
            f"({labels.names[0]!r}); classification needs at least 2."
        )
    if evaluation is not None:
        labels.ids(evaluation.labels, evaluation.source, evaluation.rows, column)
