"""Ctrl-C (SIGINT) and SIGTERM during ``fit``: stop at a clean point and keep a backup.

:func:`stop_on_signals` installs handlers for both signals while a run lasts. What a
signal does depends on the run's phase (:attr:`StopRequest.phase`):

- ``preparing`` (reading data, building the model): stop at once
  (:class:`tfft.errors.Interrupted`); nothing is kept.
- ``training``: note the request; :class:`tfft.train.StopWhenAsked` ends training after
  the current step, writes the backup there and raises :class:`~tfft.errors.Interrupted`.
  A second signal stops at once (the last backup stays).
- ``finishing`` (evaluation and export after training): note it and finish the run; a
  second signal stops at once.

No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading

from tfft.errors import Interrupted

logger = logging.getLogger(__name__)

#: the signals that stop a run cleanly
SIGNALS = (signal.SIGINT, signal.SIGTERM)
PREPARING, TRAINING, FINISHING = "preparing", "training", "finishing"


class StopRequest:
    """Whether a stop was asked for (:attr:`signum`), and the run's phase.

    Attributes:
        signum: the first signal received, or None.
        phase: ``"preparing"``, ``"training"`` or ``"finishing"`` (see the module docstring).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.phase = PREPARING

    def handle(self, signum: int, frame=None) -> None:
        """The signal handler: note the request, or stop at once (see the module docstring).

        Raises:
            Interrupted: before training, or at a second signal.
        """
        if self.phase == PREPARING or self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum
        name = signal.Signals(signum).name
        if self.phase == TRAINING:
            logger.warning(
                "%s: stopping after this training step and saving a backup (again to stop at once).", name
            )
        else:
            logger.warning(
                "%s: training is over; finishing the evaluation and export first (again to stop at once).",
                name,
            )


@contextlib.contextmanager
def stop_on_signals(enabled: bool = True):
    """Handle SIGINT and SIGTERM with a :class:`StopRequest` meanwhile; the previous
    handlers come back afterwards.

    Handlers can only be set in the main thread: elsewhere (or with ``enabled=False``) the
    request is yielded but never set.
    """
    request = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, request.handle)
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
