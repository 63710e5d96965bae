"""SQuAD scores: exact match and F1 of predicted answer texts against the references.

**Metrics.** Exact match and F1 in percent, with the official SQuAD normalization
(lower case, no punctuation, no articles ``a an the``, single spaces), the maximum over
the reference answers; a question without references counts as answered correctly only
by the empty answer (SQuAD 2.0).

>>> normalize_answer("The  Denver Broncos!")
'denver broncos'
>>> squad_metrics(["Denver Broncos", ""], [["the Broncos"], []])["exact_match"]
50.0
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

import numpy as np

from tfft.data.squad import QAExamples
from tfft.errors import ConfigError

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalization: lower case, no punctuation, articles or extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalized prediction equals the normalized reference, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1(prediction: str, reference: str) -> float:
    """Token-level F1 of the normalized answers (SQuAD 2.0 rule: empty vs empty is 1)."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = collections.Counter(predicted) & collections.Counter(expected)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """Exact match and F1 in percent, each the maximum over a question's references.

    Args:
        predictions: the predicted answer of each question ("" for no answer).
        references: the reference answer texts of each question (empty: no answer).

    Returns:
        ``{"exact_match", "f1", "examples"}``, plus ``has_answer_*`` and ``no_answer_*``
        figures when some questions have no reference answer.
    """
    if len(predictions) != len(references):
        raise ValueError(f"squad_metrics: {len(predictions)} predictions but {len(references)} references.")
    exact, overlap, answerable = [], [], []
    for prediction, texts in zip(predictions, references, strict=True):
        texts = list(texts) or [""]
        exact.append(max(exact_match(prediction, text) for text in texts))
        overlap.append(max(f1(prediction, text) for text in texts))
        answerable.append(any(normalize_answer(text) for text in texts))
    exact_arr, f1_arr, has = np.array(exact), np.array(overlap), np.array(answerable, bool)
    percent = lambda values: float(100.0 * values.mean()) if len(values) else 0.0  # noqa: E731
    metrics = {"exact_match": percent(exact_arr), "f1": percent(f1_arr), "examples": len(predictions)}
    if not has.all():
        metrics.update(
            {
                "has_answer_exact_match": percent(exact_arr[has]),
                "has_answer_f1": percent(f1_arr[has]),
                "has_answer_examples": int(has.sum()),
                "no_answer_exact_match": percent(exact_arr[~has]),
                "no_answer_f1": percent(f1_arr[~has]),
                "no_answer_examples": int((~has).sum()),
            }
        )
    return metrics


def reference_texts(examples: QAExamples) -> list[list[str]]:
    """The reference answer texts of each labelled example."""
    if examples.answers is None:
        raise ConfigError(f"{examples.source}: the examples have no reference answers to score against.")
    return [[answer.text for answer in answers] for answers in examples.answers]
