"""Runtime: strategy, precision, XLA and determinism (tfft/execution.py), seen from a run."""

from __future__ import annotations

import textwrap

import pytest
import tensorflow as tf
from helpers import printed_json, run_python, tiny_run_config

import tfft
from tfft.config import RuntimeConfig
from tfft.errors import ConfigError
from tfft.execution import cpu_supports_bfloat16
from tfft.keras import keras


def test_runtime_sets_and_restores_precision():
    before = keras.mixed_precision.global_policy().name
    with tfft.runtime(RuntimeConfig(precision="mixed_bfloat16")) as chosen:
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert chosen.precision == "mixed_bfloat16" and chosen.replicas == 1
    assert keras.mixed_precision.global_policy().name == before


def test_auto_precision_and_xla_on_cpu():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("checks the CPU defaults")
    with tfft.runtime(RuntimeConfig()) as chosen:
        expected = "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"
        assert chosen.precision == expected and chosen.xla is False
    # XLA stays off on CPUs in float32 too (oneDNN without it is faster; README), unless asked.
    with tfft.runtime(RuntimeConfig(precision="float32")) as chosen:
        assert chosen.xla is False
    with tfft.runtime(RuntimeConfig(precision="float32", xla=True)) as chosen:
        assert chosen.xla is True


def test_cpu_bfloat16_detection():
    assert cpu_supports_bfloat16("processor: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_supports_bfloat16("flags : fpu amx_bf16 amx_tile\n")
    assert not cpu_supports_bfloat16("flags : fpu sse avx2 avx512f\n")


def test_mixed_precision_head_outputs_float32(tiny_bert_dir):
    with tfft.runtime(RuntimeConfig(precision="mixed_bfloat16")):
        model = tfft.build_model(hf_model=str(tiny_bert_dir), num_labels=3)
        logits = model.predict(tfft.make_dataset(model, ["the movie"], batch_size=1), verbose=0)
        assert model.output.dtype == tf.float32 and logits.dtype == "float32"


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        with tfft.runtime(RuntimeConfig(strategy="multi-worker")):
            pass


def test_same_seed_same_metrics(tiny_bert_dir, tiny_sentiment, tmp_path):
    def once(name):
        config = tiny_run_config(
            tiny_bert_dir,
            tiny_sentiment,
            {
                "data.eval": str(tiny_sentiment["dev"]),
                "train.epochs": 1,
                "train.batch_size": 16,
                "train.learning_rate": 1e-3,
                "train.seed": 3,
                "runtime.xla": False,
                "runtime.deterministic": True,
                "export.run_dir": str(tmp_path / name),
            },
        )
        return tfft.run_fit(config, verbose=0)

    first, second = once("a"), once("b")
    assert first.history == second.history
    assert first.metrics["accuracy"] == second.metrics["accuracy"]
    assert first.export_path is None  # no --export-dir: nothing exported


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tfft
    config = tfft.load_config(None, {
        "model.hf_model": sys.argv[1], "data.train": sys.argv[2], "data.text_column": "sentence",
        "train.epochs": 1, "train.batch_size": 16, "runtime.strategy": "mirrored",
        "export.run_dir": sys.argv[3],
    })
    result = tfft.run_fit(config, verbose=0)
    summary = json.load(open(result.run_dir / "summary.json"))
    print(json.dumps(summary["runtime"]))
""")


def test_mirrored_strategy_on_two_logical_cpus_turns_xla_off(tiny_bert_dir, tiny_sentiment, tmp_path):
    runtime = printed_json(
        run_python(MIRRORED_SCRIPT, tiny_bert_dir, tiny_sentiment["train"], tmp_path / "r")
    )
    assert runtime["strategy"] == "MirroredStrategy" and runtime["replicas"] == 2 and runtime["xla"] is False


def test_multi_worker_needs_a_shared_run_dir(tiny_bert_dir, tiny_sentiment):
    config = tiny_run_config(tiny_bert_dir, tiny_sentiment, {"runtime.strategy": "multi-worker"})
    with pytest.raises(ConfigError, match="multi-worker needs --run-dir"):
        tfft.run_fit(config, verbose=0)
