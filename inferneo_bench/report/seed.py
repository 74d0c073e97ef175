"""The Inferneo design document's "Expected Improvements" claims, checked against measurements.

Source: the Inferneo dynamic-batching README (DYNAMIC_BATCHING_README.md of the Inferneo repository,
section "Performance Comparison / Expected Improvements"), a table of ranges against Fixed-Size for
throughput, latency and GPU utilization. The document gives ranges only, with no metric definitions, so
this module fixes them (and prints them with the table):

- throughput  = summary `output_throughput` (output tokens/s over the run);
- latency     = summary `mean_e2el_ms` (mean end-to-end latency per request; the document's demo prints
                an "Average Latency" per request);
- GPU utilization = summary `gpu_util_mean` (NVML kernel-busy %), its change read as a relative change
                like the other two (the document does not say whether it means percentage points).

All changes are relative to the fixed_size result (median over trials). A claim is *held* when the
measured change is within the claimed range or better than it in the metric's good direction (higher
throughput and utilization, lower latency), *not held* when it is worse than the range, and *not
measurable* when a figure is missing (no fixed_size result, strategy not run, no GPU telemetry).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inferneo_bench.results import RunResult

SOURCE = 'Inferneo DYNAMIC_BATCHING_README.md, "Performance Comparison / Expected Improvements" (vs Fixed-Size)'
# dimension -> (summary key, what it means, True when higher is better)
DIMENSIONS: dict[str, tuple[str, str, bool]] = {
    "throughput": ("output_throughput", "output_throughput: output tokens/s over the run", True),
    "latency": ("mean_e2el_ms", "mean_e2el_ms: mean end-to-end latency per request (finish - arrival)", False),
    "gpu_utilization": ("gpu_util_mean", "gpu_util_mean: NVML kernel-busy %, mean over the run", True),
}
# strategy -> dimension -> (low, high) claimed change in percent against fixed_size
CLAIMS: dict[str, dict[str, tuple[float, float]]] = {
    "adaptive": {"throughput": (40, 60), "latency": (-30, -20), "gpu_utilization": (15, 25)},
    "coalescing": {"throughput": (30, 50), "latency": (-20, -10), "gpu_utilization": (20, 30)},
    "latency_optimized": {"throughput": (-30, -20), "latency": (-60, -40), "gpu_utilization": (-20, -10)},
    "throughput_optimized": {"throughput": (60, 80), "latency": (20, 40), "gpu_utilization": (30, 40)},
}
UNITS = {"throughput": "tok/s", "latency": "ms", "gpu_utilization": "%"}
HELD, NOT_HELD, NOT_MEASURABLE = "held", "not held", "not measurable"


@dataclass
class ClaimCheck:
    strategy: str
    dimension: str
    claimed: tuple[float, float]
    measured_pct: float | None
    verdict: str
    detail: str  # "within range", "better than claimed", "worse than claimed", or why not measurable
    base_value: float | None = None  # fixed_size's figure (median over trials)
    value: float | None = None  # the strategy's figure (median over trials)


def _median(results: Sequence[RunResult], key: str) -> float | None:
    values = [r.summary.get(key) for r in results]
    present = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return float(statistics.median(present)) if present else None


def check_claims(results: Sequence[RunResult]) -> list[ClaimCheck]:
    by_strategy: dict[str, list[RunResult]] = {}
    for r in results:
        by_strategy.setdefault(str(r.strategy.get("name")), []).append(r)
    base = by_strategy.get("fixed_size", [])
    checks = []
    for strategy, claims in CLAIMS.items():
        for dim, claimed in claims.items():
            key, _, higher = DIMENSIONS[dim]
            mine = by_strategy.get(strategy, [])
            check = _check(strategy, dim, claimed, key, higher, base, mine)
            if check.verdict != NOT_MEASURABLE and any(not _valid(r) for r in base + mine):
                check.detail += " (INVALID run)"
            checks.append(check)
    return checks


def _valid(result: RunResult) -> bool:
    return bool(result.run.validity.get("valid")) and result.run.status == "completed"


def _check(strategy, dim, claimed, key, higher, base, mine) -> ClaimCheck:  # noqa: ANN001 - internal
    def unmeasurable(why: str, b: float | None = None, m: float | None = None) -> ClaimCheck:
        return ClaimCheck(strategy, dim, claimed, None, NOT_MEASURABLE, why, b, m)

    if not base:
        return unmeasurable("no fixed_size result to compare against")
    if not mine:
        return unmeasurable(f"no {strategy} result")
    b, m = _median(base, key), _median(mine, key)
    if b is None or m is None:
        why = "no GPU telemetry (NVML)" if key.startswith("gpu_") else f"{key} not measured"
        return unmeasurable(why, b, m)
    if b == 0:
        return unmeasurable(f"fixed_size {key} is 0", b, m)
    pct = (m - b) / abs(b) * 100.0
    lo, hi = claimed
    rounded = round(pct, 1)
    if lo <= rounded <= hi:
        return ClaimCheck(strategy, dim, claimed, pct, HELD, "within range", b, m)
    better = rounded > hi if higher else rounded < lo
    if better:
        return ClaimCheck(strategy, dim, claimed, pct, HELD, "better than claimed", b, m)
    return ClaimCheck(strategy, dim, claimed, pct, NOT_HELD, "worse than claimed", b, m)


def _claim_text(claimed: tuple[float, float]) -> str:
    lo, hi = claimed
    if lo >= 0:
        return f"+{lo:g} to +{hi:g}%"
    if hi <= 0:
        return f"{hi:g} to {lo:g}%".replace("-", "−")
    return f"{lo:+g} to {hi:+g}%"


def _measured_text(pct: float | None) -> str:
    return "n/a" if pct is None else f"{pct:+.1f}%".replace("-", "−")


def definitions() -> list[str]:
    lines = [f"claims: {SOURCE}"]
    lines += [f"{dim} = {meaning}" for dim, (_, meaning, _) in DIMENSIONS.items()]
    lines.append(
        "changes are relative to fixed_size (medians over trials); held = within the claimed range or better "
        "than it (higher throughput and GPU utilization, lower latency); not held = worse than the range"
    )
    lines.append("(INVALID run): fixed_size's or the strategy's result failed its validity checks; not conclusive")
    return lines


HEADERS = ("strategy", "metric", "fixed_size → strategy", "claimed", "measured", "verdict", "detail")


def _values_text(c: ClaimCheck) -> str:
    def one(v: float | None) -> str:
        return "n/a" if v is None else f"{v:,.1f}"

    if c.base_value is None and c.value is None:
        return ""
    return f"{one(c.base_value)} → {one(c.value)} {UNITS[c.dimension]}"


def rows(checks: Sequence[ClaimCheck]) -> list[list[str]]:
    return [
        [
            c.strategy,
            c.dimension.replace("_", " "),
            _values_text(c),
            _claim_text(c.claimed),
            _measured_text(c.measured_pct),
            c.verdict,
            c.detail,
        ]
        for c in checks
    ]


def to_rich(checks: Sequence[ClaimCheck]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title="The Inferneo design document's claims (vs fixed_size) against this run",
        title_justify="left",
        caption="\n".join(definitions()),
        caption_justify="left",
    )
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("strategy", "metric", "verdict", "detail") else "right")
    styles = {HELD: "green", NOT_HELD: "red", NOT_MEASURABLE: "dim"}
    for check, row in zip(checks, rows(checks), strict=False):
        table.add_row(*row[:5], Text(row[5], style=styles[check.verdict]), row[6])
    return table


def to_markdown(checks: Sequence[ClaimCheck]) -> str:
    lines = [
        "### The Inferneo design document's claims (vs fixed_size) against this run",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows(checks):
        if row[5] != NOT_MEASURABLE:
            row[5] = f"**{row[5]}**"
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines += [f"- {line}" for line in definitions()]
    return "\n".join(lines) + "\n"


def to_csv(checks: Sequence[ClaimCheck]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "strategy",
            "metric",
            "summary_key",
            "claimed_low_pct",
            "claimed_high_pct",
            "fixed_size_value",
            "strategy_value",
            "measured_pct",
            "verdict",
            "detail",
        ]
    )
    for c in checks:
        writer.writerow(
            [
                c.strategy,
                c.dimension,
                DIMENSIONS[c.dimension][0],
                c.claimed[0],
                c.claimed[1],
                "" if c.base_value is None else round(c.base_value, 6),
                "" if c.value is None else round(c.value, 6),
                "" if c.measured_pct is None else round(c.measured_pct, 3),
                c.verdict,
                c.detail,
            ]
        )
    return out.getvalue()


def to_json(checks: Sequence[ClaimCheck]) -> str:
    data = {
        "source": SOURCE,
        "definitions": {dim: {"summary_key": key, "meaning": meaning} for dim, (key, meaning, _) in DIMENSIONS.items()},
        "rule": definitions()[-2],
        "claims": [
            {
                "strategy": c.strategy,
                "metric": c.dimension,
                "summary_key": DIMENSIONS[c.dimension][0],
                "claimed_pct": list(c.claimed),
                "fixed_size_value": None if c.base_value is None else round(c.base_value, 6),
                "strategy_value": None if c.value is None else round(c.value, 6),
                "measured_pct": None if c.measured_pct is None else round(c.measured_pct, 3),
                "verdict": c.verdict,
                "detail": c.detail,
            }
            for c in checks
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
