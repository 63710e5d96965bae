"""``--task qa`` itself: reading SQuAD data, the head, batches of windows, predictions,
EM/F1 evaluation and exports (see :mod:`tfft.tasks.qa` for how the pieces fit).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from tfft.data.squad import QA_FORMATS, Answer, QAExamples, read_qa_examples
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.losses import span_loss
from tfft.preprocess import token_dataset
from tfft.tasks.base import Task
from tfft.tasks.qa.decode import Span, decode_spans
from tfft.tasks.qa.layers import MASKED_LOGIT, SpanAccuracy, SpanLogits, masks_question
from tfft.tasks.qa.metrics import reference_texts, squad_metrics
from tfft.tasks.qa.options import QAOptions
from tfft.tasks.qa.serving import QAServing
from tfft.tasks.qa.windows import TokenizedText, WindowPlan, Windows, make_windows, tokenize_texts
from tfft.tokenization import Encoded, TextEncoder

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Prepared:
    """Examples turned into windows for one encoder and plan."""

    windows: Windows
    contexts: list[TokenizedText]


def prepare(encoder: TextEncoder, plan: WindowPlan, examples: QAExamples, labelled: bool) -> Prepared:
    """Tokenize questions and contexts and cut the windows (cached on ``examples``)."""
    cache = examples.__dict__.setdefault("_qa_cache", {})
    tokens_key = ("tokens", id(encoder))
    if tokens_key not in cache:
        cache[tokens_key] = (
            tokenize_texts(encoder, examples.contexts),
            tokenize_texts(encoder, examples.questions),
        )
    contexts, questions = cache[tokens_key]
    key = ("windows", id(encoder), plan, labelled)
    if key not in cache:
        answers = examples.answers if labelled else None
        windows = make_windows(
            plan, questions, contexts, answers, examples.locations, encoder.uses_token_types
        )
        cache[key] = Prepared(windows, contexts)
    return cache[key]


def _logits_of(call, batches: tf.data.Dataset, count: int, max_length: int) -> np.ndarray:
    """``[windows, max_length, 2]`` float32 logits of every window (padding: MASKED_LOGIT)."""
    logits = np.full([count, max_length, 2], MASKED_LOGIT, np.float32)
    row = 0
    for features in batches:
        output = np.asarray(call(features), np.float32)
        logits[row : row + len(output), : output.shape[1]] = output
        row += len(output)
    return logits


def _predict_spans(
    call,
    encoder: TextEncoder,
    settings: dict,
    examples: QAExamples,
    *,
    max_length: int,
    batch_size: int,
    n_best: int,
) -> list[list[Span]]:
    """The ``n_best`` answers of each question, decoded in Python.

    Args:
        call: features of a batch of windows -> ``[windows, length, 2]`` start and end logits
            (an in-memory model, or an export's ``predict_ids`` signature).
        encoder: the model's text encoder.
        settings: the task settings of the model.
        examples: the questions and contexts.
        max_length: the longest sequence.
        batch_size: windows per call.
        n_best: how many distinct answers to list per question.
    """
    plan = WindowPlan.from_settings(encoder, settings, max_length)
    prepared = prepare(encoder, plan, examples, labelled=False)
    windows = prepared.windows
    batches = token_dataset(
        Encoded(windows.input_ids, windows.token_type_ids),
        batch_size=batch_size,
        max_length=max_length,
        pad_id=encoder.template.pad_id,
    )
    logits = _logits_of(call, batches, len(windows), max_length)
    return decode_spans(
        windows,
        logits[..., 0],
        logits[..., 1],
        examples.contexts,
        prepared.contexts,
        max_answer_length=int(settings["max_answer_length"]),
        n_best=n_best,
        allow_no_answer=bool(settings["allow_no_answer"]),
    )


class QATask(Task):
    """``--task qa``: extractive question answering (SQuAD v1.1/v2.0), EM and F1.

    Settings: ``doc_stride``, ``max_answer_length``, ``n_best`` and ``allow_no_answer``
    (see :mod:`tfft.tasks.qa.windows` and :mod:`tfft.tasks.qa.decode`); ``labels`` is empty.

    Serving (raw text in, when the tokenizer runs in the graph): ``serving_default`` takes
    ``question`` and ``context`` (tf.string ``[batch]``) and returns ``answer`` (tf.string),
    ``start`` and ``end`` (int32 character offsets into the context, ``end`` exclusive, -1
    for no answer) and ``score`` (float32). The windowing happens in the graph: a long
    context becomes several windows, all scored in one model call. ``predict_ids`` takes
    the windows' ``input_ids``, ``attention_mask``, ``token_type_ids`` and returns
    ``start_logits`` and ``end_logits`` (float32 ``[windows, length]``); exports whose
    tokenizer cannot run in the graph (byte-level BPE) have only that signature, and
    ``tfft predict``/``evaluate`` cut the windows and decode in Python.
    """

    name = "qa"
    default_monitor = "val_loss"
    headline = ("examples", "exact_match", "f1")
    token_level = True
    token_budget_batches = True

    # --- data -----------------------------------------------------------------------------
    def read(self, source, config, *, labelled=True, option="--train", max_examples=None) -> QAExamples:
        source = str(source)
        if source.startswith("tfds:"):
            raise ConfigError(
                f"{option} {source}: question answering reads SQuAD JSON or JSON Lines files, not TFDS."
            )
        data_format = config.data.format
        if data_format is not None and data_format not in QA_FORMATS:
            raise ConfigError(
                f"--format {data_format} cannot hold question-answering data; use squad or jsonl. "
                f"Received: format={data_format!r}"
            )
        task = config.task
        return read_qa_examples(
            source,
            labelled=labelled,
            allow_no_answer=task.allow_no_answer,
            format=data_format,
            question_field=task.question_column,
            context_field=task.context_column,
            answers_field=task.answers_column,
            max_examples=max_examples,
            option=option,
        )

    def settings_from_data(self, train, config) -> dict:
        return {"labels": [], **config.task.saved()}

    def settings_from_args(self, label_names, num_labels, options) -> dict:
        if label_names or num_labels:
            raise ConfigError(
                "task='qa' has no labels: give no `label_names` or `num_labels`. "
                f"Received: label_names={label_names!r}, num_labels={num_labels!r}"
            )
        return {"labels": [], **QAOptions.from_api(options, self.name).saved()}

    def examples_from_cli(self, texts, pairs) -> QAExamples:
        if pairs is None or len(pairs) != len(texts):
            raise ConfigError(
                "Question answering needs a context for every question: --text QUESTION --text-pair CONTEXT."
            )
        count = len(texts)
        return QAExamples(
            questions=[str(text).strip() for text in texts],
            contexts=list(pairs),
            answers=None,
            ids=[str(i) for i in range(1, count + 1)],
            articles=[str(i) for i in range(1, count + 1)],
            source="--text",
            rows=list(range(1, count + 1)),
            locations=[f"--text {i}" for i in range(1, count + 1)],
        )

    # --- model ------------------------------------------------------------------------------
    def head(self, backbone, inputs, settings, pooling, dropout):
        hidden = backbone.sequence(inputs)
        hidden = keras.layers.Dropout(dropout, name="head_dropout")(hidden)
        logits = keras.layers.Dense(
            2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="qa_outputs"
        )(hidden)
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
        return SpanLogits(masks_question(backbone.encoder), dtype="float32", name="span_logits")(
            logits, inputs["attention_mask"], inputs["token_type_ids"]
        )

    def loss(self, spec):
        return span_loss()

    def train_metrics(self, spec) -> list:
        return [SpanAccuracy()]

    def plan(self, encoder: TextEncoder, settings: dict, max_length: int) -> WindowPlan:
        return WindowPlan.from_settings(encoder, settings, max_length)

    def dataset(
        self,
        model,
        examples,
        *,
        batch_size,
        max_length,
        training=False,
        seed=None,
        labelled=True,
        config=None,
        batching=None,
    ) -> tf.data.Dataset:
        encoder = model.tfft_spec.backbone.encoder
        prepared = prepare(
            encoder, self.plan(encoder, model.tfft_spec.settings, max_length), examples, labelled
        )
        windows = prepared.windows
        if training:
            logger.info(
                "%d questions -> %d windows (%d hold the answer)",
                len(examples),
                len(windows),
                int(np.count_nonzero(windows.start_positions)) if labelled else 0,
            )
        targets = np.stack([windows.start_positions, windows.end_positions], 1) if labelled else None
        return token_dataset(
            Encoded(windows.input_ids, windows.token_type_ids),
            targets,
            batch_size=batch_size,
            max_length=max_length,
            pad_id=encoder.template.pad_id,
            training=training,
            seed=seed,
            batching=batching,
        )

    def make_dataset(
        self,
        model,
        texts,
        labels,
        text_pairs,
        *,
        batch_size=32,
        max_length=128,
        training=False,
        seed=None,
        batching=None,
    ) -> tf.data.Dataset:
        examples = self.examples_from_cli(list(texts), None if text_pairs is None else list(text_pairs))
        examples.source = "make_dataset"
        examples.locations = [f"texts[{i}]" for i in range(len(examples))]
        if labels is not None:
            if len(labels) != len(examples):
                raise DataError(f"`labels` has {len(labels)} entries for {len(examples)} questions.")
            examples.answers = [
                _api_answers(label, context, f"labels[{i}]")
                for i, (label, context) in enumerate(zip(labels, examples.contexts, strict=True))
            ]
        return self.dataset(
            model,
            examples,
            batch_size=batch_size,
            max_length=max_length,
            training=training,
            seed=seed,
            labelled=labels is not None,
            batching=batching,
        )

    def predict_model(
        self, model, examples: QAExamples, max_length: int, batch_size: int = 32
    ) -> list[list[Span]]:
        """The n-best answers of an in-memory model for each question."""
        settings = model.tfft_spec.settings
        return _predict_spans(
            model.predict_on_batch,
            model.tfft_spec.backbone.encoder,
            settings,
            examples,
            max_length=max_length,
            batch_size=batch_size,
            n_best=int(settings["n_best"]),
        )

    def evaluate_model(self, model, examples, config) -> dict:
        spans = self.predict_model(model, examples, config.data.max_length, config.train.batch_size)
        return squad_metrics([best[0].text for best in spans], reference_texts(examples))

    # --- export ---------------------------------------------------------------------------
    def serving(self, model, max_length) -> tf.Module:
        return QAServing(model, max_length)

    def run_export(self, exported, examples: QAExamples, batch_size: int = 64) -> list[dict]:
        """The best answer of an export for each question (``answer``, ``start``, ``end``, ``score``)."""
        settings = exported.settings
        if exported.encoder is None:
            signature = exported.loaded.signatures["serving_default"]
            rows = []
            for first in range(0, len(examples), batch_size):
                out = signature(
                    question=tf.constant(examples.questions[first : first + batch_size], tf.string),
                    context=tf.constant(examples.contexts[first : first + batch_size], tf.string),
                )
                for i in range(len(out["answer"])):
                    rows.append(
                        {
                            "answer": out["answer"][i].numpy().decode("utf-8"),
                            "start": int(out["start"][i]),
                            "end": int(out["end"][i]),
                            "score": float(out["score"][i]),
                        }
                    )
            return rows
        signature = exported.loaded.signatures["predict_ids"]

        def call(features):
            out = signature(**{name: tf.cast(value, tf.int32) for name, value in features.items()})
            return np.stack([out["start_logits"].numpy(), out["end_logits"].numpy()], -1)

        spans = _predict_spans(
            call,
            exported.encoder,
            settings,
            examples,
            max_length=exported.max_length,
            batch_size=batch_size,
            n_best=1,
        )
        return [best[0].to_json() for best in spans]

    def evaluate_export(self, exported, examples, batch_size=64) -> dict:
        rows = self.run_export(exported, examples, batch_size)
        return squad_metrics([row["answer"] for row in rows], reference_texts(examples))

    def predict_export(self, exported, examples, batch_size=64) -> Iterator[dict]:
        rows = self.run_export(exported, examples, batch_size)
        for index, row in enumerate(rows):
            yield {"id": examples.ids[index], "question": examples.questions[index], **row}

    def format_metrics(self, metrics) -> list[str]:
        lines = [f"exact_match  {metrics['exact_match']:.2f}", f"f1           {metrics['f1']:.2f}"]
        for part in ("has_answer", "no_answer"):
            if f"{part}_examples" in metrics:
                lines.append(
                    f"  {part:<10} exact_match {metrics[f'{part}_exact_match']:.2f}  "
                    f"f1 {metrics[f'{part}_f1']:.2f}  ({metrics[f'{part}_examples']} questions)"
                )
        return lines


def _api_answers(label: Any, context: str, where: str) -> tuple[Answer, ...]:
    """Answers from :func:`tfft.make_dataset` labels: ``{"text": [...], "answer_start": [...]}``
    (or a list of ``{"text", "answer_start"}``), checked against the context."""
    if isinstance(label, dict):
        texts, starts = label.get("text"), label.get("answer_start")
        if (
            not isinstance(texts, (list, tuple))
            or not isinstance(starts, (list, tuple))
            or len(texts) != len(starts)
        ):
            raise DataError(
                f'{where}: expected {{"text": [...], "answer_start": [...]}} with lists of the same length. '
                f"Received: {label!r}"
            )
        pairs = list(zip(texts, starts, strict=True))
    elif isinstance(label, (list, tuple)) and all(isinstance(item, dict) for item in label):
        pairs = [(item.get("text"), item.get("answer_start")) for item in label]
    else:
        raise DataError(f'{where}: expected {{"text": [...], "answer_start": [...]}}. Received: {label!r}')
    answers = []
    for i, (text, start) in enumerate(pairs):
        if not isinstance(text, str) or isinstance(start, bool) or not isinstance(start, int):
            raise DataError(
                f"{where}: answer {i} needs a string text and an integer answer_start. "
                f"Received: {text!r}, {start!r}"
            )
        if context[start : start + len(text)] != text or not text:
            raise DataError(
                f"{where}: answer {i} {text!r} is not at answer_start {start} of the context "
                f"(found {context[start : start + len(text)]!r})."
            )
        answers.append(Answer(text, start))
    return tuple(answers)


TASK = QATask()
