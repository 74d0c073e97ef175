"""Summary statistics of a workload (what `workloads show` prints)."""

from __future__ import annotations

from typing import Any

import numpy as np

from inferneo_bench.workload.spec import Workload

PERCENTILES = (50, 90, 99)


def _dist(values: np.ndarray) -> dict[str, float]:
    out = {"min": int(values.min()), "mean": round(float(values.mean()), 3)}
    for q in PERCENTILES:
        out[f"p{q}"] = round(float(np.percentile(values, q)), 3)
    out["max"] = int(values.max())
    return out


def histogram(values: np.ndarray, bins: int = 8) -> dict[str, list[float]]:
    """Equal-width bins over [min, max] (numpy's histogram)."""
    counts, edges = np.histogram(values, bins=bins)
    return {"edges": [round(float(e), 3) for e in edges], "counts": [int(c) for c in counts]}


def interarrival_cv(arrival: np.ndarray) -> float | None:
    """std / mean of the gaps between consecutive arrivals (1 for Poisson); None with < 2 gaps or all at once."""
    gaps = np.diff(arrival)
    if gaps.size < 2 or gaps.mean() <= 0:
        return None
    return float(gaps.std() / gaps.mean())


def describe(workload: Workload, bins: int = 8) -> dict[str, Any]:
    cols = workload.arrays()
    cv = interarrival_cv(cols["arrival_s"])
    levels, counts = np.unique(cols["priority"], return_counts=True)
    info = workload.info()
    return {
        **info,
        "interarrival_cv": None if cv is None else round(cv, 6),
        "prompt_tokens": _dist(cols["prompt_tokens"]),
        "output_tokens": _dist(cols["output_tokens"]),
        "total_prompt_tokens": int(cols["prompt_tokens"].sum()),
        "total_output_tokens": int(cols["output_tokens"].sum()),
        "priorities": {str(int(p)): int(c) for p, c in zip(levels, counts, strict=True)},
        "histograms": {
            "prompt_tokens": histogram(cols["prompt_tokens"], bins),
            "output_tokens": histogram(cols["output_tokens"], bins),
        },
    }
