"""Read extractive question-answering examples: SQuAD JSON (v1.1 and v2.0) and JSON Lines.

Every reader returns a :class:`QAExamples`: questions, contexts, reference answers (text and
character offset in the context), question ids, the article each question belongs to and
where in the file each question came from. Input is validated question by question; a bad
record is never skipped: it raises a :class:`~tfft.errors.DataError` whose one-line message
names the file, the record and the field at fault, such as ``train.json:
data[0].paragraphs[3].qas[1] (id '56be4db0'): answers[0].text 'Denver Bronco' is not at
answer_start 177 of the context (found 'Denver Broncos'[:13])``.

Formats:

* **SQuAD JSON**: ``{"data": [{"title": ..., "paragraphs": [{"context": ..., "qas":
  [{"id": ..., "question": ..., "answers": [{"text": ..., "answer_start": ...}]}]}]}]}``.
  SQuAD 2.0's ``"is_impossible": true`` (with ``"answers": []``) marks an unanswerable
  question; such questions are read only with ``allow_no_answer`` (``--allow-no-answer``).
  Records are named by their JSON path (``data[0].paragraphs[3].qas[1]``).
* **JSON Lines**: one object per line with the fields ``question``, ``context`` and
  ``answers`` (names configurable), optional ``id``, ``title`` and ``is_impossible``.
  ``answers`` is a list of ``{"text", "answer_start"}`` objects (SQuAD style) or one object
  of two lists ``{"text": [...], "answer_start": [...]}`` (Hugging Face datasets style); an
  empty list means no answer (with ``allow_no_answer``). Records are named ``PATH:LINE``.

Contexts are kept exactly as they are (answer offsets index into them); questions are
stripped. A ``.json`` file is read as SQuAD JSON unless it holds one JSON object per line.

Example (a one-question SQuAD file):
    >>> import json, tempfile
    >>> answers = [{"text": "France", "answer_start": 12}]
    >>> qa = {"id": "q1", "question": " Where is Paris? ", "answers": answers}
    >>> paragraph = {"context": "Paris is in France.", "qas": [qa]}
    >>> squad = {"data": [{"title": "Paris", "paragraphs": [paragraph]}]}
    >>> path = tempfile.mkdtemp() + "/train.json"
    >>> _ = open(path, "w").write(json.dumps(squad))
    >>> examples = read_qa_examples(path)
    >>> len(examples), examples.questions[0], examples.answers[0][0].text
    (1, 'Where is Paris?', 'France')
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfft.data.checks import cannot_read, check_data_file, check_max_examples, without_bom
from tfft.data.examples import Examples
from tfft.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

QA_FORMATS = ("squad", "jsonl")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_PREVIEW = 40


@dataclass(frozen=True)
class Answer:
    """One reference answer: its text and where it starts in the context.

    Attributes:
        text: The answer text, exactly as it appears in the context.
        start: Character offset of its first character in the context.
    """

    text: str
    start: int

    @property
    def end(self) -> int:
        """Character offset just past the answer (``context[start:end] == text``)."""
        return self.start + len(self.text)


@dataclass
class QAExamples(Examples):
    """Questions about contexts, with their reference answers and where each came from.

    Attributes:
        questions: The question of each example, stripped.
        contexts: The context (passage) of each example, unchanged.
        answers: The reference answers of each example (an empty tuple: the question has no
            answer in its context); None for unlabelled data.
        ids: The id of each question (the record's ``id``, else its location).
        articles: The article each question belongs to (SQuAD: the article's position and
            title; JSON Lines: ``title``, else the context); :meth:`split` keeps articles whole.
        source: The file the examples came from.
        rows: Line number (JSON Lines) or 1-based question number (SQuAD JSON) of each example.
        locations: Where each example came from, as error messages name it
            (``PATH:LINE`` or ``PATH: data[0].paragraphs[3].qas[1]``).

    ``len``, :meth:`~tfft.data.examples.Examples.take`, ``select`` and ``split`` come from
    :class:`~tfft.data.examples.Examples`; :meth:`held_out_indices` makes ``split`` hold
    out whole articles.
    """

    row_fields = ("questions", "contexts", "answers", "ids", "articles", "rows", "locations")

    questions: list[str]
    contexts: list[str]
    answers: list[tuple[Answer, ...]] | None
    ids: list[str]
    articles: list[str]
    source: str
    rows: list[int]
    locations: list[str]

    @property
    def labelled(self) -> bool:
        """Whether the examples carry reference answers."""
        return self.answers is not None

    def where(self, index: int) -> str:
        """The location of example ``index`` with its id, for error messages."""
        return f"{self.locations[index]} (id {self.ids[index]!r})"

    def held_out_indices(self, fraction: float, seed: int) -> list[int]:
        """Hold out whole articles, about ``fraction`` of the questions, deterministically.

        Used by :meth:`~tfft.data.examples.Examples.split`. Questions about the same article
        never end up on both sides (their contexts overlap in vocabulary and facts, so a
        split by question would overstate held-out scores). Articles are visited in an order
        shuffled with ``seed``; each is held out when that brings the held-out share of
        questions closer to ``fraction`` (the first one always is). Both parts keep the
        order of the source.

        Args:
            fraction: Share of questions to hold out, strictly between 0 and 1.
            seed: Seed of the shuffle; the same seed always picks the same articles.

        Returns:
            The positions of the questions about the held-out articles, ascending.

        Raises:
            ConfigError: There are fewer than two articles.
        """
        sizes: dict[str, int] = {}
        for article in self.articles:
            sizes[article] = sizes.get(article, 0) + 1
        if len(sizes) < 2:
            raise ConfigError(
                f"{self.source}: cannot hold out {fraction:g} of the questions by article: all "
                f"{len(self)} questions belong to one article (a split by question would leak its "
                "context into training). Pass a separate evaluation file instead."
            )
        order = list(sizes)
        random.Random(seed).shuffle(order)
        target = fraction * len(self)
        held: set[str] = set()
        count = 0
        for article in order[:-1]:  # the last visited article always stays in training
            if not held or abs(count + sizes[article] - target) < abs(count - target):
                held.add(article)
                count += sizes[article]
        held_out = [i for i, article in enumerate(self.articles) if article in held]
        logger.info(
            "Held out %d of %d articles (%d of %d questions) from %s",
            len(held),
            len(sizes),
            len(held_out),
            len(self),
            self.source,
        )
        return held_out

    def article_names(self) -> list[str]:
        """The distinct articles, in source order."""
        return list(dict.fromkeys(self.articles))


def read_qa_examples(
    source: str | Path,
    *,
    labelled: bool = True,
    allow_no_answer: bool = False,
    format: str | None = None,
    question_field: str = "question",
    context_field: str = "context",
    answers_field: str = "answers",
    max_examples: int | None = None,
    option: str | None = None,
) -> QAExamples:
    """Read and validate question-answering examples from a SQuAD JSON or JSON Lines file.

    Args:
        source: The file.
        labelled: Read and check the reference answers (training, evaluation); False reads
            questions and contexts only (prediction) and ignores any answers.
        allow_no_answer: Accept questions without an answer (SQuAD 2.0 ``is_impossible``, or an
            empty answer list); otherwise they are an error.
        format: ``"squad"`` or ``"jsonl"``; None picks it from the file (``.jsonl``/``.ndjson``:
            JSON Lines; otherwise SQuAD JSON, unless the file holds one object per line).
        question_field: JSON Lines field of the question.
        context_field: JSON Lines field of the context.
        answers_field: JSON Lines field of the answers.
        max_examples: Stop after this many questions; None reads all of them.
        option: The command-line option that named ``source`` (``"--train"``), quoted when the
            file does not exist.

    Returns:
        The examples, in file order.

    Raises:
        DataError: The file is missing, not UTF-8, not valid JSON, or a record is malformed;
            the message names the file, the record and the field.
        ConfigError: ``format`` or ``max_examples`` is invalid, or two field names coincide.
    """
    check_max_examples(max_examples)
    if format is not None and format not in QA_FORMATS:
        raise ConfigError(
            f"Question answering reads the formats {', '.join(QA_FORMATS)}. Received: format={format!r}"
        )
    fields = {
        "question_column": question_field,
        "context_column": context_field,
        "answers_column": answers_field,
    }
    for name, value in fields.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"`{name}` must be a non-empty field name. Received: {name}={value!r}")
    if len(set(fields.values())) < len(fields):
        raise ConfigError(
            "`question_column`, `context_column` and `answers_column` must name different fields. "
            f"Received: {', '.join(f'{k}={v!r}' for k, v in fields.items())}"
        )
    path = Path(source)
    source = str(source)
    check_data_file(source, option)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise cannot_read(source, option, e) from e
    text = _decode(raw, source)
    if not text.strip():
        raise DataError(
            f"{source}: the file is empty; expected SQuAD JSON or JSON Lines question-answering records."
        )
    if format is None:
        format = "jsonl" if path.suffix.lower() in _JSONL_SUFFIXES or _looks_like_jsonl(text) else "squad"
    reader = _Reader(source, labelled, allow_no_answer, max_examples)
    if format == "squad":
        reader.read_squad(text)
    else:
        reader.read_jsonl(text, question_field, context_field, answers_field)
    examples = reader.examples()
    if not len(examples):
        raise DataError(f"{source}: the file holds no questions.")
    logger.info(
        "Read %d questions about %d contexts from %s", len(examples), len(set(examples.contexts)), source
    )
    return examples


def _decode(raw: bytes, source: str) -> str:
    """The file as text; a UTF-8 byte order mark is dropped.

    Raises:
        DataError: The bytes are not UTF-8 (the message gives the line and byte).
    """
    raw = without_bom(raw, source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{source}:{line}: not valid UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8."
        ) from e
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"{source}:{line}: the file contains a NUL byte; is this a binary or UTF-16 file?")
    return text


def _looks_like_jsonl(text: str) -> bool:
    """True when the text is several JSON values, one per line (not one SQuAD document)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return e.msg == "Extra data" and text[: e.pos].count("\n") >= 1 and text[e.pos - 1] == "\n"
    except RecursionError:
        return False
    return False


def _kind(value: Any) -> str:
    """The JSON type of a value in words, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"the number {value!r}"


def _preview(text: str) -> str:
    """``text`` quoted, cut to a readable length."""
    return repr(text) if len(text) <= _PREVIEW else repr(text[:_PREVIEW]) + "..."


class _Reader:
    """Collects validated examples; one instance per file."""

    def __init__(self, source: str, labelled: bool, allow_no_answer: bool, max_examples: int | None):
        self.source = source
        self.labelled = labelled
        self.allow_no_answer = allow_no_answer
        self.max_examples = max_examples
        self.questions: list[str] = []
        self.contexts: list[str] = []
        self.answers: list[tuple[Answer, ...]] = []
        self.ids: list[str] = []
        self.articles: list[str] = []
        self.rows: list[int] = []
        self.locations: list[str] = []
        self._seen_ids: dict[str, str] = {}

    @property
    def full(self) -> bool:
        return self.max_examples is not None and len(self.questions) >= self.max_examples

    def examples(self) -> QAExamples:
        return QAExamples(
            questions=self.questions,
            contexts=self.contexts,
            answers=self.answers if self.labelled else None,
            ids=self.ids,
            articles=self.articles,
            source=self.source,
            rows=self.rows,
            locations=self.locations,
        )

    # --- SQuAD JSON -----------------------------------------------------------------------

    def read_squad(self, text: str) -> None:
        source = self.source
        try:
            document = json.loads(text)
        except json.JSONDecodeError as e:
            ends_early = not text[e.pos :].strip() or e.msg.startswith("Unterminated string")
            truncated = "; the file ends too early (is it truncated?)" if ends_early else ""
            raise DataError(f"{source}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}){truncated}.") from e
        except RecursionError as e:
            raise DataError(
                f"{source}: the JSON is nested too deeply to read (SQuAD JSON nests data > paragraphs "
                "> qas > answers, 6 levels); is this a SQuAD file?"
            ) from e
        if not isinstance(document, dict) or "data" not in document:
            found = (
                f"an object with keys {', '.join(map(str, document)) or '(none)'}"
                if isinstance(document, dict)
                else _kind(document)
            )
            raise DataError(
                f'{source}: expected SQuAD JSON, an object {{"data": [articles]}}; found {found}. '
                "JSON Lines files hold one object per line (use the .jsonl extension or --format jsonl)."
            )
        articles = self._list(document["data"], "data", f"{source}: field `data`")
        number = 0
        for a, article in enumerate(articles):
            path = f"data[{a}]"
            where = f"{source}: {path}"
            self._object(article, where, "an article")
            title = article.get("title", "")
            if not isinstance(title, (str, int)) or isinstance(title, bool):
                raise DataError(f"{where}: field `title` is {_kind(title)}; expected a string.")
            article_key = f"{a}: {title}"
            paragraphs = self._list(self._field(article, "paragraphs", where), "paragraphs", where)
            for p, paragraph in enumerate(paragraphs):
                path_p = f"{path}.paragraphs[{p}]"
                where_p = f"{source}: {path_p}"
                self._object(paragraph, where_p, "a paragraph")
                context = self._context(self._field(paragraph, "context", where_p), "context", where_p)
                qas = self._list(self._field(paragraph, "qas", where_p), "qas", where_p)
                for q, qa in enumerate(qas):
                    if self.full:
                        return
                    number += 1
                    location = f"{source}: {path_p}.qas[{q}]"
                    self._object(qa, location, "a question")
                    qid = self._id(qa.get("id"), location, default=f"{path_p}.qas[{q}]")
                    where_q = f"{location} (id {qid!r})"
                    question = self._question(self._field(qa, "question", where_q), "question", where_q)
                    answers = self._answers(qa, "answers", context, where_q) if self.labelled else ()
                    self._add(question, context, answers, qid, article_key, number, location)

    # --- JSON Lines -----------------------------------------------------------------------

    def read_jsonl(self, text: str, question_field: str, context_field: str, answers_field: str) -> None:
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            if self.full:
                return
            location = f"{self.source}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{location}: not valid JSON ({e.msg} at character {e.colno}); "
                    "a JSON Lines file holds one JSON object per line."
                ) from e
            except RecursionError as e:
                raise DataError(f"{location}: the JSON object is nested too deeply to read.") from e
            if not isinstance(record, dict):
                raise DataError(
                    f"{location}: expected a JSON object with fields `{question_field}`, `{context_field}`"
                    f"{f', `{answers_field}`' if self.labelled else ''}; found {_kind(record)}."
                )
            qid = self._id(record.get("id"), location, default=f"line {line_no}")
            where = location if "id" not in record else f"{location} (id {qid!r})"
            question = self._question(self._field(record, question_field, where), question_field, where)
            context = self._context(self._field(record, context_field, where), context_field, where)
            answers = self._answers(record, answers_field, context, where) if self.labelled else ()
            title = record.get("title")
            if title is not None and (not isinstance(title, (str, int)) or isinstance(title, bool)):
                raise DataError(f"{where}: field `title` is {_kind(title)}; expected a string.")
            article = f"title: {title}" if title is not None else f"context: {context}"
            self._add(question, context, answers, qid, article, line_no, location)

    # --- shared checks --------------------------------------------------------------------

    def _add(self, question, context, answers, qid, article, row, location) -> None:
        if qid in self._seen_ids:
            raise DataError(
                f"{location}: question id {qid!r} was already used at {self._seen_ids[qid]}; "
                "ids must be unique."
            )
        self._seen_ids[qid] = location
        self.questions.append(question)
        self.contexts.append(context)
        self.answers.append(answers)
        self.ids.append(qid)
        self.articles.append(article)
        self.rows.append(row)
        self.locations.append(location)

    @staticmethod
    def _object(value: Any, where: str, what: str) -> None:
        if not isinstance(value, dict):
            raise DataError(f"{where}: expected {what} (a JSON object); found {_kind(value)}.")

    @staticmethod
    def _list(value: Any, field: str, where: str) -> list:
        if not isinstance(value, list):
            raise DataError(f"{where}: field `{field}` is {_kind(value)}; expected a list.")
        return value

    @staticmethod
    def _field(record: dict, field: str, where: str) -> Any:
        if field not in record:
            found = ", ".join(f"`{key}`" for key in record) or "(none)"
            raise DataError(f"{where}: field `{field}` is missing. Fields found: {found}")
        return record[field]

    @staticmethod
    def _text(value: Any, field: str, where: str) -> str:
        if not isinstance(value, str):
            raise DataError(f"{where}: field `{field}` is {_kind(value)}; expected a string.")
        bad = next((ch for ch in value if "\ud800" <= ch <= "\udfff"), None)
        if bad is not None:
            raise DataError(
                f"{where}: field `{field}` holds a lone surrogate U+{ord(bad):04X}, which is not text."
            )
        return value

    def _context(self, value: Any, field: str, where: str) -> str:
        context = self._text(value, field, where)
        if not context.strip():
            raise DataError(
                f"{where}: field `{field}` is empty; every question needs a context to answer from."
            )
        return context

    def _question(self, value: Any, field: str, where: str) -> str:
        question = self._text(value, field, where).strip()
        if not question:
            raise DataError(f"{where}: field `{field}` is empty.")
        return question

    @staticmethod
    def _id(value: Any, where: str, default: str) -> str:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise DataError(f"{where}: field `id` is {_kind(value)}; expected a string.")
        value = str(value)
        if not value.strip():
            raise DataError(f"{where}: field `id` is empty.")
        return value

    def _answers(self, record: dict, field: str, context: str, where: str) -> tuple[Answer, ...]:
        """The validated reference answers of one question record."""
        impossible = record.get("is_impossible", False)
        if not isinstance(impossible, bool):
            raise DataError(f"{where}: field `is_impossible` is {_kind(impossible)}; expected true or false.")
        if impossible and not self.allow_no_answer:
            raise DataError(
                f"{where}: the question has no answer (is_impossible: true, SQuAD 2.0); pass "
                "--allow-no-answer to train and evaluate with unanswerable questions."
            )
        if field not in record and impossible:
            return ()
        value = self._field(record, field, where)
        if isinstance(value, dict):
            answers = self._answer_columns(value, field, where)
        else:
            items = self._list(value, field, where)
            answers = []
            for i, item in enumerate(items):
                self._object(item, f"{where}: field `{field}[{i}]`", 'an answer {"text", "answer_start"}')
                text = self._field(item, "text", f"{where}: {field}[{i}]")
                start = self._field(item, "answer_start", f"{where}: {field}[{i}]")
                answers.append((f"{field}[{i}]", text, start))
        if impossible and answers:
            raise DataError(
                f"{where}: field `is_impossible` is true but `{field}` holds {len(answers)} answer(s); "
                "an unanswerable question has an empty answer list."
            )
        if not answers and not self.allow_no_answer:
            raise DataError(
                f"{where}: field `{field}` is empty: the question has no answer. Every question needs one, "
                "unless --allow-no-answer is given (SQuAD 2.0)."
            )
        return tuple(self._answer(name, text, start, context, where) for name, text, start in answers)

    def _answer_columns(self, value: dict, field: str, where: str) -> list[tuple[str, Any, Any]]:
        """Answers given as ``{"text": [...], "answer_start": [...]}``."""
        texts = self._list(self._field(value, "text", f"{where}: {field}"), f"{field}.text", where)
        starts = self._list(
            self._field(value, "answer_start", f"{where}: {field}"), f"{field}.answer_start", where
        )
        if len(texts) != len(starts):
            raise DataError(
                f"{where}: field `{field}` has {len(texts)} texts but {len(starts)} answer_start offsets; "
                "they must pair up."
            )
        return [
            (f"{field}.text[{i}]", text, start)
            for i, (text, start) in enumerate(zip(texts, starts, strict=True))
        ]

    def _answer(self, name: str, text: Any, start: Any, context: str, where: str) -> Answer:
        """One validated answer: ``context[start:start + len(text)] == text``."""
        text_field = name if name.endswith("]") and ".text[" in name else f"{name}.text"
        start_field = name.replace(".text[", ".answer_start[") if ".text[" in name else f"{name}.answer_start"
        if not isinstance(text, str):
            raise DataError(f"{where}: field `{text_field}` is {_kind(text)}; expected a string.")
        if not text.strip():
            raise DataError(
                f"{where}: field `{text_field}` is empty; an answer is a non-empty span of the context."
            )
        if isinstance(start, float) and start.is_integer():
            start = int(start)
        if isinstance(start, bool) or not isinstance(start, int):
            raise DataError(
                f"{where}: field `{start_field}` is {_kind(start)}; expected a character offset (an integer)."
            )
        if not 0 <= start <= len(context) - len(text):
            raise DataError(
                f"{where}: field `{start_field}` is {start}, but the answer {_preview(text)} "
                f"({len(text)} characters) must start between 0 and {len(context) - len(text)} to fit in the "
                f"context ({len(context)} characters)."
            )
        found = context[start : start + len(text)]
        if found != text:
            elsewhere = context.find(text)
            hint = (
                f"; the text occurs at offset {elsewhere}"
                if elsewhere >= 0
                else "; the text does not occur in the context"
            )
            raise DataError(
                f"{where}: field `{text_field}` {_preview(text)} is not at {start_field.rsplit('.', 1)[-1]} "
                f"{start} of the context (found {_preview(found)}){hint}."
            )
        return Answer(text=text, start=start)
