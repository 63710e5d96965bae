"""Regression targets: parsing them from data files and Python values, and scaling them.

:func:`parse_target` / :func:`parse_targets` turn the raw cells of one or more target
columns into float32 (errors name file, line and column); :func:`targets_from_values` does
the same for the ``labels`` argument of :func:`tfft.make_dataset`; :class:`TargetScaler`
standardizes targets for ``--scale-targets``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfft.errors import ConfigError, DataError

# A decimal number as people write it in data files: no "nan", "inf", "1_000" or hex,
# which Python's float() would accept.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def parse_target(value: str, where: str, column: str) -> float:
    """Parse one raw regression target.

    Args:
        value: The raw string, stripped (``"3.8"``, ``"-1e-3"``).
        where: ``PATH:LINE`` of the row, for errors.
        column: The target's column, for errors.

    Returns:
        The value as a float.

    Raises:
        DataError: The value is not a decimal number, is NaN or infinite, or does not fit
            in float32, e.g. ``train.tsv:7: column `score` holds 'n/a', not a number.``

    Example:
        >>> parse_target("3.80", "train.tsv:2", "score")
        3.8
    """
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        lowered = text.lower().lstrip("+-")
        if lowered in ("nan", "inf", "infinity"):
            raise DataError(
                f"{where}: column `{column}` holds {value!r}; regression targets must be finite numbers."
            )
        raise DataError(f"{where}: column `{column}` holds {value!r}, not a number.")
    number = float(text)
    if not math.isfinite(number) or abs(number) > _FLOAT32_MAX:
        raise DataError(
            f"{where}: column `{column}` holds {value!r}, which does not fit in float32; "
            "regression targets must be finite numbers."
        )
    return number


def label_lists_of(examples: Any) -> list[tuple[str, ...]]:
    """The raw targets of each example as a tuple, whether read from one column or several.

    Raises:
        DataError: The examples carry no labels.
    """
    if examples.label_lists is not None:
        return examples.label_lists
    if examples.labels is not None:
        return [(label,) for label in examples.labels]
    raise DataError(f"{examples.source}: these examples have no targets (no label column was read).")


def parse_targets(examples: Any, columns: Sequence[str] | None = None) -> np.ndarray:
    """The float targets of labelled examples.

    Args:
        examples: A :class:`~tfft.data.TextExamples` read with one label column or several
            (``label_columns``).
        columns: The target column names, for errors; default ``examples.label_columns``.

    Returns:
        float32 ``[examples, targets]``.

    Raises:
        DataError: A target is not a finite number (the message names file, line, column),
            or an example has a different number of targets than ``columns``.
    """
    raw = label_lists_of(examples)
    columns = tuple(columns or examples.label_columns or ("label",))
    values = np.zeros([len(raw), len(columns)], np.float32)
    for index, (targets, row) in enumerate(zip(raw, examples.rows, strict=True)):
        where = f"{examples.source}:{row}"
        if len(targets) != len(columns):
            raise DataError(
                f"{where}: expected {len(columns)} target(s) ({', '.join(columns)}), found {len(targets)}."
            )
        for position, (value, column) in enumerate(zip(targets, columns, strict=True)):
            values[index, position] = parse_target(value, where, column)
    return values


@dataclass(frozen=True)
class TargetScaler:
    """Standardization of regression targets: ``(y - mean) / std`` per target.

    Args:
        mean: The training mean of each target.
        std: The training standard deviation of each target (a constant target gets 1).

    Example:
        >>> scaler = TargetScaler.fit(np.array([[1.0], [3.0]]))
        >>> scaler.to_json()
        {'mean': [2.0], 'std': [1.0]}
        >>> scaler.inverse(scaler.transform(np.array([[5.0]]))).tolist()
        [[5.0]]
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        mean, std = tuple(map(float, self.mean)), tuple(map(float, self.std))
        if not mean or len(mean) != len(std):
            raise ConfigError(
                f"A target scaler needs one mean and one std per target. Received: mean={mean}, std={std}"
            )
        if not all(math.isfinite(v) for v in mean + std) or min(std) <= 0:
            raise ConfigError(
                f"A target scaler needs finite means and positive stds. Received: mean={mean}, std={std}"
            )
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def fit(cls, targets: np.ndarray) -> TargetScaler:
        """The scaler of training targets ``[examples, targets]`` (population std)."""
        targets = np.asarray(targets, np.float64)
        if targets.ndim != 2 or len(targets) == 0:
            raise ValueError(
                f"TargetScaler.fit needs a non-empty [examples, targets] array; got {targets.shape}."
            )
        std = targets.std(axis=0)
        return cls(tuple(targets.mean(axis=0)), tuple(np.where(std > 0, std, 1.0)))

    def transform(self, targets: np.ndarray) -> np.ndarray:
        """Targets in standardized units."""
        return (np.asarray(targets, np.float64) - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Standardized values back in the original scale."""
        return np.asarray(scaled, np.float64) * np.asarray(self.std) + np.asarray(self.mean)

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, data: Any) -> TargetScaler:
        """Rebuild from :meth:`to_json` output.

        Raises:
            ConfigError: ``data`` does not have that shape.
        """
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("mean"), list)
            or not isinstance(data.get("std"), list)
        ):
            raise ConfigError(
                f'A saved target scaler must be {{"mean": [...], "std": [...]}}. Received: {data!r}'
            )
        return cls(tuple(data["mean"]), tuple(data["std"]))


def targets_from_values(labels: Sequence, names: Sequence[str]) -> np.ndarray:
    """float32 targets ``[examples, targets]`` from Python numbers.

    Args:
        labels: One number per example (one target), or one sequence of ``len(names)``
            numbers per example.
        names: The target names, for errors.

    Raises:
        DataError: Not numbers, the wrong number per example, or a value that is not a
            finite float32.
    """
    count = len(names)
    try:
        targets = np.asarray(labels, np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"`labels` must be numbers (one per target). {error}") from None
    if targets.ndim == 1 and count == 1:
        targets = targets[:, None]
    if targets.ndim != 2 or targets.shape[1] != count:
        raise DataError(
            f"`labels` must have {count} number(s) per example ({', '.join(names)}). "
            f"Received shape: {list(targets.shape)}"
        )
    bad = np.flatnonzero(~np.all(np.isfinite(targets) & (np.abs(targets) <= _FLOAT32_MAX), axis=1))
    if len(bad):
        raise DataError(
            f"labels[{bad[0]}]: regression targets must be finite numbers. Received: {labels[bad[0]]!r}"
        )
    return targets.astype(np.float32)
