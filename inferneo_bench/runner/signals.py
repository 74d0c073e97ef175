"""Ctrl-C and SIGTERM during a run: stop measuring, keep what was measured.

SIGTERM is what CI runners, `timeout`, Kubernetes and Slurm send; it behaves exactly as Ctrl-C. While the
session loads (nothing measured yet) the first signal raises `KeyboardInterrupt`. Once replays run, signals
are only counted (`deferred()`): the replay loop polls `requested` between steps, cancels the requests in
flight and returns; the session saves that partial result (status interrupted) and stops. A second signal
while it saves changes nothing: the save completes. The command then exits with 128 + the first signal's
number (130 for Ctrl-C, 143 for SIGTERM). SIGKILL cannot be caught: the per-request journal (journal.py)
is what survives it.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Counts stop signals and decides, per signal, whether to raise KeyboardInterrupt now."""

    def __init__(self) -> None:
        self.count = 0
        self.first: int | None = None  # signal number of the first stop request
        self._deferred = 0
        self._noted = False

    @property
    def requested(self) -> bool:
        return self.count > 0

    @property
    def exit_code(self) -> int:
        return 128 + (self.first or signal.SIGINT)

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        self.count += 1
        if self.first is None:
            self.first = signum
        if self.count == 1 and not self._deferred:
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        if self.count == 1:
            message = f"{name}: stopping after the current step; the partial result will be saved"
        elif not self._noted:
            self._noted = True
            message = f"{name}: already stopping; the partial result is being saved (this signal changes nothing)"
        else:
            return
        print(message, file=sys.stderr, flush=True)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A section a signal must not cut short (replays and their saves): signals are counted, not raised."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Route SIGINT and SIGTERM here for the block (main thread only; elsewhere, a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in HANDLED}
        for s in HANDLED:
            signal.signal(s, self.handle)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
