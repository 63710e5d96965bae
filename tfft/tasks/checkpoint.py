"""What the tasks whose whole model is a Hugging Face checkpoint's own share.

Masked-LM (``mlm``), causal-LM (``causal-lm``) and encoder-decoder (``translate``,
``summarize``) fine-tuning train the checkpoint's own language-model head: there is no task
head, no label set and no TF Hub path, and the loss is token cross-entropy averaged over the
weighted target tokens. :class:`CheckpointTask` holds those parts once; each task adds its
data, batches, generation and serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.losses import WeightedMeanLoss, smoothed_token_crossentropy
from tfft.model import ModelSpec
from tfft.tasks.base import Task


class CheckpointTask(Task):
    """A task trained through a checkpoint's own language-model head.

    Attributes:
        options_class: the task's options dataclass (:class:`tfft.options.TaskOptions`).
        reads: what one example's text is, for the ``--text-pair-column`` error.
        backbone_class, backbone_kind: the backbone type a given ``backbone`` must be, and how
            errors name it.
    """

    options_class: type = type(None)
    reads: str = "one text"
    backbone_class: type = type(None)
    backbone_kind: str = ""

    def settings_from_data(self, train, config) -> dict:
        return {"labels": [], **config.task.saved()}

    def settings_from_args(
        self, label_names: Sequence[str] | None, num_labels: int | None, options: dict[str, Any]
    ) -> dict:
        if label_names is not None or num_labels is not None:
            raise ConfigError(f"task={self.name!r} has no labels (label_names/num_labels).")
        return {"labels": [], **self.options_class.from_api(options, self.name).saved()}

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
        """The checkpoint's own model (its own dropout applies; ``pooling``/``dropout`` are unused):
        ``backbone`` when given (of ``backbone_class``), else :meth:`load_backbone` of
        ``--hf-model``, wrapped by :meth:`checkpoint_model`, with ``model.tfft_spec`` set.

        Raises:
            ConfigError: a TF Hub model, a text pair, no checkpoint, or a backbone of another kind.
        """
        if hub_url or hub_preprocess_url:
            raise ConfigError(
                f"--task {self.name} needs a Hugging Face checkpoint (--hf-model), not --hub-url."
            )
        if pair:
            raise ConfigError(f"--task {self.name} reads {self.reads}; --text-pair-column does not apply.")
        if backbone is None:
            if not hf_model:
                raise ConfigError(f"--task {self.name} needs --hf-model.")
            backbone = self.load_backbone(hf_model, allow_pickle, settings)
        elif not isinstance(backbone, self.backbone_class):
            raise ConfigError(
                f"--task {self.name} needs a {self.backbone_kind} backbone "
                f"({self.backbone_class.__module__})."
            )
        model = self.checkpoint_model(backbone, settings)
        model.build_weights()
        model.tfft_spec = ModelSpec(
            self.name, (), False, "none", backbone, self.model_settings(backbone, settings)
        )
        return model

    def load_backbone(self, hf_model: str, allow_pickle: bool, settings: dict):
        """The task's backbone loaded from ``--hf-model``."""
        raise NotImplementedError

    def checkpoint_model(self, backbone, settings: dict) -> keras.Model:
        """The task's Keras model on ``backbone`` (weights not built yet); checks ``settings``
        against the backbone first where they must fit it."""
        raise NotImplementedError

    def model_settings(self, backbone, settings: dict) -> dict:
        """The settings kept in ``model.tfft_spec`` (and saved with the model)."""
        return dict(settings)

    def loss(self, spec):
        """Token cross-entropy averaged over the weighted target tokens (label smoothing from the
        task's ``label_smoothing`` setting, where it has one)."""
        return WeightedMeanLoss(
            smoothed_token_crossentropy(float(spec.settings.get("label_smoothing", 0.0))),
            name="token_crossentropy",
        )
