"""What ``tfft fit`` prints on stdout: a short table, or one JSON document with ``--json``.

Both come from the run folder's ``summary.json`` and ``metrics.json`` (so a resumed run
counts its earlier epochs) and name the next command to try.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

from tfft_cli.options import option_flag


def best_epoch(epochs: list[dict], monitor: str) -> dict | None:
    """The epoch record with the best ``monitor`` value (by :func:`tfft.train.monitor_mode`)."""
    from tfft.train import monitor_mode  # called after a fit: TensorFlow is loaded already

    scored = [epoch for epoch in epochs if isinstance(epoch.get(monitor), (int, float))]
    if not scored:
        return None
    lowest = monitor_mode(monitor) == "min"
    return (min if lowest else max)(scored, key=lambda epoch: epoch[monitor])


def _monitor(config, task, has_eval: bool) -> str:
    """The metric that picked the best epoch (the rule of :func:`tfft.train.fit`)."""
    if not has_eval:
        return "loss"
    monitor = config.train.monitor or task.default_monitor
    return monitor if monitor.startswith("val_") else f"val_{monitor}"


def reading_flags(config, command: str) -> str:
    """`` --flag value`` for each reading option of ``command`` (evaluate or predict) that the
    fit set to other than its default (columns, format, the task's fields), so the hint reads
    the same files the same way; options an export keeps (``saved``) are left out."""
    flags = []
    for section in (config.data, config.task):
        for field in dataclasses.fields(section):
            if command not in field.metadata.get("commands", ()) or field.metadata.get("saved"):
                continue
            value = getattr(section, field.name)
            if value is None or value == field.default:
                continue
            flag = option_flag(field)
            if "/" in flag:  # --on/--off
                flags.append(" " + flag.split("/")[0 if value else 1])
            elif isinstance(value, bool):
                flags.append(f" {flag}")
            else:
                flags.append(f" {flag} {shlex.quote(str(value))}")
    return "".join(flags)


def next_commands(config, export_path: str | None, run_dir: str) -> list[str]:
    """The commands to try after a fit: predict and evaluate the export, or export the run."""
    if export_path is None:
        return [f"tfft export {shlex.quote(run_dir)} --export-dir saved_models/NAME"]
    model_dir = shlex.quote(str(Path(export_path).parent))
    if config.model.task == "qa":
        predict = f'tfft predict {model_dir} --text "a question" --text-pair "a passage that answers it"'
    else:
        predict = f'tfft predict {model_dir} --text "some text"'
        if config.data.text_pair_column:
            predict += ' --text-pair "its pair"'
    commands = [predict]
    if config.data.eval:
        reading = reading_flags(config, "evaluate")
        commands.append(f"tfft evaluate {model_dir} --data {shlex.quote(config.data.eval)}{reading}")
    return commands


def fit_report(result, config, task) -> dict:
    """The result of a fit as a JSON-ready dict: ``run_dir``, ``export_path`` and ``eval``
    (the headline metrics) as before, plus status, best epoch, time and next commands."""
    run_dir = Path(result.run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    try:
        epochs = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    except (OSError, ValueError, KeyError):
        epochs = []
    monitor = _monitor(config, task, bool(summary.get("eval_examples")))
    best = best_epoch(epochs, monitor)
    export_path = None if result.export_path is None else str(result.export_path)
    return {
        "status": summary.get("status", "finished"),
        "run_dir": str(run_dir),
        "export_path": export_path,
        "eval": {key: value for key, value in result.metrics.items() if key in task.headline},
        "monitor": monitor,
        "best_epoch": None if best is None else best.get("epoch"),
        "best_value": None if best is None else best[monitor],
        "epochs": len(epochs),
        "train_seconds": summary.get("train_seconds"),
        "next": next_commands(config, export_path, str(run_dir)),
    }


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def fit_table(report: dict) -> list[str]:
    """The human summary of :func:`fit_report`, one ``label  value`` pair a line."""
    rows = [("status", report["status"])]
    if report["best_epoch"] is not None:
        rows.append(
            (
                "best epoch",
                f"{report['best_epoch']} of {report['epochs']} "
                f"({report['monitor']} {_number(report['best_value'])})",
            )
        )
    metrics = {key: value for key, value in report["eval"].items() if key != "examples"}
    if metrics:
        examples = report["eval"].get("examples")
        shown = "  ".join(f"{key} {_number(value)}" for key, value in metrics.items())
        rows.append(("eval", shown + (f"  ({examples} examples)" if examples is not None else "")))
    rows.append(("time", f"{report['train_seconds']} s"))
    rows.append(("run folder", report["run_dir"]))
    rows.append(("export", report["export_path"] or "none (give --export-dir or --name)"))
    rows.extend(("next" if i == 0 else "", command) for i, command in enumerate(report["next"]))
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]


def interrupted_message(error) -> str:
    """The stderr line of a ``fit`` stopped by SIGINT/SIGTERM (a :class:`tfft.errors.Interrupted`):
    where it stopped and the exact command that resumes it, or that nothing was kept."""
    from tfft.folders import resume_command

    if error.run_dir is None:
        return f"Interrupted ({error.signal_name}) before training started; nothing was kept."
    step = "" if error.step is None else f" at optimizer step {error.step}"
    return (
        f"Interrupted ({error.signal_name}){step}; the backup in {Path(error.run_dir) / 'backup'} is kept. "
        f"Resume with: {resume_command(Path(error.run_dir))}"
    )
