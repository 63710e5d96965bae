"""Read examples from a prepared TFDS dataset: ``"tfds:NAME:SPLIT"`` sources.

The dataset must already be prepared in the TFDS data dir (nothing is downloaded);
``tensorflow_datasets`` is imported only when such a source is read. Features become
strings as JSON Lines values do, and are gathered by
:func:`~tfft.data.tables.collect_examples`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tfft.data.checks import json_text
from tfft.data.tables import TableSpec, TextExamples, check_columns, collect_examples
from tfft.errors import DataError

TFDS_PREFIX = "tfds:"
# NAME may carry a version ("mnist:3.0.1"); SPLIT may hold colons ("train[:10%]").
_TFDS_SOURCE = re.compile(r"tfds:(?P<name>[^:]+(?::[0-9][^:]*)?):(?P<split>.+)")


def read_tfds(source: str, spec: TableSpec, max_examples: int | None, data_dir: str | None) -> TextExamples:
    """Read examples from a prepared TFDS dataset (see :func:`tfft.data.read_examples`).

    Text features are decoded from UTF-8, ClassLabel features become their label names,
    numeric scalar features become strings as in :func:`~tfft.data.checks.json_text`. The
    label column of a spec with a ``label_separator`` may also be a sequence of those (a
    list of labels).
    """
    import tensorflow_datasets as tfds  # slow to import: only when a TFDS source is read

    name, split = _parse_tfds_source(source)
    builder = _tfds_builder(tfds, name, source, data_dir)
    features = builder.info.features
    check_columns(list(features.keys()), spec, source, noun="Features")
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

    return collect_examples(records(), source, spec, max_examples)


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
        return lambda value, where: json_text(value.item(), column, where)
    raise DataError(
        f"{source}: feature `{column}` is {type(feature).__name__}{tuple(feature.shape)}; "
        "expected a scalar text, class label or number."
    )


def _first_line(error: BaseException) -> str:
    """Return the first line of an exception's message (TFDS messages run to many lines)."""
    text = str(error).strip()
    return text.splitlines()[0].rstrip(":") if text else type(error).__name__
