"""End-to-end jobs: fit (read -> tokenize -> train -> export) and export of a run folder;
evaluate and predict on an export are in :mod:`tfft.inference` (their names stay here too).

This layer ties the stages together for the CLI and for users who want one call. Each
stage is usable alone through :mod:`tfft`'s public API.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path

import tensorflow as tf

from tfft import lr_range
from tfft.backbones.freezing import parameter_counts
from tfft.backbones.lora import write_adapter_file
from tfft.config import AUTO_LEARNING_RATE, RunConfig, default_learning_rate, load_config
from tfft.data import TextExamples
from tfft.datasets import batch_tokens_runtime, run_dataset, training_compilation
from tfft.environment import devices, versions
from tfft.errors import ConfigError, ExportError, Interrupted
from tfft.execution import runtime, strategy_name
from tfft.export import export_saved_model
from tfft.exported import ExportedClassifier, ExportedModel  # noqa: F401 - public names
from tfft.folders import FINISHED, check_export_dir, default_run_dir, plan_run_dir  # noqa: F401 - public names
from tfft.inference import predict_rows, read_inputs, run_evaluate  # noqa: F401 - public names
from tfft.interrupt import FINISHING, TRAINING, StopRequest, stop_on_signals
from tfft.keras import keras
from tfft.model import build_model
from tfft.preprocess import PoissonSampler
from tfft.privacy import count_rows, plan, report
from tfft.reports.data import data_report
from tfft.reports.training import draw_training_quietly
from tfft.tasks import get_task
from tfft.train import fit, resolved_monitor

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class FitResult:
    """What ``tfft fit`` produced."""

    run_dir: Path
    export_path: Path | None
    metrics: dict
    history: dict


def read_train_eval(config: RunConfig):
    """The training examples and the evaluation examples (file, split, or none)."""
    data = config.data
    task = get_task(config.model.task)
    if not task.has_train_data(config):
        raise ConfigError(
            "--train is required: a CSV, TSV, JSON Lines (CoNLL, SQuAD JSON) file, or tfds:NAME:SPLIT"
            " (summarize/translate: or --source-file with --target-file)."
        )
    task.check_headerless(config)
    train = task.read(data.train, config, option="--train", max_examples=data.max_train_examples)
    if data.eval and data.eval_split:
        raise ConfigError("Give --eval or --eval-split, not both.")
    if data.eval:
        evaluation = task.read(data.eval, config, option="--eval", max_examples=data.max_eval_examples)
    elif data.eval_split:
        train, evaluation = task.split(train, data.eval_split, config.train.seed)
    else:
        evaluation = None
    return train, evaluation


def _make_run_dir(config: RunConfig, run_dir: Path) -> Path:
    """A worker's own folder below the shared run folder (multi-worker), made and checked."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"  # per process: workers share the folder
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"Cannot write the run folder {run_dir}: {error.strerror or error}") from None
    return run_dir


def run_fit(
    config: RunConfig, verbose: int | str = "auto", callbacks: list | None = None, *, overwrite: bool = False
) -> FitResult:
    """Fine-tune a backbone on a classification dataset, evaluate it and export it.

    A run folder that holds a backup of an interrupted run (same configuration) is resumed;
    one that holds a finished run is refused unless ``overwrite`` (see :mod:`tfft.folders`).
    The run folder is created once the data and options are checked; it is removed again
    if the run fails before training, and ``summary.json`` says ``"status": "failed"`` (with
    the error) if it fails later. SIGINT (Ctrl-C) and SIGTERM stop training after the current
    step with a backup there, ``summary.json`` saying ``"status": "interrupted"`` with the
    command that resumes (see :mod:`tfft.interrupt`; not under multi-worker).

    Args:
        config: the resolved run configuration.
        verbose: Keras progress output (``"auto"``, 0, 1 or 2).
        callbacks: more Keras callbacks for ``model.fit``.
        overwrite: replace a finished run (or an interrupted one) in ``config.export.run_dir``.

    Returns:
        A :class:`FitResult` with the run folder, the export and the final metrics.

    Raises:
        Interrupted: a signal stopped the run (its ``run_dir`` is set when a backup was kept).
    """
    with stop_on_signals(enabled=config.runtime.strategy != "multi-worker") as stop:
        return _run_fit(config, verbose, callbacks, overwrite, stop)


def _run_fit(config: RunConfig, verbose, callbacks, overwrite: bool, stop: StopRequest) -> FitResult:
    """:func:`run_fit`, with the signal request ``stop`` set by its handlers."""
    config = config.with_learning_rate()
    config.model.check_source()
    task = get_task(config.model.task)
    train, evaluation = read_train_eval(config)
    settings = task.settings_from_data(train, config)
    export_dir = config.export.target()
    if export_dir is not None:
        check_export_dir(export_dir)
    if config.runtime.strategy == "multi-worker" and not config.export.run_dir:
        raise ConfigError("--strategy multi-worker needs --run-dir, the same folder on every worker.")
    auto_rate = config.train.learning_rate == AUTO_LEARNING_RATE
    if auto_rate and config.runtime.strategy == "multi-worker":
        raise ConfigError(
            "--learning-rate auto is not supported with --strategy multi-worker yet: run the range test "
            "with one worker (or --dry-run) and give its rate. Received: learning_rate='auto'"
        )
    folder = plan_run_dir(config, overwrite=overwrite)

    runtime_config = config.runtime
    if runtime_config.precision == "auto" and config.model.hub_url:
        # A TF Hub SavedModel computes in the dtype it was saved with: a mixed policy would
        # only lower the precision of the head.
        runtime_config = dataclasses.replace(runtime_config, precision="float32")
    if runtime_config.xla is None and config.model.hub_url:
        # Decided before the runtime is set up, so that its log line says what runs.
        runtime_config = dataclasses.replace(runtime_config, xla=False)
        logger.info("XLA is off by default for TF Hub backbones (--xla turns it on).")
    runtime_config = batch_tokens_runtime(config, runtime_config)

    started = time.perf_counter()
    with folder.guard(), runtime(runtime_config) as chosen:
        run_dir = folder.create()
        if not chosen.is_chief:
            # Every worker trains and saves (saving runs collective ops); only the chief
            # keeps the run folder and the export, the others write below it and discard.
            run_dir = _make_run_dir(config, run_dir / "workers" / chosen.worker)
            if export_dir is not None:
                export_dir = run_dir / "discarded-export"
        (run_dir / "task.json").write_text(json.dumps({"task": task.name, "settings": settings}, indent=2))
        if settings.get("labels"):
            (run_dir / "labels.json").write_text(json.dumps({"names": list(settings["labels"])}, indent=2))
        logger.info("Run folder: %s", run_dir)
        check_accumulation(config, chosen.replicas)
        reused_rate = lr_range.reused_rate(run_dir) if auto_rate else None  # before config.yaml is rewritten
        keras.utils.set_random_seed(config.train.seed)
        with chosen.strategy.scope():
            model = build_run_model(config, settings)
        parameters = parameter_counts(model)
        logger.info("Parameters: %s trainable of %s", *(f"{parameters[k]:,}" for k in ("trainable", "total")))
        xla, fixed_shapes = training_compilation(config, chosen, model)
        if chosen.xla and not xla:
            logger.info(
                "XLA is off by default for %s backbones (--xla turns it on).", model.tfft_spec.backbone.kind
            )
        _save_resolved_config(
            run_dir / "config.yaml", config, chosen, xla, folder.path, evaluation is not None
        )
        tokens_per_example = None
        if chosen.is_chief:
            tokens_per_example = _write_data_report(run_dir, train, evaluation, config, model)
        sampler = poisson_sampler(config)
        if not fixed_shapes and sampler is None and config.train.batch_tokens is None:
            logger.info("Training batches: no filler rows, padded to the fine grid (no XLA, one replica).")
        train_data = run_dataset(
            model, train, config, training=True, sampler=sampler, fixed_shapes=fixed_shapes
        )
        # Keras' validation pass only sums losses and metrics: rows ordered by length pad far
        # less (872 SST-2 dev rows, MiniLM, batch 32: 13,632 token slots instead of 50,304).
        eval_data = None
        if evaluation is not None:
            eval_data = run_dataset(
                model, evaluation, config, training=False, fixed_shapes=fixed_shapes, by_length=True
            )
        steps_per_epoch = int(train_data.cardinality().numpy())
        privacy = privacy_plan(config, train_data, steps_per_epoch, sampler)
        rate_record = None
        if auto_rate:
            rate_record = _auto_learning_rate(
                config, model, train_data, run_dir, xla, chosen.is_chief, reused_rate
            )
            config = dataclasses.replace(
                config, train=dataclasses.replace(config.train, learning_rate=rate_record["rate"])
            )
            _save_resolved_config(
                run_dir / "config.yaml", config, chosen, xla, folder.path, evaluation is not None
            )
        folder.start_training(record=chosen.is_chief)
        stop.phase = TRAINING
        try:
            history = fit(
                model,
                train_data,
                eval_data,
                config.train,
                run_dir,
                steps_per_epoch=steps_per_epoch,
                xla=xla,
                verbose=verbose,
                callbacks=callbacks,
                privacy=privacy,
                stop=stop,
                tokens_per_example=tokens_per_example,
            )
        except BaseException as error:  # failed or interrupted: draw what was recorded
            if chosen.is_chief:
                draw_training_quietly(
                    run_dir, status="interrupted" if isinstance(error, Interrupted) else "failed"
                )
            raise
        stop.phase = FINISHING
        privacy_report = None if privacy is None else _privacy_report(privacy, history)
        train_seconds = time.perf_counter() - started
        if config.model.lora_rank is not None and chosen.is_chief:
            logger.info("LoRA adapters and head saved to %s", write_adapter_file(model, run_dir))
        metrics = {}
        if evaluation is not None:
            metrics = task.evaluate_model(model, evaluation, config)
            metrics["source"] = evaluation.source
        export_path = None
        if export_dir is not None:
            export_path = export_saved_model(
                model,
                export_dir,
                max_length=config.data.max_length,
                extra={
                    "run_dir": str(run_dir),
                    "eval_metrics": _headline(task, metrics),
                    "data": _data_record(config, train, evaluation),
                    "training": _training_record(config, chosen, xla, history.optimizer_steps),
                    "versions": versions(),
                    **({} if privacy_report is None else {"privacy": privacy_report}),
                },
            )
            if not chosen.is_chief:
                shutil.rmtree(export_dir, ignore_errors=True)
                export_path = None
    summary = {
        "status": FINISHED,
        "run_dir": str(run_dir),
        "export_path": None if export_path is None else str(export_path),
        "runtime": {**chosen.describe(), "xla": xla},
        "versions": versions(),
        "devices": devices(),
        "train_examples": len(train),
        "eval_examples": 0 if evaluation is None else len(evaluation),
        "train_seconds": round(train_seconds, 1),
        "optimizer_steps": history.optimizer_steps,
        "learning_rate": config.train.learning_rate,
        "parameters": parameters,
        "steps_per_epoch": steps_per_epoch,
        "eval": metrics,
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
    }
    if privacy_report is not None:
        summary["privacy"] = privacy_report
    if rate_record is not None:
        share = rate_record["seconds"] / train_seconds if train_seconds else None
        summary["lr_range"] = {**rate_record, "share_of_run": None if share is None else round(share, 4)}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if chosen.is_chief:
        draw_training_quietly(run_dir)  # training.png
    return FitResult(run_dir, export_path, metrics, summary["history"])


def _auto_learning_rate(config: RunConfig, model, train_data, run_dir: Path, xla, write, reused) -> dict:
    """``--learning-rate auto``: the rate a resumed run chose before (``reused``), else the
    range test's pick (:mod:`tfft.lr_range`), as ``{"rate", "seconds", "reused", ...}``."""
    if reused is not None:
        logger.info("Learning rate auto: %.3g, chosen by the range test before the interruption", reused)
        return {"rate": reused, "seconds": 0.0, "reused": True}
    fallback = default_learning_rate(config.model)
    record = lr_range.resolve_rate(
        model, train_data, config.train, run_dir, xla=xla, write=write, fallback=fallback
    )
    return {**record, "reused": False}


def _save_resolved_config(path: Path, config: RunConfig, chosen, xla: bool, run_dir: Path, has_eval: bool):
    """``config.yaml`` with what ran in place of ``auto`` and unset values (strategy,
    precision, XLA, monitor, run folder); a comment line above it gives the replicas and
    devices. The file runs again as it is, and resumes the run (``runtime`` and ``export``
    may change on resuming; an unset ``--monitor`` matches the one it resolved to)."""
    runtime_config = dataclasses.replace(
        config.runtime, strategy=strategy_name(chosen.strategy), precision=chosen.precision, xla=xla
    )
    default_monitor = get_task(config.model.task).default_monitor
    train = dataclasses.replace(
        config.train, monitor=resolved_monitor(config.train.monitor, default_monitor, has_eval)
    )
    export = dataclasses.replace(config.export, run_dir=str(run_dir))
    resolved = dataclasses.replace(config, runtime=runtime_config, train=train, export=export)
    resolved.save(path)
    head = f"# resolved by tfft: {chosen.replicas} replica(s) on {', '.join(chosen.devices)}\n"
    path.write_text(head + path.read_text())


def _data_record(config: RunConfig, train, evaluation) -> dict:
    """The export's ``data``: sources, sizes and the columns read (``tfft evaluate`` and
    ``predict`` read the same columns by default)."""
    data = config.data
    return {
        "train": str(data.train) if data.train else None,
        "eval": str(data.eval)
        if data.eval
        else (f"{data.eval_split:g} of train" if data.eval_split else None),
        "train_examples": len(train),
        "eval_examples": 0 if evaluation is None else len(evaluation),
        "text_column": data.text_column,
        "text_pair_column": data.text_pair_column,
        "label_column": data.label_column,
    }


def _training_record(config: RunConfig, chosen, xla: bool, steps: int) -> dict:
    """The export's ``training``: the settings that shaped the weights, and the runtime."""
    train = config.train
    fields = (
        "epochs",
        "batch_size",
        "batch_tokens",
        "learning_rate",
        "lr_schedule",
        "warmup_ratio",
        "max_warmup_steps",
    )
    record = {name: getattr(train, name) for name in (*fields, "optimizer", "weight_decay", "seed")}
    return {
        **record,
        "optimizer_steps": steps,
        "precision": chosen.precision,
        "xla": xla,
        "replicas": chosen.replicas,
    }


def _write_data_report(run_dir: Path, train, evaluation, config: RunConfig, model) -> float | None:
    """``data_report.json`` (:mod:`tfft.reports.data`), lengths in the model's tokens when
    it has a tokenizer and reads tables; one log line per finding. Returns the mean tokens
    per training row after truncation (None when lengths were counted in words)."""
    encoder = getattr(getattr(model.tfft_spec, "backbone", None), "encoder", None)
    count_tokens = None
    if encoder is not None and isinstance(train, TextExamples):

        def count_tokens(texts, pairs):
            return encoder.encode(texts, pairs, 1 << 30).lengths()

    task = config.model.task
    max_length = None if task == "qa" else config.data.max_length  # qa splits contexts into windows
    report = data_report(train, evaluation, task, max_length=max_length, count_tokens=count_tokens)
    (run_dir / "data_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    for line in report["findings"]:
        logger.info("data report: %s", line)
    lengths = (report.get("train") or {}).get("lengths") or {}
    if lengths.get("unit") != "tokens":
        return None
    return lengths.get("mean_kept", lengths.get("mean"))


def build_run_model(config: RunConfig, settings: dict):
    """The model a run configuration describes, with the task settings from its data."""
    return build_model(
        hf_model=config.model.hf_model,
        hub_url=config.model.hub_url,
        hub_preprocess_url=config.model.hub_preprocess_url,
        allow_pickle=config.model.allow_pickle,
        task=config.model.task,
        settings=settings,
        pair=config.data.text_pair_column is not None,
        pooling=config.model.pooling,
        dropout=config.model.dropout,
        lora=config.model.lora(),
        freeze_backbone=config.model.freeze_backbone,
        train_top_layers=config.model.train_top_layers,
    )


def check_accumulation(config: RunConfig, replicas: int) -> None:
    """With gradient accumulation, each replica's rows must split into equal micro-batches.

    Raises:
        ConfigError: ``grad_accum_steps > 1`` and ``batch_size`` not a multiple of ``replicas``.
    """
    train = config.train
    if train.grad_accum_steps > 1 and train.batch_size % replicas:
        raise ConfigError(
            f"--grad-accum-steps needs --batch-size to be a multiple of the {replicas} replicas. "
            f"Received: batch_size={train.batch_size!r}, grad_accum_steps={train.grad_accum_steps!r}"
        )


def poisson_sampler(config: RunConfig) -> PoissonSampler | None:
    """The sampler of a DP-SGD run with ``--dp-sampling poisson`` (the default), else None."""
    train = config.train
    if train.dp_l2_clip is None or train.dp_sampling != "poisson":
        return None
    return PoissonSampler(batch_size=train.batch_size, epochs=train.epochs, seed=train.seed)


def privacy_plan(
    config: RunConfig,
    train_data: tf.data.Dataset,
    steps_per_epoch: int,
    sampler: PoissonSampler | None = None,
):
    """DP-SGD settings for the run (None without ``--dp-l2-clip``). The training rows (qa:
    windows, not questions) are the ones the Poisson ``sampler`` drew from, or, with shuffled
    batches, counted in one pass over them.

    Raises:
        ConfigError: the task's training data does not support Poisson sampling.
    """
    if config.train.dp_l2_clip is None:
        return None
    if sampler is not None:
        if sampler.rows is None:
            raise ConfigError(
                f"Task {config.model.task!r} builds its training batches without Poisson sampling: "
                "use --dp-sampling shuffle (epsilon then assumes Poisson sampling as an approximation). "
                f"Received: dp_sampling={config.train.dp_sampling!r}"
            )
        return plan(config.train, sampler.rows, steps_per_epoch * config.train.epochs, sampler)
    rows = count_rows(train_data)
    return plan(config.train, rows, steps_per_epoch * config.train.epochs)


def _privacy_report(privacy, history) -> dict:
    """The ``privacy`` block for the steps taken (:func:`tfft.privacy.report`), logged."""
    steps = history.optimizer_steps
    block = report(privacy, steps, {key: values[-1] for key, values in history.history.items() if values})
    shown = {
        key: "inf" if block[key] is None else f"{block[key]:.3f}" for key in ("epsilon_rdp", "epsilon_pld")
    }
    logger.info(
        "DP-SGD: epsilon %s (RDP), %s (PLD) at delta %.3g after %d steps (noise %.4g, clip %g, q %.4g)",
        shown["epsilon_rdp"],
        shown["epsilon_pld"],
        block["delta"],
        steps,
        block["noise_multiplier"],
        block["clip"],
        block["sampling_rate"],
    )
    return block


def _headline(task, metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k in task.headline}


def run_export(run_dir: str | os.PathLike, export_dir: str | os.PathLike | None = None) -> Path:
    """Export the best checkpoint of a finished (or interrupted) run folder again.

    Rebuilds the model from the run's ``config.yaml`` and ``task.json`` (the backbone
    source must still be reachable) and loads ``checkpoints/best``.
    """
    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    target = Path(export_dir or config.export.target() or Path(config.export.export_root) / run_dir.name)
    check_export_dir(target)
    _, model = load_run_model(run_dir)
    return export_saved_model(
        model, target, max_length=config.data.max_length, extra={"run_dir": str(run_dir)}
    )


def _run_config(run_dir: Path) -> RunConfig:
    """The ``config.yaml`` of a run folder that has a best checkpoint."""
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a tfft run folder (no config.yaml).")
    if not (run_dir / "checkpoints" / "best.index").is_file():
        raise ExportError(f"{run_dir}: no checkpoint to export (checkpoints/best is missing).")
    return load_config(run_dir / "config.yaml")


def load_run_model(run_dir: str | os.PathLike) -> tuple[RunConfig, keras.Model]:
    """``(config, model)`` of a run folder: the model rebuilt from its ``config.yaml`` and
    ``task.json`` (the backbone source must still be reachable), with ``checkpoints/best`` loaded.

    Raises:
        ConfigError: not a run folder.
        ExportError: no best checkpoint.
    """
    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    model = build_run_model(config, _run_settings(run_dir))
    model.load_weights(str(run_dir / "checkpoints" / "best")).expect_partial()
    return config, model


def _run_settings(run_dir: Path) -> dict:
    """The task settings saved in a run folder (``labels.json`` in folders from before tasks)."""
    task_file = run_dir / "task.json"
    if task_file.is_file():
        return json.loads(task_file.read_text())["settings"]
    labels_file = run_dir / "labels.json"
    if labels_file.is_file():
        return {"labels": json.loads(labels_file.read_text())["names"]}
    raise ConfigError(f"{run_dir}: not a tfft run folder (no task.json).")
