"""Reading data for ``tfft inspect`` without loading TensorFlow where it can be helped.

Classify, regress and multilabel tables are read with the data readers (no TensorFlow),
with the same columns their tasks read (:func:`table_spec`; a test keeps the two in step).
Other tasks are read by their own task object, which imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tfft.data import TableSpec, read_examples

TABLE_TASKS = ("classify", "regress", "multilabel")
MULTILABEL_SEPARATOR = ","  # tfft.tasks.multilabel.task.DEFAULT_SEPARATOR


def table_spec(config: Any) -> TableSpec | None:
    """The columns ``config``'s task reads from labelled tables; None for other tasks."""
    data, task, name = config.data, config.task, config.model.task
    if name == "classify":
        return TableSpec(data.text_column, data.text_pair_column, data.label_column, data.format)
    if name not in TABLE_TASKS:
        return None
    columns = task.label_column_list()
    if columns is not None:
        return TableSpec(data.text_column, data.text_pair_column, format=data.format, label_columns=columns)
    if name == "regress":
        return TableSpec(data.text_column, data.text_pair_column, data.label_column, data.format)
    return TableSpec(
        data.text_column,
        data.text_pair_column,
        label_column=data.label_column,
        format=data.format,
        label_separator=task.label_separator or MULTILABEL_SEPARATOR,
        allow_empty_label_list=True,
    )


def read_for_report(source: str, config: Any, option: str, max_examples: int | None = None) -> Any:
    """The labelled examples of ``source`` as ``config`` describes them."""
    spec = table_spec(config)
    if spec is None:
        from tfft.tasks import get_task

        task = get_task(config.model.task)
        task.check_headerless(config)
        return task.read(source, config, option=option, max_examples=max_examples)
    spec = dataclasses.replace(spec, header=config.data.header())
    return read_examples(source, spec, max_examples, data_dir=config.data.tfds_data_dir, option=option)
