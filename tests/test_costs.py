"""Cost estimates (tfft.costs) by hand, and ``tfft fit --dry-run`` end to end on the tiny model."""

from __future__ import annotations

import json

import pytest
from helpers import cli_dry_run

from tfft import costs


def test_activation_formula_matches_megatron_count():
    # p = 2, m = 1, I = 4h: Megatron's s*b*h*(34 + 5*a*s/h); tfft's masks are p bytes, so
    # with dropout on each of the three masks costs one more byte per value.
    shape = costs.TransformerShape(
        layers=1, hidden=64, heads=4, intermediate=256, dropout=0.1, attention_dropout=0.1
    )
    b, s, h, a = 2, 16, 64, 4
    megatron = s * b * h * (34 + 5 * a * s / h)
    extra_mask_bytes = 2 * s * b * h + b * a * s * s  # m = p = 2 instead of 1
    assert costs.activation_bytes_per_layer(shape, b, s, 2) == megatron + extra_mask_bytes


def test_activation_formula_without_dropout_and_in_float32():
    shape = costs.TransformerShape(layers=6, hidden=384, heads=12, intermediate=1536)
    per_layer = 8 * 128 * (384 * 8 * 4 + 1536 * 2 * 4) + 8 * 12 * 128 * 128 * 4
    assert costs.activation_bytes_per_layer(shape, 8, 128, 4) == per_layer
    assert costs.activation_bytes(shape, 8, 128, 4) == 7 * per_layer  # 6 layers + 1 working
    assert costs.activation_bytes(shape, 8, 128, 4, trained_layers=0) == per_layer  # frozen backbone
    assert costs.activation_bytes(shape, 8, 128, 4, trained_layers=2) == 3 * per_layer
    with pytest.raises(ValueError, match="batch=0"):
        costs.activation_bytes(shape, 0, 128, 4)


def test_transformer_shape_from_hf_configs():
    bert = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}
    assert costs.transformer_shape(bert) == costs.TransformerShape(6, 384, 12, 1536, 0.0, 0.0)
    gpt2 = {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_inner": None, "resid_pdrop": 0.1}
    assert costs.transformer_shape(gpt2) == costs.TransformerShape(2, 64, 4, 256, 0.1, 0.1)
    assert costs.transformer_shape({"vocab_size": 10}) is None


def test_weights_state_and_copies():
    assert costs.weight_bytes([("float32", 10), ("float32", 5), ("int32", 2)]) == {"float32": 60, "int32": 8}
    assert costs.training_state_bytes(100, "adamw") == {"gradients": 400, "optimizer": 800}
    assert costs.training_state_bytes(100, "sgd", accumulation_steps=4) == {
        "gradients": 800,
        "optimizer": 400,
    }
    assert costs.training_state_bytes(100, "adam", per_example_gradients=8)["gradients"] == 9 * 400
    assert costs.compute_copy_bytes(100, "mixed_bfloat16") == 200
    assert costs.compute_copy_bytes(100, "float32") == 0
    with pytest.raises(ValueError, match="optimizer='lamb'"):
        costs.training_state_bytes(1, "lamb")
    with pytest.raises(ValueError, match="precision='auto'"):
        costs.compute_dtype("auto")
    with pytest.raises(ValueError, match="dtype='complex64'"):
        costs.dtype_bytes("complex64")


def test_time_padding_and_ratio():
    assert costs.epoch_seconds({16: 0.1, 32: 0.3}, {16: 10, 32: 2}) == pytest.approx(1.6)
    with pytest.raises(ValueError, match="buckets \\[64\\]"):
        costs.epoch_seconds({16: 0.1}, {16: 1, 64: 1})
    assert costs.padding_share(75, 100) == 0.25
    assert costs.padding_share(0, 0) == 0.0
    assert costs.estimate_ratio(90, 100) == 0.9
    assert costs.estimate_ratio(1, 0) is None


def test_fit_dry_run_json_trains_and_writes_nothing(tiny_bert_dir, tiny_sentiment, tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models" / "sent"
    args = ["--eval", tiny_sentiment["dev"], "--epochs", "2", "--batch-size", "16"]
    args += ["--export-dir", export_dir, "--lora-rank", "4", "--json"]
    result = cli_dry_run(tiny_bert_dir, tiny_sentiment, run_dir, *args)
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and report["trained"] is False
    assert report["run_dir"] is None and report["export_path"] is None
    assert not run_dir.exists() and not export_dir.exists()
    assert {"parameters", "memory", "time", "padding", "rss", "runtime"} <= set(report)
    parameters = report["parameters"]
    assert 0 < parameters["trainable"] < parameters["total"]  # LoRA: backbone frozen
    memory = report["memory"]
    assert memory["optimizer"] == {"float32": 2 * 4 * parameters["trainable"]}
    assert memory["gradients"] == {"float32": 4 * parameters["trainable"]}
    assert sum(memory["weights"].values()) >= 4 * parameters["total"]
    # No XLA here: padded to the fine length grid, and "[CLS] the movie was good [SEP]" is 6 tokens.
    assert report["runtime"]["xla"] is False
    assert memory["activation_length"] == 6 and memory["activations"]
    timing = report["time"]
    assert timing["steps_per_epoch"] == 4 and timing["epochs"] == 2  # 64 rows / 16
    expected = 2 * timing["epoch_seconds"] + timing["compile_seconds"]
    assert timing["run_seconds"] == pytest.approx(expected, abs=0.11)
    assert set(timing["seconds_per_step"]) == set(timing["batches_per_bucket"]) == {"6"}
    assert report["padding"]["share"] == 0.0  # every row is 6 tokens: no padding, no filler rows
    assert report["rss"]["estimate_kib"] > 0


def test_fit_dry_run_table(tiny_bert_dir, tiny_sentiment, tmp_path):
    result = cli_dry_run(tiny_bert_dir, tiny_sentiment, tmp_path / "run", "--batch-size", "32")
    labels = [line.split("  ")[0] for line in result.stdout.splitlines()]
    for label in (
        "parameters",
        "weights",
        "optimizer",
        "activations",
        "s per step",
        "epoch",
        "run",
        "padding",
    ):
        assert label in labels
    assert not (tmp_path / "run").exists()
