"""What the command line prints, and where: quiet by default, results alone on stdout.

- ``-q/--quiet`` and ``-v/--verbose`` are accepted before or after the command
  (:func:`add_verbosity_options`); the counts add up.
- Default: tfft's own log lines (``INFO tfft...``) and the Keras progress bar on stderr;
  the known-harmless messages of TensorFlow, absl, CUDA-on-CPU and transformers are
  silenced (:func:`configure`). ``-q``: warnings and errors only, no progress bar.
  ``-v``: everything, TensorFlow's messages included; ``-vv``: debug.
- TensorFlow's C++ code writes to file descriptor 2 directly, before and regardless of
  ``TF_CPP_MIN_LOG_LEVEL`` (``WARNING: All log messages before absl::InitializeLog()``,
  ``I0000 ... cudart_stub.cc``, ``E0000 ... failed call to cuInit``). In a real process
  (not under click's test runner) fd 2 is therefore a pipe read by a thread that drops
  those lines (:func:`is_noise`) and passes the rest on; Python's ``sys.stderr`` writes to
  the terminal directly.
- Results go to stdout; :func:`progress_to_stderr` sends what Keras prints (the progress
  bar) to stderr while a command trains or predicts.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import re
import sys
import threading
import warnings

import click

#: a line of TensorFlow's C++ logging: ``I0000 00:00:1796054390.619230    2046 port.cc:153] ...``
_NATIVE_LOG = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] (.*)$")
#: native error lines known to be harmless (CUDA libraries on a machine without a GPU, ...)
_HARMLESS_ERRORS = re.compile(
    r"cuInit|cuda|CUDA|Unable to register cu(DNN|FFT|BLAS) factory|TensorRT"
    r"|computation placer already registered|oneDNN supports DT_INT64 only"
)
#: the second line of cpu_feature_guard.cc's info message
_CPU_GUARD_TAIL = "To enable the following instructions:"
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
#: Python warnings from these packages are hidden unless -v
_NOISY_PACKAGES = (
    r"(tensorflow|tf_keras|keras|transformers|tensorflow_hub|tensorflow_text|absl|google|h5py)(\.|$)"
)

_state = {"configured": False, "verbosity": 0, "filter": None}


def is_noise(line: str) -> bool:
    """Whether a line written to fd 2 by native code is a known-harmless message.

    Info and warning lines of TensorFlow's C++ logging are noise (``TF_CPP_MIN_LOG_LEVEL=2``
    asks for that, but absl prints some before it reads the setting); error lines only when
    they are about CUDA on a machine without a GPU; fatal lines never.
    """
    if line.startswith((_ABSL_PREAMBLE, _CPU_GUARD_TAIL)):
        return True
    match = _NATIVE_LOG.match(line)
    if match is None:
        return False
    level, message = match.groups()
    return level in "IW" or (level == "E" and bool(_HARMLESS_ERRORS.search(message)))


def _remember(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        meta = ctx.find_root().meta
        meta[f"tfft.{param.name}"] = meta.get(f"tfft.{param.name}", 0) + value


def verbosity_options() -> list[click.Option]:
    """``-q/--quiet`` and ``-v/--verbose``, counted across the group and the command."""
    return [
        click.Option(
            ["-q", "--quiet"],
            count=True,
            expose_value=False,
            callback=_remember,
            help="Only warnings and errors on stderr; no progress bar.",
        ),
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_remember,
            help="More output: TensorFlow's own messages too (-vv: debug).",
        ),
    ]


def add_verbosity_options(group: click.Group) -> None:
    """Give the group and each of its commands ``-q`` and ``-v``."""
    for command in [group, *group.commands.values()]:
        if not any(param.name == "quiet" for param in command.params):  # once, if reloaded
            command.params.extend(verbosity_options())


def verbosity() -> int:
    """-1 quiet, 0 default, 1 and more verbose (``-v`` minus ``-q`` of this invocation)."""
    return _state["verbosity"]


def keras_verbose() -> int | str:
    """The ``verbose`` argument of Keras ``fit``: no progress bar when quiet."""
    return 0 if verbosity() < 0 else "auto"


def configure(ctx: click.Context | None = None) -> None:
    """Set up logging and silence the noise for the command being run (before TensorFlow loads)."""
    ctx = ctx or click.get_current_context(silent=True)
    meta = ctx.find_root().meta if ctx is not None else {}
    level = max(-1, meta.get("tfft.verbose", 0) - meta.get("tfft.quiet", 0))
    _state["verbosity"] = level
    if level <= 0:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        warnings.filterwarnings("ignore", module=_NOISY_PACKAGES)
        if sys.stderr is sys.__stderr__ and _state["filter"] is None:
            _state["filter"] = _NativeStderrFilter()
    python_level = {-1: logging.WARNING, 0: logging.INFO, 1: logging.INFO}.get(level, logging.DEBUG)
    logging.basicConfig(level=python_level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(python_level)
    for name in ("tensorflow", "absl", "h5py", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR if level <= 0 else python_level)
    if level <= 0 and "transformers" in sys.modules:  # loaded already (tests): its own switch
        sys.modules["transformers"].logging.set_verbosity_error()
    _state["configured"] = True


class _NativeStderrFilter:
    """Fd 2 becomes a pipe; a thread copies its lines to the real stderr, minus :func:`is_noise`.

    ``sys.stderr`` is pointed at the real stderr, so Python's output does not pass through
    the pipe. Undone at exit (:meth:`close`).
    """

    def __init__(self):
        self.real = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.read_end = read_end
        sys.stderr = open(  # noqa: SIM115 - lives as long as the process
            self.real, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False
        )
        self.thread = threading.Thread(target=self._pump, name="tfft-stderr-filter", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read_end, 65536)
            except OSError:
                break
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            self._write(lines, newline=True)
        self._write([pending] if pending else [], newline=False)

    def _write(self, lines: list[bytes], newline: bool) -> None:
        kept = [line for line in lines if not is_noise(line.decode("utf-8", "replace"))]
        if kept:
            data = b"\n".join(kept) + (b"\n" if newline else b"")
            with contextlib.suppress(OSError):
                os.write(self.real, data)

    def close(self) -> None:
        """Give fd 2 back to the real stderr and let the thread pass on what is left."""
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(self.real, 2)  # closes the pipe's last write end (unless a child holds it)
        self.thread.join(timeout=2)


@contextlib.contextmanager
def progress_to_stderr():
    """Send what is printed to stdout (the Keras progress bar) to stderr meanwhile."""
    sys.stdout.flush()
    with contextlib.redirect_stdout(sys.stderr):
        yield
    sys.stderr.flush()


def handle_errors(command):
    """Configure the output (:func:`configure`), then run ``command``, turning
    :class:`tfft.errors.TfftError` into a one-line ``Error: ...`` and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from tfft.errors import TfftError

        configure()
        try:
            return command(*args, **kwargs)
        except TfftError as error:
            raise click.ClickException(" ".join(str(error).split())) from None

    return wrapper


def sniff_format(text: str) -> str:
    """The format of data read from stdin without ``--format``: JSON Lines when the first
    line is an object, TSV when it has a tab, else CSV."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        return "jsonl"
    return "tsv" if "\t" in first else "csv"


@contextlib.contextmanager
def stdin_as_file(fmt: str | None):
    """``--input -``: stdin saved to a temporary file named for its format (``--format``,
    else :func:`sniff_format`); yields its path, removed afterwards."""
    import tempfile

    text = sys.stdin.read()
    with tempfile.TemporaryDirectory(prefix="tfft-stdin-") as folder:
        path = os.path.join(folder, f"stdin.{fmt or sniff_format(text)}")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        yield path
