"""The interface every task implements, and the helpers sequence-level tasks share.

A :class:`Task` knows, for one kind of problem, how to read its data, what the head on
the backbone looks like, its loss and metrics, how to batch examples, how to judge a
trained model, what the exported serving graph takes and returns, and how to predict with
an export. The pipeline (:mod:`tfft.pipeline`), :func:`tfft.build_model`,
:func:`tfft.make_dataset` and :func:`tfft.export_saved_model` only talk to this interface.

Task *settings* are the JSON-able facts a model of the task needs and that travel with it
(label names, thresholds, target scaling, ...): built from the training data by
:meth:`Task.settings_from_data` (``tfft fit``) or from arguments by
:meth:`Task.settings_from_args` (``tfft.build_model``), kept in ``model.tfft_spec.settings``,
saved in the run folder (``task.json``) and in the export's metadata. ``settings["labels"]``
is always the list of output names (classes, targets or tags; empty for QA).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from tfft.errors import ConfigError

if TYPE_CHECKING:
    from tfft.backbones import Backbone
    from tfft.config import RunConfig
    from tfft.exported import ExportedModel
    from tfft.model import ModelSpec
    from tfft.preprocess import Batching


class Task:
    """One task. Subclasses set the class attributes and implement the methods.

    Attributes:
        name: the ``--task`` name.
        default_monitor: the validation metric that picks the best epoch (``val_...``).
        headline: metric keys that ``tfft fit`` prints and exports record.
        token_level: the head reads per-token features (needs a token encoder backbone).
        slice_metric: the metric slice reports rank slices by and bootstrap
            (``tfft evaluate --slice-*``); None when the task has no slice reports.
        slice_higher_is_better: whether a higher ``slice_metric`` is better.
        headerless_tables: its reader takes ``--columns`` (CSV/TSV files without a header
            row); :meth:`check_headerless` refuses ``--columns`` for the others.
        token_budget_batches: its training batches come from :func:`tfft.preprocess.bucketed_dataset`,
            so ``--batch-tokens`` applies (:mod:`tfft.token_budget`); other tasks refuse it.
    """

    name: str = ""
    default_monitor: str = "val_loss"
    headline: tuple[str, ...] = ("examples",)
    token_level: bool = False
    slice_metric: str | None = None
    slice_higher_is_better: bool = True
    headerless_tables: bool = False
    token_budget_batches: bool = False

    # --- data ---------------------------------------------------------------------------
    def read(
        self,
        source: str,
        config: RunConfig,
        *,
        labelled: bool = True,
        option: str = "--train",
        max_examples: int | None = None,
    ):
        """Read examples from ``source`` as ``config.data`` / ``config.task`` describe.

        Returns an examples object with ``__len__``, ``source`` and ``split(fraction, seed)``.
        ``option`` names the command-line option in error messages.
        """
        raise NotImplementedError

    def check_headerless(self, config: RunConfig) -> None:
        """Refuse ``--columns`` (``config.data.columns``) when this task's reader ignores it.

        Raises:
            ConfigError: ``--columns`` was given and the task reads header rows only.
        """
        if config.data.columns is not None and not self.headerless_tables:
            raise ConfigError(
                f"--columns (CSV/TSV files without a header row) is not supported by --task {self.name}: "
                f"give the file a header row. Received: columns={config.data.columns!r}"
            )

    def has_train_data(self, config: RunConfig) -> bool:
        """Whether ``config`` names training data (``--train``; a task may know other ways)."""
        return bool(config.data.train)

    def split(self, examples, fraction: float, seed: int):
        """``(rest, held_out)`` for ``--eval-split``."""
        return examples.split(fraction, seed)

    def settings_from_data(self, train, config: RunConfig) -> dict:
        """Task settings learned from the training examples (label names, scaling, ...)."""
        raise NotImplementedError

    def settings_from_args(
        self, label_names: Sequence[str] | None, num_labels: int | None, options: dict[str, Any]
    ) -> dict:
        """Task settings for :func:`tfft.build_model` arguments; unknown options are errors."""
        raise NotImplementedError

    def examples_from_cli(self, texts: Sequence[str], pairs: Sequence[str] | None):
        """Unlabelled examples from ``tfft predict --text ... [--text-pair ...]``."""
        raise NotImplementedError

    # --- model ----------------------------------------------------------------------------
    #: Tasks whose model is not "backbone + head" (sequence-to-sequence) define
    #: ``build(*, hf_model, hub_url, hub_preprocess_url, allow_pickle, backbone, settings,
    #: pair, pooling, dropout) -> keras.Model`` (with ``model.tfft_spec`` set), used by
    #: :func:`tfft.build_model` instead of :meth:`head`.
    build = None

    def head(self, backbone: Backbone, inputs: dict, settings: dict, pooling: str, dropout: float):
        """The task's outputs (float32) on top of the backbone, built on symbolic inputs."""
        raise NotImplementedError

    def loss(self, spec: ModelSpec):
        raise NotImplementedError

    def train_metrics(self, spec: ModelSpec) -> list:
        return []

    def dataset(
        self,
        model,
        examples,
        *,
        batch_size: int,
        max_length: int,
        training: bool = False,
        seed: int | None = None,
        labelled: bool = True,
        config: RunConfig | None = None,
        batching: Batching | None = None,
    ) -> tf.data.Dataset:
        """``(features, targets, sample_weight)`` batches (features alone when not labelled).

        ``batching`` (:class:`tfft.preprocess.Batching`) says how training batches are drawn
        when not shuffled batches of ``batch_size`` rows: Poisson-sampled (DP-SGD) or within a
        token budget; the task hands it to :func:`tfft.preprocess.bucketed_dataset` or
        :func:`tfft.preprocess.text_dataset`, which build the training batches.
        """
        raise NotImplementedError

    def make_dataset(self, model, texts, labels, text_pairs, **kwargs) -> tf.data.Dataset:
        """:func:`tfft.make_dataset` for this task: Python lists in, batches out (keywords
        ``batch_size``, ``max_length``, ``training``, ``seed`` and ``batching``, as for
        :meth:`dataset`)."""
        raise NotImplementedError

    def evaluate_model(self, model, examples, config: RunConfig) -> dict:
        """Final metrics of an in-memory model on labelled examples."""
        raise NotImplementedError

    # --- export ---------------------------------------------------------------------------
    def serving(self, model, max_length: int) -> tf.Module:
        """A ``tf.Module`` with ``signatures() -> {name: concrete function}`` to save."""
        raise NotImplementedError

    def evaluate_export(self, exported: ExportedModel, examples, batch_size: int = 64) -> dict:
        raise NotImplementedError

    def predict_export(self, exported: ExportedModel, examples, batch_size: int = 64) -> Iterator[dict]:
        raise NotImplementedError

    def predict_settings(self, config: RunConfig) -> dict:
        """Settings that ``tfft predict`` options replace in an export's for one call (the
        reading configuration, stored settings where not given); none by default."""
        return {}

    def slice_inputs(self, exported: ExportedModel, examples, batch_size: int = 64):
        """``(targets, answers, metric)`` for slice reports (:mod:`tfft.reports.slices`):
        per-row gold targets, per-row answers of the export, and
        ``metric(targets rows, answers rows) -> metrics`` (the task's own scoring)."""
        raise NotImplementedError

    def format_metrics(self, metrics: dict) -> list[str]:
        """Lines for ``tfft evaluate`` without ``--json``."""
        return [
            f"{key:<10}{value:.4f}" if isinstance(value, float) else f"{key:<10}{value}"
            for key, value in metrics.items()
            if key in self.headline
        ]
