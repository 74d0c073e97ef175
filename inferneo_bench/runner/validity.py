"""Is this run a valid measurement? MLPerf LoadGen's idea: a result states whether it ran long enough, with
enough requests, with a harness that kept up, and with every request accounted for. Each failed condition is
named; nothing is silently averaged over."""

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
    failed = [message for ok, message in checks.values() if not ok]
    return {
        "valid": not failed,
        "failed": failed,
        "checks": {name: ok for name, (ok, _) in checks.items()},
        "rules": asdict(rules),
    }
