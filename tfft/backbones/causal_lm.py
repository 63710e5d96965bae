"""Decoder-only language models: Hugging Face TF causal LMs (GPT-2 family, ...) wrapped for tfft.

:func:`load_causal_lm_backbone` loads any checkpoint that ``TFAutoModelForCausalLM`` can
build, safely (safetensors or ``tf_model.h5``; pickles only with ``allow_pickle``; PyTorch
safetensors without PyTorch, see :mod:`tfft.backbones.hf_weights`).

:class:`CausalLMModel` is a plain tf_keras model around it: ``{input_ids, attention_mask}``
in, float32 next-token logits ``[batch, length, vocabulary]`` out, so ``fit``, checkpoints,
strategies and XLA work as for the other tasks. :meth:`CausalLMModel.generator` runs Hugging
Face's TF ``generate`` (greedy, sampling, beam search; with the KV cache) in a tf.function,
compiled with XLA where it can; :func:`generate_new_ids` batches prompts for it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfft.backbones.base import Backbone
from tfft.backbones.hf import resolve_hf_source
from tfft.backbones.hf_weights import load_checkpoint
from tfft.errors import BackboneError, ConfigError
from tfft.keras import keras
from tfft.tokenization import HFTextEncoder

logger = logging.getLogger(__name__)

#: generation settings a generator is compiled for (see :meth:`CausalLMModel.generator`)
GENERATION_KEYS = (
    "max_new_tokens",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "num_beams",
    "sample_seed",
)


class CausalLMBackbone(Backbone):
    """A Hugging Face TF causal language model and its tokenizer.

    Attributes:
        model: the ``TF...LMHeadModel`` / ``TF...ForCausalLM``.
        encoder: its :class:`~tfft.tokenization.HFTextEncoder`.
        tokenizer: the Hugging Face tokenizer.
        eos_id: the end-of-text token id (joins packed documents, ends responses).
        pad_id: the padding id (``eos_id`` when the tokenizer has no pad token).
        positions: the longest sequence the model takes (its position embeddings), or None.
    """

    kind = "hf-causal-lm"
    poolings = ("none",)

    def __init__(self, model, tokenizer, source: str):
        self.model = model
        self.tokenizer = tokenizer
        self.encoder = HFTextEncoder(tokenizer)
        self.source = str(source)
        config = model.config
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else config.eos_token_id
        if eos is None:
            raise BackboneError(f"{source}: the tokenizer and config name no end-of-text (eos) token.")
        self.eos_id = int(eos)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)
        self.positions = next(
            (
                int(getattr(config, name))
                for name in ("n_positions", "max_position_embeddings", "n_ctx")
                if getattr(config, name, None)
            ),
            None,
        )
        generation = model.generation_config
        if generation.eos_token_id is None:
            generation.eos_token_id = self.eos_id
        if generation.pad_token_id is None:
            generation.pad_token_id = self.pad_id

    @property
    def config(self):
        return self.model.config

    def describe(self) -> dict:
        return {
            **super().describe(),
            "model_type": self.model.config.model_type,
            "positions": self.positions,
            "eos_id": self.eos_id,
            "pad_id": self.pad_id,
        }


class Float32Scores:
    """A logits processor casting the next-token scores to float32.

    Under mixed precision the LM head gives float16/bfloat16 logits, and generation's logits
    warpers (temperature, top-k, top-p) combine them with float32 tensors, which fails.
    Hugging Face runs the processors given to ``generate`` after its own and before the warpers.
    """

    def __call__(self, input_ids, scores, cur_len):
        return tf.cast(scores, tf.float32)


def _float32_scores():
    """``logits_processor`` for ``generate``: :class:`Float32Scores`."""
    from transformers.generation.tf_logits_process import TFLogitsProcessorList

    return TFLogitsProcessorList([Float32Scores()])


def load_causal_lm_backbone(hf_model: str, allow_pickle: bool = False) -> CausalLMBackbone:
    """Load a decoder-only checkpoint with ``TFAutoModelForCausalLM`` (no code from the folder runs).

    Args:
        hf_model: a folder (or a name in the local Hugging Face cache) with ``config.json``,
            tokenizer files and weights.
        allow_pickle: load pickle weights through PyTorch when nothing safer is there.

    Raises:
        BackboneError: no loadable weights, only pickles, an encoder-decoder checkpoint, a
            model type without a TF causal-LM class, or weights that do not fit.
    """
    from transformers import AutoConfig, TFAutoModelForCausalLM

    path = resolve_hf_source(hf_model)
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as error:
        raise BackboneError(f"{path / 'config.json'} cannot be read: {error}") from None
    if getattr(config, "is_encoder_decoder", False):
        raise BackboneError(
            f"{path}: model_type={config.model_type!r} is an encoder-decoder; --task causal-lm needs a "
            "decoder-only checkpoint (GPT-2 family). Use --task summarize or translate for this one."
        )
    found = sorted(entry.name for entry in path.iterdir())
    model, tokenizer, _ = load_checkpoint(
        path,
        found,
        TFAutoModelForCausalLM,
        allow_pickle=allow_pickle,
        kind=f"a TF causal LM (model_type={config.model_type!r})",
    )
    return CausalLMBackbone(model, tokenizer, hf_model)


class CausalLMModel(keras.Model):
    """A tf_keras model around a Hugging Face TF causal LM.

    ``call`` takes ``{input_ids, attention_mask}`` (right padded) and returns float32 logits
    ``[batch, length, vocabulary]``: position t scores the token at t + 1.

    Args:
        backbone: the loaded :class:`CausalLMBackbone`.
    """

    def __init__(self, backbone: CausalLMBackbone, **kwargs):
        super().__init__(name=kwargs.pop("name", "tfft_causal_lm"), **kwargs)
        self.hf = backbone.model
        # Not tracked: tf.function caches are no part of checkpoints or exports.
        object.__setattr__(self, "_generators", {})

    def get_config(self) -> dict:
        return {"name": self.name}

    def call(self, features, training=False):
        outputs = self.hf(
            input_ids=features["input_ids"],
            attention_mask=features["attention_mask"],
            training=training,
            return_dict=True,
            use_cache=False,
        )
        return tf.cast(outputs.logits, tf.float32)

    def build_weights(self) -> None:
        """Create every variable (before loading checkpoints)."""
        ids = tf.ones([1, 4], tf.int32)
        self({"input_ids": ids, "attention_mask": ids})

    def generate_ids(self, input_ids: tf.Tensor, attention_mask: tf.Tensor, **settings) -> tf.Tensor:
        """Prompt and generated ids ``[batch, prompt length + new]`` for left-padded prompts.

        ``settings``: :data:`GENERATION_KEYS` (``sample_seed``: the stateless sampling seed;
        ``top_k`` 0: all tokens).
        Traceable inside a tf.function.
        """
        kwargs: dict = {
            "max_new_tokens": int(settings["max_new_tokens"]),
            "num_beams": int(settings.get("num_beams", 1)),
            "do_sample": bool(settings.get("do_sample", False)),
        }
        if kwargs["do_sample"]:
            kwargs.update(
                temperature=float(settings.get("temperature", 1.0)),
                top_k=int(settings.get("top_k", 0)),
                top_p=float(settings.get("top_p", 1.0)),
                seed=[int(settings.get("sample_seed", 0)), 0],
            )
        else:  # the checkpoint's generation_config must not switch sampling filters on
            kwargs.update(temperature=None, top_k=None, top_p=None)
        return self.hf.generate(
            input_ids=input_ids, attention_mask=attention_mask, logits_processor=_float32_scores(), **kwargs
        )

    def generator(self, settings: dict, xla: bool):
        """A (cached) tf.function generating with ``settings``; ``xla`` compiles it."""
        key = (*(settings.get(name) for name in GENERATION_KEYS), xla)
        if key not in self._generators:
            fixed = {name: settings[name] for name in GENERATION_KEYS if name in settings}

            def generate(input_ids, attention_mask):
                return self.generate_ids(input_ids, attention_mask, **fixed)

            self._generators[key] = tf.function(generate, jit_compile=xla, reduce_retracing=False)
        return self._generators[key]


def left_padded(rows: list[np.ndarray], length: int, batch_size: int, pad_id: int):
    """``(ids, mask)`` int32 ``[batch_size, length]``: rows right-aligned (left padding), the
    batch filled up with copies of the first row."""
    filled = rows + [rows[0]] * (batch_size - len(rows))
    ids = np.full([batch_size, length], pad_id, np.int32)
    mask = np.zeros([batch_size, length], np.int32)
    for r, row in enumerate(filled):
        if len(row):
            ids[r, length - len(row) :] = row
            mask[r, length - len(row) :] = 1
    return ids, mask


def generate_new_ids(
    model: CausalLMModel,
    prompts: list[np.ndarray],
    *,
    pad_id: int,
    buckets: list[int],
    batch_size: int,
    settings: dict,
    xla: bool | None = None,
) -> list[np.ndarray]:
    """The new token ids generated after each prompt, in fixed-shape batches.

    Prompts are sorted by length, left padded to the next bucket length, and every batch has
    ``batch_size`` rows (copies fill the last one), so XLA compiles few shapes. With ``xla``
    None, XLA is tried first and generation falls back to plain graph mode when it fails.

    Returns:
        Per prompt, in input order, the ``max_new_tokens`` generated ids (padding after the
        end token included).
    """
    if any(len(row) == 0 for row in prompts):
        raise ConfigError("Every prompt needs at least one token; an empty prompt cannot be continued.")
    order = np.argsort([len(row) for row in prompts], kind="stable")
    results: list[np.ndarray | None] = [None] * len(prompts)
    use_xla = True if xla is None else xla
    bounds = np.asarray(buckets)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        rows = [prompts[i] for i in chosen]
        longest = max(len(row) for row in rows)
        length = int(bounds[np.searchsorted(bounds, longest)]) if longest <= bounds[-1] else longest
        ids, mask = (tf.constant(value) for value in left_padded(rows, length, batch_size, pad_id))
        try:
            output = model.generator(settings, xla=use_xla)(ids, mask)
        except (tf.errors.OpError, ValueError, NotImplementedError, TypeError) as error:
            if not use_xla or xla is not None:
                raise
            logger.warning(
                "XLA generation failed (%s); generating without XLA.", str(error).splitlines()[0][:200]
            )
            use_xla = False
            output = model.generator(settings, xla=False)(ids, mask)
        output = output.numpy()[:, length:]
        for r, index in enumerate(chosen):
            results[index] = output[r]
    return results  # type: ignore[return-value]


def check_positions(backbone: CausalLMBackbone, length: int, what: str) -> None:
    """Raise when ``length`` tokens do not fit the model's position embeddings."""
    if backbone.positions is not None and length > backbone.positions:
        raise ConfigError(
            f"{what} is {length} tokens, but {Path(backbone.source).name} takes at most {backbone.positions} "
            f"positions. Received: {what.split()[0]}={length}"
        )
