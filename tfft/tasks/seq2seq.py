"""Summarization and translation: text in, generated text out.

Data: a source and a target column in CSV / TSV / JSON Lines (``--source-column``,
``--target-column``), or parallel plain-text files with one sentence per line:
``--source-file train.en --target-file train.de`` for training, and ``SOURCE,TARGET`` file
pairs wherever one data path is asked for (``--eval val.en,val.de``, ``tfft evaluate
--data val.en,val.de``). A plain-text file alone (``tfft predict --input new.en``) holds
one source per line. Blank lines at the end of a file are ignored; elsewhere they are errors.

Training is teacher forcing: the decoder reads the target shifted right behind the start
token, the loss is the token cross-entropy over real target tokens (padding and filler
rows weigh 0; ``--label-smoothing`` spreads a share of each target over the vocabulary).
Both sides are padded to bucket lengths (16, 32, ... up to ``--max-length`` for the source
and ``--max-target-length`` for the target), so XLA compiles few shapes.

Generation is Hugging Face's TF ``generate`` (greedy, or beam search with ``--num-beams``
and ``--length-penalty``; at most ``--max-new-tokens``), compiled with XLA on fixed padded
shapes, and without XLA when it does not compile. Final metrics are computed on the
generated text: sacreBLEU for ``translate`` (0-100), ROUGE-1/2/L F1 (rouge-score, with
stemming; 0-1) for ``summarize``.

Exports: ``serving_default`` takes ``text`` (tf.string ``[batch]``, the source prefix is
added in the graph) and returns ``generated_text``, when both vocabularies can run in the
graph (WordPiece; SentencePiece whose ids are the model's, as T5's). Otherwise (byte-level
BPE such as BART's, remapped SentencePiece such as Marian's) ``serving_default`` is
``generate_ids``: ``input_ids``, ``attention_mask`` (int32 ``[batch, length]``) in,
``generated_ids`` out, and the tokenizer travels in ``assets.extra/tokenizer``. Generation
settings (beams, length) are fixed at export time.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfft.data import TableSpec, read_examples
from tfft.errors import ConfigError, DataError, ExportError
from tfft.preprocess import _pad_batch_dim, _ragged, bucket_lengths
from tfft.tasks.base import Task
from tfft.tasks.classify import WeightedMeanLoss
from tfft.tokenization import pack_segments

logger = logging.getLogger(__name__)

# Texts on which an export's in-graph tokenization is checked against the Python tokenizer.
PROBE_TEXTS = (
    "Two young, White males are outside near many bushes.",
    "The movie wasn't good -- it's 3.5/10 (at best)!",
    "Zwei junge Männer sind im Freien in der Nähe vieler Büsche.",
    "Café déjà vu: naïve façade, price $5.",
)
GENERATE_CHUNK = 8  # rows per generation call in exports (generation needs a static batch size)
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".json", ".ndjson")
OPTIONS = (
    "decoder_model",
    "source_prefix",
    "max_target_length",
    "num_beams",
    "max_new_tokens",
    "length_penalty",
    "label_smoothing",
)
DEFAULTS = {
    "decoder_model": None,
    "source_prefix": None,
    "max_target_length": 128,
    "num_beams": 1,
    "max_new_tokens": 64,
    "length_penalty": 1.0,
    "label_smoothing": 0.0,
}


@dataclasses.dataclass
class PairExamples:
    """Source texts and (for labelled data) their reference targets.

    Attributes:
        sources: the source texts.
        targets: the reference target texts, or None for unlabelled data.
        source: where they came from (a path, ``SRC,TGT`` or ``--text``).
        rows: the 1-based line of each example.
    """

    sources: list[str]
    targets: list[str] | None
    source: str
    rows: list[int]

    def __len__(self) -> int:
        return len(self.sources)

    def select(self, indices: Sequence[int]) -> PairExamples:
        return PairExamples(
            [self.sources[i] for i in indices],
            None if self.targets is None else [self.targets[i] for i in indices],
            self.source,
            [self.rows[i] for i in indices],
        )

    def split(self, fraction: float, seed: int) -> tuple[PairExamples, PairExamples]:
        """``(rest, held_out)``: a seeded random ``fraction`` held out, both in source order."""
        if not 0 < fraction < 1:
            raise ConfigError(
                f"The held-out fraction must be between 0 and 1. Received: fraction={fraction!r}"
            )
        held = max(1, round(fraction * len(self)))
        if held >= len(self):
            raise ConfigError(f"{self.source}: cannot hold out {fraction:g} of {len(self)} examples.")
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        return self.select(sorted(order[held:])), self.select(sorted(order[:held]))


# --- reading ------------------------------------------------------------------------------


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


class Seq2SeqTask(Task):
    """A task whose answers are generated text (``summarize``, ``translate``)."""

    default_monitor = "val_loss"
    token_level = False

    # --- data ---------------------------------------------------------------------------
    def read(self, source, config, *, labelled=True, option="--train", max_examples=None) -> PairExamples:
        task = config.task
        if source is None or source == "":
            if not task.source_file or (labelled and not task.target_file):
                raise ConfigError(f"{option}: give a data file, or --source-file with --target-file.")
            return read_parallel(
                task.source_file, task.target_file if labelled else None, option, max_examples
            )
        if option == "--train" and task.source_file:
            raise ConfigError("Give --train or --source-file with --target-file, not both.")
        source = str(source)
        if "," in source and not Path(source).exists():
            source_path, _, target_path = source.partition(",")
            return read_parallel(source_path, target_path if labelled else None, option, max_examples)
        if (
            config.data.format is None
            and not source.startswith("tfds:")
            and not source.lower().endswith(TABLE_SUFFIXES)
        ):
            if labelled:
                raise DataError(
                    f"{source} ({option}): a plain-text file holds sources only; give SOURCE,TARGET files "
                    "(e.g. val.en,val.de) or a CSV/TSV/JSON Lines file with source and target columns."
                )
            return read_parallel(source, None, option, max_examples)
        examples = read_examples(
            source,
            TableSpec(
                text_column=task.source_column,
                label_column=task.target_column if labelled else None,
                format=config.data.format,
            ),
            max_examples=max_examples,
            data_dir=config.data.tfds_data_dir,
            option=option,
        )
        return PairExamples(examples.texts, examples.labels, examples.source, examples.rows)

    def examples_from_cli(self, texts, pairs) -> PairExamples:
        if pairs is not None:
            raise ConfigError(f"--task {self.name} reads single texts; --text-pair does not apply.")
        return PairExamples(list(texts), None, "--text", list(range(1, len(texts) + 1)))

    def settings_from_data(self, train, config) -> dict:
        task = config.task
        return {
            "labels": [],
            "decoder_model": getattr(task, "decoder_model", None),
            "source_prefix": task.source_prefix,
            "max_target_length": task.max_target_length,
            "num_beams": task.num_beams,
            "max_new_tokens": task.max_new_tokens,
            "length_penalty": task.length_penalty,
            "label_smoothing": task.label_smoothing,
        }

    def settings_from_args(self, label_names, num_labels, options) -> dict:
        if label_names is not None or num_labels is not None:
            raise ConfigError(f"task={self.name!r} has no labels (label_names/num_labels).")
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(
                f"task={self.name!r} takes no option(s) {', '.join(unknown)}. Known: {', '.join(OPTIONS)}"
            )
        settings = {"labels": [], **DEFAULTS, **options}
        for name in ("max_target_length", "num_beams", "max_new_tokens"):
            if not isinstance(settings[name], int) or settings[name] < 1:
                raise ConfigError(f"`{name}` must be a positive integer. Received: {name}={settings[name]!r}")
        smoothing = settings["label_smoothing"]
        if not 0 <= smoothing < 1:
            raise ConfigError(f"`label_smoothing` must be in [0, 1). Received: label_smoothing={smoothing!r}")
        return settings

    # --- model ----------------------------------------------------------------------------
    def build(
        self,
        *,
        hf_model,
        hub_url,
        hub_preprocess_url,
        allow_pickle,
        backbone,
        settings,
        pair,
        pooling,
        dropout,
    ):
        """A :class:`~tfft.seq2seq_models.Seq2SeqModel` (the checkpoints' own dropout applies)."""
        from tfft.model import ModelSpec
        from tfft.seq2seq_models import Seq2SeqBackbone, Seq2SeqModel, load_seq2seq_backbone

        if hub_url or hub_preprocess_url:
            raise ConfigError(
                f"--task {self.name} needs a Hugging Face checkpoint (--hf-model), not --hub-url."
            )
        if pair:
            raise ConfigError(f"--task {self.name} reads one source text; --text-pair-column does not apply.")
        if backbone is None:
            if not hf_model:
                raise ConfigError(f"--task {self.name} needs --hf-model.")
            backbone = load_seq2seq_backbone(hf_model, settings.get("decoder_model"), allow_pickle)
        elif not isinstance(backbone, Seq2SeqBackbone):
            raise ConfigError(f"--task {self.name} needs a seq2seq backbone (tfft.seq2seq_models).")
        model = Seq2SeqModel(backbone, name=f"tfft_{self.name}")
        model.build_weights()
        model.tfft_spec = ModelSpec(self.name, (), False, "none", backbone, dict(settings))
        return model

    def loss(self, spec):
        """Token cross-entropy averaged over real target tokens, with optional label smoothing."""
        return WeightedMeanLoss(
            smoothed_token_crossentropy(float(spec.settings.get("label_smoothing", 0.0))),
            name="token_crossentropy",
        )

    def train_metrics(self, spec) -> list:
        from tfft.keras import keras

        return [keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")]

    # --- batches ----------------------------------------------------------------------------
    def _sources(self, settings: dict, texts: Sequence[str]) -> list[str]:
        prefix = settings.get("source_prefix") or ""
        return [prefix + text for text in texts]

    def encode_sources(self, model, texts, max_length: int) -> list[np.ndarray]:
        spec = model.tfft_spec
        return spec.backbone.encoder.encode(self._sources(spec.settings, texts), None, max_length).input_ids

    def encode_targets(self, model, texts) -> list[np.ndarray]:
        """Label ids (end token last, no start token), truncated to ``max_target_length``."""
        backbone = model.tfft_spec.backbone
        tokenizer = backbone.target_tokenizer
        start = model.decoder_start_token_id
        limit = int(model.tfft_spec.settings["max_target_length"])
        ids = tokenizer(text_target=list(texts), add_special_tokens=True, truncation=False)["input_ids"]
        rows = []
        for row in ids:
            if (
                len(row) > 1
                and row[0] == start
                and start not in (tokenizer.eos_token_id, tokenizer.pad_token_id)
            ):
                row = row[1:]  # BERT-style [CLS]: it is the decoder's start token, not a label
            if len(row) > limit:
                row = row[: limit - 1] + row[-1:]  # keep the end token
            rows.append(np.asarray(row, np.int32))
        return rows

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
    ) -> tf.data.Dataset:
        targets = examples.targets if labelled else None
        if labelled and targets is None:
            raise DataError(f"{examples.source}: no targets to train or evaluate on.")
        return self._batches(model, examples.sources, targets, batch_size, max_length, training, seed)

    def make_dataset(
        self, model, texts, labels, text_pairs, *, batch_size=32, max_length=128, training=False, seed=None
    ) -> tf.data.Dataset:
        if text_pairs is not None:
            raise DataError(f"task={self.name!r} takes no `text_pairs`.")
        if labels is not None and len(labels) != len(texts):
            raise DataError(f"`labels` has {len(labels)} entries for {len(texts)} texts.")
        return self._batches(
            model,
            list(texts),
            None if labels is None else list(labels),
            batch_size,
            max_length,
            training,
            seed,
        )

    def _batches(self, model, sources, targets, batch_size, max_length, training, seed) -> tf.data.Dataset:
        spec = model.tfft_spec
        source_pad = spec.backbone.encoder.template.pad_id
        target_pad = int(model.hf.generation_config.pad_token_id)
        source_ids = self.encode_sources(model, sources, max_length)
        source_buckets = bucket_lengths(max_length)
        if targets is None:
            dataset = tf.data.Dataset.from_tensor_slices(_ragged(source_ids))
            dataset = dataset.map(lambda s: {"input_ids": s, "attention_mask": tf.ones_like(s)})
            dataset = dataset.padded_batch(
                batch_size, padding_values={"input_ids": source_pad, "attention_mask": 0}
            )
            return dataset.map(_pad_sides(source_buckets, None, source_pad, target_pad)).prefetch(
                tf.data.AUTOTUNE
            )
        labels = self.encode_targets(model, targets)
        start = model.decoder_start_token_id
        decoder_ids = [np.concatenate([[start], row[:-1]]).astype(np.int32) for row in labels]
        target_buckets = bucket_lengths(int(spec.settings["max_target_length"]))
        dataset = tf.data.Dataset.from_tensor_slices(
            (_ragged(source_ids), _ragged(decoder_ids), _ragged(labels))
        )
        dataset = dataset.map(
            lambda s, d, y: (
                {
                    "input_ids": s,
                    "attention_mask": tf.ones_like(s),
                    "decoder_input_ids": d,
                    "decoder_attention_mask": tf.ones_like(d),
                },
                y,
                tf.ones_like(y, tf.float32),
            )
        )
        padding = (
            {
                "input_ids": source_pad,
                "attention_mask": 0,
                "decoder_input_ids": target_pad,
                "decoder_attention_mask": 0,
            },
            target_pad,
            0.0,
        )
        pad_sides = _pad_sides(source_buckets, target_buckets, source_pad, target_pad)
        if not training:
            dataset = dataset.padded_batch(batch_size, padding_values=padding)
            return dataset.map(pad_sides).prefetch(tf.data.AUTOTUNE)
        both = bucket_lengths(max(max_length, int(spec.settings["max_target_length"])))
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=lambda f, y, w: tf.maximum(tf.shape(f["input_ids"])[0], tf.shape(y)[0]),
            bucket_boundaries=[length + 1 for length in both],
            bucket_batch_sizes=[batch_size] * (len(both) + 1),
            padding_values=padding,
        )
        dataset = dataset.map(pad_sides).map(_pad_batch_dim(batch_size))
        longest = np.maximum([len(s) for s in source_ids], [len(y) for y in labels])
        bucket_of = np.searchsorted(np.asarray(both), longest, side="left")
        steps = int(sum(-(-int(n) // batch_size) for n in np.bincount(bucket_of, minlength=len(both) + 1)))
        return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)

    # --- generation and metrics ---------------------------------------------------------------
    def generate(
        self,
        model,
        texts: Sequence[str],
        *,
        batch_size: int,
        max_length: int,
        xla: bool | None = None,
        **overrides,
    ) -> list[str]:
        """Generated text for each source text (an in-memory model built by tfft)."""
        from tfft.seq2seq_models import generate_ids_batched

        spec = model.tfft_spec
        settings = {**spec.settings, **{k: v for k, v in overrides.items() if v is not None}}
        if not texts:
            return []
        ids = generate_ids_batched(
            model,
            self.encode_sources(model, texts, max_length),
            pad_id=spec.backbone.encoder.template.pad_id,
            buckets=bucket_lengths(max_length),
            batch_size=batch_size,
            max_new_tokens=int(settings["max_new_tokens"]),
            num_beams=int(settings["num_beams"]),
            length_penalty=float(settings["length_penalty"]),
            xla=xla,
        )
        return spec.backbone.target_tokenizer.batch_decode(ids, skip_special_tokens=True)

    def evaluate_model(self, model, examples, config) -> dict:
        if examples.targets is None:
            raise DataError(f"{examples.source}: no targets to evaluate on.")
        generated = self.generate(
            model,
            examples.sources,
            batch_size=config.train.batch_size,
            max_length=config.data.max_length,
            xla=config.runtime.xla,
        )
        return self.metrics(generated, examples.targets)

    def metrics(self, generated: Sequence[str], references: Sequence[str]) -> dict:  # pragma: no cover
        raise NotImplementedError

    # --- export ---------------------------------------------------------------------------------
    def serving(self, model, max_length) -> tf.Module:
        return Seq2SeqServing(model, max_length)

    def _run_export(self, exported, sources: Sequence[str], batch_size: int) -> list[str]:
        outputs: list[str] = []
        settings = exported.settings
        if exported.encoder is None:
            function = exported.loaded.signatures["serving_default"]
            for start in range(0, len(sources), batch_size):
                chunk = tf.constant(list(sources[start : start + batch_size]), tf.string)
                values = function(text=chunk)["generated_text"].numpy()
                outputs.extend(value.decode("utf-8") for value in values)
            return outputs
        prefix = settings.get("source_prefix") or ""
        encoded = exported.encoder.encode([prefix + s for s in sources], None, exported.max_length).input_ids
        buckets = np.asarray(bucket_lengths(exported.max_length))
        pad_id = exported.encoder.template.pad_id
        function = exported.loaded.signatures["generate_ids"]
        for start in range(0, len(encoded), batch_size):
            rows = encoded[start : start + batch_size]
            length = int(buckets[np.searchsorted(buckets, max(len(r) for r in rows))])
            ids = np.full([len(rows), length], pad_id, np.int32)
            mask = np.zeros([len(rows), length], np.int32)
            for r, row in enumerate(rows):
                ids[r, : len(row)] = row
                mask[r, : len(row)] = 1
            generated = function(input_ids=tf.constant(ids), attention_mask=tf.constant(mask))[
                "generated_ids"
            ]
            outputs.extend(
                exported.encoder.tokenizer.batch_decode(generated.numpy(), skip_special_tokens=True)
            )
        return outputs

    def evaluate_export(self, exported, examples, batch_size=64) -> dict:
        if examples.targets is None:
            raise DataError(f"{examples.source}: no targets to evaluate on.")
        return self.metrics(self._run_export(exported, examples.sources, batch_size), examples.targets)

    def predict_export(self, exported, examples, batch_size=64) -> Iterator[dict]:
        generated = self._run_export(exported, examples.sources, batch_size)
        for text, output in zip(examples.sources, generated):
            yield {"text": text, "generated_text": output}


def smoothed_token_crossentropy(smoothing: float):
    """Per-token cross-entropy against targets that put ``smoothing`` of their mass evenly on the vocabulary.

    ``(1 - smoothing) * -log p(label) + smoothing * mean over the vocabulary of -log p``
    (Szegedy et al. 2016, as in fairseq and Hugging Face's ``label_smoothing_factor``); with 0
    it is the plain cross-entropy.
    """

    def per_token(labels, logits):
        logits = tf.cast(logits, tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=logits)
        if not smoothing:
            return nll
        return (1.0 - smoothing) * nll - smoothing * tf.reduce_mean(tf.nn.log_softmax(logits), axis=-1)

    return per_token


def _pad_sides(source_buckets: list[int], target_buckets: list[int] | None, source_pad: int, target_pad: int):
    """Pad each side of a batch (padded to its longest row) up to its next bucket length."""
    source_bounds = tf.constant(source_buckets, tf.int32)
    target_bounds = None if target_buckets is None else tf.constant(target_buckets, tf.int32)

    def to_bucket(value, bounds, pad):
        length = tf.shape(value)[1]
        target = bounds[tf.argmax(tf.cast(bounds >= length, tf.int32))]
        return tf.pad(value, [[0, 0], [0, tf.maximum(target - length, 0)]], constant_values=pad)

    def pad(features, *rest):
        padded = {"input_ids": to_bucket(features["input_ids"], source_bounds, source_pad)}
        padded["attention_mask"] = to_bucket(features["attention_mask"], source_bounds, 0)
        if target_bounds is None:
            return padded
        labels, weights = rest
        padded["decoder_input_ids"] = to_bucket(features["decoder_input_ids"], target_bounds, target_pad)
        padded["decoder_attention_mask"] = to_bucket(features["decoder_attention_mask"], target_bounds, 0)
        return padded, to_bucket(labels, target_bounds, target_pad), to_bucket(weights, target_bounds, 0.0)

    return pad


class Seq2SeqServing(tf.Module):
    """The serving graph: (in-graph tokenizer +) XLA-compiled generation (+ in-graph detokenizer).

    Signatures: ``serving_default`` (``text`` -> ``generated_text``) where both vocabularies
    run in the graph; ``generate_ids`` (``input_ids``, ``attention_mask`` -> ``generated_ids``)
    always, and as ``serving_default`` otherwise.
    """

    def __init__(self, model, max_length: int, xla: bool | None = None):
        super().__init__(name="tfft_serving")
        from tfft.seq2seq_models import graph_detokenizer, graph_source_tokenizer

        spec = model.tfft_spec
        backbone = spec.backbone
        self.model = model
        self.max_length = max_length
        settings = spec.settings
        self.prefix = settings.get("source_prefix") or ""
        self.template = backbone.encoder.template
        self.buckets = tf.constant(bucket_lengths(max_length), tf.int32)
        self.pad_id = int(model.hf.generation_config.pad_token_id)
        self.tokenizer = graph_source_tokenizer(backbone.encoder)
        self.detokenizer = graph_detokenizer(backbone.target_encoder)
        self.in_graph_tokenizer = (
            self.tokenizer is not None
            and self.detokenizer is not None
            and self._graph_matches_python(backbone)
        )
        if not self.in_graph_tokenizer and backbone.target_encoder is not backbone.encoder:
            raise ExportError(
                "This encoder-decoder has its own target tokenizer, and one of the two cannot run in the "
                "graph (only WordPiece and T5-style SentencePiece can); tfft cannot export it."
            )
        self.generation = {
            "max_new_tokens": int(settings["max_new_tokens"]),
            "num_beams": int(settings["num_beams"]),
            "length_penalty": float(settings["length_penalty"]),
        }
        self.xla = self._xla_works() if xla is None else xla

    def _graph_matches_python(self, backbone) -> bool:
        """Whether the in-graph tokenizer and detokenizer reproduce the Python ones on probe texts.

        SentencePiece in tensorflow-text and a converted Hugging Face tokenizer can segment
        differently; such exports take token ids instead.
        """
        probe = [self.prefix + text for text in PROBE_TEXTS]
        graph = self.tokenizer.tokenize(tf.constant(probe)).to_list()
        python = backbone.encoder.tokenizer(probe, add_special_tokens=False)["input_ids"]
        target = backbone.target_tokenizer(text_target=PROBE_TEXTS, add_special_tokens=True)["input_ids"]
        decoded = backbone.target_tokenizer.batch_decode(target, skip_special_tokens=True)
        width = max(len(row) for row in target)
        padded = [row + [self.pad_id] * (width - len(row)) for row in target]
        detokenized = [
            value.decode("utf-8") for value in self.detokenizer.detokenize(tf.constant(padded)).numpy()
        ]
        if graph != python or detokenized != decoded:
            logger.warning(
                "The in-graph tokenizer does not reproduce %s on probe texts; the export takes token ids.",
                type(backbone.encoder.tokenizer).__name__,
            )
            return False
        return True

    def _generate(self, input_ids, attention_mask, xla: bool | None = None):
        use_xla = self.xla if xla is None else xla
        return self.model.generator(**self.generation, xla=use_xla)(input_ids, attention_mask)

    def _xla_works(self) -> bool:
        """Try the XLA-compiled generation once; fall back to plain graph mode when it fails."""
        ids = tf.constant([list(self.template.prefix) + list(self.template.suffix) or [0]], tf.int32)
        try:
            self._generate(ids, tf.ones_like(ids), xla=True)
            return True
        except (tf.errors.OpError, ValueError, NotImplementedError) as error:
            logger.warning("Exporting generation without XLA: %s", str(error).splitlines()[0][:200])
            return False

    def _generate_batch(self, input_ids, attention_mask):
        """Generate for a batch of any size.

        Beam search and some logits processors (BART's forced end token) in Hugging Face's TF
        generation need a static batch size, so generation runs over chunks of
        ``GENERATE_CHUNK`` rows (the last one filled with copies of the first row).
        """
        rows = GENERATE_CHUNK
        width = self.generation["max_new_tokens"] + 1  # the start token, then the new tokens
        count = tf.shape(input_ids)[0]
        chunks = (count + rows - 1) // rows
        fill = chunks * rows - count

        def chunked(value):
            value = tf.concat([value, tf.repeat(value[:1], fill, axis=0)], 0)
            return tf.reshape(value, [chunks, rows, -1])

        def one(chunk):
            ids, mask = chunk
            ids = tf.ensure_shape(ids, [rows, None])
            mask = tf.ensure_shape(mask, [rows, None])
            output = tf.cast(self._generate(ids, mask), tf.int32)
            output = tf.pad(output, [[0, 0], [0, width - tf.shape(output)[1]]], constant_values=self.pad_id)
            return tf.ensure_shape(output, [rows, width])

        outputs = tf.map_fn(
            one,
            (chunked(input_ids), chunked(attention_mask)),
            fn_output_signature=tf.TensorSpec([rows, width], tf.int32),
        )
        return tf.reshape(outputs, [-1, width])[:count]

    def from_ids(self, input_ids, attention_mask) -> dict:
        return {"generated_ids": tf.cast(self._generate_batch(input_ids, attention_mask), tf.int32)}

    def from_text(self, text) -> dict:
        if self.prefix:
            text = tf.strings.join([tf.constant(self.prefix), text])
        ids, _ = pack_segments(self.tokenizer.tokenize(text), None, self.template, self.max_length)
        longest = tf.cast(tf.reduce_max(tf.concat([ids.row_lengths(), [1]], 0)), tf.int32)
        length = self.buckets[tf.argmax(tf.cast(self.buckets >= longest, tf.int32))]
        input_ids = ids.to_tensor(default_value=self.template.pad_id)
        mask = tf.ones_like(ids).to_tensor(default_value=0)
        extra = [[0, 0], [0, length - tf.shape(input_ids)[1]]]
        input_ids = tf.pad(input_ids, extra, constant_values=self.template.pad_id)
        mask = tf.pad(mask, extra)
        generated = self._generate_batch(input_ids, mask)
        return {"generated_text": self.detokenizer.detokenize(generated)}

    def signatures(self) -> dict:
        ids = [tf.TensorSpec([None, None], tf.int32, name=name) for name in ("input_ids", "attention_mask")]
        function = tf.function(lambda input_ids, attention_mask: self.from_ids(input_ids, attention_mask))
        signatures = {"generate_ids": function.get_concrete_function(*ids)}
        if self.in_graph_tokenizer:
            text = tf.function(lambda text: self.from_text(text))
            signatures["serving_default"] = text.get_concrete_function(
                tf.TensorSpec([None], tf.string, name="text")
            )
        else:
            signatures["serving_default"] = signatures["generate_ids"]
        return signatures


class TranslateTask(Seq2SeqTask):
    """``--task translate``: sacreBLEU on the generated text."""

    name = "translate"
    headline = ("examples", "bleu")

    def metrics(self, generated, references) -> dict:
        from sacrebleu.metrics import BLEU

        bleu = BLEU()
        score = bleu.corpus_score(list(generated), [list(references)])
        return {
            "examples": len(references),
            "bleu": float(score.score),
            "bleu_signature": str(bleu.get_signature()),
            "generated_length": float(np.mean([len(g.split()) for g in generated])) if generated else 0.0,
        }

    def format_metrics(self, metrics) -> list[str]:
        return [f"bleu      {metrics['bleu']:.2f}  ({metrics['bleu_signature']})"]


class SummarizeTask(Seq2SeqTask):
    """``--task summarize``: ROUGE-1/2/L F1 on the generated text."""

    name = "summarize"
    headline = ("examples", "rouge1", "rouge2", "rougeL")

    def metrics(self, generated, references) -> dict:
        from rouge_score import rouge_scorer

        kinds = ("rouge1", "rouge2", "rougeL")
        scorer = rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
        totals = dict.fromkeys(kinds, 0.0)
        for output, reference in zip(generated, references):
            scores = scorer.score(reference, output)
            for kind in kinds:
                totals[kind] += scores[kind].fmeasure
        count = max(len(references), 1)
        return {
            "examples": len(references),
            **{kind: totals[kind] / count for kind in kinds},
            "generated_length": float(np.mean([len(g.split()) for g in generated])) if generated else 0.0,
        }

    def format_metrics(self, metrics) -> list[str]:
        return [f"{kind:<10}{metrics[kind]:.4f}" for kind in ("rouge1", "rouge2", "rougeL")]


TASKS = {"summarize": SummarizeTask(), "translate": TranslateTask()}
