"""Gradient accumulation (tfft/accumulation.py): K micro-batches of b rows = one batch of K x b."""

from __future__ import annotations

import signal
import textwrap

import numpy as np
import pytest
from helpers import printed_json, run_python

import tfft
from tfft.accumulation import install_accumulation
from tfft.config import RunConfig, RuntimeConfig, TrainConfig
from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.pipeline import check_accumulation
from tfft.train import WarmupLinearDecay, compile_model

SAME_UPDATES = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    model_dir, train, run_dir, strategy, accumulate, batch_size = sys.argv[1:]
    if strategy == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tfft

    config = tfft.load_config(None, {
        "model.hf_model": model_dir, "model.dropout": 0.0, "data.train": train,
        "data.text_column": "sentence", "train.epochs": 2, "train.batch_size": int(batch_size),
        "train.grad_accum_steps": int(accumulate), "train.learning_rate": 1e-3, "train.seed": 5,
        "runtime.strategy": strategy, "runtime.precision": "float32", "runtime.xla": False,
        "export.run_dir": run_dir,
    })
    result = tfft.run_fit(config, verbose=0)
    print(json.dumps(json.load(open(result.run_dir / "summary.json"))))
""")


def best_weights(run_dir) -> dict:
    """The model weights in a run folder's best checkpoint, by checkpoint key."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / "best"))
    keys = [key for key in reader.get_variable_to_shape_map() if key.endswith("/.ATTRIBUTES/VARIABLE_VALUE")]
    return {key: reader.get_tensor(key) for key in keys if "optimizer" not in key}


@pytest.mark.parametrize("strategy", ["default", pytest.param("mirrored", marks=pytest.mark.long)])
def test_four_micro_batches_of_4_update_like_one_batch_of_16(
    no_dropout_bert, tiny_sentiment, tmp_path, strategy
):
    summaries = {}
    for name, accumulate, batch_size in (("k4", 4, 4), ("k1", 1, 16)):
        process = run_python(
            SAME_UPDATES,
            no_dropout_bert,
            tiny_sentiment["train"],
            tmp_path / name,
            strategy,
            accumulate,
            batch_size,
            timeout=900,
        )
        summaries[name] = printed_json(process)
    small, big = summaries["k4"], summaries["k1"]
    assert small["runtime"]["replicas"] == (2 if strategy == "mirrored" else 1)
    small_weights, big_weights = best_weights(tmp_path / "k4"), best_weights(tmp_path / "k1")
    assert small_weights.keys() == big_weights.keys() and len(big_weights) > 10
    for key, value in big_weights.items():
        np.testing.assert_allclose(small_weights[key], value, atol=1e-5, rtol=0, err_msg=key)
    # 64 rows in batches of 16: the same updates, counted by the optimizer
    assert small["steps_per_epoch"] == big["steps_per_epoch"] >= 4
    assert small["optimizer_steps"] == big["optimizer_steps"] == 2 * big["steps_per_epoch"]
    # the loss is that of each whole batch, the metrics are over all examples
    assert set(small["history"]) == set(big["history"]) >= {"loss", "accuracy"}
    for name, values in big["history"].items():
        np.testing.assert_allclose(small["history"][name], values, rtol=1e-5, err_msg=name)


class Record(keras.callbacks.Callback):
    """The optimizer's update count after every batch, and the learning rate of that update."""

    def __init__(self):
        super().__init__()
        self.steps, self.rates = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(int(self.model.optimizer.iterations.numpy()))
        self.rates.append(float(self.model.optimizer.learning_rate.numpy()))


def test_optimizer_iterations_and_schedule_count_updates(no_dropout_bert, tiny_sentiment):
    texts = [row[0] for row in tiny_sentiment["rows"][:24]]
    labels = [row[1] for row in tiny_sentiment["rows"][:24]]
    model = tfft.build_model(hf_model=str(no_dropout_bert), label_names=["neg", "pos"])
    data = tfft.make_dataset(model, texts, labels=labels, batch_size=3 * 4, training=True, seed=1)
    updates = int(data.cardinality().numpy())
    config = TrainConfig(batch_size=4, grad_accum_steps=3, learning_rate=1e-3, warmup_ratio=0.5, epochs=2)
    compile_model(model, config, total_steps=2 * updates, xla=False)
    record = Record()
    history = model.fit(data, epochs=2, verbose=0, callbacks=[record])
    assert record.steps == list(range(1, 2 * updates + 1))
    schedule = WarmupLinearDecay(1e-3, 2 * updates, round(0.5 * 2 * updates))
    # update n used the rate of step n - 1: one schedule step per update, not per micro-batch
    np.testing.assert_allclose(record.rates, [float(schedule(step - 1)) for step in record.steps], rtol=1e-6)
    assert {"loss", "accuracy"} <= set(history.history)


def test_invalid_accumulation_is_a_config_error():
    with pytest.raises(ConfigError, match=r"`grad_accum_steps` must be > 0. Received: grad_accum_steps=0"):
        TrainConfig(grad_accum_steps=0)
    with pytest.raises(
        ConfigError, match=r"`grad_accum_steps` must be an integer. Received: grad_accum_steps=1.5"
    ):
        TrainConfig(grad_accum_steps=1.5)
    with pytest.raises(
        ConfigError, match=r"multiple of the 2 replicas. Received: batch_size=3, grad_accum_steps=2"
    ):
        check_accumulation(RunConfig(train=TrainConfig(batch_size=3, grad_accum_steps=2)), replicas=2)
    check_accumulation(RunConfig(train=TrainConfig(batch_size=3, grad_accum_steps=1)), replicas=2)
    assert tfft.load_config(None, {"train.grad_accum_steps": 4}).train.grad_accum_steps == 4


def fit_weights(model_dir, accumulate: int, batch_size: int, *, xla=False, precision="float32"):
    """Weights, history and optimizer after two epochs on 24 rows with the API."""
    texts = ["the movie was good", "the film was awful", "great fun", "boring plot", "love it", "hate it"] * 4
    labels = ["pos", "neg"] * 12
    with tfft.runtime(RuntimeConfig(precision=precision, strategy="default")):
        keras.utils.set_random_seed(1)
        model = tfft.build_model(hf_model=str(model_dir), label_names=["neg", "pos"], dropout=0.0)
        data = tfft.make_dataset(
            model, texts, labels=labels, batch_size=accumulate * batch_size, training=True, seed=1
        )
        config = TrainConfig(batch_size=batch_size, grad_accum_steps=accumulate, learning_rate=1e-3)
        compile_model(model, config, total_steps=10, xla=xla)
        history = model.fit(data, epochs=2, verbose=0)
        return [weight.numpy() for weight in model.weights], history.history, model.optimizer


@pytest.mark.long  # about a minute: XLA compiles for both batch shapes
def test_accumulation_under_xla_matches_one_batch(no_dropout_bert):
    small, small_history, optimizer = fit_weights(no_dropout_bert, 4, 3, xla=True)
    big, big_history, _ = fit_weights(no_dropout_bert, 1, 12, xla=True)
    for got, expected in zip(small, big):
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(small_history["loss"], big_history["loss"], rtol=1e-5)
    assert int(optimizer.iterations.numpy()) == 4  # 24 rows, 12 per update, 2 epochs


def test_accumulation_with_mixed_float16_scales_the_summed_loss(no_dropout_bert):
    weights, history, optimizer = fit_weights(no_dropout_bert, 2, 6, precision="mixed_float16")
    assert isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert int(optimizer.iterations.numpy()) == 4
    assert all(np.isfinite(value).all() for value in weights) and np.isfinite(history["loss"]).all()


def overflow_step(poison: bool):
    """One accumulated update (2 micro-batches of 2 rows) of a float16 Dense model; with
    ``poison`` a huge input in the second micro-batch makes its scaled gradient overflow."""
    with tfft.runtime(RuntimeConfig(precision="mixed_float16", strategy="default")):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        optimizer = keras.mixed_precision.LossScaleOptimizer(keras.optimizers.Adam(1e-2))
        model.compile(optimizer=optimizer, loss="mse")
        install_accumulation(model, 2)
        x = np.ones((4, 3), "float32")
        if poison:
            x[3] = 6e4  # finite in float16; times the loss scale (2**15) it overflows
        before = [w.numpy() for w in model.weights]
        scale = float(optimizer.loss_scale.numpy())
        model.fit(x, np.zeros((4, 1), "float32"), batch_size=4, epochs=1, verbose=0, shuffle=False)
        after = [w.numpy() for w in model.weights]
        return before, after, scale, float(optimizer.loss_scale.numpy()), int(optimizer.iterations.numpy())


def test_non_finite_gradient_in_one_micro_batch_discards_the_whole_update():
    before, after, scale, new_scale, iterations = overflow_step(poison=True)
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)  # the first, finite micro-batch is discarded too
    assert new_scale == scale / 2 and iterations == 0
    before, after, scale, new_scale, iterations = overflow_step(poison=False)  # the control
    assert not np.array_equal(before[0], after[0]) and new_scale == scale and iterations == 1


RESUME = textwrap.dedent("""
    import json, os, signal, sys
    model_dir, train, dev, run_dir, kill_at = sys.argv[1:]
    import tfft
    from tfft.keras import keras

    class KillAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) >= int(kill_at):
                os.kill(os.getpid(), signal.SIGKILL)

    config = tfft.load_config(None, {
        "model.hf_model": model_dir, "data.train": train, "data.eval": dev, "data.text_column": "sentence",
        "train.epochs": 2, "train.batch_size": 4, "train.grad_accum_steps": 2, "train.learning_rate": 1e-3,
        "train.backup_every_steps": 2, "runtime.precision": "float32", "runtime.xla": False,
        "export.run_dir": run_dir,
    })
    result = tfft.run_fit(config, verbose=0, callbacks=[KillAt()] if int(kill_at) else [])
    summary = json.load(open(result.run_dir / "summary.json"))
    print(json.dumps({"steps": summary["optimizer_steps"], "per_epoch": summary["steps_per_epoch"],
                      "loss": summary["history"]["loss"]}))
""")


@pytest.mark.long  # about two minutes: three fits in subprocesses, one killed
def test_resume_from_backup_with_accumulation(tiny_bert_dir, tiny_sentiment, tmp_path):
    def run(folder, kill_at=0):
        return run_python(
            RESUME,
            tiny_bert_dir,
            tiny_sentiment["train"],
            tiny_sentiment["dev"],
            folder,
            kill_at,
            timeout=900,
            exit_code=-signal.SIGKILL if kill_at else 0,
        )

    expected = printed_json(run(tmp_path / "baseline"))
    per_epoch = expected["per_epoch"]
    assert per_epoch == 8  # 64 rows in updates of 2 x 4
    assert expected["steps"] == 2 * per_epoch

    run(tmp_path / "run", kill_at=per_epoch + per_epoch // 2 + 1)
    assert list((tmp_path / "run" / "backup").rglob("*.index"))

    got = printed_json(run(tmp_path / "run"))
    assert got["steps"] == expected["steps"]
    assert got["loss"][-1] == pytest.approx(expected["loss"][-1], abs=0.15)


def test_per_token_loss_over_rows_accumulates_like_one_batch():
    """Slices with different numbers of rows and words: each slice's loss is scaled by its
    share of the batch's denominator (real rows x words per row), not of its words."""
    import tensorflow as tf

    from tfft.losses import token_loss

    rng = np.random.default_rng(3)
    features = rng.normal(size=(4, 5, 6)).astype("float32")
    labels = rng.integers(0, 3, size=(4, 5))
    # slice 1: rows of 1 and 2 words; slice 2: a row of 5 words and a filler row
    weights = np.array([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], "float32")
    updated = []
    for steps in (1, 2):
        keras.utils.set_random_seed(7)
        inputs = keras.Input((5, 6))
        model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=token_loss(3.0))
        install_accumulation(model, steps)
        model.train_on_batch(features, labels, sample_weight=weights)
        updated.append([w.numpy() for w in model.trainable_variables])
    for whole, accumulated in zip(*updated, strict=True):
        np.testing.assert_allclose(accumulated, whole, rtol=1e-5, atol=1e-6)
    assert not np.allclose(updated[0][0], tf.zeros_like(updated[0][0]))
