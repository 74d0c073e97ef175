"""A sweep point: one normal result file (runner.session.run_trial) whose `run.sweep` says which point it is.

`Point` is what the sweep keeps of a result once it is saved: the figures its reports need (a few dozen
numbers), so that a sweep never holds more than one point's per-request records in memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SATURATION = "saturation"  # the phase of the point with every request at once

# summary keys kept per point (vLLM's names), in the order sweep.json lists them
KEPT = (
    "request_throughput",
    "output_throughput",
    "request_goodput",
    "median_ttft_ms",
    "p99_ttft_ms",
    "median_tpot_ms",
    "p99_tpot_ms",
    "median_e2el_ms",
    "p99_e2el_ms",
    "completed",
    "rejected",
    "cancelled",
    "failed",
    "mean_batch_size",
    "offered_rate",
    "served_rate",
    "queue_delay_slope",
)


def point_file(rate: float | None, repeat: int | None) -> str:
    """`rate-1.25.json`, `rate-1.25-trial2.json`, `saturation.json` (rates already rounded to 4 digits)."""
    stem = SATURATION if rate is None else f"rate-{rate:g}"
    return f"{stem}.json" if repeat is None else f"{stem}-trial{repeat}.json"


@dataclass
class Point:
    strategy: str
    label: str | None
    repeat: int | None  # 1-based with --repeat > 1, else None
    rate: float | None  # offered rate (req/s); None at the saturation point
    phase: str  # saturation, coarse, extend, lower, bisect, given
    path: str
    sweep_id: str
    attainment_target: float
    precision: float
    slo: dict[str, float] | None
    attainment: float | None
    attainment_by_metric: dict[str, float] | None
    saturated: bool
    saturation: str | None  # the saturation test's finding, e.g. "saturated: offered 5.53 req/s, served 0.81"
    valid: bool
    invalid: list[str]  # failed validity conditions other than saturation
    measured: int
    figures: dict[str, Any]  # KEPT summary keys
    batch_closed_by: dict[str, float] | None
    schedule_digest: int | None
    config: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)  # base workload, model, engine, device type

    @property
    def passed(self) -> bool:
        """Attainment at least the target, and not saturated (see sweep/search.py)."""
        return self.attainment is not None and self.attainment >= self.attainment_target - 1e-12 and not self.saturated

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = None if self.rate is None else self.passed
        if self.saturated:
            data["latency_note"] = "saturated: latencies measure the queue's growth, not the strategy"
        return data

    @classmethod
    def from_result(cls, result: Any, path: Path | str) -> Point:
        sweep = result.run.sweep or {}
        summary = result.summary
        validity = result.run.validity or {}
        saturation = next((m for m in validity.get("failed") or [] if str(m).startswith("saturated")), None)
        measured = summary["total_requests"] - summary["warmup_requests"]
        return cls(
            strategy=result.strategy["name"],
            label=result.run.label,
            repeat=result.run.trial,
            rate=sweep.get("rate"),
            phase=sweep.get("phase", "given"),
            path=str(path),
            sweep_id=str(sweep.get("id", result.run.id)),
            attainment_target=float(sweep.get("attainment_target", 0.9)),
            precision=float(sweep.get("precision", 0.02)),
            slo=summary.get("slo"),
            attainment=summary.get("slo_attainment"),
            attainment_by_metric=summary.get("slo_attainment_by_metric"),
            saturated=bool(validity.get("saturated")),
            saturation=saturation,
            valid=bool(validity.get("valid")),
            invalid=[str(m) for m in validity.get("failed") or [] if not str(m).startswith("saturated")],
            measured=measured,
            figures={key: summary.get(key) for key in KEPT},
            batch_closed_by=summary.get("batch_closed_by"),
            schedule_digest=summary.get("schedule_digest"),
            config=dict(result.strategy.get("config") or {}),
            context={
                "workload": result.workload.get("name"),
                "workload_hash": sweep.get("base_workload_hash") or result.workload.get("content_hash"),
                "model": result.model.get("name"),
                "engine": result.run.engine,
                "device_type": result.model.get("device_type"),
                "device_name": result.model.get("device_name"),
            },
        )
