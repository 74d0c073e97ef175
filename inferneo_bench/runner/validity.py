"""Is this run a valid measurement? MLPerf LoadGen's idea: a result states whether it ran long enough, with
enough requests, with a harness that kept up, and with every request accounted for. Each failed condition is
named; nothing is silently averaged over.

It also states whether the engine kept up with the load (the saturation test). A saturated run's latencies
measure how long its queue grew during the run, not the strategy: they grow with the run's length. Detected,
not guessed, from the summary's saturation figures (metrics.saturation_figures): the run is saturated when
its served rate falls short of its offered rate by more than `max_throughput_shortfall`, or its waiting queue
grew through the arrival window faster than `max_queue_growth` x the offered rate (and by at least one
request). Runs whose arrivals do not span time (offline throughput tests) are not judged."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ValidityRules:
    # defaults fit the CPU demo (default workload, tiny model); raise them for real measurements
    min_duration_s: float = 10.0
    min_requests: int = 50
    max_arrival_lag_p99_ms: float = 50.0
    # remote runs: above this share of one core, the client's event loop (not the server) may be the bottleneck
    max_client_cpu_frac: float = 0.8
    max_throughput_shortfall: float = 0.10  # saturated when served < (1 - this) x offered
    max_queue_growth: float = 0.10  # saturated when the queue grows faster than this x the offered rate


def saturation(summary: dict[str, Any], rules: ValidityRules) -> str | None:
    """Why the run is saturated ("saturated: offered 5.53 req/s, served 0.81"), or None when it kept up or
    cannot be judged (no saturation figures: an offline workload, under 10 requests, an older result)."""
    offered, served = summary.get("offered_rate"), summary.get("served_rate")
    growth = summary.get("queue_growth_rate")
    if offered is None or served is None:
        return None
    if served < (1 - rules.max_throughput_shortfall) * offered:
        return f"saturated: offered {offered:.2f} req/s, served {served:.2f}"
    duration = summary.get("duration") or 0.0
    if growth is not None and growth > rules.max_queue_growth * offered and growth * duration >= 1:
        return f"saturated: queue grew {growth:.2f} req/s ({growth / offered:.0%} of the offered {offered:.2f} req/s)"
    return None


def judge(summary: dict[str, Any], status: str, rules: ValidityRules) -> dict[str, Any]:
    measured = summary["total_requests"] - summary["warmup_requests"]
    ended = summary["completed"] + summary["failed"] + summary["rejected"] + summary["cancelled"]
    duration = summary["duration"] or 0.0
    lag = summary.get("arrival_lag_p99_ms")
    cpu = summary.get("client_cpu_frac")
    checks = {
        "run_completed": (status == "completed", f"run status is {status}"),
        "all_requests_accounted": (ended == measured, f"{ended} of {measured} requests ended in a known state"),
        "some_completed": (summary["completed"] > 0, "no request completed"),
        "min_duration": (
            duration >= rules.min_duration_s,
            f"duration {duration:.2f} s < minimum {rules.min_duration_s:g} s",
        ),
        "min_requests": (
            measured >= rules.min_requests,
            f"{measured} measured requests < minimum {rules.min_requests}",
        ),
        "harness_kept_up": (
            lag is None or lag <= rules.max_arrival_lag_p99_ms,
            f"arrival lag p99 {lag if lag is not None else 0:.2f} ms > {rules.max_arrival_lag_p99_ms:g} ms",
        ),
    }
    if cpu is not None:  # remote runs (run --target)
        checks["client_kept_up"] = (
            cpu <= rules.max_client_cpu_frac,
            f"the client's event loop was busy {cpu:.0%} of the run (> {rules.max_client_cpu_frac:.0%}): the "
            "client, not the server, may have been the bottleneck; lower the rate or use a faster client machine",
        )
    saturated = saturation(summary, rules)
    checks["not_saturated"] = (saturated is None, saturated or "")
    failed = [message for ok, message in checks.values() if not ok]
    return {
        "valid": not failed,
        "saturated": saturated is not None,
        "failed": failed,
        "checks": {name: ok for name, (ok, _) in checks.items()},
        "rules": asdict(rules),
    }
