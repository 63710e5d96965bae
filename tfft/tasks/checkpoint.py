"""What the tasks whose whole model is a Hugging Face checkpoint's own share.

Masked-LM (``mlm``), causal-LM (``causal-lm``) and encoder-decoder (``translate``,
``summarize``) fine-tuning train the checkpoint's own language-model head: there is no task
head, no label set and no TF Hub path, and the loss is token cross-entropy averaged over the
weighted target tokens. :class:`CheckpointTask` holds those parts once; each task adds its
data, batches, generation and serving.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tfft.errors import ConfigError
from tfft.losses import WeightedMeanLoss, smoothed_token_crossentropy
from tfft.tasks.base import Task


class CheckpointTask(Task):
    """A task trained through a checkpoint's own language-model head.

    Attributes:
        options_class: the task's options dataclass (:class:`tfft.options.TaskOptions`).
        reads: what one example's text is, for the ``--text-pair-column`` error.
    """

    options_class: type = type(None)
    reads: str = "one text"

    def settings_from_data(self, train, config) -> dict:
        return {"labels": [], **config.task.saved()}

    def settings_from_args(
        self, label_names: Sequence[str] | None, num_labels: int | None, options: dict[str, Any]
    ) -> dict:
        if label_names is not None or num_labels is not None:
            raise ConfigError(f"task={self.name!r} has no labels (label_names/num_labels).")
        return {"labels": [], **self.options_class.from_api(options, self.name).saved()}

    def checkpoint_backbone(
        self,
        *,
        hf_model,
        hub_url,
        hub_preprocess_url,
        pair,
        backbone,
        backbone_class: type,
        kind: str,
        load: Callable[[], Any],
    ):
        """The backbone to build on: ``backbone`` when given (of ``backbone_class``), else
        ``load()`` of ``--hf-model``.

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
            return load()
        if not isinstance(backbone, backbone_class):
            raise ConfigError(f"--task {self.name} needs a {kind} backbone ({backbone_class.__module__}).")
        return backbone

    def loss(self, spec):
        """Token cross-entropy averaged over the weighted target tokens (label smoothing from the
        task's ``label_smoothing`` setting, where it has one)."""
        return WeightedMeanLoss(
            smoothed_token_crossentropy(float(spec.settings.get("label_smoothing", 0.0))),
            name="token_crossentropy",
        )
