"""Read word-tagged sentences (named-entity recognition) from CoNLL files and JSON Lines.

Formats:

* **CoNLL**: one word per line, ``word<TAB>tag`` (or columns separated by spaces when the
  line has no tab), a blank line between sentences; ``-DOCSTART-`` lines are skipped and
  end the sentence; CRLF line endings and a UTF-8 byte order mark are accepted. Multi-column
  files (CoNLL-2003's ``word POS chunk tag``) take the tag from ``tag_column`` (the last
  column by default).
* **JSON Lines**: one sentence per line, ``{"tokens": [...], "tags": [...]}`` (the field
  names are settable); blank lines are skipped.

Tags are ``O`` or a prefix ``B-``, ``I-``, ``E-``, ``S-`` and an entity type: the IOB1,
IOB2 and BIOES schemes (:func:`detect_scheme` tells which one a file uses). A bad line is
never skipped: it raises a :class:`~tfft.errors.DataError` whose one-line message starts
with ``PATH:LINE:`` and names the field at fault.

Raw text (for prediction) is split into words by :func:`split_words`, which keeps the
character offsets of each word so that entities can be reported as spans of the text.

Example:
    >>> examples = read_conll("../shared/data/conll2003/valid.txt")  # doctest: +SKIP
    >>> examples.words[0], examples.tags[0]  # doctest: +SKIP
    (['CRICKET', '-', ...], ['O', 'O', ...])
    >>> split_words("Hello, New York!")
    [('Hello', 0, 5), (',', 5, 6), ('New', 7, 10), ('York', 11, 15), ('!', 15, 16)]
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfft.data.checks import (
    cannot_read,
    check_cell,
    check_data_file,
    check_max_examples,
    decoded_lines,
    json_objects,
    listing,
)
from tfft.data.examples import Examples
from tfft.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

OUTSIDE = "O"
PREFIXES = ("B", "I", "E", "S")
SCHEMES = ("IOB1", "IOB2", "BIOES")
DOCSTART = "-DOCSTART-"

# --- splitting raw text into words ----------------------------------------------------------------

# The characters Python's str.isspace() accepts, written out so the in-graph splitter (RE2)
# uses exactly the same set.
WHITESPACE_CLASS = (
    r"\t-\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)
# BERT's basic tokenizer: every Unicode punctuation character and the ASCII symbols are a
# word of their own, and so is every CJK ideograph.
PUNCTUATION_CLASS = r"\p{P}!-/:-@\[-\x{60}{-~"
CJK_CLASS = (
    r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
    r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}"
)
# Characters tokenizers delete (control and format characters, U+FFFD): a "word" made of
# these alone is dropped.
INVISIBLE_CLASS = r"\p{Cc}\p{Cf}\x{FFFD}"
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_invisible(char: str) -> bool:
    return char == "\ufffd" or unicodedata.category(char) in ("Cc", "Cf")


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Split raw text into words the way BERT's basic tokenizer does, keeping offsets.

    Words are runs of non-whitespace characters; every punctuation character (Unicode
    ``P*`` and the ASCII symbols) and every CJK ideograph is a word of its own. Words made
    only of control or format characters are dropped. The same rules run in TensorFlow in
    exported models (:func:`tfft.words.split_words`).

    Args:
        text: The text.

    Returns:
        ``(word, start, end)`` for each word, ``text[start:end] == word`` (character offsets).

    Example:
        >>> split_words("U.S. troops")
        [('U', 0, 1), ('.', 1, 2), ('S', 2, 3), ('.', 3, 4), ('troops', 5, 11)]
    """
    words: list[tuple[str, int, int]] = []
    start = -1

    def flush(end: int) -> None:
        if start >= 0:
            word = text[start:end]
            if not all(_is_invisible(char) for char in word):
                words.append((word, start, end))

    for index, char in enumerate(text):
        if char.isspace():
            flush(index)
            start = -1
        elif _is_punctuation(char) or _is_cjk(char):
            flush(index)
            start = -1
            if not _is_invisible(char):
                words.append((char, index, index + 1))
        elif start < 0:
            start = index
    flush(len(text))
    return words


# --- examples -------------------------------------------------------------------------------------


@dataclass
class TaggedExamples(Examples):
    """Sentences split into words, with their tags and where they came from.

    Attributes:
        words: The words of each sentence.
        tags: The tag of each word (``"B-PER"``, ``"O"``); None for unlabelled data.
        source: The path the sentences came from (or ``"--text"``).
        rows: The 1-based line of each sentence (of its first word in CoNLL files).
        texts: The text of each sentence; words joined by single spaces when the source
            was pre-split.
        spans: ``(start, end)`` character offsets of each word in its text.
        line_per_word: True when each word sits on its own line (CoNLL), so the line of
            word ``k`` of sentence ``i`` is ``rows[i] + k``.
        presplit: True when the words came split (CoNLL, JSON Lines ``tokens``); False when
            they were split from raw text by :func:`split_words`.

    ``len``, :meth:`~tfft.data.examples.Examples.take`, ``select`` and ``split`` (same rule
    as :meth:`tfft.data.TextExamples.split`: ``max(1, round(fraction * n))`` sentences held
    out, both parts in source order) come from :class:`~tfft.data.examples.Examples`.
    """

    row_fields = ("words", "tags", "rows", "texts", "spans")
    noun = "sentences"

    words: list[list[str]]
    tags: list[list[str]] | None
    source: str
    rows: list[int]
    texts: list[str] = field(default_factory=list)
    spans: list[list[tuple[int, int]]] = field(default_factory=list)
    line_per_word: bool = False
    presplit: bool = True

    def __post_init__(self) -> None:
        if not self.texts and self.words:
            self.texts, self.spans = zip(*(_join(words) for words in self.words), strict=True)
            self.texts, self.spans = list(self.texts), list(self.spans)
        super().__post_init__()

    @classmethod
    def from_texts(
        cls, texts: Sequence[str], source: str, rows: Sequence[int] | None = None
    ) -> TaggedExamples:
        """Unlabelled examples from raw texts, split into words by :func:`split_words`.

        Args:
            texts: The texts.
            source: Where they came from, for messages.
            rows: The line (or record) of each text; 1, 2, ... by default.
        """
        split = [split_words(text) for text in texts]
        return cls(
            words=[[word for word, _, _ in words] for words in split],
            tags=None,
            source=source,
            rows=list(rows) if rows is not None else list(range(1, len(texts) + 1)),
            texts=list(texts),
            spans=[[(start, end) for _, start, end in words] for words in split],
            presplit=False,
        )

    @property
    def labels(self) -> list[list[str]] | None:
        """The tags (the name other tasks use for their targets)."""
        return self.tags

    def where(self, index: int, word: int | None = None) -> str:
        """``PATH:LINE`` of sentence ``index`` (or of one of its words), for messages."""
        row = self.rows[index]
        if word is None:
            return f"{self.source}:{row}"
        if self.line_per_word:
            return f"{self.source}:{row + word}"
        return f"{self.source}:{row}: word {word + 1}"

    def tag_counts(self) -> Counter:
        """How often each tag occurs (an empty Counter for unlabelled data)."""
        return Counter(tag for tags in self.tags or [] for tag in tags)


def _join(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Join pre-split words with single spaces; return the text and each word's offsets."""
    spans = []
    position = 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), spans


# --- tags -----------------------------------------------------------------------------------------


def parse_tag(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "")``.

    Raises:
        ValueError: the tag is not ``O`` nor a known prefix, ``-`` and a type.
    """
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, dash, kind = tag.partition("-")
    if not dash or prefix not in PREFIXES or not kind:
        raise ValueError(tag)
    return prefix, kind


def check_tag(tag: str, where: str, what: str = "tag") -> None:
    """Raise a DataError naming ``where`` if ``tag`` is not a valid IOB1/IOB2/BIOES tag."""
    try:
        parse_tag(tag)
    except ValueError:
        prefix, dash, kind = tag.partition("-")
        if dash and prefix in PREFIXES:
            problem = "has no entity type after the prefix"
        elif dash:
            problem = f"has an unknown prefix {prefix!r}"
        else:
            problem = "is neither O nor PREFIX-TYPE"
        raise DataError(
            f"{where}: {what} {tag!r} {problem}; tags must be O or B-, I-, E-, S- followed by an "
            "entity type (IOB1, IOB2 or BIOES schemes), e.g. B-PER."
        ) from None


def detect_scheme(sentences: Iterable[Sequence[str]]) -> str:
    """Which tagging scheme a set of tagged sentences follows: IOB1, IOB2 or BIOES.

    BIOES when any tag is ``E-`` or ``S-``; IOB1 when an ``I-`` tag opens an entity (at the
    start of a sentence, after ``O`` or after another type); IOB2 otherwise.

    Example:
        >>> detect_scheme([["I-PER", "I-PER", "O", "I-LOC"]])
        'IOB1'
        >>> detect_scheme([["B-PER", "I-PER", "O"]])
        'IOB2'
    """
    iob1 = False
    for tags in sentences:
        previous = (OUTSIDE, "")
        for tag in tags:
            prefix, kind = parse_tag(tag)
            if prefix in ("E", "S"):
                return "BIOES"
            if prefix == "I" and (previous[0] == OUTSIDE or previous[1] != kind):
                iob1 = True
            previous = (prefix, kind)
    return "IOB1" if iob1 else "IOB2"


def sort_tags(tags: Iterable[str]) -> list[str]:
    """``O`` first, then by entity type and prefix (B, I, E, S)."""
    order = {prefix: i for i, prefix in enumerate(PREFIXES)}

    def key(tag: str) -> tuple:
        prefix, kind = parse_tag(tag)
        return (0, "", 0) if prefix == OUTSIDE else (1, kind, order[prefix])

    return sorted(set(tags), key=key)


def entity_types(tag_names: Sequence[str]) -> list[str]:
    """The sorted entity types of a tag set (``["LOC", "PER"]`` for ``B-PER, I-LOC, O``)."""
    return sorted({parse_tag(tag)[1] for tag in tag_names} - {""})


def tag_ids(examples: TaggedExamples, tag_names: Sequence[str]) -> list[list[int]]:
    """Map each word's tag to its index in ``tag_names``.

    Raises:
        DataError: a tag was never seen in training (names the line and the known tags).
    """
    index = {tag: i for i, tag in enumerate(tag_names)}
    if examples.tags is None:
        raise DataError(f"{examples.source}: the examples have no tags.")
    ids = []
    for i, tags in enumerate(examples.tags):
        row = []
        for k, tag in enumerate(tags):
            if tag not in index:
                raise DataError(
                    f"{examples.where(i, k)}: tag {tag!r} was never seen in training. "
                    f"Known tags: {listing(list(tag_names))}"
                )
            row.append(index[tag])
        ids.append(row)
    return ids


# --- readers --------------------------------------------------------------------------------------


def read_tagged(
    source: str | Path,
    *,
    file_format: str | None = None,
    labelled: bool = True,
    tag_column: int = -1,
    tokens_field: str = "tokens",
    tags_field: str = "tags",
    max_examples: int | None = None,
    option: str | None = None,
) -> TaggedExamples:
    """Read tagged sentences from a CoNLL or JSON Lines file.

    Args:
        source: The file.
        file_format: ``"conll"`` or ``"jsonl"``; None picks JSON Lines for ``.jsonl``,
            ``.json`` and ``.ndjson`` files and CoNLL for any other extension.
        labelled: Read the tags (training, evaluation); False reads words only.
        tag_column: CoNLL column of the tag, 0-based; negative counts from the end
            (-1, the default, is the last column). The word is always column 0.
        tokens_field: JSON Lines key of the word list.
        tags_field: JSON Lines key of the tag list.
        max_examples: Stop after this many sentences; None reads all.
        option: The command-line option that named ``source``, quoted when it is missing.

    Returns:
        The sentences, in file order.

    Raises:
        DataError: The file is missing, empty or malformed (the message names file, line
            and field).
        ConfigError: ``max_examples`` is not a positive integer, or ``file_format`` unknown.
    """
    check_max_examples(max_examples)
    path = Path(source)
    source = str(source)
    if file_format is None:
        file_format = "jsonl" if path.suffix.lower() in (".jsonl", ".json", ".ndjson") else "conll"
    if file_format not in ("conll", "jsonl"):
        raise ConfigError(
            f"`format` must be conll or jsonl for tagged data. Received: format={file_format!r}"
        )
    check_data_file(source, option)
    try:
        with path.open("rb") as handle:
            lines = decoded_lines(handle, source)
            if file_format == "conll":
                sentences = _conll_sentences(lines, source, labelled, tag_column)
            else:
                sentences = _jsonl_sentences(lines, source, labelled, tokens_field, tags_field)
            examples = _collect(
                sentences, source, labelled, max_examples, line_per_word=file_format == "conll"
            )
    except OSError as e:
        raise cannot_read(source, option, e) from e
    logger.info("Read %d sentences from %s", len(examples), source)
    return examples


def read_conll(source: str | Path, **kwargs: Any) -> TaggedExamples:
    """:func:`read_tagged` for a CoNLL file."""
    return read_tagged(source, file_format="conll", **kwargs)


Sentence = tuple[int, list[str], list[str] | None]


def _conll_sentences(
    lines: Iterator[str], source: str, labelled: bool, tag_column: int
) -> Iterator[Sentence]:
    """Yield ``(first line, words, tags)`` for each sentence of a CoNLL file."""
    words: list[str] = []
    tags: list[str] = []
    first = 0
    for line_no, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n")
        where = f"{source}:{line_no}"
        check_cell(text, "the line", where)
        fields = text.split("\t") if "\t" in text else text.split()
        fields = [value.strip() for value in fields]
        if not any(fields) or fields[0] == DOCSTART:
            if words:
                yield first, words, tags if labelled else None
            words, tags = [], []
            continue
        if not fields[0]:
            raise DataError(f"{where}: the word (column 1) is empty; expected `word<TAB>tag`.")
        if labelled:
            if len(fields) < 2:
                raise DataError(
                    f"{where}: no tag after the word {fields[0]!r}; expected `word<TAB>tag` "
                    "(or columns separated by spaces) in a labelled CoNLL file."
                )
            try:
                tag = fields[tag_column]
            except IndexError:
                raise DataError(
                    f"{where}: no tag column {_column_name(tag_column)} (--tag-column); the line has "
                    f"{len(fields)} columns."
                ) from None
            if tag_column % len(fields) == 0:
                raise DataError(f"{where}: the tag column (--tag-column) is the word column; choose another.")
            if not tag:
                raise DataError(f"{where}: the tag (column {tag_column % len(fields) + 1}) is empty.")
            check_tag(tag, where, f"tag (column {tag_column % len(fields) + 1})")
            tags.append(tag)
        if not words:
            first = line_no
        words.append(fields[0])
    if words:
        yield first, words, tags if labelled else None


def _column_name(column: int) -> str:
    """A 0-based (or negative) column index in words for messages: 1-based or 'last'."""
    if column == -1:
        return "last"
    return str(column + 1) if column >= 0 else f"{-column} from the end"


def _jsonl_sentences(
    lines: Iterator[str], source: str, labelled: bool, tokens_field: str, tags_field: str
) -> Iterator[Sentence]:
    """Yield ``(line, words, tags)`` for each object of a JSON Lines file."""
    for line_no, where, obj in json_objects(lines, source):
        words = _string_list(obj, tokens_field, where, "word")
        tags = None
        if labelled:
            tags = _string_list(obj, tags_field, where, "tag")
            if len(tags) != len(words):
                raise DataError(
                    f"{where}: field `{tags_field}` has {len(tags)} tags but `{tokens_field}` has "
                    f"{len(words)} words; they must pair up one to one."
                )
            for k, tag in enumerate(tags):
                check_tag(tag, where, f"field `{tags_field}` item {k + 1}, tag")
        yield line_no, words, tags


def _string_list(obj: dict[str, Any], key: str, where: str, noun: str) -> list[str]:
    """``obj[key]`` as a non-empty list of non-empty strings, or a DataError naming the field."""
    if key not in obj:
        raise DataError(f"{where}: no field `{key}`. Keys found: {listing(list(obj)) or '(none)'}")
    values = obj[key]
    if not isinstance(values, list):
        raise DataError(f"{where}: field `{key}` must be a list of strings, found {type(values).__name__}.")
    if not values:
        raise DataError(f"{where}: field `{key}` is an empty list.")
    out = []
    for k, value in enumerate(values):
        if not isinstance(value, str):
            raise DataError(
                f"{where}: field `{key}` item {k + 1} is {json.dumps(value)[:40]}; "
                f"every {noun} must be a string."
            )
        value = value.strip()
        if not value:
            raise DataError(f"{where}: field `{key}` item {k + 1} is empty; every {noun} needs text.")
        check_cell(value, f"field `{key}` item {k + 1}", where)
        out.append(value)
    return out


def _collect(
    sentences: Iterable[Sentence], source: str, labelled: bool, max_examples: int | None, line_per_word: bool
) -> TaggedExamples:
    words: list[list[str]] = []
    tags: list[list[str]] | None = [] if labelled else None
    rows: list[int] = []
    for row, sentence_words, sentence_tags in sentences:
        rows.append(row)
        words.append(sentence_words)
        if tags is not None:
            tags.append(sentence_tags)
        if max_examples is not None and len(rows) >= max_examples:
            break
    if not rows:
        raise DataError(
            f"{source}: no sentences found (the file holds nothing but blank or -DOCSTART- lines)."
        )
    return TaggedExamples(words=words, tags=tags, source=source, rows=rows, line_per_word=line_per_word)
