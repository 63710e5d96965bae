"""End-to-end jobs: fit (read -> tokenize -> train -> export), evaluate, predict, export.

This layer ties the stages together for the CLI and for users who want one call. Each
stage is usable alone through :mod:`tfft`'s public API.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfft.config import RunConfig, load_config
from tfft.data import LabelSet, TableSpec, TextExamples, read_examples
from tfft.datasets import make_dataset
from tfft.errors import ConfigError, DataError, ExportError
from tfft.execution import runtime
from tfft.export import export_saved_model, load_metadata, resolve_export
from tfft.keras import keras
from tfft.model import build_model
from tfft.tasks.classify import classification_metrics
from tfft.train import fit

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class FitResult:
    """What ``tfft fit`` produced."""

    run_dir: Path
    export_path: Path | None
    metrics: dict
    history: dict


def _table_spec(config: RunConfig, labelled: bool = True) -> TableSpec:
    data = config.data
    return TableSpec(
        text_column=data.text_column,
        text_pair_column=data.text_pair_column,
        label_column=data.label_column if labelled else None,
        format=data.format,
    )


def read_train_eval(config: RunConfig) -> tuple[TextExamples, TextExamples | None]:
    """The training examples and the evaluation examples (file, split, or none)."""
    data = config.data
    if not data.train:
        raise ConfigError("--train is required: a CSV, TSV or JSON Lines file, or tfds:NAME:SPLIT.")
    spec = _table_spec(config)
    train = read_examples(
        data.train, spec, max_examples=data.max_train_examples, data_dir=data.tfds_data_dir, option="--train"
    )
    if data.eval and data.eval_split:
        raise ConfigError("Give --eval or --eval-split, not both.")
    if data.eval:
        evaluation = read_examples(
            data.eval, spec, max_examples=data.max_eval_examples, data_dir=data.tfds_data_dir, option="--eval"
        )
    elif data.eval_split:
        train, evaluation = train.split(data.eval_split, config.train.seed)
    else:
        evaluation = None
    return train, evaluation


def default_run_dir(root: str | os.PathLike = "runs") -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / stamp
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"{stamp}-{suffix}"
    return path


def _make_run_dir(config: RunConfig, run_dir: Path | None = None) -> Path:
    if run_dir is None:
        run_dir = Path(config.export.run_dir) if config.export.run_dir else default_run_dir()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"  # per process: workers share the folder
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"Cannot write the run folder {run_dir}: {error.strerror or error}") from None
    return run_dir


def _check_export_dir(export_dir: Path) -> None:
    """Fail before training, not after, when the export folder cannot be written."""
    existing = export_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(
            f"Cannot write the export folder {export_dir}: {existing} is not a writable folder."
        )


def run_fit(config: RunConfig, verbose: int | str = "auto", callbacks: list | None = None) -> FitResult:
    """Fine-tune a backbone on a classification dataset, evaluate it and export it.

    A run folder that holds a backup of an interrupted run (same configuration) is resumed.

    Args:
        config: the resolved run configuration.
        verbose: Keras progress output (``"auto"``, 0, 1 or 2).
        callbacks: more Keras callbacks for ``model.fit``.

    Returns:
        A :class:`FitResult` with the run folder, the export and the final metrics.
    """
    config.model.check_source()
    train, evaluation = read_train_eval(config)
    labels = LabelSet.from_labels(train.labels)
    if len(labels) < 2:
        raise DataError(
            f"{train.source}: column `{config.data.label_column}` has a single label "
            f"({labels.names[0]!r}); classification needs at least 2."
        )
    train_ids = np.asarray(
        labels.ids(train.labels, train.source, train.rows, config.data.label_column), np.int32
    )
    eval_ids = None
    if evaluation is not None:
        eval_ids = np.asarray(
            labels.ids(evaluation.labels, evaluation.source, evaluation.rows, config.data.label_column),
            np.int32,
        )
    export_dir = config.export.target()
    if export_dir is not None:
        _check_export_dir(export_dir)
    if config.runtime.strategy == "multi-worker" and not config.export.run_dir:
        raise ConfigError("--strategy multi-worker needs --run-dir, the same folder on every worker.")

    runtime_config = config.runtime
    if runtime_config.precision == "auto" and config.model.hub_url:
        # A TF Hub SavedModel computes in the dtype it was saved with: a mixed policy would
        # only lower the precision of the head.
        runtime_config = dataclasses.replace(runtime_config, precision="float32")

    started = time.perf_counter()
    with runtime(runtime_config) as chosen:
        run_dir = _make_run_dir(config)
        if not chosen.is_chief:
            # Every worker trains and saves (saving runs collective ops); only the chief
            # keeps the run folder and the export, the others write below it and discard.
            run_dir = _make_run_dir(config, run_dir / "workers" / chosen.worker)
            if export_dir is not None:
                export_dir = run_dir / "discarded-export"
        config.save(run_dir / "config.yaml")
        (run_dir / "labels.json").write_text(json.dumps(labels.to_json(), indent=2))
        logger.info("Run folder: %s", run_dir)
        keras.utils.set_random_seed(config.train.seed)
        with chosen.strategy.scope():
            model = _build(config, labels)
        xla = chosen.xla
        if config.runtime.xla is None and not model.tfft_spec.backbone.xla_by_default:
            xla = False
            logger.info(
                "XLA is off by default for %s backbones (--xla turns it on).", model.tfft_spec.backbone.kind
            )
        train_data = _dataset(model, train, train_ids, config, training=True)
        eval_data = (
            None if evaluation is None else _dataset(model, evaluation, eval_ids, config, training=False)
        )
        steps_per_epoch = int(train_data.cardinality().numpy())
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
        )
        train_seconds = time.perf_counter() - started
        metrics = {}
        if evaluation is not None:
            metrics = evaluate_keras(model, evaluation, eval_ids, config)
            metrics["source"] = evaluation.source
        export_path = None
        if export_dir is not None:
            export_path = export_saved_model(
                model,
                export_dir,
                max_length=config.data.max_length,
                extra={"run_dir": str(run_dir), "eval_metrics": _headline(metrics)},
            )
            if not chosen.is_chief:
                shutil.rmtree(export_dir, ignore_errors=True)
                export_path = None
    summary = {
        "run_dir": str(run_dir),
        "export_path": None if export_path is None else str(export_path),
        "runtime": {**chosen.describe(), "xla": xla},
        "train_examples": len(train),
        "eval_examples": 0 if evaluation is None else len(evaluation),
        "train_seconds": round(train_seconds, 1),
        "optimizer_steps": history.optimizer_steps,
        "steps_per_epoch": steps_per_epoch,
        "eval": metrics,
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return FitResult(run_dir, export_path, metrics, summary["history"])


def _build(config: RunConfig, labels: LabelSet):
    """The model a run configuration describes, with its label set."""
    return build_model(
        hf_model=config.model.hf_model,
        hub_url=config.model.hub_url,
        hub_preprocess_url=config.model.hub_preprocess_url,
        task=config.model.task,
        label_names=labels.names,
        pair=config.data.text_pair_column is not None,
        pooling=config.model.pooling,
        dropout=config.model.dropout,
    )


def _headline(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k in ("accuracy", "macro_f1", "examples")}


def _dataset(model, examples: TextExamples, ids, config: RunConfig, training: bool) -> tf.data.Dataset:
    return make_dataset(
        model,
        examples.texts,
        labels=None if ids is None else [model.tfft_spec.label_names[i] for i in ids],
        text_pairs=examples.pairs,
        batch_size=config.train.batch_size,
        max_length=config.data.max_length,
        training=training,
        seed=config.train.seed,
    )


def evaluate_keras(model, examples: TextExamples, ids: np.ndarray, config: RunConfig) -> dict:
    """Metrics of an in-memory model on labelled examples (order-preserving predict)."""
    data = make_dataset(
        model,
        examples.texts,
        text_pairs=examples.pairs,
        batch_size=config.train.batch_size,
        max_length=config.data.max_length,
    )
    logits = model.predict(data, verbose=0)
    probabilities = tf.nn.softmax(logits).numpy()
    return classification_metrics(ids, probabilities, model.tfft_spec.label_names)


class ExportedClassifier:
    """An export loaded for prediction: raw text in, labels and probabilities out.

    Args:
        path: a version folder, a model folder (latest version) or a run folder.
    """

    def __init__(self, path: str | os.PathLike):
        import tensorflow_text  # noqa: F401 - registers the ops of in-graph tokenizers

        self.path = resolve_export(path)
        self.metadata = load_metadata(self.path)
        try:
            self.loaded = tf.saved_model.load(str(self.path))
        except Exception as error:  # noqa: BLE001
            raise ExportError(
                f"{self.path}: cannot load the SavedModel: {str(error).splitlines()[0]}"
            ) from None
        self.labels = LabelSet(self.metadata["labels"])
        self.pair = bool(self.metadata.get("pair"))
        self._encoder = None
        if not self.metadata.get("in_graph_tokenizer"):
            from transformers import AutoTokenizer

            from tfft.tokenization import HFTextEncoder

            self._encoder = HFTextEncoder(
                AutoTokenizer.from_pretrained(str(self.path / "assets.extra" / "tokenizer"))
            )

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 64) -> dict:
        """``{"label": [...], "label_id": array, "probabilities": array}`` for the texts."""
        if self.pair and pairs is None:
            raise DataError(
                f"{self.path} is a sentence-pair model: give the second texts too (--text-pair-column)."
            )
        if not self.pair and pairs is not None:
            raise DataError(f"{self.path} reads single texts, but second texts were given.")
        outputs = {"label": [], "label_id": [], "probabilities": []}
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            chunk_pairs = None if pairs is None else list(pairs[start : start + batch_size])
            result = self._call(chunk, chunk_pairs)
            outputs["label"].extend(label.decode("utf-8") for label in result["label"].numpy())
            outputs["label_id"].append(result["label_id"].numpy())
            outputs["probabilities"].append(result["probabilities"].numpy())
        num_labels = len(self.labels)
        outputs["label_id"] = np.concatenate(outputs["label_id"]) if texts else np.zeros([0], np.int32)
        outputs["probabilities"] = (
            np.concatenate(outputs["probabilities"]) if texts else np.zeros([0, num_labels], np.float32)
        )
        return outputs

    def _call(self, texts, pairs) -> dict:
        if self._encoder is None:
            kwargs = {"text": tf.constant(texts)}
            if pairs is not None:
                kwargs["text_pair"] = tf.constant(pairs)
            return self.loaded.signatures["serving_default"](**kwargs)
        encoded = self._encoder.encode(texts, pairs, int(self.metadata["max_length"]))
        length = max(len(ids) for ids in encoded.input_ids)
        pad_id = self._encoder.template.pad_id

        def padded(rows, value):
            return tf.constant(
                [np.pad(row, (0, length - len(row)), constant_values=value) for row in rows], tf.int32
            )

        return self.loaded.signatures["predict_ids"](
            input_ids=padded(encoded.input_ids, pad_id),
            attention_mask=padded([np.ones_like(r) for r in encoded.input_ids], 0),
            token_type_ids=padded(encoded.token_type_ids, 0),
        )


def run_evaluate(
    model_dir: str | os.PathLike,
    data: str,
    spec: TableSpec,
    *,
    batch_size: int = 64,
    max_examples: int | None = None,
    tfds_data_dir: str | None = None,
) -> dict:
    """Metrics of an exported model on a labelled file.

    Raises:
        DataError: unreadable data, or labels the model does not know.
    """
    model = ExportedClassifier(model_dir)
    if model.pair and spec.text_pair_column is None:
        raise ConfigError(f"{model.path} is a sentence-pair model: give --text-pair-column.")
    examples = read_examples(data, spec, max_examples=max_examples, data_dir=tfds_data_dir, option="--data")
    ids = np.asarray(model.labels.ids(examples.labels, examples.source, examples.rows, spec.label_column))
    outputs = model.predict(examples.texts, examples.pairs, batch_size=batch_size)
    metrics = classification_metrics(ids, outputs["probabilities"], model.labels.names)
    return {"model": str(model.path), "data": examples.source, **metrics}


def predict_rows(
    model_dir: str | os.PathLike,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    batch_size: int = 64,
) -> Iterator[dict]:
    """One JSON-ready dict per input: the label and every label's probability."""
    model = ExportedClassifier(model_dir)
    outputs = model.predict(texts, pairs, batch_size=batch_size)
    for index, text in enumerate(texts):
        row = {"text": text}
        if pairs is not None:
            row["text_pair"] = pairs[index]
        row["label"] = outputs["label"][index]
        row["probabilities"] = {
            name: round(float(p), 6) for name, p in zip(model.labels.names, outputs["probabilities"][index])
        }
        yield row


def run_export(run_dir: str | os.PathLike, export_dir: str | os.PathLike | None = None) -> Path:
    """Export the best checkpoint of a finished (or interrupted) run folder again.

    Rebuilds the model from the run's ``config.yaml`` and ``labels.json`` (the backbone
    source must still be reachable) and loads ``checkpoints/best``.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    checkpoint = run_dir / "checkpoints" / "best"
    if not config_path.is_file():
        raise ConfigError(f"{run_dir}: not a tfft run folder (no config.yaml).")
    if not Path(f"{checkpoint}.index").is_file():
        raise ExportError(f"{run_dir}: no checkpoint to export (checkpoints/best is missing).")
    config = load_config(config_path)
    labels = LabelSet.from_json(json.loads((run_dir / "labels.json").read_text()))
    target = Path(export_dir or config.export.target() or Path(config.export.export_root) / run_dir.name)
    _check_export_dir(target)
    model = _build(config, labels)
    model.load_weights(str(checkpoint)).expect_partial()
    return export_saved_model(
        model, target, max_length=config.data.max_length, extra={"run_dir": str(run_dir)}
    )
