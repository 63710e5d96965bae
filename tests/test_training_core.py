"""The training loop's core rules: learning-rate schedule values, ``--monitor`` mode,
best-epoch restore, early stopping and ``--class-weights auto`` (classify)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import run_python, tiny_run_config

import tfft
from tfft.config import ADAPTER_LEARNING_RATE, LEARNING_RATE, RunConfig, TrainConfig
from tfft.keras import keras
from tfft.train import WarmupLinearDecay, make_optimizer, monitor_mode, resolved_monitor


def rates(schedule, steps: int) -> np.ndarray:
    return np.array([float(schedule(step)) for step in range(steps)])


@pytest.mark.parametrize("total", [1, 2, 10, 37])
def test_no_warmup_starts_at_peak_and_decays_linearly_to_peak_over_total(total):
    peak = 3e-4
    values = rates(WarmupLinearDecay(peak, total, 0), total + 2)
    # Step 0 runs at the peak (not peak * T / (T - 1)); the rate never exceeds it.
    assert values[0] == pytest.approx(peak, rel=1e-6)
    assert values.max() <= peak * (1 + 1e-6)
    expected = [peak * (total - step) / total for step in range(total)] + [0.0, 0.0]
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-12)


def test_warmup_rises_to_peak_then_decays_to_zero():
    peak, total, warmup = 1e-3, 20, 4
    values = rates(WarmupLinearDecay(peak, total, warmup), total + 1)
    np.testing.assert_allclose(values[:warmup], [peak * (k + 1) / warmup for k in range(warmup)], rtol=1e-6)
    np.testing.assert_allclose(
        values[warmup:total], [peak * (total - k) / (total - warmup) for k in range(warmup, total)], rtol=1e-5
    )
    assert values[warmup - 1] == pytest.approx(peak) and values[warmup] == pytest.approx(peak)
    assert values.max() <= peak * (1 + 1e-6)
    assert values[total] == 0.0
    assert np.all(np.diff(values[warmup:]) < 0)


def test_constant_schedule_holds_peak_after_warmup():
    peak = 2e-5
    values = rates(WarmupLinearDecay(peak, 10, 2, decay=False), 12)
    np.testing.assert_allclose(values, [peak / 2, peak] + [peak] * 10, rtol=1e-6)


def test_warmup_covering_every_step_never_exceeds_peak():
    values = rates(WarmupLinearDecay(1.0, 5, 5), 6)
    np.testing.assert_allclose(values[:5], [0.2, 0.4, 0.6, 0.8, 1.0], rtol=1e-6)
    assert values.max() <= 1.0 + 1e-6


@pytest.mark.parametrize("schedule", ["linear", "constant"])
def test_optimizer_schedule_follows_the_default_config(schedule):
    """make_optimizer wires the configured peak, warm-up share and schedule kind (defaults
    are read from TrainConfig, so the test follows changes of the defaults)."""
    config = dataclasses.replace(TrainConfig(), lr_schedule=schedule)
    total = 50
    optimizer = make_optimizer(config, total)
    warmup = round(config.warmup_ratio * total)
    lr = optimizer._learning_rate  # the schedule object (``learning_rate`` is its last value)
    peak = LEARNING_RATE if config.learning_rate is None else config.learning_rate
    assert lr.get_config() == {
        "peak": peak,
        "total_steps": total,
        "warmup_steps": warmup,
        "decay": schedule == "linear",
    }
    values = rates(lr, total)
    assert values.max() == pytest.approx(peak, rel=1e-5)
    assert values.max() <= peak * (1 + 1e-6)
    assert int(np.argmax(values >= peak * (1 - 1e-6))) == max(warmup - 1, 0)
    if schedule == "linear":
        assert values[-1] == pytest.approx(peak / (total - warmup), rel=1e-5)
    else:
        assert values[-1] == pytest.approx(peak, rel=1e-6)


@pytest.mark.parametrize("total, cap, expected", [(2000, 100, 100), (500, 100, 50), (2000, None, 200)])
def test_max_warmup_steps_caps_the_warmup_share(total, cap, expected):
    """--max-warmup-steps shortens a long run's warm-up and leaves a short one's alone."""
    config = dataclasses.replace(TrainConfig(), warmup_ratio=0.1, max_warmup_steps=cap)
    schedule = make_optimizer(config, total)._learning_rate
    assert schedule.get_config()["warmup_steps"] == expected
    values = rates(schedule, expected + 2)
    assert values[expected - 2] < values[expected - 1] == pytest.approx(schedule.peak, rel=1e-6)
    assert values[expected] == pytest.approx(schedule.peak, rel=1e-6)


@pytest.mark.parametrize(
    "monitor, mode",
    [
        ("val_loss", "min"),
        ("loss", "min"),
        ("val_mae", "min"),
        ("val_mse", "min"),
        ("val_perplexity", "min"),
        ("val_error", "min"),
        ("val_accuracy", "max"),
        ("val_entity_f1", "max"),
        ("val_macro_f1", "max"),
        ("val_pearson", "max"),
        ("val_spearman", "max"),
        ("val_micro_f1", "max"),
    ],
)
def test_monitor_mode_guessing(monitor, mode):
    assert monitor_mode(monitor) == mode


def test_monitor_mode_of_every_task_default_is_right_and_the_cli_summary_agrees():
    from tfft.tasks import get_task, task_names
    from tfft_cli.results import best_epoch

    for name in task_names():
        default = get_task(name).default_monitor
        assert default.startswith("val_"), name
        lower_is_better = default.endswith("loss")
        assert monitor_mode(default) == ("min" if lower_is_better else "max"), name
        epochs = [{"epoch": 1, default: 0.2}, {"epoch": 2, default: 0.9}]
        assert best_epoch(epochs, default)["epoch"] == (1 if lower_is_better else 2), name


def test_resolved_monitor_adds_val_prefix_and_falls_back_to_loss_without_eval():
    assert resolved_monitor("accuracy", "val_loss", True) == "val_accuracy"
    assert resolved_monitor("val_accuracy", "val_loss", True) == "val_accuracy"
    assert resolved_monitor(None, "val_entity_f1", True) == "val_entity_f1"
    assert resolved_monitor("accuracy", "val_loss", False) == "loss"


class WeightsPerEpoch(keras.callbacks.Callback):
    """Keeps a copy of the weights and logs at every epoch end; from epoch ``spoil_from`` on,
    negates and scales the head's kernel at the epoch's start, so the model confidently
    predicts the wrong class and a few optimizer steps cannot bring its loss back."""

    def __init__(self, spoil_from: int | None = None):
        super().__init__()
        self.spoil_from = spoil_from
        self.weights, self.logs = [], []

    def on_epoch_begin(self, epoch, logs=None):
        if self.spoil_from is not None and epoch >= self.spoil_from:
            kernel = self.model.trainable_weights[-2]
            assert "kernel" in kernel.name, kernel.name
            kernel.assign(kernel * -50.0)

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.copy() for w in self.model.get_weights()])
        self.logs.append(dict(logs or {}))


def assert_same_weights(left, right):
    for a, b in zip(left, right, strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_stops_and_the_best_epochs_weights_come_back(tiny_bert_dir, tiny_sentiment, tmp_path):
    """Patience 1: training stops after the first epoch that does not improve val_loss (the
    third at the latest: its head is spoiled), and the model ends with the best epoch's
    weights, not the last epoch's."""
    record = WeightsPerEpoch(spoil_from=2)
    config = tiny_run_config(
        tiny_bert_dir,
        tiny_sentiment,
        {
            "data.eval": tiny_sentiment["dev"],
            "train.epochs": 4,
            "train.batch_size": 16,
            "train.learning_rate": 1e-3,
            "train.monitor": "loss",
            "train.early_stopping_patience": 1,
            "export.run_dir": tmp_path / "run",
        },
    )
    result = tfft.run_fit(config, verbose=0, callbacks=[record])
    losses = [logs["val_loss"] for logs in record.logs]
    first_without_gain = next(i for i in range(1, 4) if losses[i] >= min(losses[:i]))
    assert len(losses) == first_without_gain + 1, losses  # stopped right there
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["optimizer_steps"] == len(losses) * summary["steps_per_epoch"]
    best = int(np.argmin(losses))
    assert best < len(losses) - 1
    assert_same_weights(record.model.get_weights(), record.weights[best])
    with pytest.raises(AssertionError):
        assert_same_weights(record.model.get_weights(), record.weights[-1])


def test_class_weights_auto_weigh_each_row_n_over_k_times_class_count(tiny_bert_dir, tmp_path):
    from tfft.datasets import run_dataset
    from tfft.pipeline import build_run_model, read_train_eval
    from tfft.tasks import get_task

    labels = ["pos"] * 15 + ["neg"] * 5 + ["meh"] * 4
    rows = ["sentence\tlabel"] + [f"row {i} was {label}\t{label}" for i, label in enumerate(labels)]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    config = tiny_run_config(
        tiny_bert_dir,
        {"train": tmp_path / "train.tsv"},
        {"task.class_weights": "auto", "train.batch_size": 5},
    )
    train, _ = read_train_eval(config)
    settings = get_task("classify").settings_from_data(train, config)
    model = build_run_model(config, settings)
    seen = Counter()
    for _, targets, weights in run_dataset(model, train, config, training=True):
        for target, weight in zip(targets.numpy().tolist(), weights.numpy().tolist(), strict=True):
            if weight > 0:  # filler rows that complete the last batch weigh 0
                seen[(settings["labels"][target], round(weight, 5))] += 1
    counts = Counter(labels)
    n, k = len(labels), len(counts)
    assert seen == {(label, round(n / (k * c), 5)): c for label, c in counts.items()}
    # Without the option every row weighs 1.
    plain = dataclasses.replace(config, task=dataclasses.replace(config.task, class_weights=None))
    weights = np.concatenate([w.numpy() for _, _, w in run_dataset(model, train, plain, training=True)])
    assert sorted(set(weights.tolist()) - {0.0}) == [1.0] and int((weights > 0).sum()) == n


@pytest.mark.parametrize(
    "model, expected",
    [
        ({}, LEARNING_RATE),
        ({"train_top_layers": 2}, LEARNING_RATE),
        ({"lora_rank": 8}, ADAPTER_LEARNING_RATE),
        ({"freeze_backbone": True}, ADAPTER_LEARNING_RATE),
    ],
)
def test_unset_learning_rate_follows_what_trains(model, expected):
    config = RunConfig.from_dict({"model": {"hf_model": "m", **model}})
    assert config.train.learning_rate is None
    assert config.with_learning_rate().train.learning_rate == expected
    given = RunConfig.from_dict({"model": {"hf_model": "m", **model}, "train": {"learning_rate": 3e-4}})
    assert given.with_learning_rate().train.learning_rate == 3e-4


@pytest.mark.parametrize(
    ("epoch", "batch", "expected"),
    [(0, 0, 1), (0, 3, 4), (1, 2, 8), (1, 4, 10), (2, -1, 15), (-1, -1, 0)],
)
def test_steps_done_counts_the_backups_epochs_and_batches(tmp_path, epoch, batch, expected):
    """The names and layout tf_keras' BackupAndRestore writes (5 steps per epoch here): Keras
    resumes after the saved batch, so the data stream skips epoch x 5 + batch + 1 batches."""
    import tensorflow as tf

    from tfft.train import steps_done

    assert steps_done(tmp_path / "backup", 5) == 0  # no backup yet
    checkpoint = tf.train.Checkpoint(
        ckpt_saved_epoch=tf.Variable(epoch, dtype=tf.int64),
        ckpt_saved_batch=tf.Variable(batch, dtype=tf.int64),
    )
    tf.train.CheckpointManager(checkpoint, str(tmp_path / "backup" / "chief"), max_to_keep=1).save()
    assert steps_done(tmp_path / "backup", 5) == expected


def test_deterministic_runs_back_up_the_dropout_generators_and_exports_leave_them_out(
    tiny_bert_dir, tiny_sentiment, tmp_path
):
    import tensorflow as tf

    from tfft.train import RANDOM_STATES

    class PeekAtBackup(keras.callbacks.Callback):  # after BackupAndRestore: sees its latest backup
        names: list = []

        def on_train_batch_end(self, batch, logs=None):
            latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "backup" / "chief"))
            if latest and not self.names:
                self.names = list(tf.train.load_checkpoint(latest).get_variable_to_shape_map())

    peek = PeekAtBackup()
    config = tiny_run_config(
        tiny_bert_dir,
        tiny_sentiment,
        {
            "runtime.deterministic": True,
            "train.backup_every_steps": 1,
            "train.batch_size": 16,
            "export.run_dir": tmp_path / "run",
        },
    )
    tfft.run_fit(config, verbose=0, callbacks=[peek])
    assert [name for name in peek.names if name.startswith(f"model/{RANDOM_STATES}/")], peek.names[:20]
    assert not keras.backend.experimental.is_tf_random_generator_enabled()  # put back after the run
    version = tfft.export_saved_model(peek.model, tmp_path / "saved_models" / "m")
    saved = tf.train.load_checkpoint(str(version / "variables" / "variables")).get_variable_to_shape_map()
    assert saved and not [name for name in saved if RANDOM_STATES in name]


@pytest.mark.parametrize("accumulate, private", [(1, False), (2, False), (1, True)])
def test_the_training_step_is_traced_once(tiny_bert_dir, accumulate, private):
    """compile_model creates the optimizer's slots, so the first step does not trace the
    training function a second time to create them (seconds on a real model); also with
    gradient accumulation and DP-SGD's step."""
    from tfft.privacy import PrivacyPlan
    from tfft.train import compile_model

    model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"])
    texts = ["good film", "bad film", "a fine day", "awful"] * 4
    data = tfft.make_dataset(
        model, texts, ["pos", "neg"] * 8, batch_size=4 * accumulate, max_length=16, training=True, seed=0
    )
    privacy = None
    if private:
        privacy = PrivacyPlan(
            clip=1.0, noise_multiplier=0.5, batch_size=4, train_rows=16, delta=1e-3, planned_steps=4
        )
    compile_model(model, TrainConfig(grad_accum_steps=accumulate), total_steps=8, xla=False, privacy=privacy)
    slots = len(model.optimizer.variables)
    assert slots > 2 * len(model.trainable_variables)  # Adam's two slots per weight, built already
    model.fit(data, epochs=1, verbose=0)
    assert model.train_function.experimental_get_tracing_count() == 1
    assert len(model.optimizer.variables) == slots


def _adam_pair_run(
    optimizer_class, jit: bool, steps: int = 5, models: list | None = None
) -> list[np.ndarray]:
    """Weights after ``steps`` updates of a model with an embedding (sparse gradient, repeated
    ids) and a dense layer, AdamW at a warm-up schedule, layer norms out of weight decay."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((4,), dtype="int32")
    hidden = keras.layers.Embedding(11, 6)(inputs)
    hidden = keras.layers.LayerNormalization(name="LayerNorm")(hidden)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(hidden))
    model = keras.Model(inputs, outputs)
    if models is not None:
        models.append(model)
    optimizer = optimizer_class(learning_rate=WarmupLinearDecay(1e-2, 10, 2), weight_decay=0.1, epsilon=1e-6)
    optimizer.exclude_from_weight_decay(var_names=["LayerNorm"])
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit)
    if not steps:
        return model.get_weights()
    ids = np.array([[1, 1, 2, 3], [3, 5, 5, 5], [7, 1, 0, 0]], np.int32)
    targets = np.array([[1.0], [-1.0], [0.5]], np.float32)
    model.fit(ids, targets, batch_size=3, epochs=steps, verbose=0, shuffle=False)
    return model.get_weights()


@pytest.mark.parametrize("jit", [False, True])
def test_fused_adamw_updates_like_tf_keras_adamw(jit):
    """tfft's AdamW (one ResourceApplyAdam per weight, sparse gradients made dense) gives the
    weights tf_keras' AdamW gives, embedding rows that got no gradient included."""
    from tfft.train import AdamW

    ours, theirs = _adam_pair_run(AdamW, jit), _adam_pair_run(keras.optimizers.AdamW, jit)
    initial = _adam_pair_run(keras.optimizers.AdamW, jit, steps=0)
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-6)  # float32 rounding
    assert not np.allclose(ours[0][4], initial[0][4])  # an unused row still moves: weight decay


MIRRORED_ADAMW = """
import sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
import test_training_core as t
from tfft.keras import keras
from tfft.train import AdamW

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
models = []
with strategy.scope():
    ours = t._adam_pair_run(AdamW, jit=False, models=models)
    theirs = t._adam_pair_run(keras.optimizers.AdamW, jit=False)
for mine, reference in zip(ours, theirs):
    np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-6)
for variable in models[0].weights:  # every replica's copy was updated
    first, second = (value.numpy() for value in strategy.experimental_local_results(variable))
    np.testing.assert_array_equal(first, second)
print("same weights on", strategy.num_replicas_in_sync, "replicas")
"""


def test_fused_adamw_under_mirrored_strategy():
    """The fused update reaches each replica's copy of a mirrored weight (``tf.distribute``
    update context), giving tf_keras AdamW's weights on two logical CPUs."""
    done = run_python(MIRRORED_ADAMW, Path(__file__).parent)
    assert "same weights on 2 replicas" in done.stdout
