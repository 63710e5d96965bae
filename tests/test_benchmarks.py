"""The benchmark scripts' own logic: argument handling and the peak FLOP/s they divide by."""

from __future__ import annotations

import importlib.util
import sys

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
