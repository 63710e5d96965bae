"""Per-step training scalars: ``history.jsonl`` in the run folder and TensorBoard.

Every ``every`` optimizer steps (and at the end of each epoch) :class:`StepLog` records one
line of ``history.jsonl``::

    {"step": 20, "epoch": 1, "loss": 0.61, "learning_rate": 4.1e-05, "seconds": 3.2,
     "examples": 640, "examples_per_second": 200.0, "tokens_per_second": 2600.0}

and writes the same scalars to ``logs/steps`` (TensorBoard shows it as the run ``steps``).

- ``loss``: the mean training loss of the steps since the previous line, taken from Keras'
  loss tracker (its running sum and count), so it is exact rather than Keras' running
  mean over the epoch (that shows up in ``logs["loss"]``, and is the fallback when the
  tracker counts no rows, or an epoch's length is unknown).
- ``learning_rate``: the rate the last update used (the schedule at that step).
- ``seconds``: time spent in train steps since the previous line (from each step's start
  to its end: the input pipeline included, other callbacks' work such as checkpoints and
  the validation excluded); ``examples_per_second``: rows trained per such second (the
  first line of a run includes tracing the train step).
- ``tokens_per_second``: ``examples_per_second`` times the mean real (non-padding) tokens
  per training row, when the caller knows it (the data report counts them); absent
  otherwise.
- ``dp_clipped``, ``dp_grad_norm`` (DP-SGD runs only): the share of the step's rows whose
  gradient was clipped and their mean gradient norm before clipping
  (:func:`tfft.privacy.clipping_statistics`), for choosing ``--dp-l2-clip``.

A resumed run keeps the lines up to the step its backup restored and appends from there.
:mod:`tfft.reports.training` reads the file (and draws ``training.png``) without TensorFlow.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import tensorflow as tf

from tfft.keras import keras

logger = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"
STEPS_LOG = "steps"  # below the run's logs/: TensorBoard's run name
SCALARS = ("loss", "learning_rate", "examples_per_second", "tokens_per_second")
DP_SCALARS = ("dp_clipped", "dp_grad_norm")  # tfft.privacy.clipping_statistics


class StepLog(keras.callbacks.Callback):
    """Writes loss, learning rate and throughput every ``every`` steps (see the module doc).

    Args:
        run_dir: the run folder (``history.jsonl`` and ``logs/steps`` go there).
        every: record every N optimizer steps (and at each epoch's end).
        rows_per_step: rows per optimizer update, used only when Keras' loss tracker does
            not count rows (a custom train step).
        tokens_per_example: mean real tokens per training row, or None when unknown.
    """

    def __init__(
        self,
        run_dir: str | Path,
        every: int = 10,
        rows_per_step: int | None = None,
        tokens_per_example: float | None = None,
    ):
        super().__init__()
        self.path = Path(run_dir) / HISTORY_FILE
        self.log_dir = Path(run_dir) / "logs" / STEPS_LOG
        self.every = max(int(every), 1)
        self.rows_per_step = rows_per_step
        self.tokens_per_example = tokens_per_example
        self._writer = None
        self._tracker = None
        self._start = (0.0, 0.0, 0)  # loss total, row count and step at the window's start
        self._busy = 0.0  # seconds spent in train steps since the window's start
        self._batch_started = 0.0
        self._epoch = 0

    # --- Keras hooks ---------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        if self._writer is None:  # the first epoch: BackupAndRestore has restored the step
            step = self._step()
            kept = [line for line in _read_lines(self.path) if line.get("step", 0) <= step]
            self.path.write_text("".join(json.dumps(line) + "\n" for line in kept))
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        self._epoch = epoch + 1
        self._start = (*self._tracker_state(), self._step())
        self._busy = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._busy += time.perf_counter() - self._batch_started  # before other callbacks' work
        step = self._step()
        last = self.params.get("steps") is not None and batch + 1 >= self.params["steps"]
        if step > self._start[2] and (last or step // self.every > self._start[2] // self.every):
            self._record(step, logs)  # every N steps, and the epoch's last (before validation)

    def on_epoch_end(self, epoch, logs=None):
        step = self._step()
        if step > self._start[2]:  # an epoch of unknown length: validation has reset the tracker
            self._record(step, logs, use_tracker=False)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # --- helpers -------------------------------------------------------------------------
    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _tracker_state(self) -> tuple[float, float]:
        """Sum and count of Keras' loss tracker (made by the first train step; 0, 0 before)."""
        if self._tracker is None:
            self._tracker = next((m for m in self.model.metrics if m.name == "loss"), None)
        if self._tracker is None or not hasattr(self._tracker, "count"):
            return 0.0, 0.0
        return float(self._tracker.total.numpy()), float(self._tracker.count.numpy())

    def _learning_rate(self) -> float | None:
        try:
            return float(keras.backend.get_value(self.model.optimizer.learning_rate))
        except (AttributeError, TypeError, ValueError):
            return None

    def _record(self, step: int, logs: dict | None, use_tracker: bool = True) -> None:
        total, count = self._tracker_state() if use_tracker else self._start[:2]
        start_total, start_count, start_step = self._start
        steps = step - start_step
        rows = count - start_count
        if rows > 0:
            loss = (total - start_total) / rows
        else:  # no tracker counts: Keras' running mean over the epoch is the best there is
            loss = float((logs or {}).get("loss", math.nan))
            rows = steps * (self.rows_per_step or 0)
        seconds = max(self._busy, 1e-9)
        line = {"step": step, "epoch": self._epoch, "loss": _finite(loss)}
        rate = self._learning_rate()
        if rate is not None:
            line["learning_rate"] = rate
        line["seconds"] = round(seconds, 4)
        if rows:
            line["examples"] = int(rows)
            line["examples_per_second"] = rows / seconds
            if self.tokens_per_example:
                line["tokens_per_second"] = rows * self.tokens_per_example / seconds
        for name in DP_SCALARS:  # DP-SGD: how the clip bit on this step's batch
            if name in (logs or {}):
                line[name] = _finite(float(logs[name]))
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
        with self._writer.as_default(step=step):
            for name in (*SCALARS, *DP_SCALARS):
                if line.get(name) is not None:
                    tf.summary.scalar(name, line[name])
        self._writer.flush()
        self._start, self._busy = (total, count, step), 0.0


def _finite(value: float) -> float | None:
    """JSON has no NaN: a non-finite loss is written as null."""
    return float(value) if math.isfinite(value) else None


def _read_lines(path: Path) -> list[dict]:
    """The records of an existing ``history.jsonl`` (none when missing); bad lines skipped."""
    if not path.is_file():
        return []
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if isinstance(record, dict):
            lines.append(record)
    return lines
