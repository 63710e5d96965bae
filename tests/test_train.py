"""Crash and resume: a run killed with SIGKILL mid-epoch continues from its backup."""

from __future__ import annotations

import json
import signal
import textwrap

import pytest
from helpers import printed_json, run_python, tiny_run_config

import tfft
from tfft.errors import ConfigError
from tfft.train import NonFiniteLoss

SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    import tensorflow as tf
    model_dir, train, dev, run_dir, strategy, kill_at, deterministic = sys.argv[1:]
    if strategy == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tfft
    from tfft.keras import keras

    class KillAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) >= int(kill_at):
                os.kill(os.getpid(), signal.SIGKILL)

    class FinalWeights(keras.callbacks.Callback):  # before the best epoch's weights come back
        def on_train_end(self, logs=None):
            self.norms = [float((w.astype("float64") ** 2).sum()) for w in self.model.get_weights()]

    config = tfft.load_config(None, {
        "model.hf_model": model_dir, "data.train": train, "data.eval": dev, "data.text_column": "sentence",
        "train.epochs": 2, "train.batch_size": 8, "train.learning_rate": 1e-3, "train.backup_every_steps": 3,
        "runtime.strategy": strategy, "runtime.deterministic": deterministic == "1",
        "export.run_dir": run_dir,
    })
    final = FinalWeights()
    result = tfft.run_fit(config, verbose=0, callbacks=[final, KillAt()] if int(kill_at) else [final])
    summary = json.load(open(result.run_dir / "summary.json"))
    print(json.dumps({"steps": summary["optimizer_steps"], "per_epoch": summary["steps_per_epoch"],
                      "eval": result.metrics["accuracy"], "loss": summary["history"]["loss"],
                      "norms": final.norms}))
""")


def run(tiny_bert_dir, data, run_dir, strategy, kill_at=0, deterministic=False):
    args = [tiny_bert_dir, data["train"], data["dev"], run_dir, strategy, kill_at, int(deterministic)]
    return run_python(SCRIPT, *args, exit_code=-signal.SIGKILL if kill_at else 0)


@pytest.mark.long  # killed and resumed processes
@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_sigkill_mid_epoch_then_same_command_resumes(tiny_bert_dir, tiny_sentiment, tmp_path, strategy):
    expected = printed_json(run(tiny_bert_dir, tiny_sentiment, tmp_path / "baseline", strategy))
    per_epoch = expected["per_epoch"]
    assert expected["steps"] == 2 * per_epoch

    kill_at = per_epoch + per_epoch // 2 + 1  # in the middle of the second epoch
    run(tiny_bert_dir, tiny_sentiment, tmp_path / "run", strategy, kill_at)
    assert list((tmp_path / "run" / "backup").rglob("*.index"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1]

    got = printed_json(run(tiny_bert_dir, tiny_sentiment, tmp_path / "run", strategy))
    assert got["steps"] == expected["steps"]
    assert abs(got["eval"] - expected["eval"]) <= 0.25
    assert got["loss"][-1] == pytest.approx(expected["loss"][-1], abs=0.15)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert not list((tmp_path / "run" / "backup").rglob("*.index"))  # removed once training finished


@pytest.mark.long  # three training processes
def test_deterministic_resume_ends_with_the_uninterrupted_runs_weights(
    tiny_bert_dir, tiny_sentiment, tmp_path
):
    """With --deterministic, killed mid-epoch and resumed == never killed (final weights)."""
    expected = printed_json(
        run(tiny_bert_dir, tiny_sentiment, tmp_path / "baseline", "default", deterministic=True)
    )
    kill_at = expected["per_epoch"] + expected["per_epoch"] // 2 + 1  # in the middle of the second epoch
    run(tiny_bert_dir, tiny_sentiment, tmp_path / "run", "default", kill_at, deterministic=True)
    got = printed_json(run(tiny_bert_dir, tiny_sentiment, tmp_path / "run", "default", deterministic=True))
    assert got["steps"] == expected["steps"]
    assert got["norms"] == pytest.approx(expected["norms"], rel=1e-5)
    assert got["eval"] == pytest.approx(expected["eval"], abs=1e-6)


def test_resume_without_backup_is_an_error(tiny_bert_dir, tiny_sentiment, tmp_path):
    config = tiny_run_config(
        tiny_bert_dir, tiny_sentiment, {"train.resume": True, "export.run_dir": str(tmp_path / "run")}
    )
    with pytest.raises(ConfigError, match="no backup to resume from"):
        tfft.run_fit(config, verbose=0)


def test_non_finite_loss_stops_names_the_step_and_exports_nothing(tiny_bert_dir, tiny_sentiment, tmp_path):
    config = tiny_run_config(
        tiny_bert_dir,
        tiny_sentiment,
        {
            "data.eval": str(tiny_sentiment["dev"]),
            "train.epochs": 2,
            "train.optimizer": "sgd",
            "train.learning_rate": 1e30,
            "train.warmup_ratio": 0.0,
            "runtime.xla": False,
            "export.run_dir": str(tmp_path / "run"),
            "export.export_dir": str(tmp_path / "saved_models" / "m"),
        },
    )
    with pytest.raises(NonFiniteLoss, match=r"loss became (nan|inf) at optimizer step \d+\. Likely causes"):
        tfft.run_fit(config, verbose=0)
    assert not (tmp_path / "saved_models" / "m").exists() or not any(
        (tmp_path / "saved_models" / "m").iterdir()
    )
    assert not (tmp_path / "run" / "backup").exists()
