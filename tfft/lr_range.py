"""``--learning-rate auto``: a learning-rate range test picks the peak rate.

The test (Smith 2017, "Cyclical learning rates", section 3.3; fastai's ``lr_find``) trains
the model being fine-tuned for at most :data:`MAX_STEPS` optimizer steps on training
batches, the rate rising exponentially from :data:`START` to :data:`END` (1e-6 to 1: it
covers full fine-tuning's ~1e-5..1e-4 and the ~1e-3..1e-2 of LoRA and a frozen backbone),
and records the loss of each step. It stops once the loss diverges (not finite, or its
running average above :data:`DIVERGENCE` times the lowest one). Then every weight is put
back exactly as it was (the test uses an optimizer of its own, which is dropped: the run's
optimizer starts untouched) and the random seed is set again.

The rule (:func:`pick_rate`): smooth the losses with a centred moving average (no lag,
unlike an exponential average) and take the rate where the smoothed loss falls fastest
against log(rate), before its minimum (``steepest``). The alternative, a tenth of the rate
at the minimum (``min/10``), is recorded beside it; README "Learning rate" has the figures
that chose ``steepest`` (on the real MiniLM and SST-2 it scored 2.5 points above ``min/10``
in full fine-tuning and 0.9 with LoRA). A curve that never falls below its start by
:data:`MIN_DROP` gives no rate: the fixed default is used and the log says why.

With gradient accumulation one step is one optimizer update (K micro-batches); under a
``tf.distribute`` strategy and mixed precision the test runs as training does (the model
is compiled by :func:`tfft.train.compile_model`). Writes ``lr_range.json`` (rates, losses,
smoothed losses, both candidates, the choice, seconds) and ``lr_range.png``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.train import compile_model

logger = logging.getLogger(__name__)

START, END = 1e-6, 1.0
#: at most this many optimizer steps (the test usually diverges well before)
MAX_STEPS = 60
#: stop when the running loss exceeds this multiple of its lowest value
DIVERGENCE = 4.0
#: smoothing: a centred moving average over this many steps
WINDOW = 5
#: the smoothed loss must fall this share below its first value, or no rate is picked
MIN_DROP = 0.02
RULES = ("min/10", "steepest")
RULE = "steepest"  # measured better than "min/10": see the module docstring
JSON_FILE, PICTURE = "lr_range.json", "lr_range.png"


def range_rates(steps: int = MAX_STEPS, start: float = START, end: float = END) -> np.ndarray:
    """The rate of each step: ``start`` rising exponentially to ``end`` over ``steps``."""
    return start * (end / start) ** (np.arange(steps) / max(steps - 1, 1))


def smooth(losses, window: int = WINDOW) -> np.ndarray:
    """A centred moving average (shorter at both ends); non-finite losses are left out."""
    values = np.asarray(losses, dtype=np.float64)
    half = window // 2
    out = np.empty_like(values)
    for i in range(len(values)):
        part = values[max(0, i - half) : i + half + 1]
        part = part[np.isfinite(part)]
        out[i] = part.mean() if part.size else np.inf
    return out


def pick_rate(rates, losses, rule: str = RULE) -> dict:
    """The rate a range test's curve gives by ``rule``, and both rules' candidates.

    Args:
        rates: the rate of each step (increasing).
        losses: the training loss of each step.
        rule: ``"min/10"`` (a tenth of the rate at the smoothed loss's minimum) or
            ``"steepest"`` (where the smoothed loss falls fastest against log(rate),
            before its minimum).

    Returns:
        ``{"rate", "rule", "candidates": {"min/10", "steepest"}, "min_rate", "smoothed"}``;
        ``rate`` is None (with ``"reason"``) when the loss never fell by :data:`MIN_DROP`.

    >>> rates = np.geomspace(1e-6, 1.0, 61)
    >>> losses = 1 - 0.5 * np.exp(-(np.log10(rates) + 3) ** 2)   # lowest at 1e-3
    >>> float(round(pick_rate(rates, losses, rule="min/10")["rate"], 6))
    0.0001
    >>> float(round(pick_rate(rates, losses, rule="steepest")["rate"], 6))  # the grid point nearest 10**-3.71
    0.0002
    """
    if rule not in RULES:
        raise ConfigError(f"`rule` must be one of {RULES}. Received: rule={rule!r}")
    rates = np.asarray(rates, dtype=np.float64)
    smoothed = smooth(losses)
    result = {"rule": rule, "smoothed": smoothed.tolist(), "candidates": {}, "min_rate": None, "rate": None}
    finite = np.isfinite(smoothed)
    if len(rates) < 3 or not finite.any():
        result["reason"] = f"only {len(rates)} step(s) with a finite loss"
        return result
    lowest = int(np.argmin(np.where(finite, smoothed, np.inf)))
    first = smoothed[0]
    if not smoothed[lowest] < first * (1 - MIN_DROP):
        result["reason"] = (
            f"the smoothed loss never fell {MIN_DROP:.0%} below its start ({first:.4g}; lowest "
            f"{smoothed[lowest]:.4g} at rate {rates[lowest]:.3g})"
        )
        return result
    # central differences over the whole curve, searched strictly before the minimum
    slopes = np.gradient(np.where(finite, smoothed, smoothed[lowest]), np.log(rates))
    steepest = float(rates[int(np.argmin(slopes[:lowest]))]) if lowest >= 1 else float(rates[0])
    candidates = {"min/10": float(rates[lowest] / 10), "steepest": steepest}
    result.update(candidates=candidates, min_rate=float(rates[lowest]), rate=candidates[rule])
    return result


def diverged(losses: list[float]) -> bool:
    """The newest loss is not finite, or the running average of the last :data:`WINDOW`
    losses rose above :data:`DIVERGENCE` times the lowest such average."""
    if not math.isfinite(losses[-1]):
        return True
    if len(losses) < 2 * WINDOW:
        return False
    values = np.asarray(losses, dtype=np.float64)
    averages = np.convolve(values, np.ones(WINDOW) / WINDOW, mode="valid")
    return bool(averages[-1] > DIVERGENCE * averages.min())


def range_test(model, train_data, config, *, xla: bool = False, steps: int = MAX_STEPS) -> dict:
    """Run the range test on ``model`` and put its weights back.

    Args:
        model: a model from :func:`tfft.build_model` (built in its strategy's scope).
        train_data: training batches as :func:`tfft.train.fit` takes them.
        config: the :class:`~tfft.config.TrainConfig` (optimizer, weight decay, batch,
            ``grad_accum_steps``, seed); its learning rate is not used.
        xla: compile the test's train step with XLA.
        steps: at most this many optimizer steps.

    Returns:
        ``{"rates", "losses", "steps", "stopped", "seconds"}`` plus :func:`pick_rate`'s keys.
        The model's weights equal those before the call; it is left compiled with the
        test's optimizer (:func:`tfft.train.fit` compiles it again).
    """
    schedule = _ExponentialRange(START, END, steps)
    test_config = replace(
        config, learning_rate=START, steps_per_execution=1, lr_schedule="constant", warmup_ratio=0.0
    )
    saved = model.get_weights()
    started = time.perf_counter()
    losses: list[float] = []
    recorder = _Recorder(losses)
    try:
        compile_model(model, test_config, steps, xla)
        model.optimizer.learning_rate = schedule
        # The recorder resets the loss average before each step: each step logs its own loss.
        model.fit(train_data.repeat(), epochs=1, steps_per_epoch=steps, callbacks=[recorder], verbose=0)
    finally:
        model.set_weights(saved)
        keras.utils.set_random_seed(config.seed)
    seconds = time.perf_counter() - started
    rates = range_rates(steps)[: len(losses)]
    picked = pick_rate(rates, losses)
    stopped = "diverged" if len(losses) < steps else "end of range"
    return {
        "rates": rates.tolist(),
        "losses": losses,
        "steps": len(losses),
        "stopped": stopped,
        "seconds": round(seconds, 2),
        "start": START,
        "end": END,
        "max_steps": steps,
        **picked,
    }


def resolve_rate(
    model, train_data, config, run_dir: Path, *, xla: bool, write: bool, fallback: float
) -> dict:
    """The peak learning rate of a ``--learning-rate auto`` run: the range test's pick
    (``fallback``, the fixed default, when the curve gives none). Writes ``lr_range.json``
    and ``lr_range.png`` into ``run_dir`` when ``write`` and logs one line.

    Returns:
        ``{"rate", "seconds", "rule", "picked_by"}``.
    """
    result = range_test(model, train_data, config, xla=xla)
    rate, picked_by = result["rate"], "range test"
    if rate is None:
        rate, picked_by = fallback, "fixed default"
        logger.warning(
            "Range test gave no learning rate (%s); using the default %.3g", result["reason"], rate
        )
    result["chosen"] = rate
    result["picked_by"] = picked_by
    logger.info(
        "Learning rate auto: %.3g (%s, rule %s; the loss was lowest at %s) from a %d-step range test "
        "in %.1f s (%s)",
        rate,
        picked_by,
        RULE,
        "-" if result["min_rate"] is None else f"{result['min_rate']:.3g}",
        result["steps"],
        result["seconds"],
        result["stopped"],
    )
    if write:
        (Path(run_dir) / JSON_FILE).write_text(json.dumps(result, indent=2))
        draw_quietly(run_dir, result)
    return {"rate": rate, "seconds": result["seconds"], "rule": RULE, "picked_by": picked_by}


def reused_rate(run_dir: Path) -> float | None:
    """The rate an interrupted ``--learning-rate auto`` run chose, when it is being resumed:
    its ``backup/`` holds a backup and its ``lr_range.json`` the choice (the folder checks
    made sure ``config.yaml`` holds the same rate)."""
    run_dir = Path(run_dir)
    if not any((run_dir / "backup").glob("**/*.index")):
        return None
    try:
        chosen = json.loads((run_dir / JSON_FILE).read_text()).get("chosen")
    except (OSError, ValueError, AttributeError):
        return None
    return float(chosen) if isinstance(chosen, (int, float)) and chosen > 0 else None


def draw(run_dir: str | Path, result: dict) -> Path:
    """``lr_range.png``: loss against rate (log scale), raw and smoothed, with both rules'
    candidates and the chosen rate marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    rates, losses = np.asarray(result["rates"]), np.asarray(result["losses"], dtype=np.float64)
    axes.plot(rates, losses, color="0.7", linewidth=1, label="loss per step")
    axes.plot(rates, result["smoothed"], color="C0", linewidth=2, label=f"smoothed ({WINDOW} steps)")
    styles = {"min/10": "C1", "steepest": "C2"}
    for name, rate in (result.get("candidates") or {}).items():
        axes.axvline(rate, color=styles[name], linestyle="--", label=f"{name}: {rate:.2g}")
    chosen = result.get("chosen")
    if chosen:
        axes.axvline(chosen, color="C3", linewidth=2, alpha=0.5, label=f"chosen: {chosen:.2g}")
    axes.set_xscale("log")
    finite = losses[np.isfinite(losses)]
    if finite.size:
        axes.set_ylim(finite.min() * 0.95, min(finite.max(), finite[0] * DIVERGENCE) * 1.05)
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.set_title(f"Learning-rate range test: {result['steps']} steps, {result['stopped']}")
    axes.legend(fontsize=8)
    target = Path(run_dir) / PICTURE
    figure.savefig(target, format="png")
    return target


def draw_quietly(run_dir, result: dict) -> Path | None:
    """:func:`draw`, logging instead of raising: a picture never fails a run."""
    try:
        return draw(run_dir, result)
    except Exception as error:  # noqa: BLE001 - the run matters more than its picture
        logger.warning("Could not draw %s: %s", Path(run_dir) / PICTURE, error)
        return None


class _ExponentialRange(keras.optimizers.schedules.LearningRateSchedule):
    """``start * (end / start) ** (step / (steps - 1))``: the range test's rate at each step."""

    def __init__(self, start: float, end: float, steps: int):
        self.start, self.end, self.steps = float(start), float(end), int(steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        ratio = tf.constant(self.end / self.start, tf.float32)
        return self.start * tf.pow(ratio, step / float(max(self.steps - 1, 1)))

    def get_config(self):
        return {"start": self.start, "end": self.end, "steps": self.steps}


class _Recorder(keras.callbacks.Callback):
    """Keeps each step's loss (Keras logs an average since the epoch began: it is reset
    before every step) and stops training once the loss diverges."""

    def __init__(self, losses: list[float]):
        super().__init__()
        self.losses = losses

    def on_train_batch_begin(self, batch, logs=None):
        self.model.reset_metrics()

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float((logs or {}).get("loss", float("nan"))))
        if diverged(self.losses):
            self.model.stop_training = True
