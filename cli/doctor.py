"""``tfft doctor`` (versions, devices, CPU features, what tfft would pick here, known-bad
combinations) and ``tfft tasks`` (the registered tasks, one line each)."""

from __future__ import annotations

import ast
import importlib.util
import json
import os

import click

from tfft import environment
from tfft.tasks import REGISTRY
from tfft_cli.output import handle_errors

PACKAGES = ("tfft", "tensorflow", "tf_keras", "keras", "transformers", "tensorflow-text", "tensorflow-hub")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def versions() -> dict[str, str | None]:
    """Installed versions of :data:`PACKAGES` (None: not installed), read without importing them."""
    return environment.versions(PACKAGES)


def cpu_features(cpuinfo: str | None = None) -> dict:
    """The CPU model, core count and which of :data:`CPU_FLAGS` it has, from /proc/cpuinfo."""
    features = environment.cpu(cpuinfo, CPU_FLAGS)
    return {"model": features.pop("model"), "cores": os.cpu_count(), **features}


def _major_minor(version: str | None) -> tuple[int, ...]:
    parts = []
    for part in (version or "").split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def problems(found: dict[str, str | None], environ=os.environ) -> list[str]:
    """Known-bad version combinations and settings, one sentence each."""
    issues = []
    tf_version = _major_minor(found.get("tensorflow"))
    if found.get("tensorflow") is None:
        issues.append("tensorflow is not installed.")
    for name in ("tf_keras", "tensorflow-text"):
        if found.get(name) is None:
            issues.append(
                f"{name} is not installed; tfft needs it ({name}=={'.'.join(map(str, tf_version))}.*)."
            )
        elif found.get("tensorflow") and _major_minor(found[name]) != tf_version:
            issues.append(
                f"{name} {found[name]} does not match tensorflow {found['tensorflow']}: "
                "install the same major.minor version."
            )
    transformers = _major_minor(found.get("transformers"))
    if found.get("transformers") and transformers >= (5, 0):
        issues.append(
            f"transformers {found['transformers']} removed the TensorFlow model classes: "
            "install transformers<5."
        )
    elif found.get("transformers") and transformers < (4, 54):
        issues.append(f"transformers {found['transformers']} is older than tfft supports (>=4.54,<5).")
    legacy = environ.get("TF_USE_LEGACY_KERAS")
    if _major_minor(found.get("keras")) >= (3, 0) and legacy not in (None, "1", "true", "True"):
        issues.append(
            f"keras {found['keras']} (Keras 3) would be tf.keras: TF_USE_LEGACY_KERAS={legacy!r}; "
            "unset it or set it to 1 (tfft models are Keras 2, tf_keras)."
        )
    if found.get("tensorflow-hub") and importlib.util.find_spec("pkg_resources") is None:
        issues.append("tensorflow-hub needs pkg_resources: install setuptools<81.")
    return issues


def runtime_choice() -> dict:
    """Devices and the strategy, precision and XLA tfft's defaults pick here (imports TensorFlow)."""
    import tensorflow as tf

    from tfft.config import RuntimeConfig
    from tfft.execution import runtime

    devices = [f"{device.device_type}:{device.name}" for device in tf.config.list_physical_devices()]
    with runtime(RuntimeConfig()) as chosen:
        described = chosen.describe()
    described.pop("worker", None)
    legacy = tf.keras.__name__.startswith("tf_keras")
    described["tf.keras"] = "tf_keras (Keras 2)" if legacy else f"{tf.keras.__name__} (not Keras 2)"
    return {"physical_devices": devices, **described}


@click.command(epilog="\b\nExample:\n  tfft doctor          # paste its output into bug reports")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def doctor(as_json):
    """Versions, devices, CPU features, the runtime tfft would pick, and known-bad setups.

    Exits 1 when a known-bad combination is found.
    """
    found = versions()
    report = {
        "versions": found,
        "cpu": cpu_features(),
        "runtime": runtime_choice(),
        "problems": problems(found),
    }
    if not report["runtime"]["tf.keras"].startswith("tf_keras"):
        report["problems"].append(
            "tf.keras is not tf_keras here: set TF_USE_LEGACY_KERAS=1 before TensorFlow loads."
        )
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for section in ("versions", "cpu", "runtime"):
            click.echo(f"{section}:")
            for key, value in report[section].items():
                shown = ", ".join(value) if isinstance(value, list) else ("-" if value is None else value)
                click.echo(f"  {key:<18}{shown}")
        click.echo("problems:" + ("" if report["problems"] else " none found"))
        for problem in report["problems"]:
            click.echo(f"  - {problem}")
    if report["problems"]:
        raise SystemExit(1)


def task_summary(name: str) -> str:
    """The first line of the task package's docstring, without its ``--task x:`` prefix.
    Read from the source, so listing tasks imports nothing."""
    package = REGISTRY[name]
    spec = importlib.util.find_spec(package)
    doc = None
    if spec is not None and spec.origin and spec.origin.endswith(".py"):
        with open(spec.origin, encoding="utf-8") as handle:
            doc = ast.get_docstring(ast.parse(handle.read()))
    line = (doc or "").strip().splitlines()[0] if doc else ""
    if line.startswith("``--task") and ":" in line:
        line = line.split(":", 1)[1].strip()
    return line or f"(no description in {package})"


def task_lines() -> list[str]:
    """``name  summary`` for every registered task."""
    width = max(len(name) for name in REGISTRY)
    return [f"{name:<{width}}  {task_summary(name)}" for name in REGISTRY]


@click.command(epilog="\b\nExample:\n  tfft tasks\n  tfft fit --task ner --help   # a task's options")
@handle_errors
def tasks():
    """The registered tasks (the choices of --task), one line each."""
    for line in task_lines():
        click.echo(line)
