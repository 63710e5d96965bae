"""Read CSV, TSV and JSON Lines files into :class:`~tfft.data.tables.TextExamples`.

Formats:

* **CSV**: header row (or no header and the names in ``TableSpec.header``: ``--columns``),
  standard quoting (read with the :mod:`csv` module in strict mode, so a stray quote is an
  error instead of silently merged rows).
* **TSV**: header row (or ``--columns``), tab-separated, quoting off (like
  ``csv.QUOTE_NONE``): quotes are ordinary characters, as GLUE files need (RTE has
  unbalanced quotes).
* **JSON Lines**: one JSON object per line, the columns are its keys; blank lines are skipped.

Each row is checked (field count, NUL bytes, UTF-8, JSON types) as it is read; the rows are
then gathered by :func:`~tfft.data.tables.collect_examples`. :func:`read_table_file` is the
entry point; :func:`tfft.data.read_examples` calls it for every source that is not TFDS.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tfft.data.checks import (
    cannot_read,
    check_cell,
    check_data_file,
    decoded_lines,
    json_kind,
    json_objects,
    json_text,
)
from tfft.data.tables import TableSpec, TextExamples, check_columns, collect_examples
from tfft.errors import DataError

_FORMAT_BY_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
}


def read_table_file(
    path: Path, spec: TableSpec, max_examples: int | None, option: str | None
) -> TextExamples:
    """Read examples from a CSV, TSV or JSON Lines file (see :func:`tfft.data.read_examples`)."""
    source = str(path)
    check_data_file(source, option)
    file_format = _file_format(path, spec)
    try:
        with path.open("rb") as handle:
            lines = decoded_lines(handle, source)
            if file_format == "jsonl":
                if spec.header is not None:
                    raise DataError(
                        f"{source}: --columns names the fields of CSV/TSV files without a header row; "
                        "a JSON Lines file names them with its keys. Drop --columns."
                    )
                records = _jsonl_records(lines, source, spec)
            else:
                records = _table_records(lines, source, spec, file_format)
            return collect_examples(records, source, spec, max_examples)
    except OSError as e:
        raise cannot_read(source, option, e) from e


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


def _table_records(
    lines: Iterator[str], source: str, spec: TableSpec, file_format: str
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, {column: value})`` for each row of a CSV or TSV file.

    The first row names the columns, unless ``spec.header`` names them (``--columns``):
    then every row is data.

    Raises:
        DataError: The file is empty; the header is bad or lacks a spec column (with a hint
            about ``--columns`` when the first row looks like data); a row has the wrong
            number of fields, a NUL byte or bytes that are not UTF-8.
    """
    rows = _csv_rows(lines, source) if file_format == "csv" else _tsv_rows(lines)
    separator = "comma" if file_format == "csv" else "tab"
    if spec.header is not None:
        columns = list(spec.header)
        named = f"--columns {','.join(columns)}"
        check_columns(columns, spec, f"{source} ({named})")
        first = True
        for line, fields in rows:
            where = f"{source}:{line}"
            if first and [field.strip() for field in fields] == columns:
                raise DataError(
                    f"{where}: the first row is a header ({', '.join(columns)}) but {named} says the file "
                    "has none; drop --columns to read the names from the header."
                )
            first = False
            _check_field_count(fields, columns, where, separator, named=f"named by {named}")
            for column, value in zip(columns, fields, strict=True):
                check_cell(value, f"column `{column}`", where)
            yield line, dict(zip(columns, fields, strict=True))
        return
    header_line, header = next(rows, (0, None))
    if header is None:
        wanted = ", ".join(column for _, column in spec.columns())
        raise DataError(
            f"{source}: the file is empty; expected a header row naming the columns ({wanted}), "
            "or rows named with --columns."
        )
    columns = _header_columns(header, f"{source}:{header_line}")
    try:
        check_columns(columns, spec, source)
    except DataError as error:
        if not _looks_like_data(columns):
            raise
        wanted = [column for _, column in spec.columns()][: len(columns)]
        example = ",".join(wanted + [f"field{i}" for i in range(len(wanted) + 1, len(columns) + 1)])
        raise DataError(
            f"{error} The first row ({source}:{header_line}) looks like data, not a header: if the file "
            f"has no header row, name its {len(columns)} field(s) in order with --columns, "
            f"e.g. --columns {example}"
        ) from None
    for line, fields in rows:
        where = f"{source}:{line}"
        _check_field_count(fields, columns, where, separator)
        for column, value in zip(columns, fields, strict=True):
            check_cell(value, f"column `{column}`", where)
        yield line, dict(zip(columns, fields, strict=True))


def _looks_like_data(fields: list[str]) -> bool:
    """Whether a first row reads like data rather than column names: a field is a number,
    or a sentence (several words or long)."""
    for field in fields:
        try:
            float(field)
            return True
        except ValueError:
            pass
        if len(field.split()) >= 4 or len(field) > 40:
            return True
    return False


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
        check_cell(column, f"header field {index + 1}", where)
        if column in columns[:index]:
            first = columns.index(column)
            raise DataError(
                f"{where}: column `{column}` appears twice in the header "
                f"(fields {first + 1} and {index + 1}); column names must be unique."
            )
    return columns


def _check_field_count(
    fields: list[str], columns: list[str], where: str, separator: str, named: str = "as in the header"
) -> None:
    """Raise a DataError if a row does not have one field per column (``named`` says where
    the column names came from)."""
    if len(fields) == len(columns):
        return
    expected = f"expected {len(columns)} {separator}-separated fields {named}, found {len(fields)}"
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

    Only the spec columns are returned, converted to strings by :func:`~tfft.data.checks.json_text`; the
    label column of a spec with a ``label_separator`` may also hold a list, returned as a
    list of strings.

    Raises:
        DataError: A line is not a JSON object, repeats a key, lacks a spec column, or holds
            a value that is not text.
    """
    label_columns = [column for field, column in spec.columns() if field.startswith("label")]
    first_kind: dict[str, tuple[str, int]] = {}  # label column -> (JSON kind, line) seen first
    for line_no, where, obj in json_objects(lines, source):
        check_columns(list(obj), spec, where, noun="Keys")
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
                    check_cell(item, f"column `{key}`", where)
        record: dict[str, str | list[str]] = {}
        for _, column in spec.columns():
            value = obj[column]
            if isinstance(value, list) and spec.label_separator is not None and column == spec.label_column:
                record[column] = [json_text(item, column, where, in_list=True) for item in value]
            else:
                record[column] = json_text(value, column, where)
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
    return json_kind(value)
