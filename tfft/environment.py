"""What a run ran on: package versions and devices, for ``summary.json`` (and bug reports).

Versions are read from package metadata, without importing the packages.
"""

from __future__ import annotations

import platform
from importlib import metadata

#: the packages whose versions a run records
PACKAGES = ("tfft", "tensorflow", "tf_keras", "transformers", "tensorflow-text")
#: the CPU flags that decide ``--precision auto`` on CPUs (bfloat16 math)
CPU_FLAGS = ("avx512_bf16", "amx_tile", "amx_bf16")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Python's and ``packages``' versions (None: not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def cpu(cpuinfo: str | None = None, flag_names: tuple[str, ...] = CPU_FLAGS) -> dict:
    """The CPU model name and which of ``flag_names`` it has, from ``/proc/cpuinfo``
    (or the text given)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                cpuinfo = handle.read()
        except OSError:
            cpuinfo = ""
    flags: set[str] = set()
    model = platform.processor() or None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
        elif key.strip() == "model name" and value.strip():
            model = value.strip()
    return {"model": model, **{flag: flag in flags for flag in flag_names}}


def devices() -> dict:
    """``{"cpu": cpu(), "gpus": [...]}``: the GPUs TensorFlow sees, with name and compute
    capability where it reports them (imports TensorFlow)."""
    import tensorflow as tf

    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except (ValueError, RuntimeError):
            details = {}
        capability = details.get("compute_capability")
        gpus.append(
            {
                "device": gpu.name,
                "name": details.get("device_name"),
                "compute_capability": None if capability is None else ".".join(map(str, capability)),
            }
        )
    return {"cpu": cpu(), "gpus": gpus}
