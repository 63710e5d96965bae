"""Read labelled or unlabelled text examples from CSV, TSV, JSON Lines files or TFDS.

Every reader returns a :class:`TextExamples`: the texts (and optional second texts and raw
label strings) together with the line each example came from, so that later stages can
report errors as ``PATH:LINE``. Input is validated row by row; a bad row is never skipped:
it raises a :class:`~tfft.errors.DataError` whose one-line message starts with
``PATH:LINE:`` and names the column at fault.

Formats:

* **CSV**: header row required, standard quoting (read with the :mod:`csv` module in strict
  mode, so a stray quote is an error instead of silently merged rows).
* **TSV**: header row, tab-separated, quoting off (like ``csv.QUOTE_NONE``): quotes are
  ordinary characters, as GLUE files need (RTE has unbalanced quotes).
* **JSON Lines**: one JSON object per line, the columns are its keys; blank lines are skipped.
* **TFDS**: ``"tfds:NAME:SPLIT"`` read from an already prepared TFDS data dir.

Files are read as UTF-8; a UTF-8 byte order mark and CRLF line endings are accepted. Empty
lines are skipped in every format (they hold no data); a line holding only separators or
spaces is a row, and is checked like any other.

Example:
    >>> spec = TableSpec(text_column="sentence", label_column="label")
    >>> examples = read_examples("../shared/data/sst2/dev.tsv", spec)  # doctest: +SKIP
    >>> labels = LabelSet.from_labels(examples.labels)  # doctest: +SKIP
    >>> ids = labels.ids(examples.labels, examples.source, examples.rows)  # doctest: +SKIP
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfft.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "jsonl")
_FORMAT_BY_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
}
# Command-line option that sets each TableSpec field, quoted in error messages.
_OPTION_BY_FIELD = {
    "text_column": "--text-column",
    "text_pair_column": "--text-pair-column",
    "label_column": "--label-column",
    "label_columns": "--label-columns",
}
_TFDS_PREFIX = "tfds:"
# NAME may carry a version ("mnist:3.0.1"); SPLIT may hold colons ("train[:10%]").
_TFDS_SOURCE = re.compile(r"tfds:(?P<name>[^:]+(?::[0-9][^:]*)?):(?P<split>.+)")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_LABEL = re.compile(r"[+-]?[0-9]+")
_MAX_LISTED = 20


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

    def __post_init__(self) -> None:
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
class TextExamples:
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
    """

    texts: list[str]
    pairs: list[str] | None
    labels: list[str] | None
    source: str
    rows: list[int]
    label_lists: list[tuple[str, ...]] | None = None
    label_columns: tuple[str, ...] | None = None
    label_separator: str | None = None

    def __post_init__(self) -> None:
        for name in ("pairs", "labels", "rows", "label_lists"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.texts):
                raise ValueError(
                    f"TextExamples: {name} has {len(values)} items but texts has {len(self.texts)}."
                )

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, n: int) -> TextExamples:
        """Return the first ``n`` examples (all of them if there are fewer).

        Args:
            n: How many examples to keep; 0 or more.

        Returns:
            A new TextExamples.

        Raises:
            ConfigError: ``n`` is negative.
        """
        if n < 0:
            raise ConfigError(f"Cannot take a negative number of examples. Received: n={n}")
        return self.select(range(min(n, len(self))))

    def select(self, indices: Sequence[int]) -> TextExamples:
        """Return the examples at ``indices``, in that order.

        Args:
            indices: Positions (0-based) of the examples to keep.

        Returns:
            A new TextExamples.
        """

        def pick(values: list[Any] | None) -> list[Any] | None:
            return None if values is None else [values[i] for i in indices]

        return TextExamples(
            texts=pick(self.texts),
            pairs=pick(self.pairs),
            labels=pick(self.labels),
            source=self.source,
            rows=pick(self.rows),
            label_lists=pick(self.label_lists),
            label_columns=self.label_columns,
            label_separator=self.label_separator,
        )

    def split(self, fraction: float, seed: int) -> tuple[TextExamples, TextExamples]:
        """Hold out a random ``fraction`` of the examples, deterministically for a seed.

        The held-out part gets ``max(1, round(fraction * len(self)))`` examples chosen by a
        shuffle seeded with ``seed``; both parts keep the order of the source, so their
        ``rows`` stay ascending.

        Args:
            fraction: Share of examples to hold out, strictly between 0 and 1.
            seed: Seed of the shuffle; the same seed always picks the same examples.

        Returns:
            ``(rest, held_out)``.

        Raises:
            ConfigError: ``fraction`` is not in (0, 1), or too few examples to leave at least
                one on each side.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ConfigError(
                f"The held-out fraction must be between 0 and 1. Received: fraction={fraction!r}"
            )
        held = max(1, round(fraction * len(self)))
        if held >= len(self):
            raise ConfigError(
                f"{self.source}: cannot hold out {fraction:g} of {len(self)} examples and keep any "
                f"to train on. Received: fraction={fraction!r}"
            )
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        return self.select(sorted(order[held:])), self.select(sorted(order[:held]))


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
                    f"Known labels: {_listing(self._names)}"
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


def read_examples(
    source: str,
    spec: TableSpec,
    max_examples: int | None = None,
    data_dir: str | None = None,
    *,
    option: str | None = None,
) -> TextExamples:
    """Read and validate text examples from a file or a prepared TFDS dataset.

    Args:
        source: A path to a CSV, TSV or JSON Lines file, or ``"tfds:NAME:SPLIT"`` (such as
            ``"tfds:glue/sst2:train"``) for a TFDS dataset already prepared in ``data_dir``.
        spec: The columns to read and the file format.
        max_examples: Stop after this many valid examples; None reads all of them.
        data_dir: TFDS data dir; None uses the TFDS default (``TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``). Ignored for files.
        option: The command-line option that named ``source`` (``"--train"``), quoted when
            the file does not exist.

    Returns:
        The examples, in source order.

    Raises:
        DataError: The source is missing, empty or malformed; the message names the file,
            line and column at fault.
        ConfigError: ``max_examples`` is not a positive integer.
    """
    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1
    ):
        raise ConfigError(
            f"`max_examples` must be a positive integer or None. Received: max_examples={max_examples!r}"
        )
    source = str(source)
    if source.startswith(_TFDS_PREFIX):
        examples = _read_tfds(source, spec, max_examples, data_dir)
    else:
        examples = _read_file(Path(source), spec, max_examples, option)
    logger.info("Read %d examples from %s", len(examples), examples.source)
    return examples


# --- files ---------------------------------------------------------------------------------


def _read_file(path: Path, spec: TableSpec, max_examples: int | None, option: str | None) -> TextExamples:
    """Read examples from a CSV, TSV or JSON Lines file (see :func:`read_examples`)."""
    source = str(path)
    suffix = f" ({option})" if option else ""
    if not path.exists():
        raise DataError(f"No such file: {source}{suffix}")
    if path.is_dir():
        raise DataError(f"{source} is a directory, not a data file{suffix}")
    file_format = _file_format(path, spec)
    try:
        with path.open("rb") as handle:
            lines = _decoded_lines(handle, source)
            if file_format == "jsonl":
                records = _jsonl_records(lines, source, spec)
            else:
                records = _table_records(lines, source, spec, file_format)
            return _collect(records, source, spec, max_examples)
    except OSError as e:
        raise DataError(f"Cannot read {source}{suffix}: {e.strerror or e}") from e


def _file_format(path: Path, spec: TableSpec) -> str:
    """Return the spec's format, or the one the file extension implies.

    Raises:
        DataError: No format is given and the extension is not a known one.
    """
    if spec.format is not None:
        return spec.format
    file_format = _FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if file_format is None:
        known = ", ".join(_FORMAT_BY_SUFFIX)
        raise DataError(
            f"{path}: cannot tell the format from the extension {path.suffix or '(none)'!r}; "
            f"use one of {known} or set the format (--format csv|tsv|jsonl)."
        )
    return file_format


def _decoded_lines(handle: Iterable[bytes], source: str) -> Iterator[str]:
    """Yield the lines of a binary file as text, line endings kept.

    Bytes that are not valid UTF-8 become lone surrogates (``surrogateescape``) so that the
    row can still be split and the error can name its column (see :func:`_check_cell`).
    A UTF-8 byte order mark is dropped.

    Raises:
        DataError: The file starts with a UTF-16 byte order mark.
    """
    for line_no, raw in enumerate(handle, start=1):
        if line_no == 1:
            if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise DataError(
                    f"{source}:1: the file is UTF-16 encoded (it starts with a UTF-16 byte order mark); "
                    "save it as UTF-8."
                )
            raw = raw.removeprefix(codecs.BOM_UTF8)
        yield raw.decode("utf-8", "surrogateescape")


def _table_records(
    lines: Iterator[str], source: str, spec: TableSpec, file_format: str
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, {column: value})`` for each row of a CSV or TSV file.

    Raises:
        DataError: The file is empty; the header is bad or lacks a spec column; a row has
            the wrong number of fields, a NUL byte or bytes that are not UTF-8.
    """
    rows = _csv_rows(lines, source) if file_format == "csv" else _tsv_rows(lines)
    header_line, header = next(rows, (0, None))
    if header is None:
        wanted = ", ".join(column for _, column in spec.columns())
        raise DataError(f"{source}: the file is empty; expected a header row naming the columns ({wanted}).")
    columns = _header_columns(header, f"{source}:{header_line}")
    _check_columns(columns, spec, source)
    separator = "comma" if file_format == "csv" else "tab"
    for line, fields in rows:
        where = f"{source}:{line}"
        _check_field_count(fields, columns, where, separator)
        for column, value in zip(columns, fields, strict=True):
            _check_cell(value, f"column `{column}`", where)
        yield line, dict(zip(columns, fields, strict=True))


def _csv_rows(lines: Iterator[str], source: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first line, fields)`` for each non-empty CSV record.

    Raises:
        DataError: The CSV quoting is malformed (the message names the column).
    """
    consumed: list[str] = []

    def remember(line_iter: Iterator[str]) -> Iterator[str]:
        for line in line_iter:
            consumed.append(line)
            yield line

    # The csv module refuses fields over 128 KiB by default; a long text is data (it is
    # truncated to --max-length later), so allow fields up to 64 MiB.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))
    reader = csv.reader(remember(lines), strict=True)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        consumed.clear()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            index = _quote_error_field("".join(consumed), ",")
            column = header[index] if header is not None and index < len(header) else f"number {index + 1}"
            raise DataError(
                f"{source}:{start}: malformed CSV quoting in column `{column}` ({e}); a field that "
                'contains quotes must be quoted and its quotes doubled ("").'
            ) from e
        if fields:
            if header is None:
                header = [name.strip() for name in fields]
            yield start, fields


def _quote_error_field(record: str, delimiter: str) -> int:
    """Return the 0-based index of the field where strict CSV parsing of ``record`` fails.

    Best effort: the field whose closing quote is followed by something other than a
    delimiter or line end, else the field whose quote is never closed, else the last field.
    """
    field, in_quotes, at_start, i = 0, False, True, 0
    while i < len(record):
        char = record[i]
        if in_quotes:
            if char == '"':
                if record[i + 1 : i + 2] == '"':
                    i += 2
                    continue
                in_quotes = False
                if record[i + 1 : i + 2] not in (delimiter, "\r", "\n", ""):
                    return field
        elif char == delimiter:
            field, at_start, i = field + 1, True, i + 1
            continue
        elif char == '"' and at_start:
            in_quotes = True
        at_start = False
        i += 1
    return field


def _tsv_rows(lines: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` for each non-empty line, split on tabs with quoting off."""
    for line_no, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if line:
            yield line_no, line.split("\t")


def _header_columns(header: list[str], where: str) -> list[str]:
    """Return the stripped column names of a header row.

    Raises:
        DataError: A name is duplicated, or holds a NUL byte or bytes that are not UTF-8.
    """
    columns = [name.strip() for name in header]
    for index, column in enumerate(columns):
        _check_cell(column, f"header field {index + 1}", where)
        if column in columns[:index]:
            first = columns.index(column)
            raise DataError(
                f"{where}: column `{column}` appears twice in the header "
                f"(fields {first + 1} and {index + 1}); column names must be unique."
            )
    return columns


def _check_field_count(fields: list[str], columns: list[str], where: str, separator: str) -> None:
    """Raise a DataError if a row does not have one field per header column."""
    if len(fields) == len(columns):
        return
    expected = f"expected {len(columns)} {separator}-separated fields as in the header, found {len(fields)}"
    if len(fields) < len(columns):
        raise DataError(f"{where}: {expected}: column `{columns[len(fields)]}` is missing.")
    raise DataError(
        f"{where}: {expected}: {len(fields) - len(columns)} extra field(s) after the last column "
        f"`{columns[-1]}` (is there a stray {separator} in a text?)."
    )


def _jsonl_records(
    lines: Iterator[str], source: str, spec: TableSpec
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, {column: value})`` for each object of a JSON Lines file.

    Only the spec columns are returned, converted to strings by :func:`_json_text`; the
    label column of a spec with a ``label_separator`` may also hold a list, returned as a
    list of strings.

    Raises:
        DataError: A line is not a JSON object, repeats a key, lacks a spec column, or holds
            a value that is not text.
    """
    label_columns = [column for field, column in spec.columns() if field.startswith("label")]
    first_kind: dict[str, tuple[str, int]] = {}  # label column -> (JSON kind, line) seen first
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{line_no}"
        obj = _parse_json_object(line, where)
        _check_columns(list(obj), spec, where, noun="Keys")
        for column in label_columns:
            kind = _label_kind(obj[column], column, where)
            if kind is None:  # an empty list of labels: nothing to compare
                continue
            seen = first_kind.setdefault(column, (kind, line_no))
            if kind != seen[0]:
                raise DataError(
                    f"{where}: column `{column}` holds {kind} ({obj[column]!r}) but line {seen[1]} holds "
                    f"{seen[0]}; the labels of one column must all be strings or all be numbers."
                )
        for key, value in obj.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    _check_cell(item, f"column `{key}`", where)
        record: dict[str, str | list[str]] = {}
        for _, column in spec.columns():
            value = obj[column]
            if isinstance(value, list) and spec.label_separator is not None and column == spec.label_column:
                record[column] = [_json_text(item, column, where, in_list=True) for item in value]
            else:
                record[column] = _json_text(value, column, where)
        yield line_no, record


def _label_kind(value: Any, column: str, where: str) -> str | None:
    """``"a string"`` or ``"a number"`` (booleans count as 0/1), for the label-type check.

    A list of labels (``label_separator`` columns) has the kind of its items; None when it
    is empty.

    Raises:
        DataError: A list mixes strings and numbers.
    """
    if isinstance(value, list):
        kinds = {_label_kind(item, column, where) for item in value} & {"a string", "a number"}
        if len(kinds) > 1:
            raise DataError(
                f"{where}: column `{column}` lists strings and numbers ({value!r}); the labels of one "
                "column must all be strings or all be numbers."
            )
        return kinds.pop() if kinds else None
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (bool, int, float)):
        return "a number"
    return _json_kind(value)


def _parse_json_object(line: str, where: str) -> dict[str, Any]:
    """Parse one JSON Lines line into a dict.

    Raises:
        DataError: The line is not valid JSON, not an object, or repeats a key.
    """

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise DataError(
                    f"{where}: key `{key}` appears twice in this JSON object; keys must be unique."
                )
            obj[key] = value
        return obj

    try:
        obj = json.loads(line, object_pairs_hook=unique_keys, strict=False)
    except RecursionError:
        raise DataError(f"{where}: the JSON is nested too deeply to read.") from None
    except json.JSONDecodeError as e:
        _check_cell(line, "the line", where)
        raise DataError(
            f"{where}: not valid JSON ({e.msg} at character {e.colno}); "
            "a JSON Lines file holds one JSON object per line."
        ) from e
    if not isinstance(obj, dict):
        raise DataError(
            f'{where}: expected a JSON object ({{"column": value, ...}}), found {_json_kind(obj)}; '
            "a JSON Lines file holds one JSON object per line."
        )
    return obj


def _json_text(value: Any, column: str, where: str, *, in_list: bool = False) -> str:
    """Return a JSON value of a text or label column as a string.

    Strings are kept as they are; integers become their decimal form (``1`` -> ``"1"``);
    booleans become ``"1"``/``"0"`` (like the 0/1 labels of CSV files); floats that are whole
    numbers become integers (``1.0`` -> ``"1"``, so they name the same class as ``1``), other
    finite floats their shortest round-trip form (``0.25`` -> ``"0.25"``).

    Args:
        value: The JSON value.
        column: Its column, for errors.
        where: ``PATH:LINE`` of the record, for errors.
        in_list: The value is an item of a list of labels (named so in errors).

    Raises:
        DataError: The value is null, an object, a list, or a non-finite number.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    what = "an item of the list in column" if in_list else "column"
    raise DataError(f"{where}: {what} `{column}` is {_json_kind(value)}; expected a string or a number.")


def _json_kind(value: Any) -> str:
    """Describe the JSON type of a value for error messages (``"null"``, ``"a list"``...)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float):
        return f"the number {value}"
    return f"a {type(value).__name__} ({value!r})"


# --- shared checks -------------------------------------------------------------------------


def _check_columns(found: Sequence[str], spec: TableSpec, where: str, noun: str = "Columns") -> None:
    """Raise a DataError naming the first spec column that is not in ``found``."""
    for field, column in spec.columns():
        if column not in found:
            raise DataError(
                f"{where}: no column `{column}` ({_OPTION_BY_FIELD[field]}). "
                f"{noun} found: {_listing(found) or '(none)'}"
            )


def _check_cell(value: str, what: str, where: str) -> None:
    """Raise a DataError if a field holds a NUL byte or bytes that are not valid UTF-8.

    Args:
        value: The field, decoded with ``surrogateescape``.
        what: The field in words, such as ``"column `label`"``.
        where: ``PATH:LINE`` of the row.
    """
    if "\x00" in value:
        raise DataError(f"{where}: {what} contains a NUL byte; is this a binary or UTF-16 file?")
    if value.isascii():
        return
    bad = _SURROGATE.search(value)
    if bad is not None:
        code = ord(bad.group())
        detail = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate U+{code:04X}"
        raise DataError(f"{where}: {what} is not valid UTF-8 ({detail}); save the file as UTF-8.")


def _collect(
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
    )


def _non_empty(values: dict[str, str], column: str, where: str) -> str:
    """Return ``values[column]`` stripped; raise a DataError if that leaves nothing."""
    value = values[column].strip()
    if not value:
        raise DataError(f"{where}: column `{column}` is empty.")
    return value


def _listing(names: Sequence[str]) -> str:
    """Join names with commas, eliding after the first few."""
    if len(names) <= _MAX_LISTED:
        return ", ".join(names)
    return f"{', '.join(names[:_MAX_LISTED])}, ... ({len(names)} in all)"


# --- TFDS ----------------------------------------------------------------------------------


def _read_tfds(source: str, spec: TableSpec, max_examples: int | None, data_dir: str | None) -> TextExamples:
    """Read examples from a prepared TFDS dataset (see :func:`read_examples`).

    Text features are decoded from UTF-8, ClassLabel features become their label names,
    numeric scalar features become strings as in :func:`_json_text`. The label column of a
    spec with a ``label_separator`` may also be a sequence of those (a list of labels).
    """
    import tensorflow_datasets as tfds  # slow to import: only when a TFDS source is read

    name, split = _parse_tfds_source(source)
    builder = _tfds_builder(tfds, name, source, data_dir)
    features = builder.info.features
    _check_columns(list(features.keys()), spec, source, noun="Features")
    converters = {
        column: _tfds_converter(
            tfds,
            features[column],
            column,
            source,
            sequence=spec.label_separator is not None and column == spec.label_column,
        )
        for _, column in spec.columns()
    }
    try:
        dataset = builder.as_dataset(split=split, shuffle_files=False)
    except (ValueError, KeyError) as e:
        splits = ", ".join(builder.info.splits.keys())
        raise DataError(
            f"{source}: cannot read split {split!r} ({_first_line(e)}). Splits found: {splits}"
        ) from e

    def records() -> Iterator[tuple[int, dict[str, str]]]:
        for number, example in enumerate(tfds.as_numpy(dataset), start=1):
            where = f"{source}:{number}"
            yield number, {column: convert(example[column], where) for column, convert in converters.items()}

    return _collect(records(), source, spec, max_examples)


def _parse_tfds_source(source: str) -> tuple[str, str]:
    """Split ``"tfds:NAME:SPLIT"`` into ``(NAME, SPLIT)``.

    Raises:
        DataError: The source does not have that shape.
    """
    match = _TFDS_SOURCE.fullmatch(source)
    if match is None:
        raise DataError(
            f"{source}: a TFDS source must look like tfds:NAME:SPLIT, e.g. tfds:glue/sst2:train. "
            f"Received: {source!r}"
        )
    return match["name"], match["split"]


def _tfds_builder(tfds: Any, name: str, source: str, data_dir: str | None) -> Any:
    """Return the builder of a prepared TFDS dataset.

    Raises:
        DataError: TFDS does not know the dataset, or it is not prepared in the data dir.
    """
    where = data_dir or tfds.core.constants.DATA_DIR
    how_to = (
        f'On a machine with internet, prepare it with `tfds build {name}` (or `python -c "import '
        f"tensorflow_datasets as tfds; tfds.builder('{name}').download_and_prepare()\"`), then copy the "
        "data dir here and point TFDS_DATA_DIR (or the data dir option) at it."
    )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DataError(
            f"{source}: no TFDS dataset named `{name}`: tensorflow_datasets {tfds.__version__} does not "
            f"know it and it is not prepared in {where}. {how_to}"
        ) from e
    except (ValueError, AssertionError) as e:
        raise DataError(f"{source}: cannot load TFDS dataset `{name}` from {where}: {_first_line(e)}") from e
    if not builder.is_prepared():
        raise DataError(
            f"{source}: TFDS dataset `{name}` is not prepared in {builder.data_dir_root}. {how_to}"
        )
    return builder


def _tfds_converter(tfds: Any, feature: Any, column: str, source: str, *, sequence: bool = False) -> Any:
    """Return ``convert(value, where) -> str`` for one scalar TFDS feature.

    Args:
        tfds: The ``tensorflow_datasets`` module.
        feature: The feature.
        column: Its name, for errors.
        source: The TFDS source, for errors.
        sequence: Also accept a ``Sequence`` of scalars; its converter returns a list.

    Raises:
        DataError: The feature is not a scalar text, class label or number (or a sequence
            of them, when allowed).
    """
    import numpy as np

    if sequence and isinstance(feature, tfds.features.Sequence):
        convert_item = _tfds_converter(tfds, feature.feature, column, source)
        return lambda values, where: [convert_item(value, where) for value in values]
    if isinstance(feature, tfds.features.ClassLabel):

        def label_name(value: Any, where: str) -> str:
            if int(value) < 0:
                raise DataError(
                    f"{where}: column `{column}` has no label (class id {int(value)}); is this a test split?"
                )
            return feature.int2str(int(value))

        return label_name
    np_dtype = getattr(feature, "np_dtype", None)
    kind = np.dtype(object if np_dtype is None else np_dtype).kind
    if isinstance(feature, tfds.features.Tensor) and tuple(feature.shape) == () and kind in "OSU":

        def text(value: Any, where: str) -> str:
            if isinstance(value, str):
                return value
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{where}: column `{column}` is not valid UTF-8 (byte 0x{value[e.start]:02x})."
                ) from e

        return text
    if isinstance(feature, tfds.features.Tensor) and tuple(feature.shape) == () and kind in "biuf":
        return lambda value, where: _json_text(value.item(), column, where)
    raise DataError(
        f"{source}: feature `{column}` is {type(feature).__name__}{tuple(feature.shape)}; "
        "expected a scalar text, class label or number."
    )


def _first_line(error: BaseException) -> str:
    """Return the first line of an exception's message (TFDS messages run to many lines)."""
    text = str(error).strip()
    return text.splitlines()[0].rstrip(":") if text else type(error).__name__
