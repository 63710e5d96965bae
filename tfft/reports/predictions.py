"""Slice keys of evaluated examples, and the slice report of an export (``tfft evaluate --slice-*``).

Slicings:

* ``--slice-column COL``: the value of column ``COL`` of each row (read alongside the text;
  an empty cell is the slice ``(empty)``).
* ``--slice-by length``: length in words (the text and its pair split on whitespace),
  cut into quartile buckets of the evaluated data (:func:`quantile_keys`).
* ``--slice-by label``: the gold label (classify: its name; multilabel: the set of gold
  labels joined by ``+``, ``(none)`` for none; regress: quartile buckets of the first target).

This module imports no TensorFlow: the task object does the predicting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfft.errors import ConfigError
from tfft.reports.slices import Bootstrap, slice_report

SLICE_BY = ("length", "label")
EMPTY = "(empty)"


def quantile_keys(values: Sequence[float], unit: str) -> list[str]:
    """Quartile bucket of each value: ``"Q1 3-7 words"`` ... ``"Q4 ..."``.

    The cut points are the 25th, 50th and 75th percentiles of ``values`` (numpy's
    ``"lower"`` method, so each is an observed value); bucket 1 holds values up to the
    first cut, bucket ``k`` those above cut ``k-1`` up to cut ``k``, the last those above
    the last cut. Equal cut points merge buckets (and empty buckets are dropped), so there
    may be fewer than four. A bucket's name gives the smallest and largest value in it.

    >>> quantile_keys([1, 2, 3, 4, 5, 6, 7, 8], "words")
    ['Q1 1-2 words', 'Q1 1-2 words', 'Q2 3-4 words', 'Q2 3-4 words', 'Q3 5-6 words', 'Q3 5-6 words', \
'Q4 7-8 words', 'Q4 7-8 words']
    """
    array = np.asarray(values, dtype=np.float64)
    cuts = np.unique(np.percentile(array, [25, 50, 75], method="lower"))
    bucket = np.searchsorted(cuts, array, side="left")
    names = {}
    for number, index in enumerate(sorted(set(bucket.tolist())), start=1):
        members = array[bucket == index]
        names[index] = f"Q{number} {members.min():g}-{members.max():g} {unit}"
    return [names[index] for index in bucket.tolist()]


def word_lengths(texts: Sequence[str], pairs: Sequence[str] | None) -> list[int]:
    """Words (whitespace-separated) of each text plus its pair."""
    if pairs is None:
        return [len(text.split()) for text in texts]
    return [len(text.split()) + len(pair.split()) for text, pair in zip(texts, pairs, strict=True)]


def label_keys(task_name: str, settings: dict, targets: np.ndarray) -> list[str]:
    """The gold label of each row as a slice key (see the module docstring)."""
    names = list(settings.get("labels", []))
    if task_name == "classify":
        return [names[int(target)] for target in targets]
    if task_name == "multilabel":
        return [
            "+".join(name for name, on in zip(names, row, strict=True) if on > 0.5) or "(none)"
            for row in targets
        ]
    if task_name == "regress":
        first = np.asarray(targets, np.float64).reshape(len(targets), -1)[:, 0]
        return quantile_keys(first, names[0] if names else "score")
    raise ConfigError(f"--slice-by label is not available for --task {task_name}.")


def column_keys(examples: Any, column: str) -> list[str]:
    """The values of an extra column read with the examples (``(empty)`` for an empty cell)."""
    position = list(examples.extra_columns or ()).index(column)
    return [values[position] or EMPTY for values in examples.extra_values]


def slicings_for(
    examples: Any,
    targets: np.ndarray,
    settings: dict,
    task_name: str,
    slice_columns: Sequence[str],
    slice_by: Sequence[str],
) -> dict[str, list[str]]:
    """``{slicing name: key of each row}`` for the requested slicings, in the order given."""
    slicings: dict[str, list[str]] = {}
    for column in slice_columns:
        slicings[column] = column_keys(examples, column)
    for kind in slice_by:
        if kind == "length":
            slicings["length"] = quantile_keys(word_lengths(examples.texts, examples.pairs), "words")
        elif kind == "label":
            slicings["label"] = label_keys(task_name, settings, targets)
        else:
            raise ConfigError(f"--slice-by must be one of {', '.join(SLICE_BY)}. Received: {kind!r}")
    return slicings


def check_sliceable(task: Any) -> None:
    """Raise a clear error before any work when the task has no slice reports yet."""
    if getattr(task, "slice_metric", None) is None:
        raise ConfigError(
            f"Slice reports (--slice-column, --slice-by) are not available for --task {task.name} yet; "
            "they work for classify, regress and multilabel."
        )


def evaluate_slices(
    exported: Any,
    examples: Any,
    *,
    slice_columns: Sequence[str] = (),
    slice_by: Sequence[str] = (),
    batch_size: int = 64,
    bootstrap: Bootstrap = Bootstrap(),
) -> tuple[dict, dict]:
    """The task's metrics on all examples and the slice report (see :func:`slice_report`).

    Args:
        exported: an :class:`~tfft.exported.ExportedModel` of a task with ``slice_metric``.
        examples: labelled examples read with the slice columns as ``extra_columns``.

    Returns:
        ``(metrics, report)``: the same metrics as ``tfft evaluate`` and the slice report.
    """
    task = exported.task
    check_sliceable(task)
    unknown = [kind for kind in slice_by if kind not in SLICE_BY]
    if unknown:
        raise ConfigError(f"--slice-by must be one of {', '.join(SLICE_BY)}. Received: {unknown[0]!r}")
    targets, answers, metric = task.slice_inputs(exported, examples, batch_size)
    slicings = slicings_for(examples, targets, exported.settings, task.name, slice_columns, slice_by)
    names = [name for name in task.headline if name != "examples"]
    report = slice_report(
        targets,
        answers,
        slicings,
        metric,
        task.slice_metric,
        names,
        bootstrap=bootstrap,
        higher_is_better=task.slice_higher_is_better,
    )
    return dict(metric(targets, answers)), report
