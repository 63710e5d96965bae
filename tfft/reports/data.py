"""Bias report on data: labels, duplicates, train/eval leakage, lengths, near-empty texts.

:func:`data_report` looks at the training examples (and the evaluation examples, if any)
of any task and returns a JSON-able report with one line per finding
(``report["findings"]``). ``tfft fit`` writes it to ``data_report.json`` in the run folder;
``tfft inspect`` prints it without training. Fields (per part, ``train`` / ``eval``):

* ``labels``: class counts (classify; multilabel: rows carrying each label), and
  ``imbalance_ratio`` = largest / smallest class count (classes seen in this part); above
  :data:`IMBALANCE_HINT` the finding points to ``--class-weights`` (classify). Regress: the
  targets' min / median / max instead (``targets``). Not computed for ner, qa, seq2seq.
* ``duplicates``: texts (the text and its pair, compared exactly after the reader's
  stripping) that occur more than once: ``texts`` distinct duplicated texts, ``extra_rows``
  rows beyond their first occurrence, ``conflicting_labels`` duplicated texts with more than
  one label, and a few ``examples`` with their ``file:line``.
* ``lengths``: ``unit`` (``tokens`` with a tokenizer, counting special tokens; else
  ``words``, whitespace-separated, text and pair together), ``min``, ``median``, ``p95``
  (numpy percentiles, linear interpolation), ``max``, and ``truncated``: rows longer than
  ``max_length`` (with words a lower bound, since a word is at least one token).
* ``near_empty``: texts (or pairs) of at most :data:`NEAR_EMPTY_CHARS` characters.

``leakage``: evaluation rows whose text (and pair) also occurs in the training data.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfft.errors import DataError

IMBALANCE_HINT = 3.0
NEAR_EMPTY_CHARS = 2
SHOWN = 3  # examples listed per finding
TRUE_VALUES = {"1", "1.0", "true", "yes"}

TokenCounter = Callable[[Sequence[str], Sequence[str] | None], Sequence[int]]


@dataclasses.dataclass
class Rows:
    """The rows of any examples object in one shape.

    Attributes:
        source: where they came from.
        rows: the line (or record) of each row.
        parts: the texts of each row (the text, and its pair / context / second side).
        labels: the label names of each row (one for classify, any number for multilabel),
            or None when the task has no class labels.
        targets: the numeric targets of each row (regress), or None.
    """

    source: str
    rows: list[int]
    parts: list[tuple[str, ...]]
    labels: list[tuple[str, ...]] | None = None
    targets: list[tuple[float, ...]] | None = None

    def where(self, index: int) -> str:
        return f"{self.source}:{self.rows[index]}"


def rows_of(examples: Any, task: str) -> Rows:
    """Texts and labels of the examples of ``task`` (TextExamples, TaggedExamples, QA, pairs)."""
    if hasattr(examples, "questions"):  # QAExamples
        parts = list(zip(examples.questions, examples.contexts, strict=True))
        return Rows(examples.source, list(examples.rows), parts)
    if hasattr(examples, "sources"):  # PairExamples (summarize, translate)
        return Rows(examples.source, list(examples.rows), [(text,) for text in examples.sources])
    if hasattr(examples, "words"):  # TaggedExamples (ner)
        return Rows(examples.source, list(examples.rows), [(text,) for text in examples.texts])
    pairs = examples.pairs
    parts = [(text,) for text in examples.texts] if pairs is None else list(zip(examples.texts, pairs))
    rows = Rows(examples.source, list(examples.rows), parts)
    if task == "regress":
        rows.targets = _targets(examples)
    elif task == "classify" and examples.labels is not None:
        rows.labels = [(label,) for label in examples.labels]
    elif task == "multilabel" and examples.label_lists is not None:
        rows.labels = _label_sets(examples)
    return rows


def _targets(examples: Any) -> list[tuple[float, ...]] | None:
    values = examples.label_lists or (None if examples.labels is None else [(v,) for v in examples.labels])
    if values is None:
        return None
    columns = examples.label_columns or ("label",)
    targets = []
    for index, row in enumerate(values):
        try:
            targets.append(tuple(float(value) for value in row))
        except ValueError:
            bad = next(v for v in row if not _is_number(v))
            column = columns[list(row).index(bad)] if len(columns) == len(row) else columns[0]
            raise DataError(
                f"{examples.source}:{examples.rows[index]}: column `{column}` holds {bad!r}; "
                "regression targets must be numbers."
            ) from None
    return targets


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _label_sets(examples: Any) -> list[tuple[str, ...]]:
    """Multi-label rows as label names: listed labels, or the 0/1 columns that are on."""
    if examples.label_separator is not None:
        return [tuple(labels) for labels in examples.label_lists]
    columns = examples.label_columns
    return [
        tuple(name for name, value in zip(columns, values, strict=True) if value.lower() in TRUE_VALUES)
        for values in examples.label_lists
    ]


# --- the findings ------------------------------------------------------------------------


def label_section(rows: Rows) -> dict | None:
    """Class counts and imbalance ratio (or target statistics for regression)."""
    if rows.targets is not None:
        first = np.asarray([values[0] for values in rows.targets], np.float64)
        return {
            "targets": {
                "min": float(first.min()),
                "median": float(np.median(first)),
                "max": float(first.max()),
                "distinct": int(len(np.unique(first))),
            }
        }
    if rows.labels is None:
        return None
    counts = Counter(label for labels in rows.labels for label in labels)
    ordered = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    ratio = max(counts.values()) / min(counts.values()) if counts else None
    return {"counts": ordered, "classes": len(counts), "imbalance_ratio": ratio}


def _text(parts: tuple[str, ...]) -> str:
    return " ||| ".join(parts)


def duplicate_section(rows: Rows) -> dict:
    """Texts that occur more than once, with their lines."""
    where: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for index, parts in enumerate(rows.parts):
        where[parts].append(index)
    repeated = {parts: indices for parts, indices in where.items() if len(indices) > 1}
    conflicts = 0
    if rows.labels is not None:
        conflicts = sum(1 for indices in repeated.values() if len({rows.labels[i] for i in indices}) > 1)
    examples = [
        {"text": _text(parts), "rows": [rows.where(i) for i in indices[:SHOWN]], "count": len(indices)}
        for parts, indices in sorted(repeated.items(), key=lambda item: (-len(item[1]), item[1][0]))[:SHOWN]
    ]
    return {
        "texts": len(repeated),
        "extra_rows": sum(len(indices) - 1 for indices in repeated.values()),
        "conflicting_labels": conflicts if rows.labels is not None else None,
        "examples": examples,
    }


def leakage_section(train: Rows, evaluation: Rows) -> dict:
    """Evaluation rows whose text also occurs in the training data."""
    first_in_train: dict[tuple[str, ...], int] = {}
    for index, parts in enumerate(train.parts):
        first_in_train.setdefault(parts, index)
    leaked = [index for index, parts in enumerate(evaluation.parts) if parts in first_in_train]
    return {
        "rows": len(leaked),
        "share": len(leaked) / len(evaluation.parts) if evaluation.parts else 0.0,
        "distinct_texts": len({evaluation.parts[i] for i in leaked}),
        "examples": [
            {
                "text": _text(evaluation.parts[i]),
                "eval": evaluation.where(i),
                "train": train.where(first_in_train[evaluation.parts[i]]),
            }
            for i in leaked[:SHOWN]
        ],
    }


def length_section(rows: Rows, max_length: int | None, token_lengths: Sequence[int] | None) -> dict:
    """Length distribution (tokens when counted, else words) and rows over ``max_length``."""
    if token_lengths is not None:
        unit, lengths = "tokens", np.asarray(token_lengths, np.int64)
    else:
        unit = "words"
        lengths = np.asarray([sum(len(part.split()) for part in parts) for parts in rows.parts], np.int64)
    section = {
        "unit": unit,
        "min": int(lengths.min()),
        "median": float(np.percentile(lengths, 50)),
        "p95": float(np.percentile(lengths, 95)),
        "max": int(lengths.max()),
        "mean": float(lengths.mean()),
        "max_length": max_length,
        "truncated": None,
    }
    if max_length is not None:
        over = int(np.sum(lengths > max_length))
        section["truncated"] = {"rows": over, "share": over / len(lengths), "lower_bound": unit == "words"}
        section["mean_kept"] = float(np.minimum(lengths, max_length).mean())  # after truncation
    return section


def near_empty_section(rows: Rows) -> dict:
    """Texts (or pairs) of at most :data:`NEAR_EMPTY_CHARS` characters."""
    found = [
        index
        for index, parts in enumerate(rows.parts)
        if any(len(part.strip()) <= NEAR_EMPTY_CHARS for part in parts)
    ]
    return {
        "max_chars": NEAR_EMPTY_CHARS,
        "rows": len(found),
        "examples": [{"text": _text(rows.parts[i]), "row": rows.where(i)} for i in found[:SHOWN]],
    }


def part_report(rows: Rows, max_length: int | None, token_lengths: Sequence[int] | None = None) -> dict:
    """Every section for one part (train or eval)."""
    return {
        "source": rows.source,
        "rows": len(rows.parts),
        "labels": label_section(rows),
        "duplicates": duplicate_section(rows),
        "lengths": length_section(rows, max_length, token_lengths),
        "near_empty": near_empty_section(rows),
    }


def data_report(
    train: Any,
    evaluation: Any | None,
    task: str,
    *,
    max_length: int | None = None,
    count_tokens: TokenCounter | None = None,
) -> dict:
    """The bias report on data (see the module docstring for the fields).

    Args:
        train: the training examples (any task's examples object).
        evaluation: the evaluation examples, or None.
        task: the task name (how labels are read).
        max_length: ``--max-length``, for the truncation share; None leaves it out.
        count_tokens: ``(texts, pairs) -> lengths in tokens``; None measures words.

    Returns:
        ``{"task", "train", "eval", "leakage", "findings"}``.
    """
    parts = {"train": rows_of(train, task)}
    if evaluation is not None:
        parts["eval"] = rows_of(evaluation, task)
    report: dict[str, Any] = {"task": task}
    for name, rows in parts.items():
        tokens = None
        if count_tokens is not None:
            texts = [p[0] for p in rows.parts]
            pairs = [p[1] for p in rows.parts] if len(rows.parts[0]) > 1 else None
            tokens = list(count_tokens(texts, pairs))
        report[name] = part_report(rows, max_length, tokens)
    report.setdefault("eval", None)
    report["leakage"] = leakage_section(parts["train"], parts["eval"]) if "eval" in parts else None
    report["findings"] = findings(report)
    return report


# --- one line per finding ----------------------------------------------------------------


def _quote(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _label_lines(name: str, section: dict | None, task: str) -> list[str]:
    if section is None:
        return [f"{name}: label distribution not computed for --task {task}"]
    if "targets" in section:
        t = section["targets"]
        return [
            f"{name}: targets min {t['min']:g}, median {t['median']:g}, max {t['max']:g} "
            f"({t['distinct']} distinct values)"
        ]
    if not section["counts"]:
        return [f"{name}: no labels at all"]
    counts = ", ".join(f"{label} {count}" for label, count in section["counts"].items())
    ratio = section["imbalance_ratio"]
    line = f"{name}: labels {counts}; imbalance ratio {ratio:.2f} (largest / smallest class)"
    if ratio > IMBALANCE_HINT:
        line += f": above {IMBALANCE_HINT:g}"
        line += ", consider --class-weights auto" if task == "classify" else ""
    return [line]


def _part_lines(name: str, part: dict, task: str) -> list[str]:
    lines = [f"{name}: {part['rows']} rows from {part['source']}"]
    lines += _label_lines(name, part["labels"], task)
    dup = part["duplicates"]
    if dup["texts"]:
        shown = "; ".join(f"{_quote(e['text'])} at {', '.join(e['rows'])}" for e in dup["examples"])
        conflicts = ""
        if dup["conflicting_labels"]:
            conflicts = f", {dup['conflicting_labels']} of them with different labels"
        extra = f"{dup['extra_rows']} extra rows{conflicts}"
        lines.append(f"{name}: {dup['texts']} duplicated texts ({extra}), e.g. {shown}")
    else:
        lines.append(f"{name}: no duplicated texts")
    size = part["lengths"]
    line = (
        f"{name}: length in {size['unit']} min {size['min']}, median {size['median']:g}, "
        f"p95 {size['p95']:g}, max {size['max']}"
    )
    cut = size["truncated"]
    if cut is not None and cut["rows"] == 0:
        line += f"; none longer than --max-length {size['max_length']}"
    elif cut is not None:
        bound = "at least " if cut["lower_bound"] else ""
        line += (
            f"; {bound}{cut['rows']} rows ({cut['share']:.1%}) longer than --max-length "
            f"{size['max_length']} are truncated"
        )
    lines.append(line)
    empty = part["near_empty"]
    if empty["rows"]:
        shown = "; ".join(f"{_quote(e['text'])} at {e['row']}" for e in empty["examples"])
        limit = f"<= {empty['max_chars']} characters"
        lines.append(f"{name}: {empty['rows']} near-empty texts ({limit}), e.g. {shown}")
    return lines


def findings(report: dict) -> list[str]:
    """One line per finding, train first, then eval, then leakage."""
    lines = _part_lines("train", report["train"], report["task"])
    if report["eval"] is not None:
        lines += _part_lines("eval", report["eval"], report["task"])
    leak = report["leakage"]
    if leak is not None and leak["rows"]:
        shown = "; ".join(f"{_quote(e['text'])} at {e['eval']} = {e['train']}" for e in leak["examples"])
        lines.append(
            f"leakage: {leak['rows']} eval rows ({leak['share']:.1%}) have a text that is also in train, "
            f"e.g. {shown}"
        )
    elif leak is not None:
        lines.append("leakage: no eval text occurs in train")
    return lines
