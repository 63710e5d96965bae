"""``--learning-rate auto``: the range test, its pick rule, its files, plumbing and resume."""

from __future__ import annotations

import json
import logging
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import cli_dry_run, run_python, tiny_run_config

import tfft
from tfft import lr_range
from tfft.config import TrainConfig, load_config
from tfft.errors import ConfigError
from tfft.keras import keras
from tfft_cli.main import cli

TEXTS = ["the film was good", "the plot was awful", "great fun", "boring and bad"] * 8
LABELS = [1, 0, 1, 0] * 8


def bowl(rates, lowest_at: float = 1e-3, noise: float = 0.0, seed: int = 0):
    """A range test's loss curve: flat at first, lowest at ``lowest_at``, then rising."""
    x = np.log10(rates) - np.log10(lowest_at)
    rng = np.random.default_rng(seed)
    return 0.7 - 0.3 * np.exp(-(x**2) / 2) + 0.5 * np.maximum(x, 0) ** 2 + noise * rng.normal(size=x.size)


def test_pick_rule_on_a_synthetic_curve():
    rates = lr_range.range_rates(60)
    assert rates[0] == pytest.approx(lr_range.START) and rates[-1] == pytest.approx(lr_range.END)
    picked = lr_range.pick_rate(rates, bowl(rates, 1e-3, noise=0.01), rule="min/10")
    # the smoothed minimum is the grid point nearest 1e-3 (the grid steps by x1.26)
    assert picked["min_rate"] == pytest.approx(1e-3, rel=0.3)
    assert picked["rate"] == pytest.approx(picked["min_rate"] / 10) and picked["rule"] == "min/10"
    # the steepest descent of 0.7 - 0.3 exp(-x^2/2) is one decade below the minimum
    assert picked["candidates"]["steepest"] == pytest.approx(1e-4, rel=0.6)
    steepest = lr_range.pick_rate(rates, bowl(rates, 1e-3, noise=0.01), rule="steepest")
    assert steepest["rate"] == picked["candidates"]["steepest"]
    # another minimum, another rate: the rule follows the curve
    assert lr_range.pick_rate(rates, bowl(rates, 1e-2), rule="min/10")["rate"] == pytest.approx(1e-3, rel=0.3)
    assert lr_range.pick_rate(rates, bowl(rates, 1e-2))["rule"] == lr_range.RULE


def test_pick_rule_gives_no_rate_for_a_curve_that_never_falls():
    rates = lr_range.range_rates(40)
    rising = 0.7 + np.linspace(0, 1, 40)
    picked = lr_range.pick_rate(rates, rising)
    assert picked["rate"] is None and "never fell" in picked["reason"]
    with pytest.raises(ConfigError, match="rule"):
        lr_range.pick_rate(rates, rising, rule="valley")


def test_divergence_stops_the_test():
    assert not lr_range.diverged([0.7] * 20)
    assert lr_range.diverged([0.7] * 10 + [float("nan")])
    assert lr_range.diverged([0.7] * 10 + [0.5] * 5 + [5.0] * 5)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"grad_accum_steps": 2},
    ],
    ids=["plain", "accumulation"],
)
def test_range_test_puts_every_weight_back_exactly(tiny_bert_dir, settings):
    keras.utils.set_random_seed(1)
    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="classify", num_labels=2)
    rows = 8 * settings.get("grad_accum_steps", 1)
    data = tfft.make_dataset(model, TEXTS, LABELS, batch_size=rows, max_length=16, training=True, seed=1)
    before = [w.copy() for w in model.get_weights()]
    result = lr_range.range_test(model, data, TrainConfig(batch_size=8, **settings), steps=20)
    after = model.get_weights()
    assert len(before) == len(after)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    # it trained: the weights moved during the test, the curve has a point per optimizer step
    assert 10 <= result["steps"] <= 20 and len(result["losses"]) == result["steps"]
    assert int(model.optimizer.iterations.numpy()) == result["steps"]
    assert result["rates"] == pytest.approx(lr_range.range_rates(20)[: result["steps"]].tolist())
    assert np.isfinite(result["losses"][0])


def test_auto_run_writes_files_records_the_rate_and_resumes_with_it(
    tiny_bert_dir, tiny_sentiment, tmp_path, caplog
):
    class StopAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) >= 5:
                raise KeyboardInterrupt  # killed after the first backup

    class PeakRate(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.peak = self.model.optimizer.get_config()["learning_rate"]["config"]["peak"]

    run_dir = tmp_path / "run"
    settings = {
        "train.learning_rate": "auto",
        "train.epochs": 2,
        "train.batch_size": 8,
        "train.backup_every_steps": 3,
        "export.run_dir": run_dir,
    }
    config = tiny_run_config(tiny_bert_dir, tiny_sentiment, settings)
    peak = PeakRate()
    with caplog.at_level(logging.INFO, logger="tfft"), pytest.raises(KeyboardInterrupt):
        tfft.run_fit(config, verbose=0, callbacks=[peak, StopAt()])
    record = json.loads((run_dir / "lr_range.json").read_text())
    chosen = record["chosen"]
    assert (run_dir / "lr_range.png").stat().st_size > 5000
    assert record["steps"] == len(record["losses"]) == len(record["rates"]) >= 10
    assert peak.peak == chosen  # the schedule's peak is the chosen rate
    assert load_config(run_dir / "config.yaml").train.learning_rate == chosen
    assert any(f"Learning rate auto: {chosen:.3g}" in line for line in caplog.messages)
    written = (run_dir / "lr_range.json").stat().st_mtime_ns

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tfft"):
        result = tfft.run_fit(config, verbose=0, callbacks=[peak])
    assert any("chosen by the range test before the interruption" in line for line in caplog.messages)
    assert (run_dir / "lr_range.json").stat().st_mtime_ns == written  # not run again
    assert peak.peak == chosen
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["learning_rate"] == chosen and summary["lr_range"]["reused"] is True
    assert summary["optimizer_steps"] == 2 * summary["steps_per_epoch"]
    assert load_config(run_dir / "config.yaml").train.learning_rate == chosen


def test_auto_through_cli_yaml_and_api(tmp_path):
    assert TrainConfig(learning_rate="auto").learning_rate == "auto"
    assert TrainConfig(learning_rate="1e-4").learning_rate == 1e-4  # YAML reads 1e-4 as text
    (tmp_path / "run.yaml").write_text("train:\n  learning_rate: auto\n")
    assert load_config(tmp_path / "run.yaml").train.learning_rate == "auto"
    (tmp_path / "run.yaml").write_text("train:\n  learning_rate: 1e-4\n")
    assert load_config(tmp_path / "run.yaml").train.learning_rate == 1e-4
    assert load_config(None, {"train.learning_rate": "3e-4"}).train.learning_rate == 3e-4  # as click gives it
    auto = load_config(None, {"train.learning_rate": "auto"})
    assert auto.with_learning_rate().train.learning_rate == "auto"


@pytest.mark.parametrize("value", ["fast", "0", "-1e-3", "inf"])
def test_bad_learning_rate_is_a_clear_error(value, tmp_path):
    result = CliRunner().invoke(
        cli,
        ["fit", "--hf-model", str(tmp_path), "--train", str(tmp_path / "t.tsv"), "--learning-rate", value],
    )
    assert result.exit_code != 0
    assert "`learning_rate` (--learning-rate) must be a number > 0 or 'auto'" in result.output
    assert f"Received: learning_rate={value!r}" in result.output
    with pytest.raises(ConfigError, match="must be a number > 0 or 'auto'"):
        TrainConfig(learning_rate=True)


def test_auto_with_dp_sgd_is_refused():
    with pytest.raises(ConfigError, match="does not combine with DP-SGD"):
        TrainConfig(learning_rate="auto", dp_l2_clip=1.0, dp_noise_multiplier=1.0)


def test_dry_run_says_auto_and_estimates_the_range_test(tiny_bert_dir, tiny_sentiment, tmp_path):
    from tfft_cli.dry_run import dry_run_table

    args = ["--batch-size", "16", "--learning-rate", "auto", "--json"]
    result = cli_dry_run(tiny_bert_dir, tiny_sentiment, tmp_path / "run", *args)
    report = json.loads(result.stdout)
    assert report["learning_rate"] == "auto (range test at start)"
    timing = report["time"]
    step = timing["epoch_seconds"] / timing["steps_per_epoch"]  # 4 steps of 16 rows
    expected = lr_range.MAX_STEPS * step + timing["compile_seconds"]
    # epoch_seconds is rounded to 0.1 s: 15 steps' worth of it is within 0.75 s
    assert timing["range_test_seconds"] == pytest.approx(expected, abs=1.0)
    assert timing["run_seconds"] == pytest.approx(
        2 * timing["epoch_seconds"] + timing["compile_seconds"] + timing["range_test_seconds"], abs=0.2
    )
    line = next(line for line in dry_run_table(report) if line.startswith("learning rate"))
    assert "auto (range test at start): at most" in line and "of the run)" in line
    assert not (tmp_path / "run").exists()


MIRRORED = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tfft
    from tfft import lr_range
    from tfft.config import TrainConfig
    from tfft.keras import keras
    keras.utils.set_random_seed(1)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = tfft.build_model(hf_model=sys.argv[1], task="classify", num_labels=2)
    texts = ["the film was good", "the plot was awful", "great fun", "boring and bad"] * 8
    labels = [1, 0, 1, 0] * 8
    data = tfft.make_dataset(model, texts, labels, batch_size=8, max_length=16, training=True, seed=1)
    before = [w.copy() for w in model.get_weights()]
    result = lr_range.range_test(model, data, TrainConfig(batch_size=8), steps=15)
    same = all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    print("RESULT", same, result["steps"], model.distribute_strategy.num_replicas_in_sync)
""")


@pytest.mark.long  # a fresh process with 2 logical CPUs: about a minute on a loaded machine
def test_range_test_restores_weights_under_mirrored_strategy(tiny_bert_dir):
    done = run_python(MIRRORED, tiny_bert_dir)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    _, same, steps, replicas = line.split()
    assert same == "True" and replicas == "2" and 5 <= int(steps) <= 15
