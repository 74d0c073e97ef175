"""Sweep plots (matplotlib Figure objects rendered by Agg; no pyplot state):

- latency.png: p50 and p99 TTFT and TPOT against the offered rate, one line per strategy, the SLO dashed;
- attainment.png: SLO attainment against the offered rate, the target dashed, each capacity marked;
- throughput.png: the served rate (completions per second over their middle 80%, the saturation test's
  figure, so the last request's tail does not bend it) against the offered rate, the y = x line dashed: the
  knee where a strategy stops keeping up.
Saturated points are hollow (their latencies measure the queue, not the strategy). Repeats after the first
are drawn thinner. Strategies keep their colours from `compare`'s plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferneo_bench.report.plots import color_for
from inferneo_bench.sweep.report import StrategySweep, SweepReport, slo_text


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _series(s: StrategySweep, key: str | None) -> list[tuple[int | None, list[tuple[float, float, bool]]]]:
    """Per repeat: (rate, value, saturated) of rated points with a value, sorted by rate."""
    out = []
    for rep in s.repeats:
        pts = []
        for p in rep.points:
            if p.rate is None:
                continue
            value = p.attainment if key is None else p.figures.get(key)
            if value is not None:
                pts.append((p.rate, value, p.saturated))
        out.append((rep.repeat, sorted(pts)))
    return out


def _plot(ax: Any, s: StrategySweep, key: str | None, scale: float = 1.0, label: bool = True) -> None:
    color = color_for(s.strategy)
    for i, (_, pts) in enumerate(_series(s, key)):
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ys = [p[1] * scale for p in pts]
        width = 1.6 if i == 0 else 0.8
        ax.plot(xs, ys, color=color, linewidth=width, label=s.name if label and i == 0 else None, zorder=2)
        for x, y, sat in zip(xs, ys, [p[2] for p in pts], strict=True):
            ax.plot(
                [x],
                [y],
                marker="o",
                markersize=5 if i == 0 else 3,
                color=color,
                markerfacecolor="white" if sat else color,
                zorder=3,
            )


def _hollow_legend(ax: Any) -> None:
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="o", color="black", markerfacecolor="white", linestyle="none"))
    labels.append("saturated (queue-dominated)")
    ax.legend(handles, labels, fontsize=7, loc="best")


def latency_figure(report: SweepReport) -> Any:
    fig = _figure(10, 7)
    axes = fig.subplots(2, 2, sharex=True)
    panels = [
        (axes[0][0], "median_ttft_ms", "TTFT p50 (ms)", "ttft_ms"),
        (axes[0][1], "p99_ttft_ms", "TTFT p99 (ms)", "ttft_ms"),
        (axes[1][0], "median_tpot_ms", "TPOT p50 (ms)", "tpot_ms"),
        (axes[1][1], "p99_tpot_ms", "TPOT p99 (ms)", "tpot_ms"),
    ]
    for ax, key, title, slo_key in panels:
        for s in report.strategies:
            _plot(ax, s, key)
        limit = (report.slo or {}).get(slo_key)
        if limit is not None:
            ax.axhline(limit, color="black", linestyle="--", linewidth=1, label=f"SLO {limit:g} ms")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("offered rate (req/s)")
    _hollow_legend(axes[0][0])
    fig.suptitle("Latency against offered load", fontsize=11)
    return fig


def attainment_figure(report: SweepReport) -> Any:
    fig = _figure(8, 5)
    ax = fig.subplots()
    for s in report.strategies:
        _plot(ax, s, None, scale=100.0)
        cap = s.capacity
        if cap is not None:
            ax.axvline(cap, color=color_for(s.strategy), linestyle=":", linewidth=1.2)
            ax.annotate(
                f"{cap:.2f}",
                (cap, 2),
                color=color_for(s.strategy),
                fontsize=7,
                rotation=90,
                ha="right",
                va="bottom",
            )
    ax.axhline(report.target * 100, color="black", linestyle="--", linewidth=1, label=f"target {report.target:.0%}")
    ax.set_ylim(0, 103)
    ax.set_xlabel("offered rate (req/s)")
    ax.set_ylabel("SLO attainment (% of requests)")
    ax.set_title(f"SLO attainment ({slo_text(report.slo)}); dotted: each strategy's capacity", fontsize=10)
    ax.grid(True, alpha=0.3)
    _hollow_legend(ax)
    return fig


def throughput_figure(report: SweepReport) -> Any:
    fig = _figure(8, 5)
    ax = fig.subplots()
    top = 0.0
    for s in report.strategies:
        _plot(ax, s, "served_rate")
        top = max([top] + [p.rate for p in s.points if p.rate is not None])
    ax.plot([0, top], [0, top], color="black", linestyle="--", linewidth=1, label="served = offered")
    ax.set_xlabel("offered rate (req/s)")
    ax.set_ylabel("served rate (completions/s over their middle 80%)")
    ax.set_title("Throughput against offered load: the knee is where a strategy stops keeping up", fontsize=10)
    ax.grid(True, alpha=0.3)
    _hollow_legend(ax)
    return fig


def save_all(report: SweepReport, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in (
        ("latency", latency_figure),
        ("attainment", attainment_figure),
        ("throughput", throughput_figure),
    ):
        path = folder / f"{name}.png"
        build(report).savefig(path)
        written.append(path)
    return written
