"""End-of-run tables printed by `run` and `demo` (the full comparison lives in `compare`). Compact enough for
an 80-column terminal: short strategy names, validity on its own lines below the table."""

from __future__ import annotations

from typing import Any

SHORT = {"fixed_size": "fixed", "latency_optimized": "latency", "throughput_optimized": "throughput"}


def _f(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _name(result: Any) -> str:
    name = SHORT.get(result.strategy["name"], result.strategy["name"])
    return name + (f" #{result.run.trial}" if result.run.trial else "")


def _table(title: str, columns: list[str]) -> Any:
    from rich.table import Table

    table = Table(title=title, padding=(0, 1))
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=i == 0)
    return table


def run_summary_table(outcomes: list[Any]) -> Any:
    from rich.console import Group
    from rich.text import Text

    table = _table(
        "inferneo-bench run",
        ["strategy", "done", "req/s", "tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "batch", "pad %"],
    )
    for o in outcomes:
        s = o.result.summary
        measured = s["total_requests"] - s["warmup_requests"]
        pad = None if s["padding_waste_frac"] is None else 100 * s["padding_waste_frac"]
        table.add_row(
            _name(o.result),
            f"{s['completed']}/{measured}",
            _f(s["request_throughput"], 2),
            _f(s["output_throughput"]),
            _f(s["median_ttft_ms"]),
            _f(s["p99_ttft_ms"]),
            _f(s["median_tpot_ms"]),
            _f(s["p99_tpot_ms"]),
            _f(s["mean_batch_size"]),
            _f(pad),
        )
    return Group(
        table, Text("latencies in ms; tok/s = output tokens/s"), *validity_lines(outcomes), *batch_lines(outcomes)
    )


def batch_lines(outcomes: list[Any]) -> list[Any]:
    """Which limit closed the static batches, per strategy, and which strategies formed the same batches."""
    from rich.text import Text

    from inferneo_bench.report.ties import Schedule, shares_text, tie_notes

    lines, schedules = [], []
    for o in outcomes:
        r = o.result
        if r.run.trial not in (None, 1):  # the first trial speaks for its strategy
            continue
        shares = shares_text(r.summary.get("batch_closed_by"))
        if shares:
            lines.append(Text(f"{_name(r)}: batches closed by {shares}"))
        schedules.append(
            Schedule(
                _name(r),
                r.summary.get("schedule_digest"),
                r.summary.get("batch_closed_by"),
                dict(r.strategy.get("config") or {}),
            )  # fmt: skip
        )
    return lines + [Text(note.rsplit(" [", 1)[0]) for note in tie_notes(schedules)]


def validity_lines(outcomes: list[Any]) -> list[Any]:
    from rich.text import Text

    lines = []
    for o in outcomes:
        v = o.result.run.validity
        if v.get("valid"):
            lines.append(Text.assemble((f"{_name(o.result)}: ", "bold"), ("VALID", "green")))
        elif v.get("saturated"):  # the engine did not keep up: its latencies measure the queue's growth
            lines.append(
                Text.assemble(
                    (f"{_name(o.result)}: ", "bold"),
                    ("SATURATED", "red"),
                    " - " + "; ".join(v.get("failed", [])) + " (latencies measure the queue, not the strategy)",
                )
            )
        else:
            lines.append(
                Text.assemble(
                    (f"{_name(o.result)}: ", "bold"), ("INVALID", "red"), " - " + "; ".join(v.get("failed", []))
                )
            )
    return lines


def demo_summary_table(outcomes: list[Any]) -> Any:
    """The seed demo's columns: average batch size, throughput, latency, and what coalescing by prompt-length
    bucket bought (padding tokens avoided against plain head-of-queue batches)."""
    from rich.console import Group
    from rich.text import Text

    table = _table(
        "Inferneo batching strategies, default workload",
        ["strategy", "avg batch", "tok/s", "mean E2EL ms", "p99 E2EL ms", "pad avoided"],
    )
    for o in outcomes:
        s = o.result.summary
        avoided = (o.result.strategy.get("stats") or {}).get("coalescing_padding_avoided_tokens")
        table.add_row(
            _name(o.result),
            _f(s["mean_batch_size"]),
            _f(s["output_throughput"]),
            _f(s["mean_e2el_ms"]),
            _f(s["p99_e2el_ms"]),
            "-" if avoided is None else f"{avoided:,}",
        )
    note = "pad avoided: prompt padding tokens coalescing saved vs head-of-queue batches"
    return Group(table, Text(note), *validity_lines(outcomes))
