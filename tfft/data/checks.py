"""Small checks and conversions shared by the readers of :mod:`tfft.data`.

An internal API for the reader modules (tables, TFDS, CoNLL, SQuAD), public so that they
need not import each other's private helpers:

* :func:`check_max_examples`, :func:`check_data_file`, :func:`cannot_read`: the argument and
  file checks every reader starts with;
* :func:`decoded_lines`, :func:`without_bom`: the lines of a binary file as text (UTF-8,
  byte order mark dropped);
* :func:`check_cell`: a field holds no NUL byte and only valid UTF-8;
* :func:`json_objects`, :func:`parse_json_object`, :func:`json_text`, :func:`json_kind`:
  the records of a JSON Lines file, one record, its values as strings, and JSON types in
  words for messages;
* :func:`listing`: names joined for a message, elided after the first few.

Every error is a :class:`~tfft.errors.DataError` (or :class:`~tfft.errors.ConfigError` for
a bad argument) whose message starts with ``PATH:LINE:`` where there is a line to name.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tfft.errors import ConfigError, DataError

_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_LISTED = 20


def check_max_examples(max_examples: int | None) -> None:
    """Raise a ConfigError unless ``max_examples`` is None or a positive integer."""
    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1
    ):
        raise ConfigError(
            f"`max_examples` must be a positive integer or None. Received: max_examples={max_examples!r}"
        )


def check_data_file(source: str | Path, option: str | None) -> None:
    """Raise a DataError unless ``source`` exists and is not a directory.

    Args:
        source: The data file, named in messages as given.
        option: The command-line option that named it (``"--train"``), quoted in the
            message; None for none.
    """
    path = Path(source)
    suffix = _option_suffix(option)
    if not path.exists():
        raise DataError(f"No such file: {source}{suffix}")
    if path.is_dir():
        raise DataError(f"{source} is a directory, not a data file{suffix}")


def cannot_read(source: str | Path, option: str | None, error: OSError) -> DataError:
    """The DataError for an OSError raised while reading a data file (raise it ``from`` it)."""
    return DataError(f"Cannot read {source}{_option_suffix(option)}: {error.strerror or error}")


def _option_suffix(option: str | None) -> str:
    return f" ({option})" if option else ""


def decoded_lines(handle: Iterable[bytes], source: str) -> Iterator[str]:
    """Yield the lines of a binary file as text, line endings kept.

    Bytes that are not valid UTF-8 become lone surrogates (``surrogateescape``) so that the
    row can still be split and the error can name its column (see :func:`check_cell`).
    A UTF-8 byte order mark is dropped.

    Raises:
        DataError: The file starts with a UTF-16 byte order mark.
    """
    for line_no, raw in enumerate(handle, start=1):
        if line_no == 1:
            raw = without_bom(raw, source)
        yield raw.decode("utf-8", "surrogateescape")


def without_bom(start: bytes, source: str) -> bytes:
    """The start of a file (its first line, or all of it) without a UTF-8 byte order mark.

    Raises:
        DataError: The file starts with a UTF-16 byte order mark.
    """
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(
            f"{source}:1: the file is UTF-16 encoded (it starts with a UTF-16 byte order mark); "
            "save it as UTF-8."
        )
    return start.removeprefix(codecs.BOM_UTF8)


def check_cell(value: str, what: str, where: str) -> None:
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


def json_objects(lines: Iterable[str], source: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Yield ``(line, where, object)`` for each non-blank line of a JSON Lines file.

    ``where`` is ``PATH:LINE``, for messages; each line is read by :func:`parse_json_object`.
    """
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{line_no}"
        yield line_no, where, parse_json_object(line, where)


def parse_json_object(line: str, where: str) -> dict[str, Any]:
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
        check_cell(line, "the line", where)
        raise DataError(
            f"{where}: not valid JSON ({e.msg} at character {e.colno}); "
            "a JSON Lines file holds one JSON object per line."
        ) from e
    if not isinstance(obj, dict):
        raise DataError(
            f'{where}: expected a JSON object ({{"column": value, ...}}), found {json_kind(obj)}; '
            "a JSON Lines file holds one JSON object per line."
        )
    return obj


def json_text(value: Any, column: str, where: str, *, in_list: bool = False) -> str:
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
    raise DataError(f"{where}: {what} `{column}` is {json_kind(value)}; expected a string or a number.")


def json_kind(value: Any) -> str:
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


def listing(names: Sequence[str]) -> str:
    """Join names with commas, eliding after the first few."""
    if len(names) <= _MAX_LISTED:
        return ", ".join(names)
    return f"{', '.join(names[:_MAX_LISTED])}, ... ({len(names)} in all)"
