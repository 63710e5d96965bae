"""``--task ner`` itself: reading tagged data, the head, batches of word pieces, predictions,
entity-level evaluation and exports (see :mod:`tfft.tasks.ner` for how the pieces fit).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfft.data import TableSpec, read_examples
from tfft.data.conll import (
    OUTSIDE,
    TaggedExamples,
    detect_scheme,
    entity_types,
    parse_tag,
    read_tagged,
    sort_tags,
    split_words,
    tag_ids,
)
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.losses import token_loss
from tfft.preprocess import Batching, by_length, length_order, ragged_rows, token_batches
from tfft.tasks.base import Task
from tfft.tasks.ner.entities import entities
from tfft.tasks.ner.metrics import EntityF1, class_weights, entity_metrics
from tfft.tasks.ner.options import NerOptions
from tfft.tasks.ner.serving import NerServing, export_entities, export_word_rows
from tfft.tasks.ner.words import IGNORE, PackedWords, pack_words, text_encoder, word_predictions, word_row

logger = logging.getLogger(__name__)


def token_label_dataset(
    packed: PackedWords,
    labels: list[np.ndarray] | None,
    weights: list[np.ndarray] | None,
    *,
    batch_size: int,
    max_length: int,
    pad_id: int,
    training: bool = False,
    seed: int | None = None,
    batching: Batching | None = None,
) -> tf.data.Dataset:
    """Batches of packed sentences with per-token labels and weights.

    Like :func:`tfft.preprocess.token_dataset` (length buckets, fixed training batch size or
    as ``batching`` says, evaluation and prediction in input order unless
    ``batching.by_length``), with one label and one weight per token.

    Returns:
        ``(features, labels, weights)`` batches (int32 and float32 ``[batch, length]``
        targets), or features alone when ``labels`` is None.
    """
    if labels is not None:
        labels, weights = ragged_rows(labels), ragged_rows(weights, np.float32)
    return token_batches(
        packed,
        labels,
        weights,
        label_padding=IGNORE,
        batch_size=batch_size,
        max_length=max_length,
        pad_id=pad_id,
        training=training,
        seed=seed,
        batching=batching,
    )


def _check_settings(tag_names: Sequence[str], where: str) -> list[str]:
    names = list(tag_names)
    if not names or isinstance(tag_names, str):
        raise ConfigError(f"{where} must be a non-empty list of tags. Received: {tag_names!r}")
    for tag in names:
        try:
            if not isinstance(tag, str):
                raise ValueError(tag)
            parse_tag(tag)
        except ValueError:
            raise ConfigError(
                f"{where}: {tag!r} is not a tag; tags are O or B-, I-, E-, S- followed by a type "
                f"(IOB1, IOB2, BIOES). Received: {names!r}"
            ) from None
    duplicates = sorted({tag for tag in names if names.count(tag) > 1})
    if duplicates:
        raise ConfigError(f"{where}: tags must be unique. Received duplicates: {', '.join(duplicates)}")
    if not entity_types(names):
        raise ConfigError(f"{where}: no entity tags (only O); NER needs at least one B-/I-/E-/S- tag.")
    return names


class NerTask(Task):
    """``--task ner``: one tag per word, entity-level metrics, entities with character offsets.

    Data: CoNLL files or JSON Lines with ``tokens`` and ``tags`` (``--tag-column`` for
    multi-column CoNLL files); for prediction also raw text (``--text``, or a CSV/TSV/JSON
    Lines column ``--text-column``), split into words by
    :func:`tfft.data.conll.split_words`.

    Settings: ``labels`` (the tags, id order), ``scheme`` (IOB1, IOB2 or BIOES),
    ``tag_column``, ``tokens_field``, ``tags_field``.

    Export signatures (see :class:`~tfft.tasks.ner.serving.NerServing`):
    ``serving_default`` (text in, entities out), ``predict_words`` (pre-split words in,
    per-word tags out) and ``predict_ids``.
    """

    name = "ner"
    default_monitor = "val_entity_f1"
    headline = ("examples", "precision", "recall", "f1", "truncated_words")
    token_level = True
    token_budget_batches = True
    headerless_tables = True  # CSV/TSV texts for prediction; tagged files refuse --columns

    # --- data ---------------------------------------------------------------------------
    def read(self, source, config, *, labelled=True, option="--train", max_examples=None):
        file_format = config.data.format
        source = str(source)
        suffix = Path(source).suffix.lower()
        if file_format is None:
            if suffix in (".csv", ".tsv", ".tab"):
                file_format = "tsv" if suffix != ".csv" else "csv"
            elif suffix in (".jsonl", ".json", ".ndjson"):
                file_format = "jsonl"
            else:
                file_format = "conll"
        if file_format not in ("conll", "jsonl", "csv", "tsv"):
            raise ConfigError(
                f"--task ner reads CoNLL or JSON Lines files (csv/tsv text columns for prediction). "
                f"Received: format={file_format!r}"
            )
        if file_format in ("csv", "tsv") or (
            file_format == "jsonl" and not labelled and not _has_field(source, config.task.tokens_field)
        ):
            if labelled:
                raise ConfigError(
                    f"{source}: tagged NER data must be CoNLL or JSON Lines ({config.task.tokens_field}/"
                    f"{config.task.tags_field} lists), not {file_format}."
                )
            texts = read_examples(
                source,
                TableSpec(
                    text_column=config.data.text_column, format=file_format, header=config.data.header()
                ),
                max_examples=max_examples,
                option=option,
            )
            return TaggedExamples.from_texts(texts.texts, texts.source, texts.rows)
        if config.data.columns is not None:
            raise ConfigError(
                f"{source}: --columns names the fields of CSV/TSV text files without a header row "
                f"(ner: for prediction); this is a {file_format} file. "
                f"Received: columns={config.data.columns!r}"
            )
        return read_tagged(
            source,
            file_format=file_format,
            labelled=labelled,
            tag_column=-1 if config.task.tag_column is None else config.task.tag_column,
            tokens_field=config.task.tokens_field,
            tags_field=config.task.tags_field,
            max_examples=max_examples,
            option=option,
        )

    def settings_from_data(self, train, config) -> dict:
        if config.data.text_pair_column is not None:
            raise ConfigError("--task ner tags single sentences; --text-pair-column does not apply.")
        tags = sort_tags(train.tag_counts())
        if not entity_types(tags):
            raise DataError(f"{train.source}: every tag is O; NER needs entity tags (B-PER, I-LOC, ...).")
        settings = {
            "labels": tags,
            "scheme": detect_scheme(train.tags),
            "tag_column": config.task.tag_column,
            "tokens_field": config.task.tokens_field,
            "tags_field": config.task.tags_field,
        }
        if config.train.batch_tokens is None:
            # What the token loss divides by per row (tfft.losses: a word weighs the same in any
            # batch). Token-budget batches hold about the same number of words each, not of rows:
            # their loss is the mean over the batch's own words.
            settings["words_per_sentence"] = round(sum(map(len, train.words)) / max(len(train.words), 1), 4)
        return settings

    def settings_from_args(self, label_names, num_labels, options) -> dict:
        NerOptions.from_api(options, self.name)
        if label_names is None:
            raise ConfigError(
                "task='ner' needs `label_names`: the tags, e.g. ['O', 'B-PER', 'I-PER']. "
                f"Received: num_labels={num_labels!r}"
            )
        names = _check_settings(label_names, "`label_names`")
        if num_labels is not None and num_labels != len(names):
            raise ConfigError(
                f"`num_labels` ({num_labels}) does not match `label_names` ({len(names)} tags). "
                f"Received: label_names={names!r}"
            )
        scheme = "BIOES" if any(parse_tag(tag)[0] in ("E", "S") for tag in names) else "IOB2"
        return {"labels": names, "scheme": scheme}

    def examples_from_cli(self, texts, pairs) -> TaggedExamples:
        if pairs is not None:
            raise ConfigError("--task ner tags single sentences; --text-pair does not apply.")
        return TaggedExamples.from_texts(list(texts), source="--text")

    # --- model ----------------------------------------------------------------------------
    def head(self, backbone, inputs, settings, pooling, dropout):
        hidden = backbone.sequence(inputs)
        hidden = keras.layers.Dropout(dropout, name="head_dropout")(hidden)
        logits = keras.layers.Dense(
            len(settings["labels"]),
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="tagger",
        )(hidden)
        return keras.layers.Activation("linear", dtype="float32", name="logits")(logits)

    def loss(self, spec):
        return token_loss(spec.settings.get("words_per_sentence"))

    def train_metrics(self, spec) -> list:
        return [EntityF1(spec.label_names)]

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
        settings = model.tfft_spec.settings
        encoder = text_encoder(model)
        packed = pack_words(encoder, examples.words, max_length)
        _log_truncation(packed, examples.source, max_length)
        labels = weights = None
        if labelled:
            tag_weights = None
            if training and config is not None and config.task.class_weights == "auto":
                tag_weights = class_weights(examples.tag_counts(), settings["labels"])
                shown = {
                    tag: round(float(w), 3) for tag, w in zip(settings["labels"], tag_weights, strict=True)
                }
                logger.info("Tag weights: %s", shown)
            labels, weights = packed.token_labels(tag_ids(examples, settings["labels"]), tag_weights)
        if batching is not None:  # random rows, not grouped by length (tfft.preprocess)
            batching = dataclasses.replace(batching, groups="none")
        return token_label_dataset(
            packed,
            labels,
            weights,
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
        if text_pairs is not None:
            raise DataError("task='ner' tags single sentences; `text_pairs` does not apply.")
        words = [
            [w for w, _, _ in split_words(t)] if isinstance(t, str) else [str(w) for w in t] for t in texts
        ]
        tags = None
        if labels is not None:
            if len(labels) != len(words):
                raise DataError(f"`labels` has {len(labels)} entries for {len(words)} sentences.")
            tags = [[str(tag) for tag in row] for row in labels]
            known = set(model.tfft_spec.settings["labels"])
            for index, (row_words, row_tags) in enumerate(zip(words, tags, strict=True)):
                if len(row_words) != len(row_tags):
                    raise DataError(
                        f"labels[{index}]: {len(row_tags)} tags for {len(row_words)} words; "
                        "give one tag per word."
                    )
                for position, tag in enumerate(row_tags):
                    if tag not in known:
                        raise DataError(
                            f"labels[{index}][{position}]: tag {tag!r} is not one of the model's tags: "
                            f"{', '.join(model.tfft_spec.settings['labels'])}"
                        )
        examples = TaggedExamples(words=words, tags=tags, source="labels", rows=list(range(len(words))))
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

    def predict_model(self, model, examples, batch_size: int = 64, max_length: int = 128) -> list[dict]:
        """Per-word tags and scores of an in-memory model (Python tokenization).

        Returns:
            For each sentence, in the input order, ``{"tags": [tag or None], "scores": [...],
            "truncated_words": n}``.
        """
        encoder = text_encoder(model)
        names = list(model.tfft_spec.settings["labels"])
        packed = pack_words(encoder, examples.words, max_length)
        # Batches of sentences of similar token lengths pad far less than the input order;
        # the rows go back to the input order below.
        data = token_label_dataset(
            packed,
            None,
            None,
            batch_size=batch_size,
            max_length=max_length,
            pad_id=encoder.template.pad_id,
            batching=Batching(by_length=True),
        )
        order = length_order(packed.lengths())
        rows: list[dict] = []
        for features in data:
            logits = model.predict_on_batch(features)
            probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1).numpy()
            for row in probabilities:
                index = int(order[len(rows)])
                ids, scores = word_predictions(row, packed.positions[index])
                rows.append(word_row(ids, scores, names, int(packed.truncated[index])))
        return [rows[k] for k in np.argsort(order)]  # as ExportedModel.run_sequence puts them back

    def evaluate_model(self, model, examples, config) -> dict:
        tag_ids(examples, model.tfft_spec.settings["labels"])  # unknown tags: a clear error first
        rows = self.predict_model(model, examples, config.train.batch_size, config.data.max_length)
        return _metrics(examples, rows)

    # --- export ---------------------------------------------------------------------------
    def serving(self, model, max_length) -> tf.Module:
        return NerServing(model, max_length)

    def evaluate_export(self, exported, examples, batch_size=64) -> dict:
        tag_ids(examples, exported.settings["labels"])
        examples = examples.select(by_length(examples.texts))  # see _metrics
        return _metrics(examples, list(export_word_rows(exported, examples, batch_size)))

    def predict_export(self, exported, examples, batch_size=64):
        if not examples.presplit and exported.encoder is None:
            # Raw text through the graph: splitting, tokenization and entities in the export.
            yield from export_entities(exported, examples, batch_size)
            return
        for index, row in enumerate(export_word_rows(exported, examples, batch_size)):
            found = entities(row["tags"], row["scores"], examples.texts[index], examples.spans[index])
            for entity in found:
                entity["score"] = round(entity["score"], 6)
            result = {"text": examples.texts[index]}
            if examples.presplit:
                result["words"] = examples.words[index]
                result["tags"] = [tag or "" for tag in row["tags"]]
            result.update({"entities": found, "truncated_words": row["truncated_words"]})
            yield result

    def format_metrics(self, metrics) -> list[str]:
        lines = [
            f"precision {metrics['precision']:.4f}",
            f"recall    {metrics['recall']:.4f}",
            f"f1        {metrics['f1']:.4f}",
            f"sentences {metrics['examples']}  words {metrics['words']}  entities {metrics['entities']}  "
            f"truncated words {metrics['truncated_words']}",
        ]
        for kind, scores in metrics["per_type"].items():
            lines.append(
                f"  {kind:<12} precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
                f"f1 {scores['f1']:.4f}  support {scores['support']}"
            )
        return lines


def _has_field(source: str, field_name: str) -> bool:
    """Whether the first JSON object of a JSON Lines file has ``field_name`` (best effort)."""
    try:
        with open(source, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    obj = json.loads(line)
                    return isinstance(obj, dict) and field_name in obj
    except (OSError, ValueError):
        return True  # let the tagged reader report the problem
    return True


def _log_truncation(packed: PackedWords, source: str, max_length: int) -> None:
    cut = int(packed.truncated.sum())
    if cut:
        logger.warning(
            "%s: %d words in %d sentences do not fit in max_length=%d and get no tag",
            source,
            cut,
            int(np.count_nonzero(packed.truncated)),
            max_length,
        )


def _metrics(examples: TaggedExamples, rows: list[dict]) -> dict:
    """Entity metrics of ``rows`` (one per sentence of ``examples``, in the same order).

    They do not depend on the sentences' order, so an export's evaluation sends the sentences
    ordered by length (:func:`tfft.preprocess.by_length`): batches of similar lengths pad far
    less than the input order. (``predict_model`` orders them by tokens and puts them back.)
    """
    predicted = [[tag or OUTSIDE for tag in row["tags"]] for row in rows]
    metrics = entity_metrics(examples.tags, predicted)
    return {
        "examples": len(examples),
        "words": int(sum(len(words) for words in examples.words)),
        "truncated_words": int(sum(row["truncated_words"] for row in rows)),
        **metrics,
    }


TASK = NerTask()
