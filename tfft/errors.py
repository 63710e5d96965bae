"""Errors raised by tfft.

Every error a user can cause is a :class:`TfftError`. Its message is one line that names
the file, row and field (or the option) at fault and what was received; the CLI prints
it without a traceback and exits non-zero.
"""


class TfftError(Exception):
    """Base class of every error tfft raises on purpose."""


class ConfigError(TfftError):
    """An option or configuration value is invalid."""


class DataError(TfftError):
    """An input data file (or dataset) is missing, malformed or inconsistent."""


class BackboneError(TfftError):
    """A pretrained backbone cannot be found or loaded."""


class ExportError(TfftError):
    """A model cannot be exported or an export cannot be loaded."""


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM stopped a run (see :mod:`tfft.interrupt`).

    A ``BaseException`` like ``KeyboardInterrupt``, so that no ``except Exception`` on the
    way swallows it.

    Attributes:
        signum: the signal's number.
        step: the optimizer step training stopped at (None before training).
        run_dir: the run folder that holds the backup to resume from (None when nothing
            was kept: the run stopped before training started).
    """

    def __init__(self, signum: int, step: int | None = None, run_dir=None):
        super().__init__(signum)
        self.signum, self.step, self.run_dir = signum, step, run_dir

    @property
    def signal_name(self) -> str:
        """``"SIGINT"``, ``"SIGTERM"``, ..."""
        import signal

        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum
