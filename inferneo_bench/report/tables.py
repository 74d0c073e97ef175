"""Side-by-side comparison of result files: columns, metric rows, baseline deltas, best-per-row, exports.

The model (`Comparison`) is built once from the results and rendered four ways (Rich table, markdown,
CSV, JSON), so every format shows the same numbers. Repeated trials of one strategy (same strategy and
label, distinct `run.trial`) become one column: the median, with min-max beside it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferneo_bench.errors import UserError
from inferneo_bench.results import RunResult

STRATEGY_ORDER = ("fixed_size", "adaptive", "coalescing", "latency_optimized", "throughput_optimized", "continuous")
SHORT_NAMES = {
    "fixed": "fixed_size",
    "latency": "latency_optimized",
    "throughput": "throughput_optimized",
}
HIGHER, LOWER, NEUTRAL = "higher", "lower", "none"
ARROWS = {HIGHER: "↑", LOWER: "↓", NEUTRAL: ""}
BEST_MARK = "★"
NOISE_BAND_PCT = 1.0  # changes smaller than this (either way) are shown but not coloured as better/worse


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str  # shown in the row label; "%" metrics stored as fractions are scaled by `scale`
    better: str  # HIGHER, LOWER or NEUTRAL
    digits: int | None = 1  # decimals; None: 4 significant digits (values that span orders of magnitude)
    scale: float = 1.0

    def fmt(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        if self.digits is None:
            return f"{value * self.scale:.4g}"
        return f"{value * self.scale:,.{self.digits}f}"

    @property
    def title(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        arrow = ARROWS[self.better]
        return f"{self.label}{unit}" + (f" {arrow}" if arrow else "")


def _latency(kind: str, stat: str, label: str) -> Metric:
    return Metric(f"{stat}_{kind}_ms", f"{label} {stat}", "ms", LOWER, 1)


METRICS: dict[str, Metric] = {
    m.key: m
    for m in [
        Metric("request_throughput", "Request throughput", "req/s", HIGHER, 2),
        Metric("output_throughput", "Output throughput", "tok/s", HIGHER, 1),
        Metric("total_token_throughput", "Total token throughput", "tok/s", HIGHER, 1),
        Metric("request_goodput", "Goodput", "req/s", HIGHER, 2),
        *[
            _latency(kind, stat, label)
            for kind, label in (
                ("ttft", "TTFT"),
                ("tpot", "TPOT"),
                ("itl", "ITL"),
                ("e2el", "E2EL"),
                ("queue", "Queue"),
            )
            for stat in ("mean", "median", "p50", "p90", "p95", "p99", "max")
        ],
        Metric("mean_batch_size", "Mean batch size", "seqs", NEUTRAL, 2),
        Metric("p50_batch_size", "Median batch size", "seqs", NEUTRAL, 1),
        Metric("max_batch_size", "Max batch size", "seqs", NEUTRAL, 0),
        Metric("padding_waste_frac", "Padding waste", "%", LOWER, 1, 100.0),
        Metric("idle_slot_frac", "Idle slots", "%", LOWER, 1, 100.0),
        Metric("preemptions", "Preemptions", "", LOWER, 0),
        Metric("gpu_util_mean", "GPU kernel-busy", "%", NEUTRAL, 1),
        Metric("gpu_mem_peak_mb", "GPU memory peak", "MB", LOWER, 0),
        Metric("gpu_power_mean_w", "GPU power mean", "W", LOWER, 1),
        Metric("energy_j", "Energy", "J", LOWER, 1),
        Metric("energy_per_output_token_j", "Energy per output token", "J/tok", LOWER, None),
        Metric("completed", "Completed", "req", HIGHER, 0),
        Metric("failed", "Failed (all unsuccessful)", "req", LOWER, 0),
        Metric("rejected", "Rejected", "req", LOWER, 0),
        Metric("cancelled", "Cancelled", "req", LOWER, 0),
        Metric("errored", "Errored", "req", LOWER, 0),
        Metric("duration", "Duration", "s", LOWER, 2),
        Metric("arrival_lag_p99_ms", "Arrival lag p99", "ms", LOWER, 2),
        Metric("harness_overhead_frac", "Harness overhead", "%", LOWER, 2, 100.0),
        # remote runs (run --target; docs/serving.md)
        Metric("ttft_overhead_p50_ms", "TTFT over the server's p50", "ms", LOWER, 2),
        Metric("ttft_overhead_p99_ms", "TTFT over the server's p99", "ms", LOWER, 2),
        Metric("client_cpu_frac", "Client CPU", "%", LOWER, 1, 100.0),
        Metric("mean_tokens_per_chunk", "Tokens per chunk", "tok", NEUTRAL, 2),
        Metric("usage_mismatches", "Usage mismatches", "req", LOWER, 0),
    ]
}
VALIDITY = "validity"
DEFAULT_METRICS = (
    "request_throughput",
    "output_throughput",
    "request_goodput",
    "p50_ttft_ms",
    "p99_ttft_ms",
    "p50_tpot_ms",
    "p99_tpot_ms",
    "p50_itl_ms",
    "p99_itl_ms",
    "p50_e2el_ms",
    "p99_e2el_ms",
    "p99_queue_ms",
    "mean_batch_size",
    "padding_waste_frac",
    "gpu_util_mean",
    "energy_per_output_token_j",
    "rejected",
    VALIDITY,
)
# default rows only where some result has one: the breakdown of `failed` (vLLM's count of every unsuccessful
# request, available with --metrics failed) beside the Rejected row
OPTIONAL_METRICS = ("cancelled", "errored")


def metric_for(key: str) -> Metric:
    """A registered metric, or a generic one for any other summary key (direction guessed from the name)."""
    if key in METRICS:
        return METRICS[key]
    better = NEUTRAL
    if "throughput" in key or "goodput" in key:
        better = HIGHER
    elif key.endswith("_ms") or key.endswith("_frac") or "energy" in key:
        better = LOWER
    return Metric(key, key, "", better, None)


@dataclass
class Column:
    """One column: a result, or the repeated trials of one strategy."""

    label: str
    strategy: str
    results: list[RunResult]
    paths: list[Path]

    @property
    def trials(self) -> int:
        return len(self.results)

    @property
    def header(self) -> str:
        return self.label if self.trials == 1 else f"{self.label} ({self.trials} trials)"


@dataclass
class Cell:
    value: float | None = None  # median over trials
    lo: float | None = None
    hi: float | None = None
    count: int = 0  # trials with a value
    delta_pct: float | None = None  # change against the baseline column, percent
    verdict: str | None = None  # "better", "worse", "same" (by the metric's direction), None
    best: bool = False
    text: str | None = None  # for non-numeric rows (validity)


@dataclass
class Row:
    metric: Metric
    cells: list[Cell]


@dataclass
class Comparison:
    columns: list[Column]
    baseline: int
    rows: list[Row]
    context: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def baseline_label(self) -> str:
        return self.columns[self.baseline].label


# ---------------------------------------------------------------------------------------------------- building


def _strategy_rank(name: str) -> int:
    return STRATEGY_ORDER.index(name) if name in STRATEGY_ORDER else len(STRATEGY_ORDER)


def build_columns(results: Sequence[RunResult], paths: Sequence[Path]) -> list[Column]:
    """Group by (strategy, label); distinct trials of a group form one column, other duplicates get suffixes."""
    groups: dict[tuple[str, str | None], list[tuple[RunResult, Path]]] = {}
    for result, path in zip(results, paths, strict=False):
        key = (str(result.strategy.get("name", "?")), result.run.label)
        groups.setdefault(key, []).append((result, path))
    columns: list[Column] = []
    for (strategy, label), members in sorted(groups.items(), key=lambda kv: _strategy_rank(kv[0][0])):
        base = strategy if not label else f"{strategy} [{label}]"
        trials = [r.run.trial for r, _ in members]
        if len(members) == 1 or (None not in trials and len(set(trials)) == len(trials)):
            members.sort(key=lambda m: m[0].run.trial or 0)
            columns.append(Column(base, strategy, [r for r, _ in members], [p for _, p in members]))
            continue
        for result, path in members:
            if result.run.trial is not None and trials.count(result.run.trial) == 1:
                suffix = f"trial {result.run.trial}"
            else:
                suffix = result.run.id + (f" trial {result.run.trial}" if result.run.trial is not None else "")
            columns.append(Column(f"{base} {suffix}", strategy, [result], [path]))
    seen: dict[str, int] = {}
    for col in columns:  # last resort: identical labels (same run id twice) get the file name
        seen[col.label] = seen.get(col.label, 0) + 1
    for col in columns:
        if seen[col.label] > 1:
            col.label = f"{col.label} ({col.paths[0].name})"
    return columns


def resolve_baseline(columns: Sequence[Column], name: str | None) -> int:
    """Index of the baseline column: `name` (a column label or strategy, short names accepted), else
    fixed_size when present, else the first column."""
    if name is None:
        for i, col in enumerate(columns):
            if col.strategy == "fixed_size":
                return i
        return 0
    wanted = SHORT_NAMES.get(name, name)
    for i, col in enumerate(columns):
        if col.label == name:
            return i
    for i, col in enumerate(columns):
        if col.strategy == wanted:
            return i
    labels = ", ".join(c.label for c in columns)
    raise UserError(f"--baseline {name}: no column by that name; the columns are: {labels}")


def parse_metrics(spec: str | None, results: Sequence[RunResult]) -> list[str]:
    if not spec:
        extra = [k for k in OPTIONAL_METRICS if any(r.summary.get(k) for r in results)]
        keys = list(DEFAULT_METRICS)
        at = keys.index("rejected") + 1
        return keys[:at] + extra + keys[at:]
    keys = [k.strip() for k in spec.split(",") if k.strip()]
    known = set(METRICS) | {VALIDITY} | {k for r in results for k in r.summary}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise UserError(
            f"--metrics: unknown metric {', '.join(unknown)}; use summary keys such as "
            "output_throughput,p99_ttft_ms,mean_e2el_ms,validity (see docs/compare.md)"
        )
    return keys


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _aggregate(values: list[float | None]) -> Cell:
    present = [v for v in values if v is not None]
    if not present:
        return Cell()
    cell = Cell(value=float(statistics.median(present)), count=len(present))
    if len(values) > 1:
        cell.lo, cell.hi = min(present), max(present)
    return cell


def _delta(value: float | None, base: float | None) -> float | None:
    if value is None or base is None:
        return None
    if base == 0:
        return 0.0 if value == 0 else None
    return (value - base) / abs(base) * 100.0


def _verdict(metric: Metric, delta: float | None) -> str | None:
    """better / worse by the metric's direction; "same" inside the noise band (±NOISE_BAND_PCT)."""
    if delta is None or metric.better == NEUTRAL:
        return None
    if abs(delta) < NOISE_BAND_PCT:
        return "same"
    return "better" if (delta > 0) == (metric.better == HIGHER) else "worse"


def _validity_cell(col: Column) -> Cell:
    """valid / INVALID (a run that did not complete counts as invalid); "unknown" when no verdict was recorded."""
    if any("valid" not in r.run.validity for r in col.results):
        return Cell(text="unknown")
    valid = [bool(r.run.validity["valid"]) and r.run.status == "completed" for r in col.results]
    saturated = sum(bool(r.run.validity.get("saturated")) for r in col.results)
    if len(valid) == 1:
        text = "valid" if valid[0] else ("SATURATED" if saturated else "INVALID")
    else:
        text = f"{sum(valid)}/{len(valid)} valid" + (f", {saturated} saturated" if saturated else "")
    return Cell(text=text, verdict="worse" if not all(valid) else None)


def compare(
    results: Sequence[RunResult],
    paths: Sequence[Path],
    metrics: Sequence[str] = DEFAULT_METRICS,
    baseline: str | None = None,
    warnings: Sequence[str] = (),
) -> Comparison:
    """Build the comparison: one column per strategy (trials aggregated), one row per metric."""
    if not results:
        raise UserError("compare: no result files given")
    columns = build_columns(results, [Path(p) for p in paths])
    base = resolve_baseline(columns, baseline)
    rows: list[Row] = []
    notes: list[str] = []
    for key in metrics:
        if key == VALIDITY:
            rows.append(Row(Metric(VALIDITY, "Validity", "", NEUTRAL), [_validity_cell(c) for c in columns]))
            continue
        metric = metric_for(key)
        cells = [_aggregate([_number(r.summary.get(key)) for r in col.results]) for col in columns]
        for cell in cells:
            cell.delta_pct = _delta(cell.value, cells[base].value)
            cell.verdict = _verdict(metric, cell.delta_pct)
        present = [c.value for c in cells if c.value is not None]
        if len({metric.fmt(v) for v in present}) > 1 and metric.better != NEUTRAL:  # a tie of all is no win
            best = max(present) if metric.better == HIGHER else min(present)
            for cell in cells:
                cell.best = cell.value is not None and metric.fmt(cell.value) == metric.fmt(best)
        if not present:
            notes.append(f"{metric.label}: n/a in every result ({_why_missing(key, results)})")
        rows.append(Row(metric, cells))
    for col in columns:
        for result, path in zip(col.results, col.paths, strict=False):
            failed = result.run.validity.get("failed") or []
            if "valid" not in result.run.validity:
                notes.append(f"{col.label}: no validity verdict recorded ({path.name})")
            elif failed or not result.run.validity["valid"]:
                queue = (
                    "; its latencies measure the queue, not the strategy"
                    if result.run.validity.get("saturated")
                    else ""
                )
                reasons = "; ".join(map(str, failed or ["no reason"]))
                notes.append(f"{col.label}: INVALID run ({path.name}): {reasons}{queue}")
            if result.run.status != "completed":
                notes.append(f"{col.label}: run {result.run.status} ({path.name}); figures cover a partial run")
    notes += _batch_notes(columns)
    return Comparison(columns, base, rows, _context(results), notes, list(warnings))


def _batch_notes(columns: Sequence[Column]) -> list[str]:
    """Which limit closed the static batches (first trial of each column), and which strategies tied."""
    from inferneo_bench.report.ties import Schedule, shares_text, tie_notes

    notes, schedules = [], []
    for col in columns:
        r = col.results[0]
        shares = shares_text(r.summary.get("batch_closed_by"))
        if shares:
            notes.append(f"{col.label}: static batches closed by {shares}")
        schedules.append(
            Schedule(
                col.label,
                r.summary.get("schedule_digest"),
                r.summary.get("batch_closed_by"),
                dict(r.strategy.get("config") or {}),
                where=str(r.workload.get("content_hash")),
            )
        )
    return notes + [note.rsplit(" [", 1)[0] for note in tie_notes(schedules)]


def _why_missing(key: str, results: Sequence[RunResult]) -> str:
    if key == "request_goodput":
        return "no SLO was set; run with --slo ttft_ms=..,tpot_ms=.."
    if key.startswith("gpu_") or "energy" in key:
        reasons = sorted({str(r.telemetry.get("reason")) for r in results if not r.telemetry.get("available")})
        if reasons:
            return "GPU telemetry unavailable: " + "; ".join(reasons)
    return "not measured in these runs"


def _context(results: Sequence[RunResult]) -> dict[str, str]:
    def one(values: set[str]) -> str:
        return next(iter(values)) if len(values) == 1 else " / ".join(sorted(values))

    return {
        "workload": one({f"{r.workload.get('name')} ({r.workload.get('content_hash')})" for r in results}),
        "model": one({str(r.model.get("name")) for r in results}),
        "device": one({f"{r.model.get('device_type')} ({r.model.get('device_name')})" for r in results}),
        "engine": one({str(r.run.engine) for r in results}),
        "runs": one({str(r.run.id) for r in results}),
    }


# --------------------------------------------------------------------------------------------------- rendering


def _delta_text(cell: Cell) -> str:
    if cell.delta_pct is None:
        return ""
    if round(cell.delta_pct, 1) == 0:
        return "±0.0%"
    return f"{cell.delta_pct:+.1f}%"


def _value_text(metric: Metric, cell: Cell) -> str:
    if cell.text is not None:
        return cell.text
    text = metric.fmt(cell.value)
    return f"{text} {BEST_MARK}" if cell.best else text


def _range_text(metric: Metric, cell: Cell) -> str:
    if cell.lo is None or cell.hi is None:
        return ""
    return f"{metric.fmt(cell.lo)}–{metric.fmt(cell.hi)}"


def legend(comp: Comparison, trials_hint: str = "median, min–max below") -> str:
    parts = [
        "↑ higher is better, ↓ lower is better",
        f"{BEST_MARK} best in row",
        f"% = change against {comp.baseline_label} (within ±{NOISE_BAND_PCT:g}%: not coloured)",
    ]
    if any(c.trials > 1 for c in comp.columns):
        parts.append(f"repeated trials: {trials_hint}")
    return "; ".join(parts)


def title(comp: Comparison) -> str:
    c = comp.context
    workload = re.sub(r"(sha256:[0-9a-f]{12})[0-9a-f]+", r"\1", c["workload"])  # a prefix is enough to tell
    return f"workload {workload} · model {c['model']} on {c['device']} · engine {c['engine']}"


def to_rich(comp: Comparison, width: int | None = None) -> Any:
    """A Rich table; colours follow each metric's direction (green better, red worse than the baseline, none
    within the noise band). Given a `width` too narrow for it: title and legend become lines of their own,
    rows that are n/a in every column are left out (a note says why), headers and metric names break onto
    several lines instead of being cut off, and when that is still too wide the strategy columns wrap into
    blocks (each repeating the metric column), so that an 80-column terminal shows every figure."""
    from rich.console import Group
    from rich.text import Text

    from inferneo_bench.console import fit_columns, table_width

    everything = range(len(comp.columns))
    table = _rich_table(comp, everything, compact=False)
    if width is None or table_width(table) <= width:
        return table
    blocks = fit_columns(lambda indices: _rich_table(comp, indices, compact=True), len(comp.columns), width)
    return Group(Text(title(comp)), *blocks, Text(legend(comp), style="dim"))


def _short_title(metric: Metric) -> str:
    """A metric's row title for narrow tables: the label and unit on separate lines."""
    arrow = ARROWS[metric.better]
    unit = f"({metric.unit})" if metric.unit else ""
    return f"{metric.label}\n{unit} {arrow}".rstrip() if unit or arrow else metric.label


def _rich_table(comp: Comparison, indices: Sequence[int] | range, compact: bool) -> Any:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    if compact:
        table = Table(show_lines=True)
    else:
        table = Table(title=title(comp), caption=legend(comp), show_lines=True, title_justify="left")
    table.add_column("metric", style="bold", no_wrap=not compact, overflow="fold", max_width=20 if compact else None)
    for i in indices:
        col = comp.columns[i]
        header = col.header + (" (baseline)" if i == comp.baseline else "")
        if compact:
            header = header.replace("_", "_\n").replace(" (", "\n(")
        table.add_column(escape(header), justify="right", overflow="fold")  # a "[label]" is not Rich markup
    colours = {"better": "green", "worse": "red", "same": "dim"}
    for row in comp.rows:
        if compact and all(c.value is None and c.text is None for c in row.cells):
            continue  # n/a everywhere: a note says why
        cells = []
        for i in indices:
            cell = row.cells[i]
            text = Text(_value_text(row.metric, cell), style="bold" if cell.best else "")
            if row.metric.key == VALIDITY and cell.verdict == "worse":
                text.stylize("red")
            rng = _range_text(row.metric, cell)
            if rng:
                text.append("\n" + rng, style="dim")
            delta = _delta_text(cell)
            if delta and i != comp.baseline:
                text.append("\n" + delta, style=colours.get(cell.verdict or "", ""))
            cells.append(text)
        table.add_row(_short_title(row.metric) if compact else row.metric.title, *cells)
    return table


def render_text(renderable: Any, width: int = 160, color: bool = False) -> str:
    """Render a Rich renderable to a string (plain when color is False), for goldens and files."""
    from rich.console import Console

    console = Console(width=width, color_system="standard" if color else None, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text(styles=color)


def to_markdown(comp: Comparison) -> str:
    """A GitHub-flavoured table that fits a CI job summary ($GITHUB_STEP_SUMMARY)."""
    marks = {"better": " 🟢", "worse": " 🔴", "same": ""}
    header = ["metric"] + [c.header + (" (baseline)" if i == comp.baseline else "") for i, c in enumerate(comp.columns)]
    lines = [
        "### inferneo-bench compare",
        "",
        title(comp),
        "",
        "| " + " | ".join(header) + " |",
        "| --- | " + " | ".join("---:" for _ in comp.columns) + " |",
    ]
    for row in comp.rows:
        cells = []
        for i, cell in enumerate(row.cells):
            value = _value_text(row.metric, cell)
            if cell.best:
                value = f"**{row.metric.fmt(cell.value)}** {BEST_MARK}"
            elif row.metric.key == VALIDITY and cell.verdict == "worse":
                value = f"**{value}**"
            rng = _range_text(row.metric, cell)
            if rng:
                value += f" [{rng}]"
            delta = _delta_text(cell)
            if delta and i != comp.baseline:
                value += f" ({delta}{marks.get(cell.verdict or '', '')})"
            cells.append(value)
        lines.append("| " + " | ".join([row.metric.title] + cells) + " |")
    lines += ["", f"_{legend(comp, 'median [min–max]')}; 🟢 better, 🔴 worse than the baseline._"]
    for note in comp.warnings + comp.notes:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


CSV_FIELDS = (
    "metric",
    "label",
    "unit",
    "better",
    "column",
    "strategy",
    "trials",
    "value",
    "min",
    "max",
    "delta_vs_baseline_pct",
    "best",
    "is_baseline",
)


def _raw(metric: Metric, value: float | None) -> str:
    """Values in the summary's own units (fractions stay fractions), rounded to keep CSV diffs stable."""
    return "" if value is None else repr(round(value, 6))


def to_csv(comp: Comparison) -> str:
    """Long format: one line per (metric, column); values in the summary's own units."""
    out = io.StringIO()
    for line in comp.warnings:  # --force: a forced comparison says so in every format
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in comp.rows:
        for i, (col, cell) in enumerate(zip(comp.columns, row.cells, strict=False)):
            value = cell.text if cell.text is not None else _raw(row.metric, cell.value)
            writer.writerow(
                [
                    row.metric.key,
                    row.metric.label,
                    row.metric.unit if row.metric.scale == 1.0 else "fraction",
                    row.metric.better,
                    col.label,
                    col.strategy,
                    col.trials,
                    value,
                    _raw(row.metric, cell.lo),
                    _raw(row.metric, cell.hi),
                    "" if cell.delta_pct is None else round(cell.delta_pct, 3),
                    int(cell.best),
                    int(i == comp.baseline),
                ]
            )
    return out.getvalue()


def to_dict(comp: Comparison) -> dict[str, Any]:
    columns = [
        {
            "label": c.label,
            "strategy": c.strategy,
            "trials": c.trials,
            "runs": [r.run.id for r in c.results],
            "files": [str(p) for p in c.paths],
        }
        for c in comp.columns
    ]
    metrics = []
    for row in comp.rows:
        values = {}
        for col, cell in zip(comp.columns, row.cells, strict=False):
            if cell.text is not None:
                values[col.label] = {"value": cell.text}
                continue
            values[col.label] = {
                "value": None if cell.value is None else round(cell.value, 6),
                "min": None if cell.lo is None else round(cell.lo, 6),
                "max": None if cell.hi is None else round(cell.hi, 6),
                "delta_vs_baseline_pct": None if cell.delta_pct is None else round(cell.delta_pct, 3),
                "verdict": cell.verdict,
                "best": cell.best,
            }
        metrics.append(
            {
                "key": row.metric.key,
                "label": row.metric.label,
                "unit": row.metric.unit if row.metric.scale == 1.0 else "fraction",
                "better": row.metric.better,
                "values": values,
            }
        )
    return {
        "baseline": comp.baseline_label,
        "context": comp.context,
        "columns": columns,
        "metrics": metrics,
        "notes": comp.notes,
        "warnings": comp.warnings,
    }


def to_json(comp: Comparison) -> str:
    return json.dumps(to_dict(comp), indent=2, ensure_ascii=False) + "\n"
