"""The exception types main.py turns into one line on stderr and an exit code.

UsageError (exit 2): input the user can fix. TrainingDiverged (exit 1): the loss became NaN or infinite;
the run stopped, its last good checkpoint is untouched and its summary says ``"status": "failed"``.
Terminated (exit 143): SIGTERM, raised where the program is, so that it ends like Ctrl-C (exit 130) does.
"""
from __future__ import annotations

import contextlib
import signal
import threading


class UsageError(ValueError):
    """Input the user can fix: the message says what is wrong and how to fix it."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class Terminated(KeyboardInterrupt):
    """SIGTERM: an interruption like Ctrl-C, so every ``except KeyboardInterrupt`` clean-up runs for it too."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_interrupts():
    """Inside, SIGTERM raises Terminated (in the main thread; elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
