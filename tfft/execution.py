"""Strategy, precision and XLA: the global TensorFlow state of a run, set and restored.

All changes to global state happen inside :func:`runtime` and are undone on exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os

import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # determinism on/off has no public getter

from tfft.config import RuntimeConfig
from tfft.errors import ConfigError
from tfft.keras import keras

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Runtime:
    """What :func:`runtime` chose."""

    strategy: tf.distribute.Strategy
    precision: str
    xla: bool
    replicas: int
    devices: tuple[str, ...]
    worker: str | None = None  # "worker-1" etc. under MultiWorkerMirroredStrategy
    is_chief: bool = True  # the one worker that writes run folders and exports

    def describe(self) -> dict:
        return {
            "strategy": type(self.strategy).__name__,
            "precision": self.precision,
            "xla": self.xla,
            "replicas": self.replicas,
            "devices": list(self.devices),
            "worker": self.worker,
        }


def _worker_role(strategy: tf.distribute.Strategy) -> tuple[str | None, bool]:
    """``(name, is_chief)`` of this process in a multi-worker cluster; ``(None, True)`` alone."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or task_type is None:
        return None, True
    task_id = int(resolver.task_id or 0)
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    return f"{task_type}-{task_id}", is_chief


def cpu_supports_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has native bfloat16 math (AVX512-BF16 or AMX-BF16), from /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                cpuinfo = handle.read()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def auto_precision(gpus) -> str:
    """``--precision auto``: float16 on GPUs that have it, bfloat16 on CPUs that have it.

    On GPUs with compute capability 7.0 or newer, mixed_float16; on other GPUs, float32.
    Without a GPU, mixed_bfloat16 where the CPU has native bfloat16 (about 1.3x float32
    in benchmarks/train_speed.py on an AVX512-BF16 CPU, same accuracy), else float32.
    """
    if gpus:
        return "mixed_float16" if _gpu_supports_float16(gpus) else "float32"
    return "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"


def _gpu_supports_float16(gpus) -> bool:
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability") or (0, 0)
        if tuple(capability) < (7, 0):
            return False
    return bool(gpus)


def _make_strategy(name: str, gpus) -> tf.distribute.Strategy:
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if "TF_CONFIG" not in os.environ:
        raise ConfigError(
            "--strategy multi-worker needs TF_CONFIG (the cluster and this worker's task) in the environment."
        )
    try:
        json.loads(os.environ["TF_CONFIG"])
    except ValueError:
        raise ConfigError(
            f"TF_CONFIG is not valid JSON. Received: {os.environ['TF_CONFIG'][:200]!r}"
        ) from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The ``--strategy`` value that makes ``strategy``: ``default``, ``mirrored`` or ``multi-worker``."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi-worker"
    return "mirrored" if isinstance(strategy, tf.distribute.MirroredStrategy) else "default"


@contextlib.contextmanager
def runtime(config: RuntimeConfig = RuntimeConfig()):
    """Set up distribution, precision and determinism for a run; restore them afterwards.

    Yields:
        A :class:`Runtime`. Build and compile models inside ``runtime.strategy.scope()``
        and pass ``jit_compile=runtime.xla`` to ``compile``.
    """
    gpus = tf.config.list_physical_devices("GPU")
    precision = config.precision
    if precision == "auto":
        precision = auto_precision(gpus)
    strategy = _make_strategy(config.strategy, gpus)
    try:
        devices = tuple(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has no device list
        devices = ("default",)
    on_cpu_replicas = strategy.num_replicas_in_sync > 1 and not gpus
    if config.xla is None:
        # On GPUs only. On CPUs XLA fails under MirroredStrategy on several (logical)
        # devices, its backend does not use oneDNN's bfloat16 kernels, and even in float32 it
        # loses to oneDNN without it, whose batches need no bounded set of shapes (no filler
        # rows, padded to the fine length grid). benchmarks/train_speed.py, MiniLM on 1,024 SST-2 rows, on
        # an AMD Zen 2 without bf16: float32 83.5 ex/s without XLA, 42.9 with it (132 / 63 after
        # each shape's first step); earlier on an Intel Xeon: 43.7 / 25.5, on Zen 4: 70.1 / 45.7.
        # (Rows grouped on the fine grid, as classification is; grouped on power-of-two
        # buckets, as per-token losses are, 63 ex/s on the same Zen 2: still ahead of XLA.)
        xla = bool(gpus)
    else:
        xla = config.xla
        if xla and on_cpu_replicas:
            raise ConfigError("--xla does not work with several replicas on CPU devices; use --no-xla.")

    previous_policy = keras.mixed_precision.global_policy()
    previous_determinism = tf_config.is_op_determinism_enabled()
    keras.mixed_precision.set_global_policy(precision)
    previous_generators = keras.backend.experimental.is_tf_random_generator_enabled()
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
        # Dropout then draws from tf.random.Generator states, which training saves in its
        # backups (tfft.train.random_states_in_checkpoints): a resumed run continues them.
        keras.backend.experimental.enable_tf_random_generator()
    try:
        worker, is_chief = _worker_role(strategy)
        chosen = Runtime(strategy, precision, xla, strategy.num_replicas_in_sync, devices, worker, is_chief)
        logger.info("Runtime: %s", chosen.describe())
        yield chosen
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if config.deterministic and not previous_determinism:
            tf_config.disable_op_determinism()
        if config.deterministic and not previous_generators:
            keras.backend.experimental.disable_tf_random_generator()
