"""End-of-run tables printed by `run` and `demo` (the full comparison lives in `compare`).

They fit the console's width (80 columns included): short strategy names, two-line headers, no vertical
rules, and when that is still too wide the columns wrap into blocks that repeat the strategy column. Under
the table: what did not complete and why (rejected / failed / cancelled with their top reasons), then each
result's validity."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from inferneo_bench.console import fit_columns

SHORT = {"fixed_size": "fixed", "latency_optimized": "latency", "throughput_optimized": "throughput"}
BEST_MARK = "★"
SECONDS_FROM_MS = 10_000.0  # a latency column whose largest value reaches this many ms is shown in seconds
NOT_COMPLETED = ("rejected", "failed", "cancelled")


def _f(value: Any, digits: int = 1) -> str:
    """1,234 above a thousand (no decimals to read past), else `digits` decimals; '-' for no value."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _name(result: Any) -> str:
    name = SHORT.get(result.strategy["name"], result.strategy["name"])
    return name + (f" #{result.run.trial}" if result.run.trial else "")


def _table(title: str | None) -> Any:
    from rich import box
    from rich.table import Table

    return Table(
        title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False, title_justify="left"
    )


def _latency_column(key: str, label: str, outcomes: Sequence[Any]) -> tuple[str, list[str]]:
    """Header and cells of a latency column, in ms, or in s once its largest value reaches 10,000 ms."""
    values = [o.result.summary.get(key) for o in outcomes]
    present = [v for v in values if v is not None]
    if present and max(present) >= SECONDS_FROM_MS:
        secs = [None if v is None else v / 1000.0 for v in values]
        return f"{label}\ns", [_f(v, 2 if v is not None and v < 10 else 1) for v in secs]  # 0.06 s, not 0.1
    return f"{label}\nms", [_f(v) for v in values]


def _fit(title: str, header: str, names: list[str], columns: list[tuple[str, list[str]]], width: int | None) -> Any:
    from rich.console import Group

    def build(indices: Sequence[int]) -> Any:
        table = _table(title)
        table.add_column(header, justify="left", no_wrap=True)
        for i in indices:
            table.add_column(columns[i][0], justify="right", no_wrap=True)
        for row, name in enumerate(names):
            table.add_row(name, *(columns[i][1][row] for i in indices))
        return table

    if width is None:
        return build(range(len(columns)))
    from rich.text import Text

    blocks = fit_columns(build, len(columns), width)
    spaced: list[Any] = [Text("")]
    for i, block in enumerate(blocks):
        if i:
            block.title = None
            spaced.append(Text(""))
        spaced.append(block)
    return Group(*spaced, Text(""))


def run_summary_table(outcomes: list[Any], width: int | None = None) -> Any:
    """Per strategy: requests completed of those measured, request and output throughput, goodput (with
    --slo), TTFT and TPOT p50/p99, mean batch size, padding waste; then what did not complete, and validity."""
    from rich.console import Group
    from rich.text import Text

    summaries = [o.result.summary for o in outcomes]
    columns: list[tuple[str, list[str]]] = [
        ("done", [f"{s['completed']}/{s['total_requests'] - s['warmup_requests']}" for s in summaries]),
        ("req/s", [_f(s["request_throughput"], 2) for s in summaries]),
        ("tok/s", [_f(s["output_throughput"]) for s in summaries]),
    ]
    slo = next((s.get("slo") for s in summaries if s.get("slo")), None)
    if slo:
        columns.append(("goodput\nreq/s", [_f(s.get("request_goodput"), 2) for s in summaries]))
    for key, label in (
        ("median_ttft_ms", "TTFT\np50"),
        ("p99_ttft_ms", "TTFT\np99"),
        ("median_tpot_ms", "TPOT\np50"),
        ("p99_tpot_ms", "TPOT\np99"),
    ):
        columns.append(_latency_column(key, label, outcomes))
    columns.append(("batch\nmean", [_f(s["mean_batch_size"]) for s in summaries]))
    pads = [None if s["padding_waste_frac"] is None else 100 * s["padding_waste_frac"] for s in summaries]
    columns.append(("pad\n%", [_f(p) for p in pads]))
    names = [_name(o.result) for o in outcomes]
    note = "done = completed/measured requests; tok/s = output tokens/s"
    if slo:
        note += "; goodput = completed requests meeting " + ", ".join(f"{k} <= {v:g}" for k, v in slo.items())
        note += " per second"
    return Group(
        _fit("inferneo-bench run", "strategy", names, columns, width),
        Text(note, style="dim"),
        *outcome_lines(outcomes),
        *validity_lines(outcomes),
        *batch_lines(outcomes),
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


def _pattern(reason: str | None) -> str:
    """A reason with its numbers blanked, so that 'prompt 3000 ...' and 'prompt 2100 ...' count together."""
    return re.sub(r"\d+(?:\.\d+)?", "#", reason or "no reason recorded")


def _endings(result: Any) -> list[tuple[str, str | None, bool]]:
    """(status, reason, warmup) of every request; a saved run's records are on disk (results.request_fields)."""
    if getattr(result, "records_loaded", True):
        return [(r.status, r.reason, r.warmup) for r in result.requests]
    from inferneo_bench.results import request_fields

    return request_fields(result, ["status", "reason", "warmup"])


def outcome_lines(outcomes: Sequence[Any], top: int = 3) -> list[Any]:
    """One line per (status, reason kind) that kept requests from completing, with the count per strategy
    (or once, when every strategy lost the same number) and one reason as an example; at most `top` kinds
    per status, the rest counted."""
    from rich.text import Text

    styles = {"rejected": "yellow", "failed": "red", "cancelled": "yellow"}
    endings = {id(o): _endings(o.result) for o in outcomes}
    lines: list[Any] = []
    for status in NOT_COMPLETED:
        kinds: dict[str, Counter[str]] = {}
        example: dict[str, str] = {}
        distinct: dict[str, set[str]] = {}
        measured: dict[str, int] = {}
        for o in outcomes:
            name = _name(o.result)
            measured[name] = o.result.summary["total_requests"] - o.result.summary["warmup_requests"]
            for r_status, reason, warmup in endings[id(o)]:
                if r_status == status and not warmup:
                    kind = _pattern(reason)
                    kinds.setdefault(kind, Counter())[name] += 1
                    example.setdefault(kind, reason or "no reason recorded")
                    distinct.setdefault(kind, set()).add(reason or "")
        ranked = sorted(kinds, key=lambda k: -sum(kinds[k].values()))
        names = [_name(o.result) for o in outcomes]
        for kind in ranked[:top]:
            counts = kinds[kind]
            if len(names) > 1 and all(counts.get(n) == counts[names[0]] for n in names):
                who = f"{counts[names[0]]}/{measured[names[0]]} in every strategy"
            else:
                who = ", ".join(f"{n} {c}/{measured[n]}" for n, c in counts.items())
            varies = len(distinct[kind]) > 1  # same kind, other numbers: the one shown is an example
            lines.append(
                Text.assemble((status, styles[status]), f" {who}" + (", e.g. " if varies else ": ") + example[kind])
            )
        if len(ranked) > top:
            rest = sum(sum(kinds[k].values()) for k in ranked[top:])
            lines.append(Text(f"{status}: {rest} more for {len(ranked) - top} other reasons (see the result files)"))
    return lines


def validity_lines(outcomes: Sequence[Any]) -> list[Any]:
    """One line per INVALID result naming every failed condition, then one line for the VALID ones."""
    from rich.text import Text

    lines = []
    valid = []
    for o in outcomes:
        v = o.result.run.validity
        if v.get("valid"):
            valid.append(_name(o.result))
        elif v.get("saturated"):  # the engine did not keep up: its latencies measure the queue's growth
            lines.append(
                Text.assemble(
                    (f"{_name(o.result)}: ", "bold"),
                    ("SATURATED", "bold red"),
                    " - " + "; ".join(v.get("failed", [])) + " (latencies measure the queue, not the strategy)",
                )
            )
        else:
            lines.append(
                Text.assemble(
                    (f"{_name(o.result)}: ", "bold"), ("INVALID", "bold red"), " - " + "; ".join(v.get("failed", []))
                )
            )
    if valid:
        who = f"all {len(valid)} results" if not lines and len(valid) > 3 else ", ".join(valid)
        lines.append(Text.assemble(("VALID", "green"), f": {who}"))
    return lines


def demo_summary_table(outcomes: list[Any], width: int | None = None) -> Any:
    """The Inferneo design document's demo columns: average batch size, throughput, latency, and what
    coalescing by prompt-length bucket bought (padding tokens avoided against plain head-of-queue batches).
    The winner of each column with a direction is starred."""
    from rich.console import Group
    from rich.text import Text

    summaries = [o.result.summary for o in outcomes]
    tok = [s["output_throughput"] for s in summaries]
    mean_e2el = [s["mean_e2el_ms"] for s in summaries]
    p99_e2el = [s["p99_e2el_ms"] for s in summaries]
    avoided = [(o.result.strategy.get("stats") or {}).get("coalescing_padding_avoided_tokens") for o in outcomes]
    columns = [
        ("avg\nbatch", [_f(s["mean_batch_size"]) for s in summaries]),
        ("tok/s", _starred(tok, higher=True)),
        ("mean E2EL\nms", _starred(mean_e2el, higher=False)),
        ("p99 E2EL\nms", _starred(p99_e2el, higher=False)),
        ("pad\navoided", ["-" if a is None else f"{a:,}" for a in avoided]),
    ]
    names = [_name(o.result) for o in outcomes]
    note = (
        f"{BEST_MARK} best in the column; pad avoided: prompt padding tokens coalescing saved vs head-of-queue batches"
    )
    return Group(
        _fit("Inferneo batching strategies, default workload", "strategy", names, columns, width),
        Text(note, style="dim"),
        *outcome_lines(outcomes),
        *validity_lines(outcomes),
    )


def _starred(values: list[Any], higher: bool) -> list[str]:
    """Formatted values, the best one (ties too; as displayed) marked; no mark for a lone value."""
    texts = [_f(v) for v in values]
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return texts
    best = _f(max(present) if higher else min(present))
    return [f"{t} {BEST_MARK}" if t == best else f"{t}  " for t in texts]


def _params(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "? params"
    return f"{n / 1e9:.1f} B params" if n >= 1e9 else f"{n / 1e6:.1f} M params"


def weights_text(model: dict[str, Any]) -> str:
    """What the model's weights are and what that means for output lengths (there is no EOS to stop early)."""
    weights = str(model.get("weights") or "unknown")
    lengths = "every request generates exactly the workload's output length"
    if weights.startswith("random"):
        seed = model.get("weights_seed")
        weights = weights if seed is None else weights.replace("(seeded)", f"(seeded, seed {seed})")
        return f"weights: {weights}: real shapes and arithmetic, meaningless text; no EOS, so {lengths}"
    if weights.startswith("none"):
        return f"weights: {weights}; no EOS, so {lengths}"
    digest = model.get("weights_sha256")
    return f"weights: {weights}{f' ({digest[:19]}…)' if digest else ''}; EOS is ignored, so {lengths}"


def intro_lines(model: dict[str, Any], workload: Any, options: Any, context: Any = None) -> list[Any]:
    """What is about to run, printed before the first progress bar: model, weights, engine, workload, and the
    requests that will be rejected for exceeding the context (so that 53/60 later is no surprise)."""
    from rich.text import Text

    sim = model.get("simulated_from")
    if sim:
        where = f"simulated from a profile of {sim.get('device_type')} ({sim.get('device_name')})"
        engine = f"engine sim (profile {options.profile})"
    else:
        where = f"on {model.get('device_type')} ({model.get('device_name')})"
        engine = "engine torch"
    lines = [
        Text(f"model {model.get('name')} ({_params(model.get('params'))}, {model.get('dtype')}) {where}; {engine}"),
        Text(weights_text(model), style="dim"),
    ]
    rate = workload.mean_rate
    text = f"workload {workload.name}: {workload.num_requests:,} requests over {workload.duration_s:,.1f} s" + (
        "" if rate is None else f" ({rate:.3g} req/s)"
    )
    rejected = len(context.rejected) if context is not None and context.policy == "reject" else 0
    if rejected:
        text += (
            f"; {rejected:,} exceed the model context of {context.max_model_len:,} tokens and will be rejected "
            "(--context-policy truncate|scale keeps them)"
        )
    trials = "" if options.repeat == 1 else f", {options.repeat} trials each"
    names = ", ".join(SHORT.get(s, s) for s in options.strategies)
    lines.append(Text(text + f"; strategies: {names}{trials}"))
    return lines
