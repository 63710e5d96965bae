"""Source/target text pairs for summarization and translation: :class:`PairExamples`.

Pairs come from a source and a target column of a CSV / TSV / JSON Lines file or a TFDS
dataset (read by :func:`tfft.data.read_examples`), or from parallel plain-text files with
one sentence per line, line N of one being line N of the other (:func:`read_parallel`).
:func:`read_pairs` picks between them: ``SOURCE,TARGET`` names a pair of plain-text files,
a plain-text file alone holds sources only (unlabelled data). Blank lines at the end of a
plain-text file are ignored; elsewhere they are errors.

Example:
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.en").write_text("one\\ntwo\\nthree\\nfour\\n\\n")
    >>> _ = (folder / "a.de").write_text("eins\\nzwei\\ndrei\\nvier\\n")
    >>> pairs = read_parallel(str(folder / "a.en"), str(folder / "a.de"), "--train")
    >>> pairs.targets[1], pairs.rows
    ('zwei', [1, 2, 3, 4])
    >>> rest, held_out = pairs.split(0.25, seed=0)
    >>> len(rest), len(held_out)
    (3, 1)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tfft.data.examples import Examples
from tfft.data.readers import read_examples
from tfft.data.tables import TableSpec
from tfft.data.tfds_source import TFDS_PREFIX
from tfft.errors import ConfigError, DataError

#: file name endings read as tables (source and target columns), not as plain text
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".json", ".ndjson")


@dataclasses.dataclass
class PairExamples(Examples):
    """Source texts and (for labelled data) their reference targets.

    ``len``, ``take``, ``select`` and ``split`` (a seeded random ``fraction`` held out, both
    parts in source order) come from :class:`~tfft.data.examples.Examples`.

    Attributes:
        sources: the source texts.
        targets: the reference target texts, or None for unlabelled data.
        source: where they came from (a path, ``SRC,TGT`` or ``--text``).
        rows: the 1-based line of each example.
    """

    row_fields = ("sources", "targets", "rows")

    sources: list[str]
    targets: list[str] | None
    source: str
    rows: list[int]


def read_lines(path: str, option: str) -> list[str]:
    """The lines of a UTF-8 text file, stripped; blank lines only allowed at the end.

    Raises:
        DataError: missing file, bad UTF-8, or a blank line before the end.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"No such file: {path} ({option})")
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise DataError(f"Cannot read {path} ({option}): {error.strerror or error}") from None
    lines = raw.split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    texts = []
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            raise DataError(f"{path}:{number}: not valid UTF-8 (byte {error.start}).") from None
        if not text:
            raise DataError(f"{path}:{number}: blank line; every line must hold one sentence.")
        texts.append(text)
    if not texts:
        raise DataError(f"{path}: the file is empty ({option}).")
    return texts


def read_parallel(source_path: str, target_path: str | None, option: str, max_examples=None) -> PairExamples:
    """Parallel plain-text files (one sentence per line, line N of one is line N of the other)."""
    sources = read_lines(source_path, option)
    targets = None
    if target_path is not None:
        targets = read_lines(target_path, option)
        if len(targets) != len(sources):
            raise DataError(
                f"{target_path}: {len(targets)} lines, but {source_path} has {len(sources)}; "
                "parallel files must have one target line per source line."
            )
    if max_examples:
        sources = sources[:max_examples]
        targets = None if targets is None else targets[:max_examples]
    name = source_path if target_path is None else f"{source_path},{target_path}"
    return PairExamples(sources, targets, name, list(range(1, len(sources) + 1)))


def read_pairs(
    source: str | None,
    *,
    source_column: str,
    target_column: str,
    source_file: str | None = None,
    target_file: str | None = None,
    format: str | None = None,
    data_dir: str | None = None,
    labelled: bool = True,
    option: str = "--train",
    max_examples: int | None = None,
) -> PairExamples:
    """Read pairs from ``source``, or from ``source_file``/``target_file`` when it is empty.

    Args:
        source: a table (CSV, TSV, JSON Lines, ``tfds:NAME:SPLIT``), a ``SOURCE,TARGET``
            pair of plain-text files, a plain-text file of sources (unlabelled only), or
            None/``""`` to read ``source_file`` and ``target_file``.
        source_column, target_column: the table columns of the source and the target.
        source_file, target_file: parallel plain-text files (``--source-file``, ``--target-file``).
        format: the table format (``csv``, ``tsv``, ``jsonl``); None goes by the file name.
        data_dir: the TFDS data dir.
        labelled: read targets too.
        option: the command-line option that named ``source``, for messages.
        max_examples: keep at most this many pairs.

    Raises:
        ConfigError: no data named, or both ``--train`` and ``--source-file``.
        DataError: unreadable or malformed data, or a plain-text file where targets are needed.
    """
    if source is None or source == "":
        if not source_file or (labelled and not target_file):
            raise ConfigError(f"{option}: give a data file, or --source-file with --target-file.")
        return read_parallel(source_file, target_file if labelled else None, option, max_examples)
    if option == "--train" and source_file:
        raise ConfigError("Give --train or --source-file with --target-file, not both.")
    source = str(source)
    if "," in source and not Path(source).exists():
        source_path, _, target_path = source.partition(",")
        return read_parallel(source_path, target_path if labelled else None, option, max_examples)
    if format is None and not source.startswith(TFDS_PREFIX) and not source.lower().endswith(TABLE_SUFFIXES):
        if labelled:
            raise DataError(
                f"{source} ({option}): a plain-text file holds sources only; give SOURCE,TARGET files "
                "(e.g. val.en,val.de) or a CSV/TSV/JSON Lines file with source and target columns."
            )
        return read_parallel(source, None, option, max_examples)
    examples = read_examples(
        source,
        TableSpec(
            text_column=source_column,
            label_column=target_column if labelled else None,
            format=format,
        ),
        max_examples=max_examples,
        data_dir=data_dir,
        option=option,
    )
    return PairExamples(examples.texts, examples.labels, examples.source, examples.rows)
