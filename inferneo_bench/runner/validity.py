"""Is this run a valid measurement? MLPerf LoadGen's idea: a result states whether it ran long enough, with
enough requests, with a harness that kept up, and with every request accounted for. Each failed condition is
named; nothing is silently averaged over.

The share limits (failed, rejected, cancelled; 1% each by default): latency figures describe completed
requests only, and p99 is the headline figure. When more than 1% of the measured requests are missing from
the distributions, the missing ones alone could be the whole tail that p99 claims to describe, so the
figures no longer describe the workload. `failed` is vLLM's count (every unsuccessful request); rejected
and cancelled have their own limits so that raising one does not hide the other.

It also states whether the engine kept up with the load (the saturation test). A saturated run's latencies
measure how long its queue grew during the run, not the strategy: they grow with the run's length. Detected,
not guessed, from the summary's saturation figures (metrics.saturation_figures): the run is saturated when the
rate it served, estimated from how its queue delay grew through the run, falls short of the offered rate by
more than `max_throughput_shortfall`. Runs whose arrivals do not span time (offline throughput tests) are not
judged.
"""

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
    max_failed_pct: float = 1.0
    max_rejected_pct: float = 1.0
    max_cancelled_pct: float = 1.0
    max_throughput_shortfall: float = 0.10  # saturated when served < (1 - this) x offered


def _share(summary: dict[str, Any], key: str, measured: int) -> float:
    return 100.0 * (summary.get(key) or 0) / measured if measured else 0.0


def saturation(summary: dict[str, Any], rules: ValidityRules) -> str | None:
    """Why the run is saturated ("saturated: offered 5.53 req/s, served 0.81"), or None when it kept up or
    cannot be judged (no saturation figures: an offline workload, under 10 requests, an older result)."""
    offered, served = summary.get("offered_rate"), summary.get("served_rate")
    if offered is None or served is None:
        return None
    if served < (1 - rules.max_throughput_shortfall) * offered:
        return f"saturated: offered {offered:.2f} req/s, served {served:.2f}"
    return None


def _explained(name: str, checks: dict[str, tuple[bool, str]], summary: dict[str, Any]) -> bool:
    """The failed share is vLLM's total of rejected, cancelled and errored requests: when no request errored
    and the breakdown's own limits already name the excess, its line would say the same thing twice (the check
    itself is still recorded as failed)."""
    if name != "max_failed_share" or summary.get("errored"):
        return False
    return not (checks["max_rejected_share"][0] and checks["max_cancelled_share"][0])


def judge(summary: dict[str, Any], status: str, rules: ValidityRules) -> dict[str, Any]:
    measured = summary["total_requests"] - summary["warmup_requests"]
    ended = summary["completed"] + summary["failed"]
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
    for key, limit in (
        ("failed", rules.max_failed_pct),
        ("rejected", rules.max_rejected_pct),
        ("cancelled", rules.max_cancelled_pct),
    ):
        share = _share(summary, key, measured)
        checks[f"max_{key}_share"] = (
            share <= limit,
            f"{summary.get(key) or 0} of {measured} requests {key} ({share:.1f}% > {limit:g}%)",
        )
    saturated = saturation(summary, rules)
    checks["not_saturated"] = (saturated is None, saturated or "")
    failed = [message for name, (ok, message) in checks.items() if not ok and not _explained(name, checks, summary)]
    return {
        "valid": not failed,
        "saturated": saturated is not None,
        "failed": failed,
        "checks": {name: ok for name, (ok, _) in checks.items()},
        "rules": asdict(rules),
    }
