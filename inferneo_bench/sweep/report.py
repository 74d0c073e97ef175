"""The sweep report, built from the saved points only (so `sweep --report DIR` and `compare DIR` re-render it
without re-running): per strategy its capacity, the output tokens/s at it, its ratio to fixed_size, the SLO
that binds, the attainment at each rate, the point count and, with repeats, the capacity's 95% interval.

Outputs: a Rich table, markdown, and `sweep.json` (`"kind": "sweep"`, never mistaken for a result file):
capacities plus every point's key figures.

The 95% interval of the capacity over N >= 2 repeats is Student's t interval of their mean:
mean +- t(0.975, N - 1) x s / sqrt(N), s the sample standard deviation of the N capacities (each repeat
runs the whole search again). It assumes the repeats' capacities scatter roughly normally; with identical
repeats (the deterministic simulator on one workload) it has zero width.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferneo_bench import __version__
from inferneo_bench.errors import UserError
from inferneo_bench.report.ties import Schedule, shares_text, tie_line
from inferneo_bench.runner.summary_table import SHORT
from inferneo_bench.sweep.points import SATURATION, Point
from inferneo_bench.sweep.search import Capacity, Probe, capacity_of

STRATEGY_ORDER = ("fixed_size", "adaptive", "coalescing", "latency_optimized", "throughput_optimized", "continuous")
SWEEP_KIND = "sweep"
SWEEP_VERSION = 1


@dataclass
class RepeatCapacity:
    repeat: int | None
    capacity: Capacity
    ceiling: float | None  # served rate at the saturation point
    output_tps: float | None  # output tokens/s at the capacity point
    binding: str | None  # what failed first above the capacity: an SLO metric, or "saturation"
    points: list[Point]


@dataclass
class StrategySweep:
    strategy: str
    label: str | None
    repeats: list[RepeatCapacity]
    ratio_to_fixed: float | None = None

    @property
    def name(self) -> str:
        return f"{self.strategy} [{self.label}]" if self.label else self.strategy

    @property
    def capacities(self) -> list[float | None]:
        return [r.capacity.rate for r in self.repeats]

    @property
    def capacity(self) -> float | None:
        """Mean capacity over repeats (None when a repeat found none)."""
        caps = self.capacities
        return None if not caps or any(c is None for c in caps) else statistics.fmean(caps)

    @property
    def output_tps(self) -> float | None:
        values = [r.output_tps for r in self.repeats]
        return None if not values or any(v is None for v in values) else statistics.fmean(values)

    @property
    def interval(self) -> tuple[float, float] | None:
        caps = self.capacities
        if len(caps) < 2 or any(c is None for c in caps):
            return None
        from scipy.stats import t

        mean, sd = statistics.fmean(caps), statistics.stdev(caps)
        half = t.ppf(0.975, len(caps) - 1) * sd / math.sqrt(len(caps))
        return (mean - half, mean + half)

    @property
    def binding(self) -> str | None:
        found = [r.binding for r in self.repeats if r.binding]
        return max(set(found), key=found.count) if found else None

    @property
    def points(self) -> list[Point]:
        return [p for r in self.repeats for p in r.points]


@dataclass
class SweepReport:
    strategies: list[StrategySweep]
    slo: dict[str, float] | None
    target: float
    precision: float
    context: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    ties: list[str] = field(default_factory=list)
    folder: Path | None = None


# ------------------------------------------------------------------------------------------------- building


def load_points(paths: Sequence[str | Path]) -> tuple[list[Point], list[str]]:
    """Every sweep point under `paths` (results.find_result_files + results.load_summary), one at a time: each
    result is reduced to its Point before the next is read. Result files that are no sweep point are noted."""
    from inferneo_bench import results

    points, notes = [], []
    for path in results.find_result_files(list(paths)):
        result = results.load_summary(path)  # result.json only: the point's figures, not its tables
        if result.run.sweep is None:
            notes.append(f"{path}: not a sweep point (a plain run); left out of the sweep report")
            continue
        points.append(Point.from_result(result, path))
        del result
    if not points:
        where = ", ".join(map(str, paths))
        raise UserError(f"{where}: no sweep points found (the files `inferneo-bench sweep` writes)")
    return points, notes


def is_sweep(paths: Sequence[str | Path]) -> bool:
    """True when the paths name a sweep folder (it holds the sweep.json the sweep writes) or point files of
    one (OUT/<run-id>/<strategy>/rate-<R>/); decided without reading any result file."""
    for raw in paths:
        p = Path(raw)
        for folder in (p, p.parent, p.parent.parent, p.parent.parent.parent):  # the sweep, a point, its files
            if folder.is_dir() and (folder / "sweep.json").is_file():
                return True
    return False


def build(points: Sequence[Point], notes: Sequence[str] = (), folder: Path | None = None) -> SweepReport:
    if not points:
        raise UserError("sweep report: no points")
    contexts = {tuple(sorted((k, str(v)) for k, v in p.context.items() if k != "device_name")) for p in points}
    if len(contexts) > 1:
        raise UserError(
            "sweep report: the points come from different workloads, models or engines; report one sweep at a time"
        )
    targets = {p.attainment_target for p in points}
    slos = {json.dumps(p.slo, sort_keys=True) for p in points}
    if len(targets) > 1 or len(slos) > 1:
        raise UserError("sweep report: the points were measured against different SLOs or targets; report one sweep")
    groups: dict[tuple[str, str | None], dict[int | None, list[Point]]] = {}
    for p in points:
        groups.setdefault((p.strategy, p.label), {}).setdefault(p.repeat, []).append(p)
    rank = {name: i for i, name in enumerate(STRATEGY_ORDER)}
    strategies = []
    for (strategy, label), repeats in sorted(groups.items(), key=lambda kv: (rank.get(kv[0][0], 99), str(kv[0]))):
        strategies.append(StrategySweep(strategy, label, [_repeat(r, ps) for r, ps in sorted(repeats.items(), key=_k)]))
    base = next((s for s in strategies if s.strategy == "fixed_size" and s.capacity), None)
    for s in strategies:
        if base is not None and s.capacity is not None:
            s.ratio_to_fixed = s.capacity / base.capacity
    first = points[0]
    report = SweepReport(
        strategies=strategies,
        slo=first.slo,
        target=first.attainment_target,
        precision=first.precision,
        context={**first.context, "sweep_id": first.sweep_id},
        notes=list(notes),
        folder=folder,
    )
    report.notes += _capacity_notes(report)
    report.ties = _ties(strategies)
    return report


def _k(item: tuple[int | None, Any]) -> int:
    return item[0] or 0


def _repeat(repeat: int | None, points: list[Point]) -> RepeatCapacity:
    rated = sorted((p for p in points if p.rate is not None), key=lambda p: p.rate)
    sat = next((p for p in points if p.phase == SATURATION), None)
    cap = capacity_of(Probe(p.rate, p.passed) for p in rated)
    at = next((p for p in rated if p.rate == cap.rate), None)
    above = next((p for p in rated if p.rate == cap.upper), None)
    return RepeatCapacity(
        repeat=repeat,
        capacity=cap,
        ceiling=sat.figures.get("request_throughput") if sat else None,
        output_tps=at.figures.get("output_throughput") if at else None,
        binding=_binding(above),
        points=sorted(points, key=lambda p: (p.rate is not None, p.rate or 0.0)),
    )


def _binding(point: Point | None) -> str | None:
    """What failed at the first failing rate: the SLO metric with the lowest attainment when attainment fell
    short, else saturation (attainment met, but the queue grew)."""
    if point is None:
        return None
    if point.attainment is not None and point.attainment >= point.attainment_target - 1e-12 and point.saturated:
        return "saturation"
    by_metric = point.attainment_by_metric or {}
    return min(by_metric, key=lambda k: by_metric[k]) if by_metric else None


def _capacity_notes(report: SweepReport) -> list[str]:
    notes = []
    for s in report.strategies:
        for r in s.repeats:
            tag = s.name + (f" trial {r.repeat}" if r.repeat else "")
            cap = r.capacity
            if cap.status != "bracketed" or not cap.converged(report.precision):
                notes.append(f"{tag}: capacity {cap.describe(report.precision)}")
            if cap.non_monotone:
                rates = ", ".join(f"{x:g}" for x in cap.non_monotone)
                notes.append(
                    f"{tag}: passed again at {rates} req/s above the failing {cap.upper:g} req/s (attainment is not "
                    "monotone in the load here); the capacity stays below the first failure"
                )
    return notes


def _ties(strategies: Sequence[StrategySweep]) -> list[str]:
    """Strategies that formed the same batches at every rate both measured (first repeat of each)."""
    digests: dict[str, dict[float | None, Point]] = {}
    for s in strategies:
        if s.label is None and s.repeats:
            digests[s.strategy] = {p.rate: p for p in s.repeats[0].points}
    names = list(digests)
    notes, used = [], set()
    for i, a in enumerate(names):
        if a in used:
            continue
        group = [a]
        for b in names[i + 1 :]:
            common = set(digests[a]) & set(digests[b])
            if common and all(
                digests[a][r].schedule_digest is not None
                and digests[a][r].schedule_digest == digests[b][r].schedule_digest
                for r in common
            ):
                group.append(b)
        if len(group) < 2:
            continue
        used.update(group)
        members = [_mean_schedule(name, list(digests[name].values())) for name in group]
        common = set.intersection(*(set(digests[n]) for n in group))
        notes.append(tie_line(group, members) + f" [at all {len(common)} points both measured]")
    return notes


def _mean_schedule(strategy: str, points: Sequence[Point]) -> Schedule:
    shares: dict[str, float] = {}
    counted = [p for p in points if p.batch_closed_by]
    for p in counted:
        for k, v in (p.batch_closed_by or {}).items():
            shares[k] = shares.get(k, 0.0) + v / len(counted)
    return Schedule(strategy, None, shares or None, points[0].config if points else {})


# ------------------------------------------------------------------------------------------------ rendering


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def slo_text(slo: dict[str, float] | None) -> str:
    return ", ".join(f"{k.removesuffix('_ms').upper()} <= {v:g} ms" for k, v in (slo or {}).items())


def _attainment_cells(s: StrategySweep) -> str:
    """'0.43:100% 0.86:98% 1.2:71%S' for the first repeat (S: saturated)."""
    rep = s.repeats[0]
    parts = []
    for p in rep.points:
        if p.rate is None or p.attainment is None:
            continue
        parts.append(f"{p.rate:g}:{p.attainment:.1%}" + ("S" if p.saturated else ""))
    return " ".join(parts)


def capacity_rows(report: SweepReport) -> list[dict[str, Any]]:
    rows = []
    for s in report.strategies:
        interval = s.interval
        rows.append(
            {
                "strategy": s.name,
                "capacity_rps": s.capacity,
                "interval95": list(interval) if interval else None,
                "output_tps": s.output_tps,
                "ratio_to_fixed": s.ratio_to_fixed,
                "binding": s.binding,
                "ceiling_rps": _mean([r.ceiling for r in s.repeats]),
                "points": len(s.points),
                "repeats": len(s.repeats),
                "attainment": _attainment_cells(s),
            }
        )
    return rows


def _mean(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else statistics.fmean(values)


def headline(report: SweepReport) -> str:
    c = report.context
    return (
        f"capacity at {slo_text(report.slo)} for {report.target:.0%} of requests · workload {c.get('workload')} · "
        f"model {c.get('model')} on {c.get('device_type')} · engine {c.get('engine')}"
    )


def _rate(value: float | None) -> str:
    """Rates to 3 significant digits (0.242, 1.55, 17.8): capacities span orders of magnitude."""
    return "-" if value is None else (f"{value:,.0f}" if value >= 1000 else f"{value:.3g}")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def to_rich(report: SweepReport) -> Any:
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    # Fits 80 columns (two-line headers, the run table's short strategy names, no vertical rules): this is the
    # headline answer, and a cut header ("capacity r…") or name ("throughput_optim…") hides it.
    with_ci = any(s.interval for s in report.strategies)
    table = Table(title=headline(report), title_justify="left", padding=(0, 1), box=box.SIMPLE_HEAD)
    columns = ["strategy", "capacity\nreq/s", *(["95% CI\nreq/s"] if with_ci else []), "tok/s at\ncapacity"]
    for col in [*columns, "x\nfixed", "binding", "ceiling\nreq/s", "points"]:
        table.add_column(col, justify="left" if col in ("strategy", "binding") else "right", no_wrap=True)
    for row in capacity_rows(report):
        ci = row["interval95"]
        cells = [SHORT.get(row["strategy"], row["strategy"]), _rate(row["capacity_rps"])]
        if with_ci:
            cells.append(f"{_rate(ci[0])}-{_rate(ci[1])}" if ci else "-")
        cells += [_num(row["output_tps"], 1), _ratio(row["ratio_to_fixed"]), row["binding"] or "-"]
        table.add_row(*cells, _rate(row["ceiling_rps"]), str(row["points"]))
    lines: list[Any] = [
        table,
        Text("attainment at each offered rate (req/s:attainment; S = saturated, its latencies measure the queue):"),
    ]
    cells = Table.grid(padding=(0, 1))  # a grid, so that a long row wraps under its own column
    cells.add_column(no_wrap=True)
    cells.add_column()
    for row in capacity_rows(report):
        cells.add_row(" " + SHORT.get(row["strategy"], row["strategy"]), row["attainment"])
    lines.append(cells)
    lines += [Text(f"note: {n}") for n in report.ties + report.notes]
    return Group(*lines)


def to_markdown(report: SweepReport) -> str:
    out = [f"# Sweep {report.context.get('sweep_id')}", "", headline(report) + ".", ""]
    with_ci = any(s.interval for s in report.strategies)
    ci_head, ci_rule = (" 95% interval |", "--:|") if with_ci else ("", "")
    out += [
        f"| strategy | capacity (req/s) |{ci_head} output tok/s at capacity | x fixed_size | binding | "
        "ceiling (req/s) | points |",
        f"|---|--:|{ci_rule}--:|--:|---|--:|--:|",
    ]
    for row in capacity_rows(report):
        ci = row["interval95"]
        ci_cell = (f" {_rate(ci[0])}–{_rate(ci[1])} |" if ci else " - |") if with_ci else ""
        out.append(
            f"| {row['strategy']} | {_rate(row['capacity_rps'])} |{ci_cell} {_num(row['output_tps'], 1)} | "
            f"{_ratio(row['ratio_to_fixed'])} | {row['binding'] or '-'} | {_rate(row['ceiling_rps'])} | "
            f"{row['points']} |"
        )
    out += [
        "",
        "Capacity: the largest offered rate whose SLO attainment met the target without saturating, below the "
        "first rate that failed. Binding: what failed first above it. Ceiling: requests/s served with every "
        "request sent at once.",
        "",
    ]
    for s in report.strategies:
        out += [f"## {s.name}", "", "| rate (req/s) | attainment | TTFT p50 / p99 (ms) | TPOT p50 / p99 (ms) | "
                "served req/s | output tok/s | state |", "|--:|--:|--:|--:|--:|--:|---|"]  # fmt: skip
        for rep in s.repeats:
            for p in rep.points:
                f = p.figures
                rate = "all at once" if p.rate is None else f"{p.rate:g}"
                if rep.repeat:
                    rate += f" (trial {rep.repeat})"
                state = "saturated: latencies measure the queue" if p.saturated else ("pass" if p.passed else "fail")
                if p.rate is None:
                    state = "ceiling (throughput test)"
                out.append(
                    f"| {rate} | {'-' if p.attainment is None else f'{p.attainment:.1%}'} | "
                    f"{_num(f.get('median_ttft_ms'), 0)} / {_num(f.get('p99_ttft_ms'), 0)} | "
                    f"{_num(f.get('median_tpot_ms'), 1)} / {_num(f.get('p99_tpot_ms'), 1)} | "
                    f"{_num(f.get('request_throughput'))} | {_num(f.get('output_throughput'), 1)} | {state} |"
                )
        shares = shares_text(_mean_schedule(s.strategy, s.points).closed_by)
        if shares:
            out += ["", f"Static batches closed by (mean over points): {shares}."]
        out.append("")
    if report.ties or report.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in report.ties + report.notes] + [""]
    return "\n".join(out)


def to_dict(report: SweepReport) -> dict[str, Any]:
    """sweep.json: `kind: sweep` first, so that no reader takes it for a result file."""
    return {
        "kind": SWEEP_KIND,
        "sweep_version": SWEEP_VERSION,
        "tool": {"name": "inferneo-bench", "version": __version__},
        "id": report.context.get("sweep_id"),
        "context": report.context,
        "slo": report.slo,
        "attainment_target": report.target,
        "precision": report.precision,
        "interval": "95% Student t interval of the mean capacity over repeats",
        "strategies": [
            {
                **row,
                "capacity_per_repeat": s.capacities,
                "bracket_per_repeat": [[r.capacity.rate, r.capacity.upper] for r in s.repeats],
                "status_per_repeat": [r.capacity.status for r in s.repeats],
                "batch_closed_by": _mean_schedule(s.strategy, s.points).closed_by,
            }
            for s, row in zip(report.strategies, capacity_rows(report), strict=True)
        ],
        "ties": report.ties,
        "notes": report.notes,
        "points": [p.to_dict() for s in report.strategies for p in s.points],
    }


def write(report: SweepReport, folder: Path, plots: bool = True) -> list[Path]:
    """sweep.json, sweep.md and (with `plots`) the PNG plots, into `folder`."""
    from inferneo_bench.fileio import atomic_writer

    written = []
    with atomic_writer(folder / "sweep.json") as fh:
        json.dump(to_dict(report), fh, indent=1, allow_nan=False)
        fh.write("\n")
    written.append(folder / "sweep.json")
    with atomic_writer(folder / "sweep.md") as fh:
        fh.write(to_markdown(report))
    written.append(folder / "sweep.md")
    if plots:
        from inferneo_bench.sweep.plots import save_all

        written += save_all(report, folder / "plots")
    return written
