"""`check --metric capacity_rps`: gate a sweep's capacities with the same statistics as every other metric.

Each repeat of a strategy's search (sweep --repeat N) is one sample of its capacity, as each trial of a run is
one sample of a summary metric; regress.compare_series then decides (exactly for deterministic inputs such as
the simulator, by the one-sided Mann-Whitney U test and the Hodges-Lehmann interval otherwise). Capacities
are recomputed from the saved points (sweep/report.py), not read from sweep.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from inferneo_bench.errors import UserError

CAPACITY_METRICS = {"capacity_rps": "higher", "capacity_output_tps": "higher"}


class _Side:
    """regress.Series' surface that compare_series reads: strategy, label, values(metric), deterministic (the
    simulator: identical repeats compare exactly) and runs[0].summary (read when a side has no value)."""

    def __init__(self, strategy: str, label: str | None, capacities: list[Any], tps: list[Any], engine: str):
        self.strategy, self.label = strategy, label
        self._values = {"capacity_rps": capacities, "capacity_output_tps": tps}
        self.deterministic = engine == "sim"
        self.runs = [SimpleNamespace(summary={})]

    def values(self, metric: str) -> list[Any]:
        return list(self._values[metric])


def _sides(paths: Sequence[str | Path], side: str) -> tuple[dict[tuple[str, str | None], _Side], dict[str, Any]]:
    from inferneo_bench.sweep.report import build, load_points

    try:
        points, _ = load_points(paths)
    except UserError as exc:
        raise UserError(f"{side}: {exc}; capacity_rps needs sweeps (`inferneo-bench sweep`) on both sides") from None
    report = build(points)
    engine = str(report.context.get("engine"))
    out = {
        (s.strategy, s.label): _Side(s.strategy, s.label, s.capacities, [r.output_tps for r in s.repeats], engine)
        for s in report.strategies
    }
    return out, {**report.context, "slo": report.slo, "target": report.target}


def capacity_comparisons(
    baseline: Sequence[str | Path], current: Sequence[str | Path], specs: Sequence[Any], settings: Any, notes: list
) -> list[Any]:
    """One regress.Comparison per (strategy, capacity metric) present on both sides."""
    from inferneo_bench.regress import compare_series

    base, bctx = _sides(baseline, "baseline")
    cur, cctx = _sides(current, "current")
    keys = ("workload_hash", "model", "engine", "device_type")
    diffs = [f"{k}: baseline {bctx.get(k)!r} vs current {cctx.get(k)!r}" for k in keys if bctx.get(k) != cctx.get(k)]
    if diffs:
        raise UserError(
            f"incompatible sweeps: {'; '.join(diffs)}; compare sweeps of the same workload, model, engine and device"
        )
    for key, what in (("slo", "SLOs"), ("target", "attainment targets")):
        if bctx.get(key) != cctx.get(key):
            raise UserError(
                f"incompatible sweeps: their {what} differ (baseline {bctx.get(key)!r}, current {cctx.get(key)!r}); "
                "capacities at different SLOs do not compare"
            )
    out = []
    for key, b in base.items():
        c = cur.get(key)
        if c is None:
            notes.append(f"{b.strategy}: only in the baseline sweep; capacity not checked")
            continue
        for spec in specs:
            row = compare_series(b, c, spec, settings)  # type: ignore[arg-type]
            if "none in any current trial" in row.reason:
                row.reason = f"{spec.name}: the current sweep found no capacity (the SLO failed at every rate)"
            out.append(row)
    for key, c in cur.items():
        if key not in base:
            notes.append(f"{c.strategy}: only in the current sweep; capacity not checked")
    return out
