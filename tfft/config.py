"""Typed, frozen settings for a tfft run, and their YAML form.

A run is described by six sections, kept apart as in TF Model Garden: what data
(:class:`DataConfig`), what model (:class:`ModelConfig`), the task's own options (the
chosen task's options dataclass, e.g. :class:`tfft.tasks.qa.options.QAOptions`), how to
train (:class:`TrainConfig`), where it runs (:class:`RuntimeConfig`) and where the result
goes (:class:`ExportConfig`). :class:`RunConfig` holds one of each. Each field is declared
once with :func:`tfft.options.option` (default, help, checks); the command line is
generated from these fields. The resolved configuration is saved in every run folder as
``config.yaml``; ``tfft fit --config run.yaml`` reads the same layout back (command-line
options win).

>>> config = RunConfig.from_dict({"model": {"task": "qa"}, "task": {"doc_stride": 64}})
>>> type(config.task).__name__, config.task.doc_stride, config.task.max_answer_length
('QAOptions', 64, 30)
>>> RunConfig.from_dict({"task": {"doc_stride": 64}})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tfft.errors.ConfigError: configuration: --doc-stride is for --task qa and does not apply to --task classify...
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tfft.errors import ConfigError
from tfft.lora_options import LoraConfig, check_one_way_to_freeze
from tfft.options import (
    READERS,
    TaskOptions,
    check_fields,
    column_names,
    fraction,
    non_negative,
    open_fraction,
    option,
    positive,
)
from tfft.tasks import options_class, task_names

FORMATS = ("csv", "tsv", "jsonl", "conll", "squad")
POOLINGS = ("auto", "cls", "mean", "last", "pooler")
OPTIMIZERS = ("adamw", "adam", "sgd")
LR_SCHEDULES = ("linear", "constant")
DP_SAMPLINGS = ("poisson", "shuffle")
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
#: prefix of an export being written (see :mod:`tfft.export`); never a model name
STAGING_PREFIX = ".tmp-"


def _at_least_8(name: str, value: int) -> None:
    if value < 8:
        raise ConfigError(f"`{name}` must be at least 8. Received: {name}={value!r}")


def _header_names(name: str, value: str) -> tuple[str, ...]:
    """Comma-separated column names, none empty and none twice."""
    names = column_names(name, value)
    twice = sorted({column for column in names if names.count(column) > 1})
    if twice:
        raise ConfigError(f"`{name}` names column `{twice[0]}` twice. Received: {name}={value!r}")
    return names


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and which fields to read."""

    train: str | None = option(
        None, "Training data: CSV, TSV or JSON Lines file (CoNLL, SQuAD JSON), or tfds:NAME:SPLIT."
    )
    eval: str | None = option(None, "Evaluation data, same formats.")
    eval_split: float | None = option(
        None, "Hold out this share of --train for evaluation.", check=open_fraction
    )
    text_column: str = option("text", "Column with the text.", commands=READERS)
    text_pair_column: str | None = option(
        None, "Column with the second text (sentence pairs).", commands=READERS
    )
    label_column: str = option("label", "Column with the label.", commands=("evaluate",))
    format: str | None = option(
        None,
        "File format.  [default: from the extension and the task]",
        choices=FORMATS,
        commands=READERS,
        show_default=False,
    )
    columns: str | None = option(
        None,
        "CSV/TSV files without a header row: their column names in order, e.g. text,label.",
        check=_header_names,
        commands=READERS,
    )
    max_train_examples: int | None = option(None, "Use only the first N training rows.", check=positive)
    max_eval_examples: int | None = option(None, "Use only the first N evaluation rows.", check=positive)
    max_length: int = option(128, "Longest sequence in tokens.", check=_at_least_8)
    tfds_data_dir: str | None = option(None, "TFDS data dir for tfds:NAME:SPLIT sources.", commands=READERS)

    def __post_init__(self):
        if isinstance(self.columns, (list, tuple)):  # YAML may list them
            object.__setattr__(self, "columns", ",".join(str(name) for name in self.columns))
        check_fields(self)

    def header(self) -> tuple[str, ...] | None:
        """The names ``columns`` gives to the fields of headerless CSV/TSV files, or None."""
        return None if self.columns is None else _header_names("columns", self.columns)


def _lora_field(name: str) -> Any:
    """ModelConfig's ``lora_<name>`` field: :class:`LoraConfig`'s ``<name>``, declared once there."""
    field = next(field for field in dataclasses.fields(LoraConfig) if field.name == name)
    return dataclasses.field(default=field.default, metadata=field.metadata)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The backbone and the task head."""

    hf_model: str | None = option(None, "Hugging Face TF checkpoint: a folder or a name in the local cache.")
    hub_url: str | None = option(None, "TF Hub SavedModel: https URL (via the TF Hub cache) or local folder.")
    hub_preprocess_url: str | None = option(None, "Preprocessor SavedModel for a BERT-style hub encoder.")
    allow_pickle: bool = option(
        False,
        "Let --hf-model load pickle weights (pytorch_model.bin; needs torch). Only for trusted checkpoints.",
    )
    task: str = option("classify", "The task (see the task sections below).")
    pooling: str = option("auto", "Pooling of the backbone's features for sequence tasks.", choices=POOLINGS)
    dropout: float = option(0.1, "Dropout before the head.", check=fraction)
    freeze_backbone: bool = option(False, "Train the task head only; the backbone's weights stay as loaded.")
    train_top_layers: int | None = option(
        None,
        "Train the head and the top N transformer layers only (embeddings and lower layers frozen).",
        check=positive,
    )
    lora_rank: int | None = option(
        None, "Train low-rank adapters (LoRA) of this rank on a frozen --hf-model backbone.", check=positive
    )
    lora_alpha: float = _lora_field("alpha")
    lora_dropout: float = _lora_field("dropout")
    lora_targets: str = _lora_field("targets")

    def __post_init__(self):
        check_fields(self)
        options_class(self.task)  # a known task
        check_one_way_to_freeze(self.freeze_backbone, self.train_top_layers, self.lora_rank)
        if self.lora_rank is not None and self.hub_url:
            raise ConfigError(
                "LoRA (--lora-rank) works on --hf-model backbones only; TF Hub SavedModels (--hub-url) "
                f"are not supported. Received: lora_rank={self.lora_rank!r}, hub_url={self.hub_url!r}"
            )

    def lora(self) -> LoraConfig | None:
        """The LoRA settings, or None when ``lora_rank`` is unset (no LoRA)."""
        if self.lora_rank is None:
            return None
        return LoraConfig(self.lora_rank, self.lora_alpha, self.lora_dropout, self.lora_targets)

    def check_source(self) -> None:
        """Exactly one backbone source must be given."""
        if bool(self.hf_model) == bool(self.hub_url):
            raise ConfigError(
                "Give exactly one backbone: --hf-model PATH_OR_NAME or --hub-url URL_OR_PATH. "
                f"Received: hf_model={self.hf_model!r}, hub_url={self.hub_url!r}"
            )


# Peak learning rates when --learning-rate is not given. Measured on the real MiniLM
# (benchmarks/quality.py, README "Quality against PyTorch", 3 seeds): full fine-tuning at 1e-4
# beats 5e-5 by 1.1 points of SST-2 accuracy and 19 points of CoNLL entity F1, and the PyTorch
# recipe at 5e-5 on both. SST-2 (benchmarks/peft.py, README "LoRA"): at 5e-5 LoRA and a frozen
# backbone stay 19-25 points below full fine-tuning; at 1e-3 LoRA matches it.
LEARNING_RATE = 1e-4
ADAPTER_LEARNING_RATE = 1e-3


#: ``--learning-rate auto``: pick the rate with a range test at the start (:mod:`tfft.lr_range`)
AUTO_LEARNING_RATE = "auto"


def parse_learning_rate(value: Any) -> float | str | None:
    """A learning rate as given (a number, a number as text such as YAML's ``1e-4``, or
    ``"auto"``) as a float or ``"auto"``; None stays None.

    Raises:
        ConfigError: anything else, or a rate that is not > 0.
    """
    if value is None or value == AUTO_LEARNING_RATE:
        return value
    rate = value
    if isinstance(value, str):
        try:
            rate = float(value)
        except ValueError:
            rate = None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0 or rate == float("inf"):
        raise ConfigError(
            "`learning_rate` (--learning-rate) must be a number > 0 or 'auto' (a range test picks it). "
            f"Received: learning_rate={value!r}"
        )
    return float(rate)


def default_learning_rate(model: ModelConfig) -> float:
    """The peak learning rate used when none is given: 1e-3 when only LoRA adapters or the
    head train (``--lora-rank``, ``--freeze-backbone``), else 1e-4."""
    return ADAPTER_LEARNING_RATE if model.lora_rank is not None or model.freeze_backbone else LEARNING_RATE


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule and the training loop."""

    epochs: int = option(2, "Passes over the training data.", check=positive)
    batch_size: int = option(32, "Global batch size.", check=positive)
    batch_tokens: int | None = option(
        None,
        "Training batches of at most N token slots (rows x padded length) on fine length buckets, "
        "in place of --batch-size rows (no XLA; see README).",
        check=positive,
    )
    learning_rate: float | str | None = option(
        None,
        "Peak learning rate, or auto: a short range test at the start picks it (lr_range.png)."
        "  [default: 1e-4; 1e-3 with --lora-rank or --freeze-backbone]",
        show_default=False,
    )
    warmup_ratio: float = option(0.1, "Share of steps to warm up.", check=fraction)
    max_warmup_steps: int | None = option(
        None, "Warm up for at most N steps (caps the share --warmup-ratio gives).", check=positive
    )
    lr_schedule: str = option(
        "linear", "After warm-up: decay linearly to 0, or stay constant.", choices=LR_SCHEDULES
    )
    weight_decay: float = option(0.01, "AdamW weight decay.", check=non_negative)
    optimizer: str = option("adamw", "The optimizer.", choices=OPTIMIZERS)
    early_stopping_patience: int | None = option(
        None, "Stop after N epochs without improvement of --monitor.", check=positive
    )
    monitor: str | None = option(
        None,
        "Metric that picks the best epoch.  [default: the task's, e.g. val_accuracy]",
        show_default=False,
    )
    seed: int = option(42, "Random seed.")
    steps_per_execution: int = option(1, "Train steps per tf.function call.", check=positive)
    grad_accum_steps: int = option(
        1,
        "Sum the gradients of K batches of --batch-size per optimizer update (effective batch: K x that).",
        check=positive,
    )
    backup_every_steps: int | None = option(
        None, "Back up the training state every N steps (default: every epoch), for resuming.", check=positive
    )
    log_every_steps: int = option(
        10,
        "Record loss, learning rate and throughput every N steps (history.jsonl, TensorBoard, training.png).",
        check=positive,
    )
    resume: bool = option(
        False, "Continue the interrupted run in --run-dir (a backup there is used even without this flag)."
    )
    dp_l2_clip: float | None = option(
        None,
        "DP-SGD: clip each example's gradient to this L2 norm (turns private training on).",
        check=positive,
    )
    dp_noise_multiplier: float | None = option(
        None,
        "DP-SGD: noise std as a multiple of --dp-l2-clip (or give --dp-target-epsilon).",
        check=non_negative,
    )
    dp_target_epsilon: float | None = option(
        None,
        "DP-SGD: pick the noise multiplier that gives this epsilon after the planned steps.",
        check=positive,
    )
    dp_delta: float | None = option(
        None,
        "DP-SGD: delta of the (epsilon, delta) guarantee.  [default: 1 / (10 x training rows)]",
        check=open_fraction,
        show_default=False,
    )
    dp_sampling: str = option(
        "poisson",
        "DP-SGD batches: poisson (each row in each step with chance batch/rows, what epsilon "
        "assumes) or shuffle (shuffled fixed batches; epsilon is then an approximation).",
        choices=DP_SAMPLINGS,
    )

    def __post_init__(self):
        object.__setattr__(self, "learning_rate", parse_learning_rate(self.learning_rate))
        check_fields(self)
        check_privacy(self)
        check_batch_tokens(self)
        if self.learning_rate == AUTO_LEARNING_RATE and self.dp_l2_clip is not None:
            raise ConfigError(
                "--learning-rate auto does not combine with DP-SGD (--dp-l2-clip): the range test would "
                "read the private data outside the privacy accounting. Give a number. "
                f"Received: learning_rate='auto', dp_l2_clip={self.dp_l2_clip!r}"
            )


def check_batch_tokens(train: TrainConfig) -> None:
    """``batch_tokens`` (variable batch sizes) needs fixed-size batches to be off elsewhere:
    no DP-SGD (its sampling and accounting assume ``batch_size`` rows), no gradient accumulation.

    Raises:
        ConfigError: naming the options and the values received.
    """
    if train.batch_tokens is None:
        return
    if train.dp_l2_clip is not None:
        raise ConfigError(
            "--batch-tokens does not combine with DP-SGD (--dp-l2-clip): its sampling and privacy "
            "accounting need batches of --batch-size rows. "
            f"Received: batch_tokens={train.batch_tokens!r}, dp_l2_clip={train.dp_l2_clip!r}"
        )
    if train.grad_accum_steps > 1:
        raise ConfigError(
            "--batch-tokens does not combine with --grad-accum-steps (micro-batches split a batch's "
            "rows evenly); raise --batch-tokens instead. "
            f"Received: batch_tokens={train.batch_tokens!r}, grad_accum_steps={train.grad_accum_steps!r}"
        )


def check_privacy(train: TrainConfig) -> None:
    """DP-SGD settings: ``dp_l2_clip`` with exactly one of ``dp_noise_multiplier`` and
    ``dp_target_epsilon``; no DP setting without a clip; no gradient accumulation.

    Raises:
        ConfigError: naming the options and the values received.
    """
    sigma, epsilon = train.dp_noise_multiplier, train.dp_target_epsilon
    if train.dp_l2_clip is None:
        given = {"dp_noise_multiplier": sigma, "dp_target_epsilon": epsilon, "dp_delta": train.dp_delta}
        given = {name: value for name, value in given.items() if value is not None}
        if given:
            received = ", ".join(f"{name}={value!r}" for name, value in given.items())
            raise ConfigError(
                f"DP-SGD settings need --dp-l2-clip (the per-example clip norm). Received: {received}"
            )
        return
    if (sigma is None) == (epsilon is None):
        raise ConfigError(
            "--dp-l2-clip needs exactly one of --dp-noise-multiplier and --dp-target-epsilon. "
            f"Received: dp_noise_multiplier={sigma!r}, dp_target_epsilon={epsilon!r}"
        )
    if train.grad_accum_steps > 1:
        raise ConfigError(
            "DP-SGD (--dp-l2-clip) does not combine with --grad-accum-steps yet; give the whole batch "
            f"as --batch-size. Received: grad_accum_steps={train.grad_accum_steps!r}, "
            f"dp_l2_clip={train.dp_l2_clip!r}"
        )


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the computation runs; kept apart from model settings."""

    strategy: str = option(
        "auto", "tf.distribute strategy; auto = mirrored with several GPUs.", choices=STRATEGIES
    )
    precision: str = option(
        "auto",
        "auto = mixed_float16 on GPUs, mixed_bfloat16 on CPUs with bf16 math, else float32.",
        choices=PRECISIONS,
    )
    xla: bool | None = option(
        None,
        "XLA-compile training.  [default: on GPUs, except for hub backbones; off on CPUs]",
        flag="--xla/--no-xla",
        show_default=False,
    )
    deterministic: bool = option(False, "Enable TF op determinism.")

    def __post_init__(self):
        check_fields(self)


def check_export_name(name: str) -> str:
    """A model name for ``<export root>/<name>/``: one plain path component.

    Raises:
        ConfigError: empty, absolute, ``.``/``..``, or containing a path separator.
    """
    bad = (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or os.path.isabs(name)
        or name.startswith(STAGING_PREFIX)
        or "\x00" in name
    )
    if bad:
        raise ConfigError(
            "--name must be a plain folder name inside the export root (no '/', '..' or absolute paths). "
            f"Received: name={name!r}"
        )
    return name


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Where the trained model is exported for TF Serving."""

    export_dir: str | None = option(None, "Export here as <export-dir>/<version>/ (e.g. saved_models/sst2).")
    name: str | None = option(None, "Export to <export-root>/<name>/<version>/ (a plain folder name).")
    export_root: str = option("saved_models", "Serving root for --name.")
    run_dir: str | None = option(
        None, "Run folder for config, metrics, logs, checkpoints.  [default: runs/<time>]", show_default=False
    )

    def target(self) -> Path | None:
        """The model folder to export to, or None when no export was asked for.

        Raises:
            ConfigError: both ``export_dir`` and ``name``, or a name that would leave the root.
        """
        if self.export_dir and self.name:
            raise ConfigError("Give --export-dir or --name, not both.")
        if self.export_dir:
            return Path(self.export_dir)
        if self.name is not None:
            return Path(self.export_root) / check_export_name(self.name)
        return None


#: section name -> dataclass; ``task`` depends on the chosen task (see :func:`tfft.tasks.options_class`)
SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "task": TaskOptions,
    "train": TrainConfig,
    "runtime": RuntimeConfig,
    "export": ExportConfig,
}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a ``tfft fit`` run needs.

    ``task`` is an instance of the chosen task's options class; left out, it is that
    class's defaults.
    """

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    task: TaskOptions | None = None
    train: TrainConfig = TrainConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    export: ExportConfig = ExportConfig()

    def __post_init__(self):
        options = options_class(self.model.task)
        if self.task is None:
            object.__setattr__(self, "task", options())
        elif type(self.task) is not options:
            raise ConfigError(
                f"`task` options must be {options.__name__} for task {self.model.task!r}. "
                f"Received: {type(self.task).__name__}"
            )

    def with_task(self, name: str) -> RunConfig:
        """This configuration for another task, keeping the task options both tasks have."""
        options = options_class(name)
        known = {field.name for field in dataclasses.fields(options)}
        kept = {key: value for key, value in dataclasses.asdict(self.task).items() if key in known}
        return dataclasses.replace(
            self, model=dataclasses.replace(self.model, task=name), task=options(**kept)
        )

    def with_learning_rate(self) -> RunConfig:
        """This configuration with an unset learning rate replaced by
        :func:`default_learning_rate` for its model."""
        if self.train.learning_rate is not None:
            return self
        rate = default_learning_rate(self.model)
        return dataclasses.replace(self, train=dataclasses.replace(self.train, learning_rate=rate))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "configuration") -> RunConfig:
        """Build from nested mappings; unknown sections or keys are errors.

        The ``task`` section is checked against the chosen task's options: a key of
        another task is an error naming that task, except with its default value (run
        folders written before options were per task list every task's options).
        """
        data = data or {}
        for section, values in data.items():
            if section not in SECTIONS:
                raise ConfigError(
                    f"{source}: unknown section `{section}`. Known sections: {', '.join(SECTIONS)}"
                )
            if not isinstance(values, Mapping):
                raise ConfigError(f"{source}: section `{section}` must be a mapping. Received: {values!r}")
        kwargs = {}
        for section in ("data", "model", "train", "runtime", "export"):
            if section in data:
                kwargs[section] = _build_section(SECTIONS[section], section, data[section], source)
        task = kwargs.get("model", ModelConfig()).task
        if "task" in data:
            values = _task_section(task, data["task"], source)
            kwargs["task"] = _build_section(options_class(task), "task", values, source)
        return cls(**kwargs)


def _build_section(group_cls: type, section: str, values: Mapping[str, Any], source: str):
    known = {f.name for f in dataclasses.fields(group_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)} in section `{section}`. "
            f"Known keys: {', '.join(sorted(known)) or 'none'}"
        )
    try:
        return group_cls(**values)
    except TypeError as error:
        raise ConfigError(f"{source}: section `{section}`: {error}") from None


def _task_section(task: str, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The ``task`` section's keys that the chosen task has; keys of other tasks are errors
    unless they are unset or hold that task's default (the old all-tasks layout of
    ``config.yaml``)."""
    own = {field.name for field in dataclasses.fields(options_class(task))}
    kept = {}
    for key, value in values.items():
        if key in own:
            kept[key] = value
            continue
        owners = [
            (name, field)
            for name in task_names()
            for field in dataclasses.fields(options_class(name))
            if field.name == key
        ]
        if owners and (value is None or all(value == field.default for _, field in owners)):
            continue
        if owners:
            tasks = " or ".join(dict.fromkeys(name for name, _ in owners))
            raise ConfigError(
                f"{source}: --{key.replace('_', '-')} is for --task {tasks} and does not apply to "
                f"--task {task} (YAML: task.{key})."
            )
        kept[key] = value  # unknown everywhere: _build_section names the known keys
    return kept


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
