"""What ``tfft fit --dry-run`` prints: a short table, or the result of
:func:`tfft.dry_run.run_dry` as one JSON document with ``--json``."""

from __future__ import annotations

MIB = 1024 * 1024


def _mib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / MIB:,.1f} MiB"


def _by_dtype(block: dict | None) -> str:
    """``{"float32": bytes, ...}`` as ``"12.0 MiB float32 + ..."``; ``unknown`` for None."""
    if not block:
        return "unknown" if block is None else "0"
    return " + ".join(f"{_mib(size)} {dtype}" for dtype, size in block.items())


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _rate(result: dict, timing: dict) -> str:
    rate = result.get("learning_rate")
    if not isinstance(rate, str):
        return "unknown" if rate is None else f"{rate:g}"
    share = timing["range_test_seconds"] / timing["run_seconds"] if timing["run_seconds"] else 0.0
    return f"{rate}: at most {_duration(timing['range_test_seconds'])} ({share:.0%} of the run)"


def dry_run_table(result: dict) -> list[str]:
    """The human summary of a dry run, one ``label  value`` pair a line."""
    memory, timing, rss = result["memory"], result["time"], result["rss"]
    parameters = result["parameters"]
    steps = ", ".join(f"{bucket}: {value:.3f}" for bucket, value in timing["seconds_per_step"].items())
    padding = result["padding"]["share"]
    activations = _by_dtype(memory["activations"])
    if memory["activations"] is not None:
        activations += (
            f" (batch {memory['activation_batch']} x length {memory['activation_length']}, largest bucket)"
        )
    rows = [
        ("status", "dry run: nothing trained, saved or exported"),
        ("runtime", f"{result['runtime']['precision']}, xla {'on' if result['runtime']['xla'] else 'off'}"),
        ("learning rate", _rate(result, timing)),
        ("parameters", f"{parameters['trainable']:,} trainable of {parameters['total']:,}"),
        ("weights", _by_dtype(memory["weights"])),
        ("gradients", _by_dtype(memory["gradients"])),
        ("optimizer", _by_dtype(memory["optimizer"])),
        ("compute copies", _by_dtype(memory["compute_copies"])),
        ("activations", activations),
        ("memory total", _mib(memory["total"])),
        (
            "peak RSS",
            "unknown"
            if rss["peak_minus_before_kib"] is None
            else f"+{rss['peak_minus_before_kib'] / 1024:,.1f} MiB over the RSS before the model was built "
            f"(estimate/measured {rss['estimate_over_measured']})",
        ),
        (
            "s per step",
            f"{steps} (by bucket length; {timing['timed_steps_per_bucket']} steps each after compiling)",
        ),
        ("epoch", f"{_duration(timing['epoch_seconds'])} ({timing['steps_per_epoch']} steps)"),
        (
            "run",
            f"{_duration(timing['run_seconds'])} ({timing['epochs']} epochs"
            f" + {timing['compile_seconds']:.1f} s compiling; model loading and evaluation not included)",
        ),
        ("padding", "unknown" if padding is None else f"{padding:.1%} of token slots"),
    ]
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]


def dry_run_command(config, as_json: bool) -> str:
    """Run :func:`tfft.dry_run.run_dry` (progress on stderr) and format its result for stdout."""
    import json

    from tfft.dry_run import run_dry
    from tfft_cli.output import progress_to_stderr

    with progress_to_stderr():
        result = run_dry(config)
    return json.dumps(result) if as_json else "\n".join(dry_run_table(result))
