"""Stopping a training run on SIGINT (Ctrl-C) or SIGTERM without losing it.

While the training loop runs, the first such signal only raises a flag: the trainer finishes the iteration in
progress, writes a checkpoint at it and returns a "stopped" result that names the ``--resume`` command.  The
handlers are then the previous ones again, so a second signal acts at once (KeyboardInterrupt, or the default
termination).  Outside the loop (data loading, final evaluation) signals keep their usual meaning.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """Context manager: ``signum`` becomes the number of the first SIGINT/SIGTERM received inside it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._saved: dict[int, Any] = {}

    @property
    def name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():  # signal.signal works on the main thread only
            self._saved = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for s, handler in self._saved.items():
            signal.signal(s, handler)
        self._saved = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self._restore()
        # The handler may run in the middle of a write to sys.stderr (the progress bar's): print() would re-enter
        # that buffered stream and fail; an unbuffered write to file descriptor 2 cannot.
        name = signal.Signals(signum).name
        try:
            os.write(2, f"\ncpt-hw: {name}: stopping after this iteration with a checkpoint (send it again to stop "
                        "at once)\n".encode())
        except OSError:
            pass
