"""The benchmark scripts' own logic: argument handling and the peak FLOP/s they divide by."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from helpers import REPO


@pytest.fixture(scope="module")
def train_speed():
    spec = importlib.util.spec_from_file_location("train_speed", REPO / "benchmarks" / "train_speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_speed"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["train_speed"]


def test_gpu_peak_follows_the_precision(train_speed):
    half, basis = train_speed.gpu_peak("NVIDIA H200", "mixed_float16", tf32=True)
    assert half == pytest.approx(989.4e3) and "16-bit" in basis
    tf32, basis = train_speed.gpu_peak("NVIDIA H100 80GB HBM3", "float32", tf32=True)
    assert tf32 == pytest.approx(494.7e3) and "TF32" in basis
    fp32, basis = train_speed.gpu_peak("NVIDIA A100-SXM4-40GB", "float32", tf32=False)
    assert fp32 == pytest.approx(19.5e3) and "fp32" in basis
    # No TF32 units before Ampere: float32 is measured against the fp32 peak.
    assert train_speed.gpu_peak("Tesla V100-SXM2-16GB", "float32", tf32=True)[0] == pytest.approx(15.7e3)
    assert train_speed.gpu_peak("NVIDIA H100 PCIe", "mixed_bfloat16", tf32=True)[0] == pytest.approx(756e3)
    assert train_speed.gpu_peak("Some Future GPU", "float32", tf32=True)[0] is None


def test_gpu_flag_selects_the_gpu_comparison(train_speed):
    args = train_speed.parse_args(["--gpu"])
    assert args.only == list(train_speed.GPU_VARIANTS) and args.explicit
    args = train_speed.parse_args([])
    assert args.only == list(train_speed.CONTENDERS) and not args.explicit
    with pytest.raises(SystemExit):
        train_speed.parse_args(["--gpu", "--only", "tfft"])
    with pytest.raises(SystemExit):
        train_speed.parse_args(["--only", "tfft,nonsense"])


def test_every_contender_has_a_runner(train_speed):
    assert set(train_speed.RUNNERS) == set(train_speed.CHOICES)


@pytest.fixture(scope="module")
def peft():
    spec = importlib.util.spec_from_file_location("peft_benchmark", REPO / "benchmarks" / "peft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peft_arguments(peft):
    args = peft.parse_args(["--hf-model", "m", "--only", "full, lora-qv@1e-3"])
    assert args.only == ["full", "lora-qv@1e-3"] and args.dev_rows == 872 and args.max_length == 64
    with pytest.raises(SystemExit):
        peft.parse_args(["--hf-model", "m", "--only", "full,nonsense"])
    settings = peft.overrides(args, "lora-all@1e-3", Path("/tmp/x"))
    assert settings["model.lora_rank"] == 8 and settings["train.learning_rate"] == 1e-3
    assert settings["model.lora_targets"] == "query,key,value,attention_output,intermediate,output"
    assert "model.lora_rank" not in peft.overrides(args, "frozen", Path("/tmp/x"))


@pytest.mark.slow  # three fresh TensorFlow processes: about 100 s on the shared 2-core machine
def test_peft_runs_two_contenders_on_the_tiny_model(peft, tiny_bert_dir, tiny_sentiment, capsys):
    """Each contender in its own process; the table compares them with full fine-tuning."""
    rows = peft.main(
        ["--hf-model", str(tiny_bert_dir), "--train", str(tiny_sentiment["train"]), "--dev"]
        + [str(tiny_sentiment["dev"]), "--only", "full,lora-qv", "--train-rows", "32", "--dev-rows", "16"]
        + ["--epochs", "1", "--batch-size", "8", "--timing-rounds", "1", "--timing-steps", "2"]
    )
    full, lora = rows
    assert full["adapter_bytes"] is None and 0 < lora["adapter_bytes"] < full["export_bytes"] / 10
    assert lora["trainable"] < full["trainable"] <= full["backbone"] + 100
    assert full["timed_steps"] == lora["timed_steps"] >= 3  # 32 rows in batches of 8; the first not timed
    assert full["peak_rss_mib"] > 100 and 0 <= lora["accuracy"] <= 1
    assert full["alternating_steps_per_second"] > 0 and lora["alternating_steps_per_second"] > 0
    table = capsys.readouterr().out
    assert "| lora-qv | 5e-05 |" in table and "x) |" in table
