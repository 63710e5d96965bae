"""``--task mlm`` itself: reading, the model, masked batches, scoring, exports and fill-mask
predictions (see :mod:`tfft.tasks.mlm` for how the pieces fit).

The model is a Hugging Face TF masked LM (``TFAutoModelForMaskedLM``: BERT family, RoBERTa,
DistilBERT, ELECTRA, ...) in a :class:`~tfft.backbones.masked_lm.MaskedLMModel`; a checkpoint
without the MLM head gets one initialised from its config (a log line says so). The loss is
the token cross-entropy over the masked tokens only; metrics are loss, perplexity
(``exp(loss)``) and masked-token accuracy. ``tfft export --format hf`` writes the adapted
encoder with its head as a Hugging Face folder that ``tfft fit --hf-model`` fine-tunes.
``tfft predict`` fills the mask tokens of its texts (top 5 tokens each).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from tfft.backbones.masked_lm import MaskedLMBackbone, MaskedLMModel, load_masked_lm_backbone
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.tasks.causal_lm.data import LMExamples, read_lm_examples
from tfft.tasks.causal_lm.metrics import Perplexity, TokenScores, token_nll_and_correct
from tfft.tasks.checkpoint import CheckpointTask
from tfft.tasks.mlm.masking import masked_batches
from tfft.tasks.mlm.options import MaskedLMOptions
from tfft.tasks.mlm.serving import MaskedLMServing


class MaskedLMTask(CheckpointTask):
    """Continued masked-LM pretraining of an encoder on unlabelled text."""

    name = "mlm"
    options_class = MaskedLMOptions
    backbone_class = MaskedLMBackbone
    backbone_kind = "masked-LM"
    default_monitor = "val_loss"
    headline = ("examples", "tokens", "loss", "perplexity", "token_accuracy")

    # --- data ---------------------------------------------------------------------------
    def read(self, source, config, *, labelled=True, option="--train", max_examples=None) -> LMExamples:
        return read_lm_examples(
            source,
            text_column=config.data.text_column,
            prompt_column=None,
            response_column=None,
            format=config.data.format,
            data_dir=config.data.tfds_data_dir,
            blank_line_documents=config.task.blank_line_documents,
            labelled=labelled,
            option=option,
            max_examples=max_examples,
        )

    def examples_from_cli(self, texts, pairs) -> LMExamples:
        if pairs is not None:
            raise ConfigError("--task mlm reads single texts; --text-pair does not apply.")
        return LMExamples(list(texts), None, "--text", list(range(1, len(texts) + 1)), prompts=True)

    # --- model ----------------------------------------------------------------------------
    def load_backbone(self, hf_model, allow_pickle, settings):
        return load_masked_lm_backbone(hf_model, allow_pickle)

    def checkpoint_model(self, backbone, settings):
        """A :class:`~tfft.backbones.masked_lm.MaskedLMModel`."""
        return MaskedLMModel(backbone, name="tfft_mlm")

    def train_metrics(self, spec) -> list:
        return [keras.metrics.SparseCategoricalAccuracy(name="token_accuracy"), Perplexity()]

    # --- batches ----------------------------------------------------------------------------
    @staticmethod
    def _probability(settings: dict) -> float:
        return float(settings.get("mask_probability", MaskedLMOptions().mask_probability))

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
    ):
        spec = model.tfft_spec
        return masked_batches(
            spec.backbone.tokenizer,
            examples.texts,
            probability=self._probability(spec.settings),
            batch_size=batch_size,
            max_length=max_length,
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
        """Masked batches of documents (``labels`` and ``text_pairs`` do not apply)."""
        if labels is not None or text_pairs is not None:
            raise DataError("task='mlm' learns from the texts alone: give no `labels` or `text_pairs`.")
        examples = LMExamples(list(texts), None, "make_dataset", list(range(1, len(texts) + 1)))
        return self.dataset(
            model,
            examples,
            batch_size=batch_size,
            max_length=max_length,
            training=training,
            seed=seed,
            batching=batching,
        )

    # --- scores -----------------------------------------------------------------------------
    def score(self, model, examples, batch_size: int, max_length: int, seed: int = 0) -> dict:
        """``examples``, ``tokens`` (masked), ``loss``, ``perplexity`` and ``token_accuracy`` of an
        in-memory model, with the evaluation masks of ``seed``."""
        scores = TokenScores()
        batches = self.dataset(model, examples, batch_size=batch_size, max_length=max_length, seed=seed)
        for features, labels, weights in batches:
            nll, correct = token_nll_and_correct(labels, model(features, training=False))
            scores.add(nll.numpy(), correct.numpy(), weights.numpy())
        return {"examples": len(examples), **scores.result()}

    def evaluate_model(self, model, examples, config) -> dict:
        return self.score(
            model, examples, config.train.batch_size, config.data.max_length, seed=config.train.seed
        )

    def format_metrics(self, metrics: dict) -> list[str]:
        return [
            f"{key:<16}{value:.4f}" if isinstance(value, float) else f"{key:<16}{value}"
            for key, value in metrics.items()
            if key in self.headline
        ]

    # --- export ---------------------------------------------------------------------------------
    def serving(self, model, max_length) -> tf.Module:
        return MaskedLMServing(model, max_length)

    @staticmethod
    def _tokenizer(exported):
        if exported.encoder is None:  # pragma: no cover - mlm exports always carry their tokenizer
            raise DataError(f"{exported.path}: the export has no tokenizer in assets.extra/tokenizer.")
        return exported.encoder.tokenizer

    def evaluate_export(self, exported, examples, batch_size=64, seed: int = 0) -> dict:
        """Scores of an export with the evaluation masks of ``seed`` (as :meth:`score`)."""
        batches = masked_batches(
            self._tokenizer(exported),
            examples.texts,
            probability=self._probability(exported.settings),
            batch_size=batch_size,
            max_length=exported.max_length,
            seed=seed,
        )
        function = exported.loaded.signatures["score_ids"]
        scores = TokenScores()
        for features, labels, weights in batches:
            out = function(
                input_ids=features["input_ids"], attention_mask=features["attention_mask"], labels=labels
            )
            scores.add(out["token_nll"].numpy(), out["token_correct"].numpy(), weights.numpy())
        return {"examples": len(examples), **scores.result()}

    def predict_export(self, exported, examples, batch_size=64) -> Iterator[dict]:
        """For each text, the ``TOP_K`` likeliest tokens at each of its mask tokens.

        Raises:
            DataError: a text without the mask token (its source and row named).
        """
        tokenizer = self._tokenizer(exported)
        mask_id, pad_id = tokenizer.mask_token_id, tokenizer.pad_token_id or 0
        rows = tokenizer(list(examples.texts), truncation=True, max_length=exported.max_length)["input_ids"]
        for text, row, line in zip(examples.texts, rows, examples.rows):
            if mask_id not in row:
                raise DataError(
                    f"{examples.source}:{line}: no {tokenizer.mask_token} token to fill (within the first "
                    f"{exported.max_length} tokens). Received: {text[:80]!r}"
                )
        function = exported.loaded.signatures["fill_ids"]
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            width = max(len(r) for r in chunk)
            ids = np.full([len(chunk), width], pad_id, np.int32)
            mask = np.zeros([len(chunk), width], np.int32)
            for r, row in enumerate(chunk):
                ids[r, : len(row)], mask[r, : len(row)] = row, 1
            out = function(input_ids=tf.constant(ids), attention_mask=tf.constant(mask))
            top_ids, top_p = out["top_ids"].numpy(), out["top_probabilities"].numpy()
            for r, row in enumerate(chunk):
                positions = [i for i, token in enumerate(row) if token == mask_id]
                fills = [
                    {
                        "position": i,
                        "tokens": tokenizer.convert_ids_to_tokens(top_ids[r, i].tolist()),
                        "probabilities": [round(float(p), 6) for p in top_p[r, i]],
                    }
                    for i in positions
                ]
                filled = list(row)
                for i in positions:
                    filled[i] = int(top_ids[r, i, 0])
                yield {
                    "text": examples.texts[start + r],
                    "filled_text": tokenizer.decode(filled, skip_special_tokens=True),
                    "fills": fills,
                }


TASK = MaskedLMTask()
