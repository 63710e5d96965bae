"""Multi-label targets: the label lists and 0/1 label columns of data files, and Python values.

Labels come either as one column listing them (``--label-separator``: ``"sports,politics"``;
a JSON Lines list works too), read by :func:`label_names_from_lists` and :func:`multi_hot`,
or as one 0/1 column per label (``--label-columns``), read by :func:`binary_columns`.
:func:`multi_hot_from_api` takes the ``labels`` argument of :func:`tfft.make_dataset`.
Each gives 0/1 float32 targets ``[examples, labels]``; errors name file, line and column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfft.data import LabelSet
from tfft.data.checks import listing
from tfft.errors import DataError

_ONE = re.compile(r"(?i)1(?:\.0*)?|true")
_ZERO = re.compile(r"(?i)0(?:\.0*)?|false")


def label_names_from_lists(examples: Any) -> tuple[str, ...]:
    """The label set of training examples read with a ``label_separator``.

    Labels are sorted like :meth:`tfft.data.LabelSet.from_labels` (numerically when all
    are integers).

    Raises:
        DataError: No example lists any label.
    """
    unique = {label for labels in examples.label_lists for label in labels}
    if not unique:
        column = (examples.label_columns or ("label",))[0]
        raise DataError(
            f"{examples.source}: column `{column}` lists no label in any of the {len(examples)} rows; "
            "multi-label training needs at least one label."
        )
    return LabelSet.from_labels(sorted(unique)).names


def multi_hot(examples: Any, names: Sequence[str]) -> np.ndarray:
    """0/1 targets ``[examples, labels]`` of examples read with a ``label_separator``.

    Raises:
        DataError: A label is not in ``names`` (the message names file, line, column).
    """
    index = {name: position for position, name in enumerate(names)}
    column = (examples.label_columns or ("label",))[0]
    targets = np.zeros([len(examples), len(names)], np.float32)
    for row_index, (labels, row) in enumerate(zip(examples.label_lists, examples.rows, strict=True)):
        for label in labels:
            if label not in index:
                raise DataError(
                    f"{examples.source}:{row}: label {label!r} in column `{column}` was never seen in "
                    f"training. Known labels: {listing(list(names))}"
                )
            targets[row_index, index[label]] = 1.0
    return targets


def parse_binary(value: str, where: str, column: str) -> float:
    """One cell of a 0/1 label column: ``0``/``1`` (also ``0.0``/``1.0``, ``false``/``true``).

    Raises:
        DataError: Anything else, e.g. ``train.csv:4: column `toxic` holds 'yes'; ...``.

    Example:
        >>> parse_binary("1", "train.csv:2", "toxic"), parse_binary("False", "train.csv:2", "toxic")
        (1.0, 0.0)
    """
    text = value.strip()
    if _ONE.fullmatch(text):
        return 1.0
    if _ZERO.fullmatch(text):
        return 0.0
    raise DataError(
        f"{where}: column `{column}` holds {value!r}; a label column (--label-columns) must hold 0 or 1."
    )


def binary_columns(examples: Any, names: Sequence[str]) -> np.ndarray:
    """0/1 targets ``[examples, labels]`` of examples read with one ``label_columns`` column per label.

    The columns may come in any order; there must be one per label name, and no other.

    Raises:
        DataError: A cell is not 0 or 1, or the columns read are not the label names.
    """
    columns = tuple(examples.label_columns or ())
    if sorted(columns) != sorted(names):
        raise DataError(
            f"{examples.source}: the model's labels are the columns {', '.join(names)}, "
            f"but these examples were read from {', '.join(columns) or 'no label columns'}."
        )
    position_of = {name: position for position, name in enumerate(names)}
    targets = np.zeros([len(examples), len(names)], np.float32)
    for row_index, (values, row) in enumerate(zip(examples.label_lists, examples.rows, strict=True)):
        where = f"{examples.source}:{row}"
        for value, column in zip(values, columns, strict=True):
            targets[row_index, position_of[column]] = parse_binary(value, where, column)
    return targets


def multi_hot_from_api(labels: Sequence[Any], names: Sequence[str]) -> np.ndarray:
    """Targets from Python values: per example a list of label names, or a 0/1 vector.

    Raises:
        DataError: An unknown name, a vector of the wrong length, or values other than 0/1.
    """
    index = {name: position for position, name in enumerate(names)}
    targets = np.zeros([len(labels), len(names)], np.float32)
    for row, value in enumerate(labels):
        if isinstance(value, str):
            raise DataError(
                f"labels[{row}]: expected a list of label names or a 0/1 vector, not the string {value!r}."
            )
        items = list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else list(value)
        if items and all(isinstance(item, (int, float, bool)) for item in items):
            if len(items) != len(names) or any(float(item) not in (0.0, 1.0) for item in items):
                raise DataError(
                    f"labels[{row}]: a 0/1 vector needs {len(names)} values of 0 or 1. Received: {items!r}"
                )
            targets[row] = np.asarray(items, np.float32)
            continue
        for item in items:
            if str(item) not in index:
                raise DataError(
                    f"labels[{row}]: label {item!r} is not one of the model's labels: {listing(list(names))}"
                )
            targets[row, index[str(item)]] = 1.0
    return targets
