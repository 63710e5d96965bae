"""Backbone + task head = a tf_keras model ready for ``compile`` and ``fit``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from tfft.backbones import Backbone, load_backbone
from tfft.backbones.freezing import freeze
from tfft.backbones.lora import apply_lora
from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.lora_options import LoraConfig, check_one_way_to_freeze
from tfft.tasks import get_task


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What tfft needs to know about a model it built (attached as ``model.tfft_spec``)."""

    task: str
    label_names: tuple[str, ...]
    pair: bool
    pooling: str
    backbone: Backbone
    settings: dict = dataclasses.field(default_factory=dict)

    @property
    def task_object(self):
        """The :class:`~tfft.tasks.base.Task` this model was built for."""
        return get_task(self.task)


def build_model(
    backbone: Backbone | None = None,
    *,
    hf_model: str | None = None,
    hub_url: str | None = None,
    hub_preprocess_url: str | None = None,
    allow_pickle: bool = False,
    task: str = "classify",
    num_labels: int | None = None,
    label_names: Sequence[str] | None = None,
    pair: bool = False,
    pooling: str = "auto",
    dropout: float = 0.1,
    settings: dict | None = None,
    freeze_backbone: bool = False,
    train_top_layers: int | None = None,
    lora: LoraConfig | Mapping | None = None,
    **task_options,
) -> keras.Model:
    """Build a tf_keras model: a pretrained backbone with a task head.

    Args:
        backbone: an already loaded :class:`~tfft.backbones.Backbone`; or give one of
            ``hf_model`` / ``hub_url`` (see :func:`tfft.load_backbone`).
        allow_pickle: let ``hf_model`` load pickle weights (see :func:`tfft.load_backbone`).
        task: ``"classify"``, ``"regress"``, ``"multilabel"``, ``"ner"`` or ``"qa"``.
        num_labels: how many classes (targets for ``regress``); or give ``label_names``.
        label_names: class names, index = label id (default ``"0"``, ``"1"``, ...); the
            target names for ``regress``, the tags for ``ner``; none for ``qa``.
        pair: the model reads sentence pairs (sequence-level tasks).
        pooling: ``auto`` (the backbone's own), ``pooler``, ``cls``, ``mean`` or ``last``.
        dropout: dropout before the head.
        settings: complete task settings (as saved in a run folder's ``task.json``);
            replaces ``num_labels``, ``label_names`` and ``task_options``.
        freeze_backbone: train the head only (see :mod:`tfft.backbones.freezing`).
        train_top_layers: train the head and the top N transformer layers only.
        lora: train low-rank adapters on a frozen Hugging Face backbone: a
            :class:`tfft.lora_options.LoraConfig` or a dict of its fields, e.g.
            ``dict(rank=8, alpha=16, dropout=0.0, targets="query,value")``; None (default)
            fine-tunes every weight. See :mod:`tfft.backbones.lora`.
        **task_options: the task's own options, e.g. ``threshold=0.5`` for ``multilabel``.

    Returns:
        A functional ``tf_keras.Model`` taking ``{input_ids, attention_mask,
        token_type_ids}`` (or ``{text[, text_pair]}`` for text-embedding backbones) and
        returning float32 logits ``[batch, num_labels]``. ``model.tfft_spec`` holds the
        task, labels and backbone; :func:`tfft.make_dataset` and
        :func:`tfft.export_saved_model` use it.

    Example (a tiny random BERT; any Hugging Face TF folder works the same):

    >>> import tfft, tempfile, transformers
    >>> folder = tempfile.mkdtemp()
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie"]
    >>> _ = open(f"{folder}/vocab.txt", "w").write("\\n".join(vocab))
    >>> transformers.BertTokenizerFast(f"{folder}/vocab.txt").save_pretrained(folder)  # doctest: +ELLIPSIS
    (...)
    >>> config = transformers.BertConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1,
    ...                                  num_attention_heads=2, intermediate_size=16)
    >>> bert = transformers.TFBertModel(config)
    >>> _ = bert(bert.dummy_inputs)  # create the weights
    >>> bert.save_pretrained(folder)
    >>> model = tfft.build_model(hf_model=folder, task="classify", label_names=["neg", "pos"])
    >>> model.compile(optimizer="adam", loss=tfft.loss_for(model), weighted_metrics=["accuracy"])
    >>> data = tfft.make_dataset(model, ["good movie", "bad movie"], labels=["pos", "neg"], batch_size=2)
    >>> history = model.fit(data, epochs=1, verbose=0)
    >>> model.predict(tfft.make_dataset(model, ["good"], batch_size=1), verbose=0).shape
    (1, 2)
    >>> tfft.export_saved_model(model, f"{folder}/saved_models/tiny").name  # raw text in, labels out
    '1'
    """
    task_object = get_task(task)
    lora = LoraConfig.of(lora)
    check_one_way_to_freeze(freeze_backbone, train_top_layers, None if lora is None else lora.rank)
    if settings is None:
        settings = task_object.settings_from_args(label_names, num_labels, task_options)
    elif label_names is not None or num_labels is not None or task_options:
        raise ConfigError("Give `settings` or `num_labels`/`label_names`/task options, not both.")
    if task_object.build is not None:
        if freeze_backbone or train_top_layers is not None:
            raise ConfigError(
                f"--freeze-backbone and --train-top-layers are not supported for --task {task}. "
                f"Received: freeze_backbone={freeze_backbone!r}, train_top_layers={train_top_layers!r}"
            )
        model = task_object.build(
            hf_model=hf_model,
            hub_url=hub_url,
            hub_preprocess_url=hub_preprocess_url,
            allow_pickle=allow_pickle,
            backbone=backbone,
            settings=settings,
            pair=pair,
            pooling=pooling,
            dropout=dropout,
        )
        if lora is not None:  # the task built every weight: adapt them
            apply_lora(model.tfft_spec.backbone, lora)
        return model
    if backbone is None:
        backbone = load_backbone(
            hf_model=hf_model,
            hub_url=hub_url,
            hub_preprocess_url=hub_preprocess_url,
            allow_pickle=allow_pickle,
        )
    elif hf_model or hub_url:
        raise ConfigError("Give either `backbone` or `hf_model`/`hub_url`, not both.")

    if lora is not None:
        apply_lora(backbone, lora)
    pooling = backbone.resolve_pooling(pooling)
    inputs = backbone.inputs(pair)
    outputs = task_object.head(backbone, inputs, settings, pooling, dropout)
    model = keras.Model(inputs=inputs, outputs=outputs, name=f"tfft_{task}")
    if freeze_backbone or train_top_layers is not None:
        freeze(backbone, pooling, freeze_backbone=freeze_backbone, train_top_layers=train_top_layers)
    model.tfft_spec = ModelSpec(task, tuple(settings.get("labels", ())), pair, pooling, backbone, settings)
    return model


def spec_of(model: keras.Model) -> ModelSpec:
    """The :class:`ModelSpec` of a model built by :func:`build_model`."""
    spec = getattr(model, "tfft_spec", None)
    if not isinstance(spec, ModelSpec):
        raise ConfigError("This model was not built by tfft.build_model (it has no `tfft_spec`).")
    return spec


def loss_for(model: keras.Model):
    """The loss that goes with the model's task."""
    spec = spec_of(model)
    return spec.task_object.loss(spec)


def metrics_for(model: keras.Model) -> list:
    """Keras metrics reported while training the model's task."""
    spec = spec_of(model)
    return spec.task_object.train_metrics(spec)
