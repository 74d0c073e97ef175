"""The capacity search: the largest offered rate a strategy sustains with SLO attainment >= the target.

Definitions (docs/sweep.md):

- A point *passes* when its SLO attainment (metrics.slo_attainment: completed requests meeting every SLO /
  all measured requests) is at least the target and it is not saturated (runner/validity.py). A saturated
  point does not pass whatever its attainment: its queue grew through the run, so a longer run would do worse.
- *Capacity* = the largest measured rate that passed below the smallest measured rate that failed; that
  failing rate is its upper bound (the true crossing lies between them when attainment falls with load).
  Rates that passed above a failure are reported as non-monotone, never taken as capacity.

The search, per strategy (and repeat), stops after `max_points` points (the saturation point included):

1. saturation point: every request at once; its served rate (completed / makespan) is the ceiling;
2. coarse spread, ascending: `coarse` fractions of the ceiling (0.2, 0.4, .. 1.0), stopping at the first
   failure (under the definition above nothing above it can be the capacity);
   all passed: keep going up by x`extend` until one fails; none passed: halve the lowest rate until one
   passes, but not under `min_fraction` (1/20) of the ceiling (a strategy that cannot sustain 5% of its
   throughput under the SLO is reported as "below" that rate: the points would be the slowest of all);
3. bisection between the capacity and its upper bound until upper - capacity <= `precision` x capacity.

Rates are rounded to 4 significant digits (they name the point files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SearchSettings:
    attainment: float = 0.9  # target SLO attainment (fraction of requests)
    precision: float = 0.02  # stop when the bracket is within this fraction of the capacity
    max_points: int = 12  # per strategy and repeat, the saturation point included
    coarse: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)  # first rates, as fractions of the ceiling
    extend: float = 1.25  # factor to go up by when every coarse rate passed
    min_fraction: float = 1 / 20  # lowest rate tried when none passed, as a fraction of the ceiling


@dataclass(frozen=True)
class Probe:
    rate: float
    passed: bool


@dataclass
class Capacity:
    """Where attainment crosses the target among measured rates."""

    rate: float | None  # largest passing rate below the smallest failing one (None: none passed there)
    upper: float | None  # the smallest failing rate (None: none failed)
    status: str  # "bracketed", "below_range" (even the lowest rate failed), "above_range" (none failed), "none"
    non_monotone: list[float] = field(default_factory=list)  # rates that passed above `upper`

    def converged(self, precision: float) -> bool:
        return self.status == "bracketed" and self.upper - self.rate <= precision * self.rate + 1e-12

    def describe(self, precision: float) -> str:
        if self.status == "none":
            return "no rate measured"
        if self.status == "below_range":
            return f"SLO attainment below target even at {self.upper:g} req/s, the lowest rate measured"
        if self.status == "above_range":
            return f"every measured rate passed: capacity >= {self.rate:g} req/s (the highest rate measured)"
        gap = (self.upper - self.rate) / self.rate
        within = "within" if self.converged(precision) else "NOT within"
        return f"between {self.rate:g} and {self.upper:g} req/s ({gap:.1%}, {within} the {precision:.0%} precision)"


def quantize(rate: float) -> float:
    """Round a rate to 4 significant digits."""
    return float(f"{rate:.4g}")


def capacity_of(probes: Iterable[Probe]) -> Capacity:
    """The capacity among measured points (see the module docstring)."""
    probes = sorted(probes, key=lambda p: p.rate)
    if not probes:
        return Capacity(None, None, "none")
    failing = [p.rate for p in probes if not p.passed]
    upper = min(failing) if failing else None
    below = [p.rate for p in probes if p.passed and (upper is None or p.rate < upper)]
    rate = max(below) if below else None
    above = [p.rate for p in probes if p.passed and upper is not None and p.rate > upper]
    status = "above_range" if upper is None else ("below_range" if rate is None else "bracketed")
    return Capacity(rate, upper, status, above)


class BudgetSpent(Exception):
    """The point budget is spent."""


def search(measure: Callable[[float, str], bool], ceiling: float, settings: SearchSettings) -> list[Probe]:
    """Run the search after the saturation point (which measured `ceiling`, req/s, and took one point of the
    budget). `measure(rate, phase)` replays one point and says whether it passed; phases: coarse, extend,
    lower, bisect. Returns the probes in the order measured."""
    probes: dict[float, Probe] = {}
    order: list[Probe] = []

    def probe(rate: float, phase: str) -> bool:
        rate = quantize(rate)
        if rate in probes:
            return probes[rate].passed
        if len(order) + 1 >= settings.max_points:
            raise BudgetSpent
        result = Probe(rate, bool(measure(rate, phase)))
        probes[rate] = result
        order.append(result)
        return result.passed

    if not ceiling > 0:
        return order
    try:
        passed_all = True
        for fraction in settings.coarse:
            if not probe(fraction * ceiling, "coarse"):
                passed_all = False
                break
        if passed_all:
            rate = max(settings.coarse) * ceiling
            while probe(rate := rate * settings.extend, "extend"):
                pass
        cap = capacity_of(order)
        rate = cap.upper if cap.upper is not None else min(settings.coarse) * ceiling
        while cap.rate is None and rate / 2 >= settings.min_fraction * ceiling:
            rate /= 2
            probe(rate, "lower")
            cap = capacity_of(order)
        while cap.status == "bracketed" and not cap.converged(settings.precision):
            mid = quantize((cap.rate + cap.upper) / 2)
            if mid in probes:  # the bracket is below the rates' rounding: as fine as it gets
                break
            probe(mid, "bisect")
            cap = capacity_of(order)
    except BudgetSpent:
        pass
    return order
