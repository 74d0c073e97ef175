"""End-of-run tables printed by `run` and `demo` (the full comparison lives in `compare`)."""

from __future__ import annotations

from typing import Any


def _f(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def run_summary_table(outcomes: list[Any]) -> Any:
    from rich.table import Table

    table = Table(title="inferneo-bench run")
    for col in (
        "strategy",
        "done",
        "req/s",
        "out tok/s",
        "TTFT p50/p99 ms",
        "TPOT p50/p99 ms",
        "E2EL p99 ms",
        "batch",
        "pad %",
        "validity",
    ):
        table.add_column(col, justify="left" if col in ("strategy", "validity") else "right")
    for o in outcomes:
        s, run = o.result.summary, o.result.run
        name = o.result.strategy["name"] + (f" #{run.trial}" if run.trial else "")
        measured = s["total_requests"] - s["warmup_requests"]
        validity = "VALID" if run.validity.get("valid") else "INVALID: " + "; ".join(run.validity.get("failed", []))
        table.add_row(
            name,
            f"{s['completed']}/{measured}",
            _f(s["request_throughput"], 2),
            _f(s["output_throughput"]),
            f"{_f(s['median_ttft_ms'])}/{_f(s['p99_ttft_ms'])}",
            f"{_f(s['median_tpot_ms'])}/{_f(s['p99_tpot_ms'])}",
            _f(s["p99_e2el_ms"]),
            _f(s["mean_batch_size"]),
            _f(None if s["padding_waste_frac"] is None else 100 * s["padding_waste_frac"]),
            validity,
        )
    return table


def demo_summary_table(outcomes: list[Any]) -> Any:
    """The seed demo's columns: average batch size, throughput, latency, coalescing buckets."""
    from rich.table import Table

    table = Table(title="Inferneo batching strategies on the default workload")
    for col in (
        "strategy",
        "avg batch size",
        "throughput (tok/s)",
        "mean latency (ms)",
        "p99 latency (ms)",
        "coalescing buckets",
        "validity",
    ):
        table.add_column(col, justify="left" if col in ("strategy", "validity") else "right")
    for o in outcomes:
        s = o.result.summary
        stats = o.result.strategy.get("stats") or {}
        buckets = stats.get("coalescing_buckets")
        table.add_row(
            o.result.strategy["name"],
            _f(s["mean_batch_size"]),
            _f(s["output_throughput"]),
            _f(s["mean_e2el_ms"]),
            _f(s["p99_e2el_ms"]),
            "-" if buckets is None else str(buckets if isinstance(buckets, int) else len(buckets)),
            "VALID" if o.result.run.validity.get("valid") else "INVALID",
        )
    return table
