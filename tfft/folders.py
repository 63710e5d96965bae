"""Run folders and export folders: their state, and the checks made before a run starts.

No TensorFlow here: the command line checks folders before it loads a model.

A run folder (``--run-dir``) is in one of these states (:func:`run_state`):

- ``new``: missing or empty;
- ``finished``: its ``summary.json`` says ``"status": "finished"`` (folders written before
  the status existed count as finished: ``summary.json`` was only written at the end);
- ``failed``: ``summary.json`` says ``"status": "failed"`` (with the error);
- ``interrupted``: ``summary.json`` says ``"status": "interrupted"``: SIGINT or SIGTERM
  stopped training at a clean point and the backup was kept (:mod:`tfft.interrupt`);
- ``unfinished``: anything else (a run that crashed or was killed, or one still training).

A finished run is only replaced with ``overwrite``; any other one is continued
(from its backup, when there is one) if it has the same settings, and refused otherwise with
the exact command that resumes it. A folder tfft created is removed again when the run fails
before training starts (:meth:`RunFolder.guard`); a failure during training is recorded in
``summary.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import shlex
import shutil
from pathlib import Path

from tfft.errors import ConfigError, ExportError, Interrupted, TfftError

FINISHED, FAILED, INTERRUPTED, UNFINISHED, NEW = "finished", "failed", "interrupted", "unfinished", "new"
#: sections and keys that may change when an interrupted run is continued
_FREE_TO_CHANGE = ("export", "runtime", "train.resume")
#: keys whose unset value (None) means "let tfft choose": config.yaml holds the choice made
_RESOLVED_WHEN_UNSET = ("train.monitor",)


def default_run_dir(root: str | os.PathLike = "runs") -> Path:
    """``runs/<date>-<time>`` (with a suffix if that exists)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / stamp
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"{stamp}-{suffix}"
    return path


def read_summary(run_dir: str | os.PathLike) -> dict | None:
    """The run's ``summary.json``, or None when it has none (or an unreadable one)."""
    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def run_state(run_dir: str | os.PathLike) -> str:
    """``"new"``, ``"finished"``, ``"failed"``, ``"interrupted"`` or ``"unfinished"`` (see the
    module docstring)."""
    path = Path(run_dir)
    if not path.is_dir() or not any(path.iterdir()):
        return NEW
    summary = read_summary(path)
    if summary is None:
        return UNFINISHED
    status = summary.get("status")
    return status if status in (FAILED, INTERRUPTED) else FINISHED


def check_export_dir(export_dir: Path) -> None:
    """Fail before training, not after, when the export folder cannot be written.

    Raises:
        ExportError: the nearest existing folder of ``export_dir`` is not writable.
    """
    existing = export_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(
            f"Cannot write the export folder {export_dir}: {existing} is not a writable folder."
        )


def _comparable(config) -> dict:
    """``config`` as a flat ``{"section.key": value}`` without what may change on resuming."""
    flat = {}
    for section, values in json.loads(json.dumps(config.to_dict(), default=str)).items():
        for key, value in (values or {}).items():
            if section not in _FREE_TO_CHANGE and f"{section}.{key}" not in _FREE_TO_CHANGE:
                flat[f"{section}.{key}"] = value
    return flat


def _auto_rate(run_dir: Path) -> float | None:
    """The rate a ``--learning-rate auto`` run's range test chose (``lr_range.json``), or None."""
    try:
        chosen = json.loads((run_dir / "lr_range.json").read_text(encoding="utf-8")).get("chosen")
    except (OSError, ValueError, AttributeError):
        return None
    return chosen if isinstance(chosen, float) else None


def setting_changes(run_dir: Path, config) -> list[str]:
    """What differs between ``config`` and the run folder's ``config.yaml``, as
    ``"section.key: saved -> now"`` lines; empty when the run can be continued as it is."""
    from tfft.config import load_config

    saved_file = run_dir / "config.yaml"
    if not saved_file.is_file():
        return []
    try:
        saved = _comparable(load_config(saved_file).with_learning_rate())
    except TfftError as error:
        return [f"its config.yaml cannot be read ({error})"]
    now = _comparable(config.with_learning_rate())  # an unset rate compares as the one it means
    if now.get("train.learning_rate") == "auto" and _auto_rate(run_dir) == saved.get("train.learning_rate"):
        now["train.learning_rate"] = saved["train.learning_rate"]  # the rate its range test chose
    keys = [
        key
        for key in dict.fromkeys([*saved, *now])
        if saved.get(key) != now.get(key) and not (key in _RESOLVED_WHEN_UNSET and now.get(key) is None)
    ]
    return [f"{key}: {saved.get(key)!r} -> {now.get(key)!r}" for key in keys]


def resume_command(run_dir: Path) -> str:
    """The command that continues the run in ``run_dir`` with its own settings."""
    quoted = shlex.quote(str(run_dir))
    return f"tfft fit --config {shlex.quote(str(run_dir / 'config.yaml'))} --run-dir {quoted}"


@dataclasses.dataclass
class RunFolder:
    """The run folder of one ``fit``: checked by :func:`plan_run_dir`, made by :meth:`create`.

    Attributes:
        path: the folder.
        replace: remove what is there before writing (``overwrite`` of a tfft run folder).
        created: tfft made (or emptied) it in this run, so a run that fails before training
            may remove it again.
        training: training has started; from here a failure is recorded, not cleaned up.
        record: this process writes the failure record (the chief under multi-worker).
        removable: the folder may be removed on an early failure (not when several
            workers share it).
    """

    path: Path
    replace: bool = False
    created: bool = False
    training: bool = False
    record: bool = True
    removable: bool = True

    def create(self) -> Path:
        """Make the folder (replacing an old run when asked) and check it can be written.

        Raises:
            ConfigError: it cannot be created or written.
        """
        try:
            if self.replace:
                shutil.rmtree(self.path)
                self.replace = False
            self.created = self.removable and (self.created or run_state(self.path) == NEW)
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"  # per process: workers share the folder
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise ConfigError(f"Cannot write the run folder {self.path}: {error.strerror or error}") from None
        return self.path

    def start_training(self, record: bool = True) -> None:
        """Mark that training starts: later failures are written to ``summary.json``."""
        self.training, self.record = True, record

    @contextlib.contextmanager
    def guard(self):
        """On an error: before training, remove the folder if tfft created it; during or
        after training, write ``summary.json`` with ``"status": "failed"`` and the error, or
        on :class:`~tfft.errors.Interrupted` ``"status": "interrupted"`` (and set the
        exception's ``run_dir``)."""
        try:
            yield self
        except BaseException as error:
            if not self.training:
                if self.created:
                    shutil.rmtree(self.path, ignore_errors=True)
                elif isinstance(error, Interrupted) and (self.path / "backup").is_dir():
                    error.run_dir = self.path  # an earlier run's backup is still there
            elif isinstance(error, Interrupted) and self.record:
                write_interruption(self.path, error)
                error.run_dir = self.path
            elif isinstance(error, Exception) and self.record:
                write_failure(self.path, error)
            raise


def write_failure(run_dir: Path, error: BaseException) -> None:
    """``summary.json`` of a run that failed: status, error and when."""
    summary = {
        "status": FAILED,
        "error": f"{type(error).__name__}: {' '.join(str(error).split())}",
        "run_dir": str(run_dir),
        "failed_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    try:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    except OSError:
        pass  # the original error matters more


def write_interruption(run_dir: Path, interrupted: Interrupted) -> None:
    """``summary.json`` of a run stopped by a signal: status, signal, step, the command that
    resumes it, and when."""
    summary = {
        "status": INTERRUPTED,
        "signal": interrupted.signal_name,
        "optimizer_steps": interrupted.step,
        "run_dir": str(run_dir),
        "resume": resume_command(run_dir),
        "interrupted_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    try:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    except OSError:
        pass  # stopping matters more


def plan_run_dir(config, overwrite: bool = False) -> RunFolder:
    """Check ``config.export.run_dir`` (or a new ``runs/<time>``) before anything is written.

    Args:
        config: the run configuration (a :class:`tfft.config.RunConfig`).
        overwrite: replace a finished (or any other tfft) run in the folder.

    Returns:
        A :class:`RunFolder` to :meth:`~RunFolder.create` once the model is about to be built.

    Raises:
        ConfigError: the folder holds a finished run (without ``overwrite``), or an
            interrupted run with other settings (the message has the command that resumes it),
            or ``overwrite`` names a folder that is not a tfft run folder.
    """
    given = config.export.run_dir
    path = Path(given) if given else default_run_dir()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--run-dir must be a folder. Received a file: run_dir={given!r}")
    state = run_state(path)
    removable = config.runtime.strategy != "multi-worker"
    if state == NEW:
        return RunFolder(path, removable=removable)
    is_tfft = (path / "config.yaml").is_file() or (path / "summary.json").is_file()
    if overwrite:
        if not is_tfft:
            raise ConfigError(
                f"--overwrite removes tfft run folders only; {path} is not empty and has no config.yaml. "
                f"Received: run_dir={given!r}"
            )
        if config.runtime.strategy == "multi-worker":
            raise ConfigError(
                "--overwrite cannot be used with --strategy multi-worker: remove the folder first."
            )
        return RunFolder(path, replace=True, created=True)
    if state == FINISHED:
        raise ConfigError(
            f"--run-dir {path} holds a finished run (summary.json). Give --overwrite to replace it, "
            "or another --run-dir."
        )
    changes = setting_changes(path, config)
    if changes:
        kind = {FAILED: "earlier failed", INTERRUPTED: "interrupted"}.get(state, "unfinished")
        raise ConfigError(
            f"--run-dir {path} holds an {kind} run with other settings"
            f" ({'; '.join(changes[:4])}{'; ...' if len(changes) > 4 else ''}). "
            f"Resume it with: {resume_command(path)} -- or give --overwrite to start again there, "
            "or another --run-dir."
        )
    return RunFolder(path, removable=removable)
