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
