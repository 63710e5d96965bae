"""Low-rank adapters (LoRA) for Hugging Face TF backbones, in Keras 2.

Each targeted projection layer (a Keras ``Dense`` or Hugging Face ``TFConv1D``) keeps its
own variables (so Hugging Face weight names, checkpoints and exports are unchanged) and
gets a :class:`LoraAdapter` child with ``A`` (``[in, rank]``, random like PEFT's
Kaiming-uniform) and ``B`` (``[rank, out]``, zeros). The layer's ``call`` is patched to

    y = W x + b + (alpha / rank) * B(A(dropout(x)))

so the adapted model starts equal to the base. :func:`apply_lora` freezes every backbone
variable (at the variable level: layers stay ``trainable``, so the adapters inside them
stay trainable); the adapters and the task head train. Adapters are Keras-tracked children
of the patched layers: they are in ``model.trainable_weights``, in checkpoints and in
``BackupAndRestore`` backups. :func:`merged_lora` folds them into the kernels for export
(``W' = W + scale * A @ B``: TF kernels are ``[in, out]`` for both ``Dense`` and
``TFConv1D``), so the served SavedModel has the base model's shapes and speed.
:func:`write_adapter_file` saves the adapters and the head alone.

Which layers a role names depends on the family (:data:`FAMILIES`). GPT-2 computes query,
key and value with one merged projection (``attn/c_attn``): the roles ``query``, ``key``
and ``value`` all adapt that one layer (its whole output, key included).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.lora_options import LORA_ROLES, LoraConfig

logger = logging.getLogger(__name__)

#: what the adapters of a run are saved as, in the run folder
ADAPTER_FILE = "adapters.weights.h5"
ADAPTER_INFO = "adapters.json"

_BERT = {
    "query": r"attention/self/query$",
    "key": r"attention/self/key$",
    "value": r"attention/self/value$",
    "attention_output": r"attention/output/dense$",
    "intermediate": r"intermediate/dense$",
    "output": r"layer_\._\d+/output/dense$",
}
_DISTILBERT = {
    "query": r"attention/q_lin$",
    "key": r"attention/k_lin$",
    "value": r"attention/v_lin$",
    "attention_output": r"attention/out_lin$",
    "intermediate": r"ffn/lin1$",
    "output": r"ffn/lin2$",
}
_GPT2 = {
    "query": r"attn/c_attn$",
    "key": r"attn/c_attn$",
    "value": r"attn/c_attn$",
    "attention_output": r"attn/c_proj$",
    "intermediate": r"mlp/c_fc$",
    "output": r"mlp/c_proj$",
}
_T5 = {
    "query": r"(SelfAttention|EncDecAttention)/q$",
    "key": r"(SelfAttention|EncDecAttention)/k$",
    "value": r"(SelfAttention|EncDecAttention)/v$",
    "attention_output": r"(SelfAttention|EncDecAttention)/o$",
    "intermediate": r"DenseReluDense/wi(_[01])?$",
    "output": r"DenseReluDense/wo$",
}
_BART = {
    "query": r"(self_attn|encoder_attn)/q_proj$",
    "key": r"(self_attn|encoder_attn)/k_proj$",
    "value": r"(self_attn|encoder_attn)/v_proj$",
    "attention_output": r"(self_attn|encoder_attn)/out_proj$",
    "intermediate": r"layers\.\d+/fc1$",
    "output": r"layers\.\d+/fc2$",
}

#: model_type -> role -> regular expression on a layer's path inside the Hugging Face model
#: (seq2seq models: self- and cross-attention of encoder and decoder alike)
FAMILIES = {
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "camembert": _BERT,
    "electra": _BERT,
    "distilbert": _DISTILBERT,
    "gpt2": _GPT2,
    "t5": _T5,
    "bart": _BART,
    "marian": _BART,
}
#: where a patched layer keeps its weight matrix (``Dense.kernel``, ``TFConv1D.weight``)
_KERNELS = ("kernel", "weight")
_ADAPTER = "lora"


class LoraAdapter(keras.layers.Layer):
    """``scale * B(A(dropout(x)))``: the low-rank update of one projection layer.

    Args:
        input_dim: the projection's input width.
        output_dim: its output width.
        rank: the rank r.
        scale: ``alpha / rank``.
        dropout: dropout rate on ``x`` (active in training only).
        **kwargs: Keras layer arguments (``name``, ``dtype``: the patched layer's policy).
    """

    def __init__(self, input_dim: int, output_dim: int, rank: int, scale: float, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim, self.rank = int(input_dim), int(output_dim), int(rank)
        self.scale, self.rate = float(scale), float(dropout)
        self.dropout = keras.layers.Dropout(self.rate, dtype=self.dtype_policy) if self.rate else None

    def build(self, input_shape=None):
        # PEFT's A init, kaiming_uniform(a=sqrt(5)): uniform in +-1/sqrt(fan_in).
        a_init = keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")
        self.lora_a = self.add_weight("lora_a", shape=(self.input_dim, self.rank), initializer=a_init)
        self.lora_b = self.add_weight("lora_b", shape=(self.rank, self.output_dim), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        x = self.dropout(inputs) if self.dropout is not None else inputs
        rank = x.shape.rank
        x = tf.tensordot(x, self.lora_a, [[rank - 1], [0]])
        x = tf.tensordot(x, self.lora_b, [[rank - 1], [0]])
        return x * tf.cast(self.scale, x.dtype)

    def delta(self) -> tf.Tensor:
        """``scale * A @ B`` in float32, ``[in, out]``: what merging adds to the kernel."""
        a, b = (tf.cast(tf.convert_to_tensor(w), tf.float32) for w in (self.lora_a, self.lora_b))
        return self.scale * tf.matmul(a, b)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "rank": self.rank,
            "scale": self.scale,
            "dropout": self.rate,
        }


def layer_paths(model: keras.layers.Layer) -> Iterator[tuple[str, keras.layers.Layer]]:
    """Every layer inside ``model`` with its path of layer names (``bert/encoder/layer_._0/...``).

    Args:
        model: a Keras layer or model (a Hugging Face TF main model).

    Returns:
        ``(path, layer)`` pairs, each layer once, depth first.
    """
    seen: set[int] = set()

    def walk(layer, prefix):
        for child in layer._flatten_layers(include_self=False, recursive=False):
            if id(child) in seen:
                continue
            seen.add(id(child))
            path = f"{prefix}/{child.name}" if prefix else child.name
            yield path, child
            yield from walk(child, path)

    yield from walk(model, "")


def find_targets(hf_model, model_type: str, roles: tuple[str, ...]) -> list[tuple[str, keras.layers.Layer]]:
    """The projection layers the LoRA roles name in a Hugging Face model.

    Args:
        hf_model: the Hugging Face TF main model.
        model_type: its ``config.model_type`` (picks the family's layer names).
        roles: roles among :data:`tfft.lora_options.LORA_ROLES`.

    Returns:
        ``(path, layer)`` pairs in the model's order, each layer once (GPT-2's query and
        value are one layer).

    Raises:
        ConfigError: an unsupported family, an unknown role, or a role that matches no layer.
    """
    family = FAMILIES.get(model_type)
    if family is None:
        raise ConfigError(
            f"LoRA is not supported for {model_type or 'this'} backbones yet (model_type={model_type!r}). "
            f"Supported: {', '.join(sorted(FAMILIES))}."
        )
    layers = [(path, layer) for path, layer in layer_paths(hf_model) if _kernel(layer) is not None]
    found: set[int] = set()
    for role in roles:
        if role not in family:
            raise ConfigError(
                f"`lora_targets`: unknown role {role!r}. Known: {', '.join(LORA_ROLES)}. "
                f"Received: lora_targets={','.join(roles)!r}"
            )
        matched = [(path, layer) for path, layer in layers if re.search(family[role], path)]
        if not matched:
            raise ConfigError(
                f"`lora_targets`: role {role!r} matches no layer of this {model_type} backbone "
                f"(looked for /{family[role]}/). Received: lora_targets={','.join(roles)!r}"
            )
        found.update(id(layer) for _, layer in matched)
    return [(path, layer) for path, layer in layers if id(layer) in found]


def _kernel(layer) -> tf.Variable | None:
    """The weight matrix of a ``Dense`` or ``TFConv1D`` layer, else None."""
    if not isinstance(layer, keras.layers.Dense) and type(layer).__name__ != "TFConv1D":
        return None
    for name in _KERNELS:
        value = getattr(layer, name, None)
        if isinstance(value, tf.Variable) and value.shape.rank == 2:
            return value
    return None


def apply_lora(backbone, lora: LoraConfig) -> list[tuple[str, keras.layers.Layer]]:
    """Add LoRA adapters to a Hugging Face backbone and freeze its own weights.

    Call it in the distribution strategy's scope (as :func:`tfft.build_model` is): the
    adapters' variables are created here.

    Args:
        backbone: a :class:`~tfft.backbones.hf.HFBackbone`, or a
            :class:`~tfft.backbones.seq2seq.Seq2SeqBackbone` whose model is built.
        lora: the LoRA settings.

    Returns:
        The adapted layers as ``(path, layer)`` pairs (also kept as ``backbone.lora_layers``;
        ``backbone.lora`` holds the settings).

    Raises:
        ConfigError: a backbone that is not a Hugging Face one, one already adapted, or the
            errors of :func:`find_targets`.
    """
    if getattr(backbone, "kind", None) not in (
        "hf",
        "hf-seq2seq",
        "hf-causal-lm",
        "hf-masked-lm",
    ) or not hasattr(backbone, "model"):
        raise ConfigError(
            "LoRA (--lora-rank) works on --hf-model backbones only; "
            f"a {getattr(backbone, 'kind', type(backbone).__name__)} backbone (e.g. TF Hub) is not supported."
        )
    if getattr(backbone, "lora", None) is not None:
        raise ConfigError("This backbone already has LoRA adapters.")
    model_type = backbone.model.config.model_type
    targets = find_targets(backbone.model, model_type, lora.roles)
    for _, layer in targets:
        _attach(layer, lora)
    _freeze_base(backbone.model)
    backbone.lora, backbone.lora_layers = lora, targets
    count = sum(int(np.prod(w.shape)) for _, layer in targets for w in getattr(layer, _ADAPTER).weights)
    logger.info(
        "LoRA rank %d on %d layers (%s): %d adapter weights", lora.rank, len(targets), lora.targets, count
    )
    if model_type == "gpt2" and {"query", "key", "value"} & set(lora.roles):
        logger.info("GPT-2: query, key and value share attn/c_attn; its LoRA adapts all three.")
    return targets


def _attach(layer, lora: LoraConfig) -> None:
    """Give ``layer`` a built :class:`LoraAdapter` child and route its ``call`` through it.

    The adapter's variables are named after the kernel's, e.g. ``.../self/query/lora/lora_a:0``.
    """
    kernel = _kernel(layer)
    adapter = LoraAdapter(
        kernel.shape[0],
        kernel.shape[1],
        lora.rank,
        lora.scale,
        lora.dropout,
        name=_ADAPTER,
        dtype=layer.dtype_policy,
    )
    with tf.name_scope(f"{kernel.name.rsplit('/', 1)[0]}/{_ADAPTER}/"):
        adapter.build(None)
    setattr(layer, _ADAPTER, adapter)  # a tracked child: checkpoints and backups hold it
    original = layer.call

    def call(inputs, *args, **kwargs):
        outputs = original(inputs, *args, **kwargs)
        adapter = getattr(layer, _ADAPTER, None)
        if adapter is None:  # merged for export
            return outputs
        return outputs + tf.cast(adapter(inputs), outputs.dtype)

    object.__setattr__(layer, "call", call)  # plain attribute: not tracked by Keras


def _freeze_base(hf_model) -> None:
    """Make every variable of the Hugging Face model non-trainable, except the adapters.

    Layers keep ``trainable=True`` (a frozen layer hides its children's weights in Keras 2,
    the adapters among them): the variables move to the non-trainable lists instead.
    """
    for layer in hf_model._flatten_layers(include_self=True):
        if isinstance(layer, LoraAdapter) or not layer._trainable_weights:
            continue
        layer._non_trainable_weights.extend(layer._trainable_weights)
        layer._trainable_weights = []


def lora_of(model) -> LoraConfig | None:
    """The LoRA settings of a model built by :func:`tfft.build_model`, or None."""
    spec = getattr(model, "tfft_spec", None)
    return getattr(getattr(spec, "backbone", None), "lora", None)


def _adapted(model) -> list[tuple[str, keras.layers.Layer]]:
    return list(getattr(model.tfft_spec.backbone, "lora_layers", ())) if lora_of(model) else []


@contextlib.contextmanager
def merged_lora(model):
    """Within the block, the adapters are folded into the kernels and detached.

    ``W' = W + (alpha / rank) * A @ B``; the layers run their original ``call`` and the
    adapters are no Keras children, so a SavedModel written in the block has the base
    model's variables and graph. On leaving, the kernels, calls and adapters are put back
    exactly (the original kernels are restored from a copy, not by subtraction).

    Args:
        model: a model built by :func:`tfft.build_model`; without LoRA nothing happens.
    """
    adapted = _adapted(model)
    saved = []
    # tf.functions a model caches (Seq2SeqModel's generators) were traced with the adapters.
    caches = getattr(model, "_generators", None) if adapted else None
    if caches is not None:
        object.__setattr__(model, "_generators", {})
    try:
        for _, layer in adapted:
            kernel, adapter = _kernel(layer), getattr(layer, _ADAPTER)
            original = kernel.numpy()
            with _scope_of(kernel):
                kernel.assign(tf.cast(tf.cast(original, tf.float32) + adapter.delta(), kernel.dtype))
            saved.append((layer, kernel, original, adapter, layer.call))
            _detach(layer)
        yield model
    finally:
        for layer, kernel, original, adapter, call in reversed(saved):
            with _scope_of(kernel):
                kernel.assign(original)
            setattr(layer, _ADAPTER, adapter)
            object.__setattr__(layer, "call", call)
        if caches is not None:
            object.__setattr__(model, "_generators", caches)


def _detach(layer) -> None:
    """Take the adapter off ``layer``: no Keras child, no checkpoint dependency, original call."""
    delattr(layer, _ADAPTER)  # Keras untracks the layer and its weights ...
    layer._delete_tracking(_ADAPTER)  # ... but leaves the SavedModel/checkpoint dependency
    object.__delattr__(layer, "call")


def _scope_of(variable):
    """The distribution strategy scope a (mirrored) variable is updated in."""
    strategy = getattr(variable, "_distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def adapter_weights(model) -> list[tf.Variable]:
    """What a LoRA run trains: the adapters and the task head (``model.trainable_weights``)."""
    return list(model.trainable_weights)


def write_adapter_file(model, folder: str | Path) -> Path:
    """Save the adapters and the head (no base weights) to ``folder/adapters.weights.h5``.

    ``folder/adapters.json`` records the LoRA settings, the base model and each weight's
    name and shape, in the file's order.

    Args:
        model: a LoRA model built by :func:`tfft.build_model`.
        folder: usually the run folder.

    Returns:
        The ``.h5`` file written.

    Raises:
        ConfigError: the model has no LoRA adapters.
    """
    import h5py

    lora = lora_of(model)
    if lora is None:
        raise ConfigError("This model has no LoRA adapters (build it with lora=...).")
    weights = adapter_weights(model)
    path = Path(folder) / ADAPTER_FILE
    with h5py.File(path, "w") as handle:
        for index, weight in enumerate(weights):
            handle.create_dataset(f"{index:04d}", data=weight.numpy()).attrs["name"] = weight.name
    backbone = model.tfft_spec.backbone
    info = {
        "format": "tfft-lora/1",
        "lora": lora.to_dict(),
        "base_model": backbone.source,
        "model_type": backbone.model.config.model_type,
        "base_fingerprint": base_fingerprint(model),
        "task": model.tfft_spec.task,
        "settings": model.tfft_spec.settings,
        "layers": [path for path, _ in backbone.lora_layers],
        "weights": [{"name": w.name, "shape": list(w.shape)} for w in weights],
    }
    (Path(folder) / ADAPTER_INFO).write_text(json.dumps(info, indent=2))
    return path


def base_fingerprint(model) -> str:
    """A short SHA-256 of the base kernels LoRA adapts (in float32, unmerged): adapters
    written on one base checkpoint are told apart from another base of the same shapes."""
    import hashlib

    digest = hashlib.sha256()
    for path, layer in _adapted(model):
        digest.update(path.encode())
        digest.update(np.asarray(_kernel(layer).numpy(), dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def load_adapter_file(model, path: str | Path) -> None:
    """Load a file of :func:`write_adapter_file` into a model built with the same settings.

    Raises:
        ConfigError: the model has no LoRA, or the file's weights do not fit it.
    """
    import h5py

    if lora_of(model) is None:
        raise ConfigError("This model has no LoRA adapters (build it with lora=...).")
    weights = adapter_weights(model)
    with h5py.File(path, "r") as handle:
        values = [handle[key][()] for key in sorted(handle)]
    shapes = [tuple(w.shape) for w in weights]
    if [v.shape for v in values] != shapes:
        raise ConfigError(
            f"{path}: its {len(values)} adapter/head weights do not fit this model's {len(weights)} "
            "(built with other LoRA settings, task or labels?)."
        )
    for weight, value in zip(weights, values):
        weight.assign(value)
