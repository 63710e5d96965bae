"""The label vocabulary of a classifier (:class:`LabelSet`): label name <-> class id."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tfft.data.checks import listing
from tfft.errors import ConfigError, DataError

_INT_LABEL = re.compile(r"[+-]?[0-9]+")


class LabelSet:
    """The label vocabulary of a classifier: label name <-> class id. Saved with the model.

    Args:
        names: The label names; the position of a name is its class id.

    Raises:
        ConfigError: ``names`` is empty, not a sequence of strings, or has duplicates.

    Example:
        >>> labels = LabelSet.from_labels(["positive", "negative", "positive"])
        >>> labels.names
        ('negative', 'positive')
        >>> labels.ids(["positive"], "dev.tsv", [2])
        [1]
    """

    def __init__(self, names: Sequence[str]) -> None:
        if isinstance(names, (str, bytes)) or not all(isinstance(name, str) for name in names):
            raise ConfigError(f"Label names must be a sequence of strings. Received: names={names!r}")
        names = tuple(names)
        if not names:
            raise ConfigError("A label set needs at least one label. Received: names=()")
        duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
        if duplicates:
            raise ConfigError(f"Label names must be unique. Received duplicates: {', '.join(duplicates)}")
        self._names = names
        self._ids = {name: i for i, name in enumerate(names)}

    @classmethod
    def from_labels(cls, labels: Sequence[str]) -> LabelSet:
        """Build the label set of the labels seen in training.

        If every label is an integer (``"-1"``, ``"0"``, ``"12"``) they are sorted
        numerically, so class id ``i`` is label ``"i"`` for labels ``0..n-1``; otherwise they
        are sorted as strings.

        Args:
            labels: Raw label strings, with repeats.

        Returns:
            The label set of the unique labels.

        Raises:
            ConfigError: ``labels`` is empty.
        """
        unique = set(labels)
        if all(_INT_LABEL.fullmatch(label) for label in unique):
            return cls(sorted(unique, key=lambda label: (int(label), label)))
        return cls(sorted(unique))

    @property
    def names(self) -> tuple[str, ...]:
        """The label names, in class-id order."""
        return self._names

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and self._names == other._names

    def __hash__(self) -> int:
        return hash(self._names)

    def __repr__(self) -> str:
        return f"LabelSet({list(self._names)!r})"

    def ids(
        self, labels: Sequence[str], source: str, rows: Sequence[int], column: str = "label"
    ) -> list[int]:
        """Map raw labels to class ids.

        Args:
            labels: Raw label strings, as in :attr:`TextExamples.labels`.
            source: Where the labels came from, for error messages.
            rows: The line of each label, for error messages.
            column: The label column, for error messages.

        Returns:
            The class id of each label.

        Raises:
            DataError: A label is not in the set, e.g. ``dev.tsv:17: label 'neutral' in
                column `label` was never seen in training. Known labels: negative, positive``.
        """
        if len(labels) != len(rows):
            raise ValueError(f"ids(): got {len(labels)} labels but {len(rows)} rows.")
        ids = []
        for label, row in zip(labels, rows, strict=True):
            if label not in self._ids:
                raise DataError(
                    f"{source}:{row}: label {label!r} in column `{column}` was never seen in training. "
                    f"Known labels: {listing(self._names)}"
                )
            ids.append(self._ids[label])
        return ids

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict: ``{"names": [...]}``."""
        return {"names": list(self._names)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LabelSet:
        """Rebuild a label set from :meth:`to_json` output.

        Args:
            d: A dict ``{"names": [...]}``.

        Returns:
            The label set.

        Raises:
            ConfigError: ``d`` does not have that shape.
        """
        if not isinstance(d, dict) or not isinstance(d.get("names"), list):
            raise ConfigError(f'A saved label set must be a JSON object {{"names": [...]}}. Received: {d!r}')
        return cls(d["names"])
