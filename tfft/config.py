"""Typed, frozen settings for a tfft run, and their YAML form.

A run is described by six groups, kept apart as in TF Model Garden: what data
(:class:`DataConfig`), what model (:class:`ModelConfig`), the task's own options
(:class:`TaskConfig`), how to train (:class:`TrainConfig`), where it runs
(:class:`RuntimeConfig`) and where the result goes (:class:`ExportConfig`).
:class:`RunConfig` holds one of each. The resolved configuration is
saved in every run folder as ``config.yaml``; ``tfft fit --config run.yaml`` reads the same
layout back (command-line options win).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tfft.errors import ConfigError
from tfft.tasks import TASK_NAMES

TASKS = TASK_NAMES
POOLINGS = ("auto", "cls", "mean", "last", "pooler")
OPTIMIZERS = ("adamw", "adam", "sgd")
LR_SCHEDULES = ("linear", "constant")
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
FORMATS = ("csv", "tsv", "jsonl", "conll", "squad")
LOSSES = ("mse", "huber")


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(
            f"`{name}` must be one of {', '.join(map(str, choices))}. Received: {name}={value!r}"
        )


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value is None or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"`{name}` must be {bound}. Received: {name}={value!r}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and which fields to read."""

    train: str | None = None
    eval: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    format: str | None = None
    eval_split: float | None = None
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    max_length: int = 128
    tfds_data_dir: str | None = None

    def __post_init__(self):
        if self.format is not None:
            _check_choice("format", self.format, FORMATS)
        if self.eval_split is not None and not 0 < self.eval_split < 1:
            raise ConfigError(
                f"`eval_split` must be between 0 and 1. Received: eval_split={self.eval_split!r}"
            )
        if self.max_length < 8:
            raise ConfigError(f"`max_length` must be at least 8. Received: max_length={self.max_length!r}")
        for name in ("max_train_examples", "max_eval_examples"):
            value = getattr(self, name)
            if value is not None:
                _check_positive(name, value)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The backbone and the task head."""

    hf_model: str | None = None
    hub_url: str | None = None
    hub_preprocess_url: str | None = None
    allow_pickle: bool = False  # load pickle weights (pytorch_model.bin) from a trusted --hf-model
    task: str = "classify"
    pooling: str = "auto"
    dropout: float = 0.1

    def __post_init__(self):
        _check_choice("task", self.task, TASKS)
        _check_choice("pooling", self.pooling, POOLINGS)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"`dropout` must be in [0, 1). Received: dropout={self.dropout!r}")

    def check_source(self) -> None:
        """Exactly one backbone source must be given."""
        if bool(self.hf_model) == bool(self.hub_url):
            raise ConfigError(
                "Give exactly one backbone: --hf-model PATH_OR_NAME or --hub-url URL_OR_PATH. "
                f"Received: hf_model={self.hf_model!r}, hub_url={self.hub_url!r}"
            )


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Options that only some tasks read (each task's module documents its own)."""

    # classify, multilabel, regress
    label_columns: str | None = None  # comma-separated: multi-label 0/1 columns, or regression targets
    label_separator: str | None = None  # multilabel: one column of labels joined by this
    threshold: float = 0.5  # multilabel: a label is on when its probability reaches this
    loss: str | None = None  # regress: mse (default) or huber
    scale_targets: bool = False  # regress: standardize targets with the training mean and std
    class_weights: str | None = None  # classify, ner: "auto" = inverse class frequency
    # ner
    tag_column: int | None = None  # CoNLL column of the tag (0 = the token; default: the last)
    tokens_field: str = "tokens"  # JSON Lines fields
    tags_field: str = "tags"
    # qa
    question_column: str = "question"  # JSON Lines fields
    context_column: str = "context"
    answers_column: str = "answers"
    doc_stride: int = 128  # overlap of context windows, in tokens
    max_answer_length: int = 30  # in tokens
    n_best: int = 20  # candidate answers kept per question (the best one is served)
    allow_no_answer: bool = False  # SQuAD 2.0 unanswerable questions
    # summarize, translate
    source_column: str = "source"  # table columns (CSV/TSV/JSON Lines)
    target_column: str = "target"
    source_file: str | None = None  # or parallel plain-text files, one sentence per line
    target_file: str | None = None
    source_prefix: str | None = None  # e.g. T5's "summarize: "
    max_target_length: int = 128  # in tokens
    num_beams: int = 1  # 1 = greedy
    max_new_tokens: int = 64
    length_penalty: float = 1.0
    label_smoothing: float = 0.0  # share of each target token's probability spread over the vocabulary
    decoder_model: str | None = None  # encoder checkpoint that warm-starts a BERT2BERT decoder

    def __post_init__(self):
        if self.loss is not None:
            _check_choice("loss", self.loss, LOSSES)
        if self.class_weights is not None:
            _check_choice("class_weights", self.class_weights, ("auto",))
        if not 0 < self.threshold < 1:
            raise ConfigError(f"`threshold` must be between 0 and 1. Received: threshold={self.threshold!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(
                f"`label_smoothing` must be in [0, 1). Received: label_smoothing={self.label_smoothing!r}"
            )
        if self.label_separator is not None and (not self.label_separator or self.label_separator.isspace()):
            raise ConfigError(
                "`label_separator` must be a visible character or string. "
                f"Received: label_separator={self.label_separator!r}"
            )
        for name in (
            "doc_stride",
            "max_answer_length",
            "n_best",
            "max_target_length",
            "num_beams",
            "max_new_tokens",
        ):
            _check_positive(name, getattr(self, name))

    def label_column_list(self) -> tuple[str, ...] | None:
        """``label_columns`` split on commas, or None."""
        if self.label_columns is None:
            return None
        columns = tuple(column.strip() for column in str(self.label_columns).split(","))
        if not all(columns):
            raise ConfigError(
                "`label_columns` must be comma-separated column names. "
                f"Received: label_columns={self.label_columns!r}"
            )
        return columns


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule and the training loop."""

    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    lr_schedule: str = "linear"  # after warm-up: linear decay to 0, or constant
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    early_stopping_patience: int | None = None
    monitor: str | None = None  # None: the task's own (val_accuracy for classify)
    seed: int = 42
    steps_per_execution: int = 1
    backup_every_steps: int | None = None  # None: back up at the end of every epoch
    resume: bool = False  # require a backup in the run folder (one is used whenever present)

    def __post_init__(self):
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_positive("epochs", self.epochs)
        _check_positive("batch_size", self.batch_size)
        _check_positive("learning_rate", self.learning_rate)
        _check_positive("weight_decay", self.weight_decay, allow_zero=True)
        _check_positive("steps_per_execution", self.steps_per_execution)
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(
                f"`warmup_ratio` must be in [0, 1). Received: warmup_ratio={self.warmup_ratio!r}"
            )
        if self.early_stopping_patience is not None:
            _check_positive("early_stopping_patience", self.early_stopping_patience)
        if self.backup_every_steps is not None:
            _check_positive("backup_every_steps", self.backup_every_steps)


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the computation runs; kept apart from model settings."""

    strategy: str = "auto"
    precision: str = "auto"
    xla: bool | None = None  # None: on wherever it works
    deterministic: bool = False

    def __post_init__(self):
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("precision", self.precision, PRECISIONS)


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Where the trained model is exported for TF Serving."""

    export_dir: str | None = None  # the model's folder, e.g. saved_models/sst2; versions go below it
    name: str | None = None  # or: export to <export_root>/<name>
    export_root: str = "saved_models"
    run_dir: str | None = None  # run folder: config, metrics, logs, checkpoints

    def target(self) -> Path | None:
        """The model folder to export to, or None when no export was asked for.

        Raises:
            ConfigError: both ``export_dir`` and ``name``, or a name that would leave the root.
        """
        from tfft.export import check_export_name

        if self.export_dir and self.name:
            raise ConfigError("Give --export-dir or --name, not both.")
        if self.export_dir:
            return Path(self.export_dir)
        if self.name is not None:
            return Path(self.export_root) / check_export_name(self.name)
        return None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a ``tfft fit`` run needs."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    task: TaskConfig = TaskConfig()
    train: TrainConfig = TrainConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    export: ExportConfig = ExportConfig()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "configuration") -> RunConfig:
        """Build from nested mappings; unknown sections or keys are errors."""
        groups = {field.name: type(field.default) for field in dataclasses.fields(cls)}
        kwargs = {}
        for section, values in (data or {}).items():
            if section not in groups:
                raise ConfigError(
                    f"{source}: unknown section `{section}`. Known sections: {', '.join(groups)}"
                )
            if not isinstance(values, Mapping):
                raise ConfigError(f"{source}: section `{section}` must be a mapping. Received: {values!r}")
            group_cls = groups[section]
            known = {f.name for f in dataclasses.fields(group_cls)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ConfigError(
                    f"{source}: unknown key(s) {', '.join(unknown)} in section `{section}`. "
                    f"Known keys: {', '.join(sorted(known))}"
                )
            try:
                kwargs[section] = group_cls(**values)
            except TypeError as error:
                raise ConfigError(f"{source}: section `{section}`: {error}") from None
        return cls(**kwargs)


def load_config(path: str | os.PathLike | None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Read a YAML run configuration and apply dotted overrides.

    Args:
        path: a YAML file with sections ``data``, ``model``, ``task``, ``train``,
            ``runtime``, ``export``; None starts from the defaults.
        overrides: ``{"train.batch_size": 16, ...}``; None values are ignored, so that
            options a user did not give leave the file's values alone.

    Returns:
        The resolved :class:`RunConfig`.

    Raises:
        ConfigError: the file is missing, not YAML, or names unknown settings.
    """
    data: dict = {}
    source = "configuration"
    if path is not None:
        source = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"No such configuration file: {path}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections. Received: {type(data).__name__}")
    data = {section: dict(values or {}) for section, values in data.items()}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        data.setdefault(section, {})[key] = value
    return RunConfig.from_dict(data, source)
