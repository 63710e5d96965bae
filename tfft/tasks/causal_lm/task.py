"""``--task causal-lm`` itself: reading, the model, batches, generation, scoring and exports
(see :mod:`tfft.tasks.causal_lm` for how the pieces fit).

The model is a Hugging Face TF causal LM (``TFAutoModelForCausalLM``: GPT-2 family and any
other that loads) in a :class:`~tfft.backbones.causal_lm.CausalLMModel`; the loss is the
token cross-entropy over weighted tokens; metrics are loss, perplexity and next-token
accuracy. Generation is Hugging Face's TF ``generate`` with the KV cache: greedy, sampling
(``--do-sample``, ``--temperature``, ``--top-k``, ``--top-p``, ``--sample-seed``) or beam search
(``--num-beams``), at most ``--max-new-tokens``, XLA-compiled on fixed padded shapes with a
fallback; the text is cut at the first ``--stop`` string. Prompts longer than
``prompt_length = min(--max-length, positions - max_new_tokens)`` keep their last tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from tfft.backbones.causal_lm import (
    GENERATION_KEYS,
    CausalLMBackbone,
    CausalLMModel,
    check_positions,
    generate_new_ids,
    left_padded,
    load_causal_lm_backbone,
)
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.preprocess import bucket_lengths
from tfft.tasks.causal_lm.batches import examples_batches, format_prompt, tokenize
from tfft.tasks.causal_lm.data import LMExamples, read_lm_examples
from tfft.tasks.causal_lm.metrics import (
    Perplexity,
    TokenScores,
    cut_at_stop,
    stop_strings,
    token_nll_and_correct,
)
from tfft.tasks.causal_lm.options import CausalLMOptions
from tfft.tasks.causal_lm.serving import CausalLMServing
from tfft.tasks.checkpoint import CheckpointTask


class CausalLMTask(CheckpointTask):
    """Decoder-only language modelling: plain text or prompt/response pairs; generation."""

    name = "causal-lm"
    options_class = CausalLMOptions
    backbone_class = CausalLMBackbone
    backbone_kind = "causal-LM"
    default_monitor = "val_loss"
    headline = ("examples", "tokens", "loss", "perplexity", "token_accuracy")

    # --- data ---------------------------------------------------------------------------
    def read(self, source, config, *, labelled=True, option="--train", max_examples=None) -> LMExamples:
        task = config.task
        return read_lm_examples(
            source,
            text_column=config.data.text_column,
            prompt_column=task.prompt_column,
            response_column=task.response_column,
            format=config.data.format,
            data_dir=config.data.tfds_data_dir,
            blank_line_documents=task.blank_line_documents,
            labelled=labelled,
            option=option,
            max_examples=max_examples,
        )

    def examples_from_cli(self, texts, pairs) -> LMExamples:
        if pairs is not None:
            raise ConfigError("--task causal-lm continues single prompts; --text-pair does not apply.")
        return LMExamples(list(texts), None, "--text", list(range(1, len(texts) + 1)), prompts=True)

    @staticmethod
    def generation_settings(settings: dict) -> dict:
        """The generation options of the model's settings (defaults for missing ones)."""
        return CausalLMOptions.pick(settings, GENERATION_KEYS)

    # --- model ----------------------------------------------------------------------------
    def load_backbone(self, hf_model, allow_pickle, settings):
        return load_causal_lm_backbone(hf_model, allow_pickle)

    def checkpoint_model(self, backbone, settings):
        """A :class:`~tfft.backbones.causal_lm.CausalLMModel`, once the block size and
        ``max_new_tokens`` fit the model's positions."""
        if settings.get("block_size"):
            check_positions(backbone, int(settings["block_size"]), "block_size (--block-size)")
        new_tokens = int(self.generation_settings(settings)["max_new_tokens"])
        if backbone.positions is not None and new_tokens >= backbone.positions:
            raise ConfigError(
                f"max_new_tokens must leave room for a prompt in the model's {backbone.positions} positions. "
                f"Received: max_new_tokens={new_tokens}"
            )
        return CausalLMModel(backbone, name="tfft_causal_lm")

    def model_settings(self, backbone, settings):
        return {**settings, "positions": backbone.positions}

    def train_metrics(self, spec) -> list:
        return [keras.metrics.SparseCategoricalAccuracy(name="token_accuracy"), Perplexity()]

    # --- batches ----------------------------------------------------------------------------
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
        backbone = model.tfft_spec.backbone
        settings = model.tfft_spec.settings
        check_positions(
            backbone, int(settings.get("block_size") or max_length), "the sequence length (--max-length)"
        )
        return examples_batches(
            backbone.tokenizer,
            examples,
            eos_id=backbone.eos_id,
            pad_id=backbone.pad_id,
            settings=settings,
            batch_size=batch_size,
            max_length=max_length,
            training=training,
            seed=seed,
            labelled=labelled,
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
        """Labelled batches: ``texts`` are documents (packed), or prompts with ``labels`` as responses."""
        if text_pairs is not None:
            raise DataError("task='causal-lm' takes no `text_pairs`.")
        if labels is not None and len(labels) != len(texts):
            raise DataError(f"`labels` (responses) has {len(labels)} entries for {len(texts)} prompts.")
        examples = LMExamples(
            list(texts),
            None if labels is None else [str(label) for label in labels],
            "make_dataset",
            list(range(1, len(texts) + 1)),
            prompts=labels is not None,
        )
        return self.dataset(
            model,
            examples,
            batch_size=batch_size,
            max_length=max_length,
            training=training,
            seed=seed,
            batching=batching,
        )

    # --- generation and metrics ---------------------------------------------------------------
    @staticmethod
    def prompt_length(settings: dict, max_length: int) -> int:
        """The longest prompt in tokens: ``max_length``, less when the model's positions must
        also hold ``max_new_tokens``."""
        positions = settings.get("positions")
        new_tokens = int(CausalLMTask.generation_settings(settings)["max_new_tokens"])
        return max_length if positions is None else max(1, min(max_length, int(positions) - new_tokens))

    def encode_prompts(
        self, tokenizer, settings: dict, prompts: Sequence[str], prompt_length: int
    ) -> list[np.ndarray]:
        """Prompt ids (template applied), keeping the last ``prompt_length`` tokens of long ones."""
        texts = [format_prompt(p, settings.get("template")) for p in prompts]
        return [np.asarray(row[-prompt_length:], np.int32) for row in tokenize(tokenizer, texts)]

    @staticmethod
    def decode(tokenizer, settings: dict, rows) -> list[str]:
        """Generated ids to text, cut at the first stop string."""
        stops = stop_strings(settings.get("stop"))
        return [cut_at_stop(text, stops) for text in tokenizer.batch_decode(rows, skip_special_tokens=True)]

    def generate(
        self,
        model,
        prompts: Sequence[str],
        *,
        batch_size: int,
        max_length: int,
        xla: bool | None = None,
        **overrides,
    ) -> list[str]:
        """The text generated after each prompt (an in-memory model built by tfft).

        ``overrides``: generation options (``max_new_tokens``, ``do_sample``, ``sample_seed``, ``stop``, ...)
        replacing the model's settings for this call.
        """
        spec = model.tfft_spec
        settings = {**spec.settings, **{k: v for k, v in overrides.items() if v is not None}}
        if not prompts:
            return []
        length = self.prompt_length(settings, max_length)
        backbone = spec.backbone
        ids = generate_new_ids(
            model,
            self.encode_prompts(backbone.tokenizer, settings, prompts, length),
            pad_id=backbone.pad_id,
            buckets=bucket_lengths(length),
            batch_size=batch_size,
            settings=self.generation_settings(settings),
            xla=xla,
        )
        return self.decode(backbone.tokenizer, settings, ids)

    def score(self, model, examples, batch_size: int, max_length: int) -> dict:
        """``examples``, ``tokens``, ``loss``, ``perplexity`` and ``token_accuracy`` of an in-memory model."""
        scores = TokenScores()
        for features, labels, weights in self.dataset(
            model, examples, batch_size=batch_size, max_length=max_length
        ):
            nll, correct = token_nll_and_correct(labels, model(features, training=False))
            scores.add(nll.numpy(), correct.numpy(), weights.numpy())
        return {"examples": len(examples), **scores.result()}

    def evaluate_model(self, model, examples, config) -> dict:
        return self.score(model, examples, config.train.batch_size, config.data.max_length)

    # --- export ---------------------------------------------------------------------------------
    def serving(self, model, max_length) -> tf.Module:
        return CausalLMServing(model, self.prompt_length(model.tfft_spec.settings, max_length))

    def _export_tokenizer(self, exported):
        """``(tokenizer, eos_id, pad_id)`` for an export: its ``tokenize`` signature when the
        tokenizer runs in the graph (no Python tokenizer loaded), else the Python tokenizer."""
        backbone = exported.metadata.get("backbone") or {}
        if "tokenize" in exported.loaded.signatures and "eos_id" in backbone:
            tokenizer = ExportTokenizer(exported.loaded.signatures["tokenize"])
            return tokenizer, int(backbone["eos_id"]), int(backbone["pad_id"])
        return self._python_tokenizer(exported)

    @staticmethod
    def _python_tokenizer(exported):
        """``(tokenizer, eos_id, pad_id)`` from the Python tokenizer saved with an export."""
        if exported.encoder is None:  # pragma: no cover - causal-lm exports always carry their tokenizer
            raise DataError(f"{exported.path}: the export has no tokenizer in assets.extra/tokenizer.")
        tokenizer = exported.encoder.tokenizer
        eos = tokenizer.eos_token_id
        return tokenizer, int(eos), int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos)

    def predict_settings(self, config) -> dict:
        """``tfft predict --max-new-tokens / --stop``: how much of the export's generation to
        keep and where to cut it (the rest of generation is fixed at export time)."""
        return {"max_new_tokens": config.task.max_new_tokens, "stop": config.task.stop}

    def _kept_tokens(self, exported) -> int | None:
        """How many generated tokens to keep (None: all), checked against the export's."""
        exported_count = int(
            self.generation_settings(exported.metadata.get("settings") or {})["max_new_tokens"]
        )
        count = int(self.generation_settings(exported.settings)["max_new_tokens"])
        if count > exported_count:
            raise ConfigError(
                f"{exported.path} generates at most {exported_count} tokens (fixed at export time); "
                f"--max-new-tokens can only keep fewer. Received: max_new_tokens={count}"
            )
        return None if count == exported_count else count

    def generate_export(
        self,
        exported,
        prompts: Sequence[str],
        batch_size: int = 64,
        *,
        source: str = "prompts",
        rows: Sequence[int] | None = None,
    ) -> list[str]:
        """Generated text of an export for each prompt.

        Through its raw-text ``generate`` signature when it has one (template, tokenizer,
        decoding and stop strings in the graph; no Python tokenizer loaded), else tokenized and
        decoded in Python around ``generate_ids``. The generation itself (greedy, sampling and
        its seed, beams) is the one fixed at export time; ``exported.settings`` may keep fewer
        tokens (``max_new_tokens``) or cut at other ``stop`` strings, which the raw-text path
        honours with the export's ``decode`` signature (exports without it use the ids path).
        An empty prompt is refused, named as ``source:row`` (``rows`` default to 1, 2, ...).
        """
        settings, exported_settings = exported.settings, exported.metadata.get("settings") or {}
        self._check_prompts(prompts, settings, source, range(1, len(prompts) + 1) if rows is None else rows)
        keep = self._kept_tokens(exported)
        recut = keep is not None or settings.get("stop") != exported_settings.get("stop")
        signatures = exported.loaded.signatures
        if "generate" in signatures and (not recut or "decode" in signatures):
            texts: list[str] = []
            for start in range(0, len(prompts), batch_size):
                out = signatures["generate"](
                    text=tf.constant(list(prompts[start : start + batch_size]), tf.string)
                )
                if not recut:
                    texts.extend(t.decode("utf-8") for t in out["generated_text"].numpy())
                    continue
                decoded = signatures["decode"](generated_ids=out["generated_ids"][:, :keep])["text"]
                stops = stop_strings(settings.get("stop"))
                texts.extend(cut_at_stop(t.decode("utf-8"), stops) for t in decoded.numpy())
            return texts
        tokenizer, _, pad_id = self._python_tokenizer(exported)
        length = self.prompt_length(exported_settings or settings, exported.max_length)
        encoded = self.encode_prompts(tokenizer, settings, prompts, length)
        if any(len(row) == 0 for row in encoded):
            raise DataError("Every prompt needs at least one token; an empty prompt cannot be continued.")
        function = signatures["generate_ids"]
        outputs: list[str] = []
        for start in range(0, len(encoded), batch_size):
            rows = encoded[start : start + batch_size]
            ids, mask = left_padded(rows, max(len(r) for r in rows), len(rows), pad_id)
            generated = function(input_ids=tf.constant(ids), attention_mask=tf.constant(mask))[
                "generated_ids"
            ]
            outputs.extend(self.decode(tokenizer, settings, generated.numpy()[:, :keep]))
        return outputs

    def evaluate_export(self, exported, examples, batch_size=64) -> dict:
        """Loss, perplexity and token accuracy of an export: the data tokenized by its
        ``tokenize`` signature (or the Python tokenizer of exports without one), packed and
        weighted as in training, scored by ``score_ids``."""
        tokenizer, eos_id, pad_id = self._export_tokenizer(exported)
        function = exported.loaded.signatures["score_ids"]
        batches = examples_batches(
            tokenizer,
            examples,
            eos_id=eos_id,
            pad_id=pad_id,
            settings=exported.settings,
            batch_size=batch_size,
            max_length=exported.max_length,
        )
        scores = TokenScores()
        for features, labels, weights in batches:
            out = function(
                input_ids=features["input_ids"], attention_mask=features["attention_mask"], labels=labels
            )
            scores.add(out["token_nll"].numpy(), out["token_correct"].numpy(), weights.numpy())
        return {"examples": len(examples), **scores.result()}

    @staticmethod
    def _check_prompts(prompts, settings: dict, source: str, rows) -> None:
        """An empty prompt (after the template) has no token to continue from."""
        for prompt, row in zip(prompts, rows):
            if not format_prompt(prompt, settings.get("template")):
                raise DataError(
                    f"{source}:{row}: the prompt is empty; every prompt needs at least one token to "
                    f"continue. Received: {prompt!r}"
                )

    def predict_export(self, exported, examples, batch_size=64) -> Iterator[dict]:
        generated = self.generate_export(
            exported, examples.texts, batch_size, source=examples.source, rows=examples.rows
        )
        for text, output in zip(examples.texts, generated):
            yield {"text": text, "generated_text": output}


class ExportTokenizer:
    """An export's ``tokenize`` signature called like a Hugging Face tokenizer:
    ``tokenizer(texts, add_special_tokens=...)["input_ids"]`` (what
    :mod:`~tfft.tasks.causal_lm.batches` needs), in chunks of ``chunk_size`` texts."""

    def __init__(self, function, chunk_size: int = 256):
        self.function = function
        self.chunk_size = chunk_size

    def __call__(self, texts: Sequence[str], add_special_tokens: bool = True) -> dict:
        ids_key, count_key = (
            ("token_ids", "token_count") if add_special_tokens else ("bare_token_ids", "bare_token_count")
        )
        rows: list[list[int]] = []
        for start in range(0, len(texts), self.chunk_size):
            out = self.function(text=tf.constant(list(texts[start : start + self.chunk_size]), tf.string))
            ids, counts = out[ids_key].numpy(), out[count_key].numpy()
            rows.extend(row[:count].tolist() for row, count in zip(ids, counts))
        return {"input_ids": rows}


TASK = CausalLMTask()
