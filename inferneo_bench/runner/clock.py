"""Two clocks for one replay loop: the wall clock drives the real engine, the virtual clock the simulated
one. The loop never reads time any other way, which is what makes every decision testable exactly."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    virtual: bool

    def now(self) -> float:
        """Seconds since the replay started."""

    def sleep_until(self, t: float) -> None:
        """Wait (or jump) to time t; returns at once when t is past."""

    def after_step(self, step_s: float) -> None:
        """Account for an engine step that took step_s (the wall clock has already lived through it)."""


class WallClock:
    virtual = False

    def __init__(self) -> None:
        self._t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self._t0

    def sleep_until(self, t: float) -> None:
        # sleep most of the way, then spin the last half millisecond: OS sleeps overshoot by ~0.1 ms
        while (remaining := t - self.now()) > 0:
            if remaining > 0.0015:
                time.sleep(remaining - 0.001)

    def after_step(self, step_s: float) -> None:
        pass


class VirtualClock:
    virtual = True

    def __init__(self, start: float = 0.0) -> None:
        self._t = start

    def now(self) -> float:
        return self._t

    def sleep_until(self, t: float) -> None:
        self._t = max(self._t, t)

    def after_step(self, step_s: float) -> None:
        self._t += step_s
