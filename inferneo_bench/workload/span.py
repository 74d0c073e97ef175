"""A workload's time span, checked before it is replayed.

A wall-clock replay lasts as long as the workload's arrivals: one mistyped row dated 2099 in a trace would
make the run sleep for 76 years, silently. Two rules, both lifted by `--allow-long`:
- an outlier gap: one gap between consecutive arrivals longer than an hour and more than 10x the span of all
  the other arrivals together (the 2099 row; not the nights of a multi-day trace, whose other gaps add up);
- on the wall clock, a span over 24 hours (the run would take that long; the simulator replays it in minutes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inferneo_bench.errors import UserError

OUTLIER_FACTOR = 10.0
OUTLIER_MIN_S = 3600.0
MAX_WALL_SPAN_S = 24 * 3600.0
FIX = "fix the row, cut the workload with --duration or --num-requests, or pass --allow-long to replay it as is"


def describe_seconds(s: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:,.1f} {unit}"
    return f"{s:,.1f} s"


def span_of(workload: Any) -> tuple[float, float, int | None]:
    """(span s, largest gap s, index of the request after that gap) of the sorted arrivals."""
    arrival = np.sort(np.fromiter((r.arrival_s for r in workload.requests), dtype=np.float64))
    if arrival.size < 2:
        return 0.0, 0.0, None
    gaps = np.diff(arrival)
    i = int(np.argmax(gaps))
    return float(arrival[-1] - arrival[0]), float(gaps[i]), i + 1


def check_span(workload: Any, *, wall_clock: bool, allow_long: bool) -> None:
    if allow_long:
        return
    span, gap, after = span_of(workload)
    rest = span - gap
    if gap > OUTLIER_MIN_S and gap > OUTLIER_FACTOR * rest and len(workload.requests) >= 3:
        ordered = sorted(workload.requests, key=lambda r: r.arrival_s)
        rid = ordered[after].request_id if after is not None else "?"
        raise UserError(
            f"workload {workload.name!r}: one gap of {describe_seconds(gap)} (before request {rid}) is more than "
            f"{OUTLIER_FACTOR:g}x the rest of the workload ({describe_seconds(rest)}): a mistyped timestamp?; {FIX}"
        )
    if wall_clock and span > MAX_WALL_SPAN_S:
        raise UserError(
            f"workload {workload.name!r}: arrivals span {describe_seconds(span)}, and a wall-clock replay lasts "
            f"as long (limit {describe_seconds(MAX_WALL_SPAN_S)}); use --engine sim, --time-scale, or {FIX}"
        )
