"""The benchmark scripts' own logic: argument handling and the peak FLOP/s they divide by."""

from __future__ import annotations

import importlib.util
import sys
import time
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


def test_tfft_contenders_train_at_tfft_default_rate(train_speed):
    # tfft contenders leave the rate to tfft; the baselines keep the standard recipe's 5e-5,
    # and the variants that compare with it set it explicitly.
    assert train_speed.LEARNING_RATE == 5e-5
    assert "learning_rate" not in train_speed.TFFT_VARIANTS["tfft-noxla"].get("train_settings", {})
    for name in ("tfft-constant-lr", "tfft-5e-5"):
        assert train_speed.TFFT_VARIANTS[name]["train_settings"]["learning_rate"] == train_speed.LEARNING_RATE


@pytest.fixture(scope="module")
def peft():
    folder = str(REPO / "benchmarks")  # peft.py imports its sibling _child.py, as when run as a script
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location("peft_benchmark", REPO / "benchmarks" / "peft.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(folder)


def test_peft_arguments(peft):
    args = peft.parse_args(["--hf-model", "m", "--only", "full, lora-qv@1e-3"])
    assert args.only == ["full", "lora-qv@1e-3"] and args.dev_rows == 872 and args.max_length == 64
    with pytest.raises(SystemExit):
        peft.parse_args(["--hf-model", "m", "--only", "full,nonsense"])
    settings = peft.overrides(args, "lora-all@1e-3", Path("/tmp/x"))
    assert settings["model.lora_rank"] == 8 and settings["train.learning_rate"] == 1e-3
    assert settings["model.lora_targets"] == "query,key,value,attention_output,intermediate,output"
    assert "model.lora_rank" not in peft.overrides(args, "frozen", Path("/tmp/x"))


@pytest.mark.long  # three fresh TensorFlow processes: about 100 s on the shared 2-core machine
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
    assert "| lora-qv | 0.001 |" in table and "x) |" in table  # the adapter default, as used


def cpuinfo(
    vendor: str, family: int, model: int, name: str, mhz: float, flags: str, processors: int = 2
) -> str:
    """A /proc/cpuinfo text as Linux writes it, one block per processor."""
    block = (
        "processor\t: {n}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        "model name\t: {name}\nstepping\t: 1\ncpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n\n"
    )
    return "".join(
        block.format(n=n, vendor=vendor, family=family, model=model, name=name, mhz=mhz, flags=flags)
        for n in range(processors)
    )


BASE_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ssse3 fma cx16 sse4_1 sse4_2 popcnt"
ZEN4 = cpuinfo(
    "AuthenticAMD", 25, 17, "AMD EPYC 9654 96-Core Processor", 2400.0,
    BASE_FLAGS + " avx avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni",
)  # fmt: skip
SAPPHIRE_RAPIDS = cpuinfo(
    "GenuineIntel", 6, 143, "Intel(R) Xeon(R) Platinum 8480+ @ 2.00GHz", 2000.0,
    BASE_FLAGS + " avx avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 amx_bf16 amx_tile amx_int8",
    processors=4,
)  # fmt: skip
ZEN2_FLAGS = BASE_FLAGS + " avx f16c avx2 sha_ni clzero wbnoinvd"
ZEN2 = cpuinfo("AuthenticAMD", 23, 49, "AMD EPYC", 2245.78, ZEN2_FLAGS)  # as this project's machines show it
ZEN1 = cpuinfo("AuthenticAMD", 23, 1, "AMD EPYC 7601 32-Core Processor", 2200.0, ZEN2_FLAGS)
BROADWELL = cpuinfo(
    "GenuineIntel", 6, 79, "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", 1200.0, BASE_FLAGS + " avx avx2"
)


def test_cpu_peaks_follow_the_cpu_and_precision(train_speed):
    # Zen 4: AVX-512 on 256-bit pipes (8 fp32 lanes per FMA unit), VDPBF16PS doubles it; clock from cpu MHz.
    zen4 = train_speed.cpu_peaks(ZEN4)
    assert zen4["cores"] == 2 and zen4["lanes"] == 8 and "Zen 4" in zen4["isa"]
    assert zen4["peak_gflops"] == pytest.approx(2 * 2 * 8 * 2 * 2.4)
    assert zen4["bf16_peak_gflops"] == pytest.approx(2 * zen4["peak_gflops"])
    assert "VDPBF16PS" in zen4["bf16_formula"]
    # Sapphire Rapids: full 512-bit FMA units; bf16 on the AMX tiles (1024 FLOP per cycle per core);
    # the clock of the model name wins over the current cpu MHz.
    spr = train_speed.cpu_peaks(SAPPHIRE_RAPIDS)
    assert spr["cores"] == 4 and spr["lanes"] == 16
    assert spr["peak_gflops"] == pytest.approx(4 * 2 * 16 * 2 * 2.0)
    assert spr["bf16_peak_gflops"] == pytest.approx(4 * 1024 * 2.0)
    assert "AMX" in spr["bf16_formula"]
    # AVX2 only: 8 lanes, no bf16 instructions, so bf16 is measured against the fp32 rate.
    avx2 = train_speed.cpu_peaks(BROADWELL, cores=3)
    assert avx2["cores"] == 3 and avx2["isa"] == "avx2"
    assert avx2["peak_gflops"] == pytest.approx(3 * 2 * 8 * 2 * 2.4)
    assert avx2["bf16_peak_gflops"] == avx2["peak_gflops"] and "no bf16" in avx2["bf16_formula"]
    # AMD Zen 2 (family 23, model 49): two 256-bit FMA pipes, as on Intel with AVX2; Zen 1
    # (model 1) splits AVX2 over two 128-bit pipes: half of it.
    zen2, zen1 = train_speed.cpu_peaks(ZEN2), train_speed.cpu_peaks(ZEN1)
    assert zen2["isa"] == "avx2" and zen2["peak_gflops"] == pytest.approx(2 * 2 * 8 * 2 * 2.24578, abs=0.1)
    assert zen2["bf16_peak_gflops"] == zen2["peak_gflops"]
    assert "Zen 1" in zen1["isa"] and zen1["peak_gflops"] == pytest.approx(2 * 2 * 4 * 2 * 2.2)
    # The precision a contender trains in picks the peak.
    assert train_speed.cpu_peak(spr, "mixed_bfloat16")[0] == spr["bf16_peak_gflops"]
    peak, basis = train_speed.cpu_peak(spr, "float32")
    assert peak == spr["peak_gflops"] and basis.startswith("CPU fp32 peak 512 GFLOP/s = 4 cores")
    # No clock: no peak, and the line says why.
    no_clock = train_speed.cpu_peaks(BROADWELL.replace(" @ 2.40GHz", "").replace("cpu MHz\t\t: 1200.0\n", ""))
    assert no_clock["peak_gflops"] is None and "unknown" in train_speed.cpu_peak(no_clock, "float32")[1]


def test_batch_tokens_chosen_for_32_rows_per_batch(train_speed):
    from tfft.token_budget import budget_lengths, plan_batches

    lengths = [8 + (i * 7) % 40 for i in range(2000)]
    budget = train_speed.choose_batch_tokens(lengths)
    assert budget % 32 == 0

    def mean_rows(n):
        return len(lengths) / plan_batches(lengths, n, budget_lengths(128)).steps

    assert abs(mean_rows(budget) - 32) <= min(
        abs(mean_rows(budget + 32) - 32), abs(mean_rows(budget - 32) - 32)
    )
    assert 24 <= mean_rows(budget) <= 40


def test_accuracy_clock_leaves_evaluations_out(train_speed):
    scores = iter([0.5, 0.7, 0.9])

    def evaluate():
        time.sleep(0.05)  # evaluation time must not count as training time
        return next(scores)

    clock = train_speed.AccuracyClock(target=0.85, every=2, max_seconds=60, evaluate=evaluate)
    clock.begin()
    stops = [clock.after_step() for _ in range(6)]
    assert stops == [False, False, False, False, False, True]
    assert [(step, score) for step, _, score in clock.evals] == [(2, 0.5), (4, 0.7), (6, 0.9)]
    assert clock.reached[0] == 6 and clock.reached[1] < 0.05 and clock.eval_s >= 0.15
    log = train_speed.StepLog(fed=[(32, 16, 30, 300)] * 6)
    summary = clock.summary(log)
    assert summary["tta_reached"] and summary["tta_steps"] == 6 and summary["tta_examples"] == 180
    # Out of time: the clock evaluates at once and stops, target not reached.
    late = train_speed.AccuracyClock(target=0.99, every=100, max_seconds=0, evaluate=lambda: 0.6)
    late.begin()
    assert late.after_step() and late.reached is None and late.evals[0][0] == 1


def test_time_to_accuracy_arguments(train_speed):
    args = train_speed.parse_args(["--time-to-accuracy", "0.85", "--only", "tfft,tfft-budget"])
    assert args.time_to_accuracy == 0.85 and args.tta_dev_rows == 872 and args.only == ["tfft", "tfft-budget"]
    assert train_speed.parse_args([]).time_to_accuracy is None
    for bad in (["--time-to-accuracy", "85"], ["--tta-eval-every", "0"], ["--batch-tokens", "-1"]):
        with pytest.raises(SystemExit):
            train_speed.parse_args(bad)


def test_warm_throughput_leaves_out_each_shapes_first_step(train_speed):
    """``ex/s warm`` drops the steps that fed a shape for the first time, with or without XLA."""
    fed = [(32, 16, 32, 300)] * 3 + [(32, 24, 30, 400)] * 2  # a new shape at step 3
    log = train_speed.StepLog(
        start=0.0, begins=[0.0, 1.0, 2.0, 2.5, 3.5], ends=[1.0, 2.0, 2.5, 3.5, 4.0], fed=fed
    )
    figures = log.summary(warmup_steps=1)
    assert figures["examples_per_s"] == pytest.approx((32 + 32 + 30 + 30) / 3.0)  # steps 1-4
    assert figures["warm_examples_per_s"] == pytest.approx((32 + 32 + 30) / 2.0)  # steps 1, 2, 4
    assert figures["new_shape_steps_measured"] == 1 and figures["shapes"] == 2
    assert figures["padded_share"] == pytest.approx(1 - (300 + 300 + 400 + 400) / (2 * 32 * 16 + 2 * 32 * 24))
