"""Memory and time estimates of a training run, before it starts (``tfft fit --dry-run``).

Plain formulas over numbers (no TensorFlow), so they can be checked by hand and in unit
tests; :mod:`tfft.dry_run` feeds them the model's variables, its transformer shape and the
measured step times.

Memory of training, in bytes:

- **weights**: every variable at its own dtype (under mixed precision the variables stay
  float32: Keras keeps float32 masters and casts them on read).
- **compute copies**: under ``mixed_float16`` / ``mixed_bfloat16`` every weight read in the
  forward pass is cast to the 16-bit compute dtype: 2 bytes per parameter, counted for all
  weights at once (an upper bound: TensorFlow may free a layer's copies before the next's).
- **gradients**: one float32 value per trainable parameter (the gradient of a cast
  variable is cast back to the variable's dtype). Gradient accumulation adds one more
  gradient-sized running sum; DP-SGD's per-example gradients (``tape.jacobian``) hold one
  gradient per example of the (micro-)batch.
- **optimizer state**: slots per trainable parameter in float32: AdamW and Adam 2 (first
  and second moments), SGD with momentum 1.
- **activations**: what backpropagation keeps of one (micro-)batch at the largest bucket
  length, per transformer layer (:func:`activation_bytes_per_layer`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

DTYPE_BYTES = {
    "float64": 8,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int64": 8,
    "int32": 4,
    "int8": 1,
    "bool": 1,
}
OPTIMIZER_SLOTS = {"adamw": 2, "adam": 2, "sgd": 1}
COMPUTE_DTYPE = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a dtype name (``"float32"`` -> 4).

    Raises:
        ValueError: a dtype not in :data:`DTYPE_BYTES`.
    """
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"Unknown dtype for a memory estimate. Received: dtype={dtype!r}")
    return DTYPE_BYTES[dtype]


def compute_dtype(precision: str) -> str:
    """The dtype activations are computed in under ``--precision`` (a resolved one, not ``auto``).

    Raises:
        ValueError: an unknown precision.
    """
    if precision not in COMPUTE_DTYPE:
        raise ValueError(
            f"--precision must be one of {', '.join(COMPUTE_DTYPE)} here. Received: precision={precision!r}"
        )
    return COMPUTE_DTYPE[precision]


@dataclasses.dataclass(frozen=True)
class TransformerShape:
    """The sizes of a transformer stack that set its activation memory.

    Attributes:
        layers: transformer blocks.
        hidden: hidden size h.
        heads: attention heads a.
        intermediate: feed-forward inner size (often 4h).
        dropout: hidden dropout rate (0 keeps no masks).
        attention_dropout: dropout rate on the attention probabilities.
    """

    layers: int
    hidden: int
    heads: int
    intermediate: int
    dropout: float = 0.0
    attention_dropout: float = 0.0


def transformer_shape(config: Mapping) -> TransformerShape | None:
    """The :class:`TransformerShape` of a Hugging Face model config (a dict), or None when its
    sizes are not found (BERT, RoBERTa, DistilBERT, GPT-2 and T5/BART names are read)."""

    def first(*names, default=None):
        for name in names:
            if config.get(name) is not None:
                return config[name]
        return default

    hidden = first("hidden_size", "dim", "n_embd", "d_model")
    layers = first("num_hidden_layers", "n_layers", "n_layer", "num_layers", "encoder_layers")
    heads = first("num_attention_heads", "n_heads", "n_head", "encoder_attention_heads")
    if not (hidden and layers and heads):
        return None
    intermediate = (
        first("intermediate_size", "hidden_dim", "n_inner", "d_ff", "encoder_ffn_dim") or 4 * hidden
    )
    dropout = first("hidden_dropout_prob", "dropout", "resid_pdrop", "dropout_rate", default=0.0)
    attention_dropout = first(
        "attention_probs_dropout_prob", "attention_dropout", "attn_pdrop", default=dropout
    )
    return TransformerShape(
        int(layers), int(hidden), int(heads), int(intermediate), float(dropout), float(attention_dropout)
    )


def activation_bytes_per_layer(shape: TransformerShape, batch: int, length: int, element_bytes: int) -> int:
    """Bytes one transformer layer keeps for backpropagation of a ``[batch, length]`` batch.

    The count of Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
    Transformer Models", section 4.1), with the element size ``p`` as a parameter::

        b*s*h * (8p + 2m)  +  b*s*I * 2p  +  b*a*s^2 * (2p + m)

    - ``8p`` per hidden value: the input of the Q/K/V projections, Q, K, V, the input of the
      attention output projection, the input of the first feed-forward projection and the
      inputs of the two layer norms;
    - ``2m``: the two hidden dropout masks; ``m = p`` when dropout is on, because TensorFlow's
      dropout multiplies by its mask cast to the activation dtype (Megatron's 1-byte masks do
      not apply), 0 when the rate is 0;
    - ``2p`` per feed-forward value (size I): the GELU's input and output;
    - ``2p + m`` per attention score (``a`` heads, ``s x s``): the softmax output, the
      dropout output and the attention dropout mask (the dropout terms drop out at rate 0,
      leaving ``p``).

    With p = 2, m = 1 and I = 4h it is Megatron's ``s*b*h*(34 + 5*a*s/h)``.
    """
    p = element_bytes
    hidden_mask = p if shape.dropout > 0 else 0
    attention_mask = p if shape.attention_dropout > 0 else 0
    tokens = batch * length
    per_score = (2 * p + attention_mask) if shape.attention_dropout > 0 else p
    return (
        tokens * shape.hidden * (8 * p + 2 * hidden_mask)
        + tokens * shape.intermediate * 2 * p
        + batch * shape.heads * length * length * per_score
    )


def activation_bytes(
    shape: TransformerShape, batch: int, length: int, element_bytes: int, trained_layers: int | None = None
) -> int:
    """Activation memory of a training step: the layers backpropagation goes through
    (``trained_layers``; all when None: full fine-tuning and LoRA), plus one layer's worth
    of forward working memory (the only activations of a frozen backbone).

    Raises:
        ValueError: a batch or length below 1.
    """
    if batch < 1 or length < 1:
        raise ValueError(f"batch and length must be >= 1. Received: batch={batch!r}, length={length!r}")
    kept = shape.layers if trained_layers is None else min(max(int(trained_layers), 0), shape.layers)
    return (kept + 1) * activation_bytes_per_layer(shape, batch, length, element_bytes)


def weight_bytes(variables: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Bytes by dtype of ``(dtype, parameters)`` pairs (one per variable)."""
    totals: dict[str, int] = {}
    for dtype, count in variables:
        totals[dtype] = totals.get(dtype, 0) + int(count) * dtype_bytes(dtype)
    return totals


def training_state_bytes(
    trainable: int,
    optimizer: str,
    *,
    accumulation_steps: int = 1,
    per_example_gradients: int = 0,
    variable_dtype: str = "float32",
) -> dict[str, int]:
    """Gradients and optimizer slots of ``trainable`` parameters, in bytes.

    Args:
        trainable: trainable parameters.
        optimizer: ``adamw``, ``adam`` or ``sgd``.
        accumulation_steps: ``--grad-accum-steps``; above 1 adds a running gradient sum.
        per_example_gradients: DP-SGD's examples per (micro-)batch (0 without DP-SGD): one
            gradient each.
        variable_dtype: the dtype of the trainable variables.

    Raises:
        ValueError: an unknown optimizer.
    """
    if optimizer not in OPTIMIZER_SLOTS:
        raise ValueError(
            f"--optimizer must be one of {', '.join(OPTIMIZER_SLOTS)}. Received: optimizer={optimizer!r}"
        )
    size = trainable * dtype_bytes(variable_dtype)
    copies = 1 + (1 if accumulation_steps > 1 else 0) + max(int(per_example_gradients), 0)
    return {"gradients": copies * size, "optimizer": OPTIMIZER_SLOTS[optimizer] * size}


def compute_copy_bytes(parameters: int, precision: str) -> int:
    """The half-precision copies of the weights a mixed-precision forward pass makes (0 in float32)."""
    dtype = compute_dtype(precision)
    return 0 if dtype == "float32" else parameters * dtype_bytes(dtype)


def padding_share(real_tokens: int, slots: int) -> float:
    """The share of token slots in the batches that hold padding (0 with no slots)."""
    return 0.0 if slots <= 0 else round(1.0 - real_tokens / slots, 4)


def epoch_seconds(seconds_per_step: Mapping, batches: Mapping) -> float:
    """Seconds of one epoch: per bucket, its batches times its measured step time.

    Args:
        seconds_per_step: measured seconds of one training step, by bucket length.
        batches: the epoch's batches, by bucket length (the same keys).

    Raises:
        ValueError: a bucket with batches but no measured step time.
    """
    missing = sorted(set(batches) - set(seconds_per_step), key=str)
    if missing:
        raise ValueError(
            f"No measured step time for buckets {missing}. "
            f"Received: seconds_per_step={dict(seconds_per_step)!r}"
        )
    return float(sum(count * seconds_per_step[bucket] for bucket, count in batches.items()))


def estimate_ratio(estimate: int, measured: int) -> float | None:
    """``estimate / measured`` (1.0 is exact), or None when nothing was measured."""
    return None if measured <= 0 else round(estimate / measured, 3)
