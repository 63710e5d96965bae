"""``tfft fit --dry-run``: what a run would cost, from a few real training steps, training nothing.

:func:`run_dry` reads and buckets the data, builds the model under the run's runtime
(strategy, precision, XLA) with its LoRA, freezing, accumulation and DP-SGD settings,
compiles it as :func:`tfft.train.fit` would and takes a few real training steps per bucket
length on that throw-away model. No run folder is created and nothing is saved or exported;
the model and its optimizer are dropped when it returns.

The result: parameter counts, memory estimates by kind and dtype (:mod:`tfft.costs`),
measured step times and the time per epoch and per run they imply, the padding share of
the training batches, and the process's peak resident memory during the steps next to the
estimate.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict

import tensorflow as tf

from tfft import costs
from tfft.backbones.freezing import parameter_counts
from tfft.config import AUTO_LEARNING_RATE, RunConfig, default_learning_rate
from tfft.datasets import batch_tokens_runtime, run_dataset, training_compilation
from tfft.errors import ConfigError
from tfft.execution import runtime
from tfft.keras import keras
from tfft.lr_range import MAX_STEPS
from tfft.pipeline import build_run_model, check_accumulation, privacy_plan, read_train_eval
from tfft.tasks import get_task
from tfft.train import compile_model

logger = logging.getLogger(__name__)

TEXT_BUCKET = "text"  # the one "bucket" of backbones that read raw strings


def read_memory_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_memory() -> bool:
    """Reset the process's peak RSS (``VmHWM``) to its current RSS (Linux ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def scan_batches(dataset: tf.data.Dataset) -> tuple[dict, dict, dict]:
    """One pass over the training batches: per bucket length, the batch count and one sample
    batch; and the token slots and real tokens (``attention_mask``) over all batches."""
    counts: dict = defaultdict(int)
    samples: dict = {}
    tokens = {"slots": 0, "real": 0}
    for batch in dataset:
        features = batch[0]
        ids = features.get("input_ids") if isinstance(features, dict) else None
        bucket = TEXT_BUCKET if ids is None else int(ids.shape[1])
        counts[bucket] += 1
        samples.setdefault(bucket, batch)
        mask = features.get("attention_mask") if isinstance(features, dict) else None
        if mask is not None:
            tokens["slots"] += int(tf.size(mask))
            tokens["real"] += int(tf.reduce_sum(tf.cast(mask, tf.int64)))
    return dict(counts), samples, tokens


def time_steps(model: keras.Model, samples: dict, steps: int) -> tuple[dict, float]:
    """Seconds per training step for each bucket: the mean of ``steps`` steps after a first
    (tracing / XLA-compiling) step, all on the bucket's sample batch; and the seconds the
    first steps took beyond a normal step (compiling, once per bucket in a run).

    The steps run through the model's ``train_function`` on an iterator whose shapes are all
    unknown, as ``fit``'s are: without XLA the step is traced once for all buckets (a new
    shape then costs only its first run), with XLA compiled once per shape, as in training."""
    model.make_train_function()
    seconds = {}
    compiling = 0.0
    for bucket, batch in sorted(samples.items(), key=lambda item: str(item[0]).zfill(9)):
        spec = tf.nest.map_structure(lambda t: tf.TensorSpec([None] * t.shape.rank, t.dtype), batch)
        repeated = tf.data.Dataset.from_generator(
            lambda batch=batch: iter([batch] * (steps + 1)), output_signature=spec
        )
        iterator = iter(repeated)
        started = time.perf_counter()
        model.train_function(iterator)  # traces (first bucket) or compiles (XLA) this shape
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(steps):
            model.train_function(iterator)
        seconds[bucket] = (time.perf_counter() - started) / steps
        compiling += max(first - seconds[bucket], 0.0)
        logger.info("dry run: bucket %s, %.3f s per step, first step %.1f s", bucket, seconds[bucket], first)
    return seconds, compiling


def _variables(model: keras.Model, trainable: bool | None = None) -> list[tuple[str, int]]:
    """``(dtype, parameters)`` of the model's variables (all, trainable or frozen)."""
    weights = model.weights
    if trainable is not None:
        ids = {id(w) for w in model.trainable_weights}
        weights = [w for w in weights if (id(w) in ids) == trainable]
    return [
        (w.dtype.name if hasattr(w.dtype, "name") else str(w.dtype), w.shape.num_elements() or 0)
        for w in weights
    ]


def _trained_layers(config: RunConfig) -> int | None:
    """Transformer layers backpropagation goes through (None: all)."""
    if config.model.freeze_backbone:
        return 0
    return config.model.train_top_layers


def memory_estimate(model, config: RunConfig, precision: str, length, parameters: dict) -> dict:
    """The memory block of the dry run (bytes by kind, and by dtype where it differs)."""
    train = config.train
    compute = costs.compute_dtype(precision)
    rows = train.batch_size
    if train.batch_tokens is not None and isinstance(length, int):
        rows = max(1, train.batch_tokens // length)  # a token-budget batch of the longest rows
    state = costs.training_state_bytes(
        parameters["trainable"],
        train.optimizer,
        accumulation_steps=train.grad_accum_steps,
        per_example_gradients=train.batch_size if train.dp_l2_clip is not None else 0,
    )
    block = {
        "weights": costs.weight_bytes(_variables(model)),
        "weights_trainable": costs.weight_bytes(_variables(model, trainable=True)),
        "gradients": {"float32": state["gradients"]},
        "optimizer": {"float32": state["optimizer"]},
        "compute_copies": {compute: costs.compute_copy_bytes(parameters["total"], precision)},
        "activations": None,
        "activation_batch": rows,
        "activation_length": length,
    }
    backbone = getattr(model.tfft_spec, "backbone", None)
    hf_config = getattr(getattr(getattr(backbone, "model", None), "config", None), "to_dict", None)
    shape = costs.transformer_shape(hf_config()) if hf_config is not None else None
    if shape is not None and isinstance(length, int):
        block["activations"] = {
            compute: costs.activation_bytes(
                shape, rows, length, costs.dtype_bytes(compute), _trained_layers(config)
            )
        }
        block["transformer"] = dataclasses.asdict(shape)
    block["total"] = sum(
        sum(block[key].values())
        for key in ("weights", "gradients", "optimizer", "compute_copies", "activations")
        if block[key]
    )
    return block


def run_dry(config: RunConfig, steps: int = 3) -> dict:
    """Estimate the memory and time of ``run_fit(config)`` from ``steps`` real training steps
    per bucket length on a throw-away model; nothing is written, trained for keeps or exported.

    Args:
        config: the resolved run configuration (as for :func:`tfft.pipeline.run_fit`).
        steps: timed steps per bucket, after one compiling step.

    Returns:
        A JSON-ready dict: ``parameters``, ``memory`` (bytes), ``time`` (seconds),
        ``padding``, ``rss``, ``runtime``, ``dry_run``. ``rss`` (KiB, Linux): the resident
        memory before the model is built and after, and the peak during the steps
        (``VmHWM``, reset once the model is built, so the checkpoint reader's transient
        copies are not in it) next to the estimate. The peak includes TensorFlow's own
        overheads (code loaded on first use, traced graphs, thread pools, allocator
        caches): expect it well above the estimate for small models
        (``benchmarks/dry_run_memory.py`` subtracts them with a tiny model).

    Raises:
        ConfigError: ``steps`` below 1, or ``--strategy multi-worker`` (a dry run is one process).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"--dry-run needs at least 1 timed step. Received: steps={steps!r}")
    if config.runtime.strategy == "multi-worker":
        raise ConfigError("--dry-run runs in one process; use --strategy default or mirrored for it.")
    config = config.with_learning_rate()
    auto_rate = config.train.learning_rate == AUTO_LEARNING_RATE
    if auto_rate:  # steps are timed at the fixed default; the range test's cost is estimated below
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, learning_rate=default_learning_rate(config.model))
        )
    config.model.check_source()
    task = get_task(config.model.task)
    train, _ = read_train_eval(config)
    settings = task.settings_from_data(train, config)
    runtime_config = config.runtime
    if runtime_config.precision == "auto" and config.model.hub_url:
        runtime_config = dataclasses.replace(runtime_config, precision="float32")
    runtime_config = batch_tokens_runtime(config, runtime_config)
    with runtime(runtime_config) as chosen:
        check_accumulation(config, chosen.replicas)
        keras.utils.set_random_seed(config.train.seed)
        rss_before = read_memory_kib("VmRSS")
        with chosen.strategy.scope():
            model = build_run_model(config, settings)
        rss_built = read_memory_kib("VmRSS")
        # The peak from here on: training, not the checkpoint reader's transient copies.
        peak_reset = reset_peak_memory()
        parameters = parameter_counts(model)
        xla, fixed_shapes = training_compilation(config, chosen, model)
        train_data = run_dataset(model, train, config, training=True, fixed_shapes=fixed_shapes)
        steps_per_epoch = int(train_data.cardinality().numpy())
        batches, samples, tokens = scan_batches(train_data)
        privacy = privacy_plan(config, train_data, steps_per_epoch)
        # One step per call, so each call is one measured step.
        train_config = dataclasses.replace(config.train, steps_per_execution=1)
        compile_model(model, train_config, steps_per_epoch * config.train.epochs, xla, privacy)
        seconds, compiling = time_steps(model, samples, steps)
        peak = read_memory_kib("VmHWM")
        lengths = [b for b in batches if isinstance(b, int)]
        memory = memory_estimate(
            model, config, chosen.precision, max(lengths) if lengths else None, parameters
        )
        described = {**chosen.describe(), "xla": xla}
        del model
    epoch = costs.epoch_seconds(seconds, batches)
    # At most MAX_STEPS steps at the epoch's mean step time, and the shapes compiled once more.
    range_test = round(MAX_STEPS * epoch / max(steps_per_epoch, 1) + compiling, 1) if auto_rate else 0.0
    measured = None if rss_before is None or peak is None else peak - rss_before
    return {
        "dry_run": True,
        "trained": False,
        "run_dir": None,
        "export_path": None,
        "runtime": described,
        "train_examples": len(train),
        "parameters": parameters,
        "memory": memory,
        "time": {
            "seconds_per_step": {str(bucket): round(value, 4) for bucket, value in seconds.items()},
            "batches_per_bucket": {str(bucket): count for bucket, count in batches.items()},
            "timed_steps_per_bucket": steps,
            "steps_per_epoch": steps_per_epoch,
            "epochs": config.train.epochs,
            "epoch_seconds": round(epoch, 1),
            "compile_seconds": round(compiling, 1),
            "run_seconds": round(epoch * config.train.epochs + compiling + range_test, 1),
            "range_test_seconds": range_test,
        },
        "learning_rate": "auto (range test at start)" if auto_rate else config.train.learning_rate,
        "padding": {
            "share": costs.padding_share(tokens["real"], tokens["slots"]) if tokens["slots"] else None,
            "token_slots": tokens["slots"],
            "real_tokens": tokens["real"],
        },
        "rss": {
            "before_build_kib": rss_before,
            "after_build_kib": rss_built,
            "peak_kib": peak,
            "peak_minus_before_kib": measured,
            "peak_reset": peak_reset,
            "estimate_kib": memory["total"] // 1024,
            "estimate_over_measured": None
            if measured is None
            else costs.estimate_ratio(memory["total"] // 1024, measured),
        },
    }
