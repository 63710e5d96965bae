"""Reading ``--task causal-lm`` data: plain-text documents, or prompt/response pairs.

- Plain text: the ``--text-column`` of a CSV / TSV / JSON Lines file (or ``tfds:``), or a
  plain-text file (any name not ending in a table suffix, e.g. ``.txt``) with one document
  per line (blank lines skipped) or, with ``--blank-line-documents``, documents separated by
  blank lines (their lines joined with newlines).
- Prompt/response pairs: ``--prompt-column`` and ``--response-column`` of a table.
- Prompts to continue (``tfft predict``): the prompt column (else the text column) of a
  table, or the lines of a plain-text file.

Errors name the file and line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tfft.data.examples import Examples
from tfft.data.parallel import TABLE_SUFFIXES
from tfft.data.readers import read_examples
from tfft.data.tables import TableSpec
from tfft.data.tfds_source import TFDS_PREFIX
from tfft.errors import ConfigError, DataError


@dataclasses.dataclass
class LMExamples(Examples):
    """Documents, or prompts with (for labelled data) their responses.

    Attributes:
        texts: the documents (plain text) or the prompts.
        responses: the responses of prompt/response data, else None.
        source: where they came from.
        rows: the 1-based line (row) of each example.
        prompts: the texts are prompts (to continue; with responses, the loss covers the
            responses only), not documents to learn whole.
    """

    row_fields = ("texts", "responses", "rows")

    texts: list[str]
    responses: list[str] | None
    source: str
    rows: list[int]
    prompts: bool = False

    @property
    def pairs(self) -> None:
        """No second texts (for the data report, which reads ``texts`` and ``pairs``)."""
        return None


def is_table(source: str, format: str | None) -> bool:
    """Whether ``source`` is read as a table (by ``format``, ``tfds:`` or its suffix)."""
    return format is not None or source.startswith(TFDS_PREFIX) or source.lower().endswith(TABLE_SUFFIXES)


def read_text_file(path: str, option: str, blank_line_documents: bool = False) -> tuple[list[str], list[int]]:
    """Documents of a UTF-8 plain-text file and the line each starts on.

    One document per line (blank lines skipped), or with ``blank_line_documents`` runs of
    non-blank lines joined with newlines.

    Raises:
        DataError: a missing or empty file, or bad UTF-8 (file and line named).
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"No such file: {path} ({option})")
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise DataError(f"Cannot read {path} ({option}): {error.strerror or error}") from None
    texts: list[str] = []
    rows: list[int] = []
    current: list[str] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            raise DataError(f"{path}:{number}: not valid UTF-8 (byte {error.start}).") from None
        if not blank_line_documents:
            if text:
                texts.append(text)
                rows.append(number)
            continue
        if text:
            if not current:
                rows.append(number)
            current.append(text)
        elif current:
            texts.append("\n".join(current))
            current = []
    if current:
        texts.append("\n".join(current))
    if not texts:
        raise DataError(f"{path}: the file holds no text ({option}).")
    return texts, rows


def read_lm_examples(
    source: str,
    *,
    text_column: str,
    prompt_column: str | None,
    response_column: str | None,
    format: str | None = None,
    data_dir: str | None = None,
    blank_line_documents: bool = False,
    labelled: bool = True,
    option: str = "--train",
    max_examples: int | None = None,
) -> LMExamples:
    """Read documents, prompt/response pairs (labelled) or prompts (unlabelled) from ``source``.

    Raises:
        ConfigError: a prompt column without a response column for training or evaluation.
        DataError: unreadable data, a missing column, or a plain-text file where pairs are needed.
    """
    if not source:
        raise ConfigError(f"{option}: give a data file (a table, or a plain-text file of documents).")
    source = str(source)
    if labelled and prompt_column and not response_column:
        raise ConfigError(
            f"{option}: prompt/response data needs --response-column too. "
            f"Received: prompt_column={prompt_column!r}, response_column=None"
        )
    if not is_table(source, format):
        if labelled and prompt_column:
            raise DataError(
                f"{source} ({option}): a plain-text file holds documents, not prompt/response pairs; give a "
                "CSV/TSV/JSON Lines file with the prompt and response columns."
            )
        texts, rows = read_text_file(source, option, blank_line_documents and labelled)
        if max_examples:
            texts, rows = texts[:max_examples], rows[:max_examples]
        return LMExamples(texts, None, source, rows, prompts=not labelled)
    pairs = labelled and prompt_column is not None
    column = prompt_column or text_column
    examples = read_examples(
        source,
        TableSpec(text_column=column, label_column=response_column if pairs else None, format=format),
        max_examples=max_examples,
        data_dir=data_dir,
        option=option,
    )
    responses = [str(value) for value in examples.labels] if pairs else None
    return LMExamples(
        examples.texts, responses, examples.source, examples.rows, prompts=pairs or not labelled
    )
