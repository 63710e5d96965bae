"""What a table reader reads and returns: :class:`TableSpec` and :class:`TextExamples`.

A :class:`TableSpec` names the columns of a table (or the features of a TFDS dataset) that
hold the text, second text and label(s) of each example. The file and TFDS readers turn
the records of a source into ``(row, {column: value})`` pairs; :func:`check_columns` checks
the spec's columns are there and :func:`collect_examples` validates and gathers the records
into a :class:`TextExamples`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tfft.data.checks import listing
from tfft.data.examples import Examples
from tfft.errors import ConfigError, DataError

FORMATS = ("csv", "tsv", "jsonl")
# Command-line option that sets each TableSpec field, quoted in error messages.
_OPTION_BY_FIELD = {
    "text_column": "--text-column",
    "text_pair_column": "--text-pair-column",
    "label_column": "--label-column",
    "label_columns": "--label-columns",
    "extra_columns": "--slice-column",
}


@dataclass(frozen=True)
class TableSpec:
    """Which columns of a table (or features of a TFDS dataset) hold the example.

    Args:
        text_column: Column with the text of each example.
        text_pair_column: Column with the second text of sentence-pair tasks, or None.
        label_column: Column with the label, or None for unlabelled data (prediction).
        format: ``"csv"``, ``"tsv"`` or ``"jsonl"``; None picks it from the file extension
            (``.csv``; ``.tsv``/``.tab``; ``.jsonl``/``.json``/``.ndjson``).
        label_columns: Several columns that together hold the labels of an example (0/1
            columns of a multi-label task, several regression targets), read into
            :attr:`TextExamples.label_lists` in this order; excludes ``label_column``.
        label_separator: ``label_column`` holds a list of labels separated by this string
            (any run of whitespace when it is blank); a JSON Lines value may also be a list
            and a TFDS feature a sequence. The labels of each example go to
            :attr:`TextExamples.label_lists`.
        allow_empty_label_list: With ``label_separator``: an empty cell (or an empty JSON
            list) is an example without labels instead of an error.
        extra_columns: More columns read as they are (stripped; may be empty), e.g. a
            demographic or source field for slice reports, into
            :attr:`TextExamples.extra_values`. They may repeat a column read above.
        header: The column names of a CSV/TSV file without a header row, in order
            (``--columns``): every row is then data. None: the first row names the columns.

    Raises:
        ConfigError: A column name is empty or used twice, the format is unknown, or the
            label options do not fit together.

    Example:
        >>> TableSpec("comment", label_column="tags", label_separator="|").columns()
        [('text_column', 'comment'), ('label_column', 'tags')]
        >>> TableSpec("comment", label_columns=("toxic", "insult")).columns()[1:]
        [('label_columns', 'toxic'), ('label_columns', 'insult')]
    """

    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str | None = None
    format: str | None = None
    label_columns: tuple[str, ...] | None = None
    label_separator: str | None = None
    allow_empty_label_list: bool = False
    extra_columns: tuple[str, ...] = ()
    header: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.header is not None:
            if isinstance(self.header, str) or not all(isinstance(n, str) and n.strip() for n in self.header):
                raise ConfigError(
                    f"`header` must be a sequence of non-empty column names. Received: header={self.header!r}"
                )
            object.__setattr__(self, "header", tuple(name.strip() for name in self.header))
        if isinstance(self.extra_columns, str):
            raise ConfigError(
                "`extra_columns` must be a sequence of column names. "
                f"Received: extra_columns={self.extra_columns!r}"
            )
        object.__setattr__(self, "extra_columns", tuple(self.extra_columns))
        if self.label_columns is not None:
            if isinstance(self.label_columns, str) or not isinstance(self.label_columns, Sequence):
                raise ConfigError(
                    "`label_columns` must be a sequence of column names. "
                    f"Received: label_columns={self.label_columns!r}"
                )
            object.__setattr__(self, "label_columns", tuple(self.label_columns))
            if not self.label_columns:
                raise ConfigError("`label_columns` must name at least one column. Received: label_columns=()")
            if self.label_column is not None:
                raise ConfigError(
                    "Give `label_column` or `label_columns`, not both. "
                    f"Received: label_column={self.label_column!r}, "
                    f"label_columns={list(self.label_columns)!r}"
                )
        if self.label_separator is not None:
            if not isinstance(self.label_separator, str) or not self.label_separator:
                raise ConfigError(
                    "`label_separator` must be a non-empty string. "
                    f"Received: label_separator={self.label_separator!r}"
                )
            if self.label_column is None:
                raise ConfigError(
                    "`label_separator` splits the `label_column`, which is not set. "
                    f"Received: label_separator={self.label_separator!r}, "
                    f"label_columns={self.label_columns!r}"
                )
        seen: dict[str, str] = {}
        for field, column in self.columns():
            if not isinstance(column, str) or not column.strip():
                raise ConfigError(f"`{field}` must be a non-empty column name. Received: {field}={column!r}")
            if column in seen:
                raise ConfigError(
                    f"`{seen[column]}` and `{field}` name the same column; they must differ. "
                    f"Received: {seen[column]}={column!r}, {field}={column!r}"
                )
            seen[column] = field
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(f"`format` must be one of {FORMATS} or None. Received: format={self.format!r}")

    def columns(self) -> list[tuple[str, str]]:
        """Return ``(field, column)`` for each column this spec reads, text first.

        Returns:
            Pairs such as ``[("text_column", "sentence"), ("label_column", "label")]``.
        """
        fields = [("text_column", self.text_column)]
        if self.text_pair_column is not None:
            fields.append(("text_pair_column", self.text_pair_column))
        if self.label_column is not None:
            fields.append(("label_column", self.label_column))
        for column in self.label_columns or ():
            fields.append(("label_columns", column))
        read = {column for _, column in fields}
        for column in dict.fromkeys(self.extra_columns):
            if column not in read:
                fields.append(("extra_columns", column))
        return fields

    @property
    def reads_label_lists(self) -> bool:
        """Whether examples read with this spec carry :attr:`TextExamples.label_lists`."""
        return self.label_columns is not None or self.label_separator is not None

    def split_labels(self, value: str | list[str], where: str) -> tuple[str, ...]:
        """The labels of one ``label_separator`` cell (or JSON list), stripped.

        Args:
            value: The cell, or the items of a JSON list / TFDS sequence as strings.
            where: ``PATH:LINE`` of the row, for errors.

        Returns:
            The labels in the order given; ``()`` for an empty cell when
            ``allow_empty_label_list`` is set.

        Raises:
            DataError: The list is empty (and that is not allowed), an item is empty, or a
                label appears twice.
        """
        column = self.label_column
        if isinstance(value, str):
            if not value.strip():
                items: list[str] = []
            elif self.label_separator.strip():
                items = value.split(self.label_separator)
            else:
                items = value.split()
        else:
            items = list(value)
        if not items:
            if self.allow_empty_label_list:
                return ()
            raise DataError(f"{where}: column `{column}` is empty; every row needs at least one label here.")
        labels = tuple(item.strip() for item in items)
        for position, label in enumerate(labels, start=1):
            if not label:
                raise DataError(
                    f"{where}: column `{column}` has an empty label (item {position} of {len(labels)}, "
                    f"separator {self.label_separator!r})."
                )
            if label in labels[: position - 1]:
                raise DataError(f"{where}: column `{column}` lists label {label!r} twice.")
        return labels


@dataclass
class TextExamples(Examples):
    """Examples read from one source, with the line each came from.

    Attributes:
        texts: The text of each example, stripped of surrounding whitespace.
        pairs: The second text of each example; None when the spec has no pair column.
        labels: The raw label of each example as a stripped string (``"0"``, ``"positive"``);
            None when the spec has no label column.
        source: The path (or ``"tfds:NAME:SPLIT"``) the examples came from.
        rows: The 1-based line number in the file of each example (record number for TFDS).
        label_lists: Several raw label strings per example, stripped; None unless the spec
            has ``label_columns`` (one string per column, in that order: ``("1", "0")``) or
            ``label_separator`` (the labels listed in the cell: ``("sports", "politics")``).
            ``labels`` is None when this is set.
        label_columns: The columns the labels (or label lists) were read from, for error
            messages: ``("label",)``, ``("toxic", "insult")``; None for unlabelled examples.
        label_separator: The separator the ``label_lists`` were split on (the spec's); None
            when they hold one value per label column, or there are none.
        extra_values: The values of the spec's ``extra_columns`` per example (stripped
            strings, in that order); None when it has none.
        extra_columns: The names of those columns; None when there are none.

    ``len``, :meth:`~tfft.data.examples.Examples.take`, ``select`` and ``split`` (a seeded
    random ``fraction`` of the examples held out) come from
    :class:`~tfft.data.examples.Examples`.
    """

    row_fields = ("texts", "pairs", "labels", "rows", "label_lists", "extra_values")

    texts: list[str]
    pairs: list[str] | None
    labels: list[str] | None
    source: str
    rows: list[int]
    label_lists: list[tuple[str, ...]] | None = None
    label_columns: tuple[str, ...] | None = None
    label_separator: str | None = None
    extra_values: list[tuple[str, ...]] | None = None
    extra_columns: tuple[str, ...] | None = None


# --- gathering records ---------------------------------------------------------------------


def check_columns(found: Sequence[str], spec: TableSpec, where: str, noun: str = "Columns") -> None:
    """Raise a DataError naming the first spec column that is not in ``found``."""
    for field, column in spec.columns():
        if column not in found:
            raise DataError(
                f"{where}: no column `{column}` ({_OPTION_BY_FIELD[field]}). "
                f"{noun} found: {listing(found) or '(none)'}"
            )


def collect_examples(
    records: Iterable[tuple[int, dict[str, Any]]], source: str, spec: TableSpec, max_examples: int | None
) -> TextExamples:
    """Check the spec columns of each record are non-empty and gather them.

    Args:
        records: ``(row, {column: value})`` per record, holding at least the spec columns;
            values are strings, or lists of strings for a ``label_separator`` column.
        source: Path or TFDS source, for messages.
        spec: The columns to gather.
        max_examples: Stop after this many examples; None for all.

    Returns:
        The examples, values stripped of surrounding whitespace.

    Raises:
        DataError: A spec column is empty in some record (or a label list is malformed,
            see :meth:`TableSpec.split_labels`), or there are no records.
    """
    texts: list[str] = []
    pairs: list[str] | None = [] if spec.text_pair_column is not None else None
    single_label = spec.label_column is not None and spec.label_separator is None
    labels: list[str] | None = [] if single_label else None
    label_lists: list[tuple[str, ...]] | None = [] if spec.reads_label_lists else None
    rows: list[int] = []
    extra_values: list[tuple[str, ...]] | None = [] if spec.extra_columns else None
    for row, values in records:
        where = f"{source}:{row}"
        texts.append(_non_empty(values, spec.text_column, where))
        if pairs is not None:
            pairs.append(_non_empty(values, spec.text_pair_column, where))
        if labels is not None:
            labels.append(_non_empty(values, spec.label_column, where))
        if spec.label_separator is not None:
            label_lists.append(spec.split_labels(values[spec.label_column], where))
        elif spec.label_columns is not None:
            label_lists.append(tuple(_non_empty(values, column, where) for column in spec.label_columns))
        if extra_values is not None:
            extra_values.append(tuple(_text(values[column]) for column in spec.extra_columns))
        rows.append(row)
        if max_examples is not None and len(rows) >= max_examples:
            break
    if not rows:
        raise DataError(f"{source}: no examples found (nothing but a header or blank lines).")
    if spec.label_columns is not None:
        label_columns: tuple[str, ...] | None = spec.label_columns
    else:
        label_columns = None if spec.label_column is None else (spec.label_column,)
    return TextExamples(
        texts=texts,
        pairs=pairs,
        labels=labels,
        source=source,
        rows=rows,
        label_lists=label_lists,
        label_columns=label_columns,
        label_separator=spec.label_separator,
        extra_values=extra_values,
        extra_columns=spec.extra_columns or None,
    )


def _text(value: str | list[str]) -> str:
    """An extra column's value as one stripped string (a JSON list joins with ``,``)."""
    return ",".join(value).strip() if isinstance(value, list) else value.strip()


def _non_empty(values: dict[str, str], column: str, where: str) -> str:
    """Return ``values[column]`` stripped; raise a DataError if that leaves nothing."""
    value = values[column].strip()
    if not value:
        raise DataError(f"{where}: column `{column}` is empty.")
    return value
