"""Read labelled or unlabelled text examples from CSV, TSV, JSON Lines files or TFDS.

:func:`read_examples` picks the reader of a source and returns a
:class:`~tfft.data.tables.TextExamples`: the texts (and optional second texts and raw
label strings) together with the line each example came from, so that later stages can
report errors as ``PATH:LINE``. Input is validated row by row; a bad row is never skipped:
it raises a :class:`~tfft.errors.DataError` whose one-line message starts with
``PATH:LINE:`` and names the column at fault.

Formats:

* **CSV**, **TSV** and **JSON Lines** files (:mod:`tfft.data.table_files`), the format
  given by the spec or the file extension.
* **TFDS**: ``"tfds:NAME:SPLIT"`` read from an already prepared TFDS data dir
  (:mod:`tfft.data.tfds_source`).

Files are read as UTF-8; a UTF-8 byte order mark and CRLF line endings are accepted. Empty
lines are skipped in every format (they hold no data); a line holding only separators or
spaces is a row, and is checked like any other.

Example:
    >>> from tfft.data import LabelSet, TableSpec
    >>> spec = TableSpec(text_column="sentence", label_column="label")
    >>> examples = read_examples("../shared/data/sst2/dev.tsv", spec)  # doctest: +SKIP
    >>> labels = LabelSet.from_labels(examples.labels)  # doctest: +SKIP
    >>> ids = labels.ids(examples.labels, examples.source, examples.rows)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path

from tfft.data.checks import check_max_examples
from tfft.data.table_files import read_table_file
from tfft.data.tables import TableSpec, TextExamples
from tfft.data.tfds_source import TFDS_PREFIX, read_tfds

logger = logging.getLogger(__name__)


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
    check_max_examples(max_examples)
    source = str(source)
    if source.startswith(TFDS_PREFIX):
        examples = read_tfds(source, spec, max_examples, data_dir)
    else:
        examples = read_table_file(Path(source), spec, max_examples, option)
    logger.info("Read %d examples from %s", len(examples), examples.source)
    return examples
