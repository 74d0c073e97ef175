"""Workload rescaling for sweep points: the same requests, their arrival times stretched or compressed.

A point at offered rate R replays the loaded workload with every gap multiplied by (its mean rate / R), so
that its mean rate, (n - 1) / span of arrivals, is exactly R. Order, lengths and the burst shape (the gaps'
relative sizes) are kept. For a synthetic Poisson or gamma workload this is the same as generating it at
rate R with the same seed (numpy draws those gaps as a unit-rate draw times 1 / rate); for a trace it is
the `--rate` replay control (target_rate). The saturation point sends every request at the first arrival.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from inferneo_bench.errors import UserError


def base_rate(workload: Any) -> float:
    """The loaded workload's mean arrival rate (req/s); a UserError when its arrivals do not span time."""
    rate = workload.mean_rate
    if rate is None:
        raise UserError(
            f"workload {workload.name!r}: its {workload.num_requests} request(s) arrive at one instant, so it has "
            "no arrival rate to sweep; use a workload with arrival times (e.g. chat, azure-conv)"
        )
    return float(rate)


def at_rate(workload: Any, rate: float) -> Any:
    """A copy of `workload` whose mean arrival rate is `rate` (req/s), gaps scaled by a common factor."""
    if not rate > 0:
        raise UserError(f"sweep: rate {rate!r} must be > 0 req/s")
    factor = base_rate(workload) / rate
    start = workload.requests[0].arrival_s
    requests = [dataclasses.replace(r, arrival_s=start + (r.arrival_s - start) * factor) for r in workload.requests]
    replay = {**workload.replay, "sweep_rate": rate, "sweep_gap_factor": round(factor, 9)}
    return dataclasses.replace(workload, requests=requests, replay=replay)


def all_at_once(workload: Any) -> Any:
    """A copy of `workload` with every request arriving at its first arrival: the saturation point, which
    measures the most requests per second the engine serves under this strategy (the sweep's ceiling)."""
    start = workload.requests[0].arrival_s
    requests = [dataclasses.replace(r, arrival_s=start) for r in workload.requests]
    replay = {**workload.replay, "sweep_rate": None, "sweep_arrival": "all at the first arrival (saturation)"}
    return dataclasses.replace(workload, requests=requests, replay=replay)
