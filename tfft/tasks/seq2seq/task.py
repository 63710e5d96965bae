"""``--task summarize`` and ``--task translate`` themselves: reading pairs, the model,
batches, generation, scoring and exports (see :mod:`tfft.tasks.seq2seq` for how the pieces fit).

Data: a source and a target column in CSV / TSV / JSON Lines (``--source-column``,
``--target-column``), or parallel plain-text files with one sentence per line:
``--source-file train.en --target-file train.de`` for training, and ``SOURCE,TARGET`` file
pairs wherever one data path is asked for (``--eval val.en,val.de``, ``tfft evaluate
--data val.en,val.de``). A plain-text file alone (``tfft predict --input new.en``) holds
one source per line (:mod:`tfft.data.parallel` reads them all).

Training is teacher forcing (:mod:`tfft.tasks.seq2seq.batches`): the loss is the token
cross-entropy over real target tokens (padding and filler rows weigh 0;
``--label-smoothing`` spreads a share of each target over the vocabulary).

Generation is Hugging Face's TF ``generate`` (greedy, or beam search with ``--num-beams``
and ``--length-penalty``; at least ``--min-new-tokens`` and at most ``--max-new-tokens``;
``--repetition-penalty`` above 1 makes tokens already written less likely), compiled with XLA on fixed padded
shapes, and without XLA when it does not compile. Final metrics are computed on the
generated text (:mod:`tfft.tasks.seq2seq.metrics`): sacreBLEU for ``translate`` (0-100),
ROUGE-1/2/L F1 (rouge-score, with stemming; 0-1) for ``summarize``.

Exports (:mod:`tfft.tasks.seq2seq.serving`): ``serving_default`` takes ``text`` and returns
``generated_text`` when both vocabularies can run in the graph; otherwise (byte-level BPE
such as BART's, remapped SentencePiece such as Marian's) it is ``generate_ids`` (token ids
in and out), and the tokenizer travels in ``assets.extra/tokenizer``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from tfft.backbones.seq2seq import (
    Seq2SeqBackbone,
    Seq2SeqModel,
    generate_ids_batched,
    load_seq2seq_backbone,
)
from tfft.data.parallel import PairExamples, read_pairs
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.preprocess import bucket_lengths
from tfft.tasks.checkpoint import CheckpointTask
from tfft.tasks.seq2seq.batches import encode_sources, encode_targets, seq2seq_batches
from tfft.tasks.seq2seq.metrics import ROUGE_KINDS, bleu_metrics, rouge_metrics
from tfft.tasks.seq2seq.options import Seq2SeqOptions, generation_settings
from tfft.tasks.seq2seq.serving import Seq2SeqServing


class Seq2SeqTask(CheckpointTask):
    """A task whose answers are generated text (``summarize``, ``translate``)."""

    default_monitor = "val_loss"
    token_level = False
    options_class = Seq2SeqOptions
    backbone_class = Seq2SeqBackbone
    backbone_kind = "seq2seq"
    reads = "one source text"
    token_budget_batches = True

    # --- data ---------------------------------------------------------------------------
    def read(self, source, config, *, labelled=True, option="--train", max_examples=None) -> PairExamples:
        task = config.task
        return read_pairs(
            source,
            source_column=task.source_column,
            target_column=task.target_column,
            source_file=task.source_file,
            target_file=task.target_file,
            format=config.data.format,
            data_dir=config.data.tfds_data_dir,
            labelled=labelled,
            option=option,
            max_examples=max_examples,
        )

    def has_train_data(self, config) -> bool:
        return bool(config.data.train or (config.task.source_file and config.task.target_file))

    def examples_from_cli(self, texts, pairs) -> PairExamples:
        if pairs is not None:
            raise ConfigError(f"--task {self.name} reads single texts; --text-pair does not apply.")
        return PairExamples(list(texts), None, "--text", list(range(1, len(texts) + 1)))

    # --- model ----------------------------------------------------------------------------
    def load_backbone(self, hf_model, allow_pickle, settings):
        return load_seq2seq_backbone(
            hf_model, settings.get("decoder_model"), allow_pickle, copy=bool(settings.get("copy_attention"))
        )

    def checkpoint_model(self, backbone, settings):
        """A :class:`~tfft.backbones.seq2seq.Seq2SeqModel`."""
        return Seq2SeqModel(backbone, name=f"tfft_{self.name}")

    def train_metrics(self, spec) -> list:
        return [keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")]

    # --- batches ----------------------------------------------------------------------------
    def encode_sources(self, model, texts, max_length: int) -> list[np.ndarray]:
        """Source ids behind the ``source_prefix`` setting, truncated to ``max_length``."""
        return encode_sources(model, texts, max_length)

    def encode_targets(self, model, texts) -> list[np.ndarray]:
        """Label ids (end token last, no start token), truncated to ``max_target_length``."""
        return encode_targets(model, texts)

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
        targets = examples.targets if labelled else None
        if labelled and targets is None:
            raise DataError(f"{examples.source}: no targets to train or evaluate on.")
        return seq2seq_batches(
            model, examples.sources, targets, batch_size, max_length, training, seed, batching
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
            raise DataError(f"task={self.name!r} takes no `text_pairs`.")
        if labels is not None and len(labels) != len(texts):
            raise DataError(f"`labels` has {len(labels)} entries for {len(texts)} texts.")
        return seq2seq_batches(
            model,
            list(texts),
            None if labels is None else list(labels),
            batch_size,
            max_length,
            training,
            seed,
            batching,
        )

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
        spec = model.tfft_spec
        settings = {**spec.settings, **{k: v for k, v in overrides.items() if v is not None}}
        if not texts:
            return []
        ids = generate_ids_batched(
            model,
            encode_sources(model, texts, max_length),
            pad_id=spec.backbone.encoder.template.pad_id,
            buckets=bucket_lengths(max_length),
            batch_size=batch_size,
            settings=generation_settings(settings),
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


class TranslateTask(Seq2SeqTask):
    """``--task translate``: sacreBLEU on the generated text."""

    name = "translate"
    headline = ("examples", "bleu")

    def metrics(self, generated, references) -> dict:
        return bleu_metrics(generated, references)

    def format_metrics(self, metrics) -> list[str]:
        return [f"bleu      {metrics['bleu']:.2f}  ({metrics['bleu_signature']})"]


class SummarizeTask(Seq2SeqTask):
    """``--task summarize``: ROUGE-1/2/L F1 on the generated text."""

    name = "summarize"
    headline = ("examples", *ROUGE_KINDS)

    def metrics(self, generated, references) -> dict:
        return rouge_metrics(generated, references)

    def format_metrics(self, metrics) -> list[str]:
        return [f"{kind:<10}{metrics[kind]:.4f}" for kind in ROUGE_KINDS]


TASKS = {"summarize": SummarizeTask(), "translate": TranslateTask()}
