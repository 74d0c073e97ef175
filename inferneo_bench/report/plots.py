"""Comparison plots from result files: each figure answers one question at a glance.

matplotlib is imported inside the functions (figures are built as `matplotlib.figure.Figure` objects, no
pyplot state, rendered by Agg), so the CLI starts fast and tests can inspect the figures before saving.
Every strategy keeps one colour in every plot (`color_for`). Repeated trials: points per trial plus the
median with min-max error bars; CDFs and histograms pool the trials' requests and steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inferneo_bench.report import bulk
from inferneo_bench.report.tables import NOISE_BAND_PCT, Column
from inferneo_bench.results import RunResult

SECONDS_FROM_MS = 10_000.0  # a latency axis whose largest value reaches this many ms is drawn in seconds
DELTA_COLORS = {"better": "#1a7f37", "worse": "#c62828", "same": "black"}

STRATEGY_COLORS = {
    "fixed_size": "#7f7f7f",  # grey: the usual baseline
    "adaptive": "#1f77b4",
    "coalescing": "#9467bd",
    "latency_optimized": "#2ca02c",
    "throughput_optimized": "#ff7f0e",
    "continuous": "#d62728",
}
_EXTRA = ("#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939")
_LINESTYLES = ("-", "--", ":", "-.")


def color_for(strategy: str) -> str:
    """The strategy's fixed colour; unknown names get a stable colour from a spare palette."""
    if strategy in STRATEGY_COLORS:
        return STRATEGY_COLORS[strategy]
    return _EXTRA[sum(map(ord, strategy)) % len(_EXTRA)]


def _styles(columns: Sequence[Column]) -> list[dict[str, Any]]:
    """Colour by strategy; a second column of the same strategy (another label) gets another line style."""
    seen: dict[str, int] = {}
    out = []
    for col in columns:
        n = seen.get(col.strategy, 0)
        seen[col.strategy] = n + 1
        out.append({"color": color_for(col.strategy), "linestyle": _LINESTYLES[n % len(_LINESTYLES)]})
    return out


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def subtitle(columns: Sequence[Column]) -> str:
    """What the figure shows, in one line: workload, model, device, engine, date and run id(s)."""

    def one(values: Sequence[str], many: str) -> str:
        distinct = list(dict.fromkeys(values))
        return distinct[0] if len(distinct) == 1 else f"{len(distinct)} {many}"

    results = [r for c in columns for r in c.results]
    if not results:
        return ""
    devices = [f"{r.model.get('device_type')} ({r.model.get('device_name')})" for r in results]
    dates = sorted(str(r.run.started_at)[:10] for r in results)
    date = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    runs = list(dict.fromkeys(str(r.run.id) for r in results))
    return " · ".join(
        [
            f"workload {one([str(r.workload.get('name')) for r in results], 'workloads')}",
            f"model {one([str(r.model.get('name')) for r in results], 'models')}",
            one(devices, "devices"),
            f"engine {one([str(r.run.engine) for r in results], 'engines')}",
            date,
            f"run {runs[0]}" if len(runs) == 1 else f"{len(runs)} runs",
        ]
    )


def _title(fig: Any, title: str, columns: Sequence[Column]) -> None:
    """The figure's question on the first line, what it shows (subtitle) on the second."""
    sub = subtitle(columns)
    fig.suptitle(f"{title}\n{sub}" if sub else title, fontsize=11)


def latency_unit(max_ms: float) -> tuple[float, str]:
    """(factor, unit) for a latency axis: ms, or s once its largest value reaches SECONDS_FROM_MS."""
    return (1e-3, "s") if max_ms >= SECONDS_FROM_MS else (1.0, "ms")


def _plain_numbers(axis: Any) -> None:
    """Tick labels as plain numbers with thousands separators: no '1e7' offset or scientific notation."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"))


def delta_pct(value: float, base: float) -> float | None:
    if np.isnan(value) or np.isnan(base) or base == 0:
        return None
    return (value - base) / abs(base) * 100.0


def delta_verdict(delta: float | None, higher: bool) -> str | None:
    """better / worse / same (inside the ±NOISE_BAND_PCT band), as the table colours it."""
    if delta is None:
        return None
    if abs(delta) < NOISE_BAND_PCT:
        return "same"
    return "better" if (delta > 0) == higher else "worse"


# ------------------------------------------------------------------------------------------- per-request data


def request_latencies(results: Sequence[RunResult]) -> dict[str, np.ndarray]:
    """TTFT, TPOT and E2EL in ms per completed request, pooled over the results (vLLM's definitions)."""
    ttft, tpot, e2el = [], [], []
    for result in results:
        a = bulk.request_arrays(result)
        ttft.append(a.first_token_s - a.arrival_s)
        e2el.append(a.finish_s - a.arrival_s)
        multi = a.output_tokens > 1
        tpot.append((a.finish_s[multi] - a.first_token_s[multi]) / (a.output_tokens[multi] - 1))
    return {
        k: np.concatenate(v) * 1000.0 if v else np.zeros(0) for k, v in (("ttft", ttft), ("tpot", tpot), ("e2el", e2el))
    }


def token_times(result: RunResult) -> np.ndarray:
    """Times (s) at which output tokens were produced: first token, then the inter-token gaps."""
    return bulk.request_arrays(result).token_times()


def _value(result: RunResult, key: str) -> float | None:
    v = result.summary.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


# ------------------------------------------------------------------------------------------------- the figures


def overview(columns: Sequence[Column], baseline: int = 0) -> Any:
    """Horizontal bars: output throughput (higher better), p99 TTFT and mean E2EL (lower better); each bar
    labelled with its value and its change against the baseline (green better, red worse, black inside the
    ±1% noise band), the best bar starred; min-max error bars for repeated trials; the baseline as a dashed
    line. Latency panels switch to seconds past 10,000 ms."""
    panels = (
        ("output_throughput", "Output throughput", "tok/s", "higher is better →", True),
        ("p99_ttft_ms", "p99 TTFT", "ms", "← lower is better", False),
        ("mean_e2el_ms", "Mean E2E latency", "ms", "← lower is better", False),
    )
    fig = _figure(13, 0.5 * len(columns) + 2.0)
    axes = fig.subplots(1, 3, sharey=True)
    y = np.arange(len(columns))[::-1]
    names = [c.header for c in columns]
    for ax, (key, label, unit, hint, higher) in zip(axes, panels, strict=True):
        med, lo, hi = [], [], []
        for col in columns:
            vals = [v for v in (_value(r, key) for r in col.results) if v is not None]
            med.append(float(np.median(vals)) if vals else np.nan)
            lo.append(min(vals) if vals else np.nan)
            hi.append(max(vals) if vals else np.nan)
        factor = 1.0
        if unit == "ms":
            factor, unit = latency_unit(np.nanmax(hi) if not np.all(np.isnan(hi)) else 0.0)
        med, lo, hi = (np.asarray(a) * factor for a in (med, lo, hi))
        ax.barh(y, np.nan_to_num(med), color=[color_for(c.strategy) for c in columns], height=0.7)
        present = [m for m in med if not np.isnan(m)]
        best = (max(present) if higher else min(present)) if len(set(present)) > 1 else None
        base = med[baseline]
        for i, (yi, col, m, low, high) in enumerate(zip(y, columns, med, lo, hi, strict=True)):
            if col.trials > 1 and not np.isnan(m):
                ax.errorbar([m], [yi], xerr=[[m - low], [high - m]], fmt="none", ecolor="black", capsize=4)
            delta = None if i == baseline else delta_pct(m, base)
            verdict = delta_verdict(delta, higher)
            text = "n/a" if np.isnan(m) else f"{m:,.1f}" + (" ★ best" if m == best else "")
            if delta is not None:
                text += "  ±0.0%" if round(delta, 1) == 0 else f"  {delta:+.1f}%"
            elif i == baseline and not np.isnan(m):
                text += "  (baseline)"
            end = 0.0 if np.isnan(m) else max(m, high)
            ax.annotate(
                text,
                (end, yi),
                xytext=(5, 0),
                textcoords="offset points",
                va="center",
                fontsize=9,
                color=DELTA_COLORS.get(verdict or "same"),
                fontweight="bold" if m == best else "normal",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            )
        if not np.isnan(base):
            ax.axvline(base, color="black", linestyle="--", linewidth=0.8)
        ax.set_xlabel(hint)
        ax.set_title(f"{label} ({unit})")
        ax.margins(x=0.45)
        ax.set_xlim(left=0)
        _plain_numbers(ax.xaxis)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names)
    trials = "; bars: median, whiskers: min–max over trials" if any(c.trials > 1 for c in columns) else ""
    _title(
        fig,
        f"Strategies at a glance: % = change against {columns[baseline].label} (dashed; "
        f"within ±{NOISE_BAND_PCT:g}%: black){trials}",
        columns,
    )
    return fig


def latency_cdfs(columns: Sequence[Column]) -> Any:
    """CDFs of TTFT, TPOT and E2EL per strategy from the per-request records (trials pooled)."""
    fig = _figure(15, 5.0)
    axes = fig.subplots(1, 3)
    data = [request_latencies(c.results) for c in columns]
    titles = {"ttft": "Time to first token", "tpot": "Time per output token", "e2el": "End-to-end latency"}
    for ax, key in zip(axes, ("ttft", "tpot", "e2el"), strict=False):
        top = max((float(d[key].max()) for d in data if d[key].size), default=0.0)
        factor, unit = latency_unit(top)
        positive = [d[key][d[key] > 0] for d in data if d[key].size]
        span = max((p.max() for p in positive if p.size), default=1.0) / max(
            min((p.min() for p in positive if p.size), default=1.0), 1e-9
        )
        for col, d, style in zip(columns, data, _styles(columns), strict=False):
            values = np.sort(d[key]) * factor
            if values.size == 0:
                continue
            frac = np.arange(1, values.size + 1) / values.size
            ax.step(values, frac, where="post", label=f"{col.header} (n={values.size})", linewidth=2, **style)
        for q in (0.5, 0.99):
            ax.axhline(q, color="black", linewidth=0.6, alpha=0.4)
            ax.annotate(
                f"p{round(q * 100)}",
                (0.0, q),
                xycoords=("axes fraction", "data"),
                xytext=(2, -10),
                textcoords="offset points",
                fontsize=8,
                alpha=0.7,
            )
        if span > 30:
            ax.set_xscale("log")
        else:
            _plain_numbers(ax.xaxis)
        ax.set_title(f"{titles[key]} ({key.upper()})")
        ax.set_xlabel(f"{key.upper()} ({unit}{', log scale' if span > 30 else ''})")
        ax.set_ylabel("fraction of requests ≤ x")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 6) or 1, fontsize=9)
    _title(fig, "Latency distributions per strategy (further left = faster)", columns)
    return fig


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by another (lower or equal latency x and higher or equal throughput y, one strictly),
    sorted by x."""
    front = []
    for x, y in points:
        dominated = any((ox <= x and oy >= y) and (ox < x or oy > y) for ox, oy in points)
        if not dominated:
            front.append((x, y))
    return sorted(set(front))


def throughput_vs_latency(columns: Sequence[Column]) -> Any:
    """Output throughput against p99 TTFT, one point per result, medians with min-max error bars for repeated
    trials, and the Pareto front through the non-dominated results."""
    fig = _figure(9, 6.5)
    ax = fig.subplots()
    points: list[tuple[float, float]] = []
    labels: list[tuple[str, float, float, str]] = []
    ttfts = [v for c in columns for r in c.results if (v := _value(r, "p99_ttft_ms")) is not None]
    factor, unit = latency_unit(max(ttfts, default=0.0))
    for col in columns:
        xs, ys = [], []
        for r in col.results:
            x, y = _value(r, "p99_ttft_ms"), _value(r, "output_throughput")
            x = None if x is None else x * factor
            if x is not None and y is not None:
                xs.append(x)
                ys.append(y)
        if not xs:
            continue
        points += list(zip(xs, ys, strict=False))
        color = color_for(col.strategy)
        if col.trials > 1:
            ax.scatter(xs, ys, color=color, alpha=0.35, s=25)
            mx, my = float(np.median(xs)), float(np.median(ys))
            ax.errorbar(
                [mx],
                [my],
                xerr=[[mx - min(xs)], [max(xs) - mx]],
                yerr=[[my - min(ys)], [max(ys) - my]],
                fmt="o",
                color=color,
                markersize=9,
                capsize=4,
                label=col.header,
            )
        else:
            mx, my = xs[0], ys[0]
            ax.scatter([mx], [my], color=color, s=80, label=col.header, zorder=3)
        labels.append((col.label, mx, my, color))
    front = pareto_front(points)
    if front:
        fx, fy = (list(v) for v in zip(*front, strict=True))
        ax.scatter(
            fx,
            fy,
            s=220,
            facecolors="none",
            edgecolors="black",
            linewidths=1.2,
            zorder=4,
            label="Pareto front (not beaten on both axes)",
        )
        # the staircase that bounds what the front dominates: right of and below it is beaten
        sx, sy = [fx[0]], [fy[0]]
        for x, yv in zip(fx[1:], fy[1:], strict=True):
            sx += [x, x]
            sy += [sy[-1], yv]
        ax.plot(sx, sy, color="black", linestyle="--", linewidth=1, zorder=1)

    ax.set_xlabel(f"p99 TTFT ({unit})  ← better")
    ax.set_ylabel("Output throughput (tok/s)  ↑ better")
    top = max((y for _, y in points), default=1.0) * 1.15
    ax.set_ylim(bottom=0, top=top)  # from 0: gaps at their true scale
    ax.set_xlim(left=0, right=max((x for x, _ in points), default=1.0) * 1.3)
    _place_labels(ax, labels, top)
    _plain_numbers(ax.xaxis)
    _plain_numbers(ax.yaxis)
    _title(fig, "Throughput vs tail latency (upper left is better)", columns)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _place_labels(ax: Any, labels: Sequence[tuple[str, float, float, str]], y_span: float) -> None:
    """Name each point. A lone point gets its name beside it; points close in x form a cluster whose names are
    stacked in a column right of the cluster (highest point on top), each with a thin leader line, so names
    never print over each other or over markers."""
    if not labels:
        return
    ordered = sorted(labels, key=lambda item: item[1])
    xr = (ordered[-1][1] - ordered[0][1]) or 1.0
    clusters: list[list[tuple[str, float, float, str]]] = [[ordered[0]]]
    for item in ordered[1:]:
        if (item[1] - clusters[-1][-1][1]) / xr < 0.12:
            clusters[-1].append(item)
        else:
            clusters.append([item])
    step = 0.06 * y_span
    for cluster in clusters:
        if len(cluster) == 1:
            text, x, y, color = cluster[0]
            ax.annotate(text, (x, y), xytext=(6, 6), textcoords="offset points", fontsize=9, color=color)
            continue
        cluster.sort(key=lambda item: -item[2])
        x_text = max(x for _, x, _, _ in cluster) + 0.05 * xr
        y_mid = sum(y for _, _, y, _ in cluster) / len(cluster)
        for i, (text, x, y, color) in enumerate(cluster):
            y_text = y_mid + ((len(cluster) - 1) / 2 - i) * step
            ax.annotate(
                text,
                (x, y),
                xytext=(x_text, y_text),
                textcoords="data",
                fontsize=9,
                color=color,
                va="center",
                arrowprops={"arrowstyle": "-", "color": color, "linewidth": 0.6},
            )


def _bin_width(duration: float) -> float:
    raw = max(duration / 40.0, 1e-3)
    for nice in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300):
        if raw <= nice:
            return float(nice)
    return float(raw)


def _samples(result: RunResult) -> list[dict[str, Any]]:
    tel = result.telemetry or {}
    if not tel.get("available"):
        return []
    return [s for s in tel.get("samples") or [] if s.get("gpu_util_pct") is not None]


RAW_POINTS_MAX = 400  # above this many points a series is drawn as per-bin mean with a min-max band


def _series(ax: Any, t: np.ndarray, v: np.ndarray, edges: np.ndarray, color: str, steps: bool) -> bool:
    """Draw a series raw when short; when long, as the mean per time bin with a light min-max band (a raw
    line of thousands of steps is an unreadable comb). Returns True when it binned."""
    if t.size <= RAW_POINTS_MAX:
        if steps:
            ax.step(t, v, where="post", color=color, linewidth=1.2)
        else:
            ax.plot(t, v, color=color, linewidth=1.2)
        return False
    idx = np.clip(np.digitize(t, edges) - 1, 0, edges.size - 2)
    n = edges.size - 1
    count = np.bincount(idx, minlength=n)
    mean = np.bincount(idx, weights=v, minlength=n) / np.maximum(count, 1)
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, idx, v)
    np.maximum.at(hi, idx, v)
    has = count > 0
    mids = (edges[:-1] + edges[1:]) / 2
    mean, lo, hi = (np.where(has, a, np.nan) for a in (mean, lo, hi))
    ax.fill_between(mids, lo, hi, color=color, alpha=0.2, linewidth=0)
    ax.plot(mids, mean, color=color, linewidth=1.4)
    return True


def timelines(columns: Sequence[Column]) -> Any:
    """Per strategy (rows), over the run: queue depth, batch size, output tokens/s and, where NVML telemetry
    exists, GPU kernel-busy %. Rows share axes so strategies compare by eye. Trials: the first is shown.
    Long runs are binned (mean per bin, min-max band) so that the shape stays readable."""
    has_gpu = any(_samples(c.results[0]) for c in columns)
    metrics = ["queue depth (requests)", "batch size (seqs/step)", "output tokens/s"]
    if has_gpu:
        metrics.append("GPU kernel-busy (%)")
    series = [bulk.step_series(c.results[0]) for c in columns]
    end = max((s.end_s for s in series), default=1.0)
    width = _bin_width(end)
    edges = np.arange(0.0, end + width, width)
    fine = np.linspace(0.0, edges[-1], 61)  # bins for binned step and telemetry series
    binned: set[int] = set()
    per_second: set[int] = set()  # drawn from step aggregates (a long run's result keeps no per-step rows)
    fig = _figure(3.6 * len(metrics) + 1.0, 1.35 * len(columns) + 1.2)
    axes = np.atleast_2d(fig.subplots(len(columns), len(metrics), sharex=True, sharey="col", squeeze=False))
    for i, col in enumerate(columns):
        result = col.results[0]
        color = color_for(col.strategy)
        steps = series[i]
        for j, values in enumerate((steps.queue_depth, steps.batch_size)):
            if _series(axes[i, j], steps.t_s, values, fine, color, steps=True):
                binned.add(j)
            elif steps.per_second:
                per_second.add(j)
        counts, _ = np.histogram(token_times(result), bins=edges)
        axes[i, 2].stairs(counts / width, edges, color=color, fill=True, alpha=0.6)
        if has_gpu:
            samples = _samples(result)
            if samples:
                st = np.asarray([s["t_s"] for s in samples], dtype=float)
                sv = np.asarray([s["gpu_util_pct"] for s in samples], dtype=float)
                if _series(axes[i, 3], st, sv, fine, color, steps=False):
                    binned.add(3)
                axes[i, 3].set_ylim(0, 105)
            else:
                axes[i, 3].text(
                    0.5,
                    0.5,
                    "no NVML telemetry",
                    ha="center",
                    va="center",
                    transform=axes[i, 3].transAxes,
                    fontsize=8,
                    alpha=0.7,
                )
        name = col.label.replace("_", "\n", 1) + (
            f"\n(trial {result.run.trial} of {col.trials})" if col.trials > 1 else ""
        )
        axes[i, 0].set_ylabel(name, color=color, fontsize=9, fontweight="bold")
        for ax in axes[i]:
            ax.grid(alpha=0.3)
    top = max((float(s.batch_size.max()) for s in series if s.batch_size.size), default=1.0)
    axes[0, 1].set_ylim(0, top * 1.12)  # shared by the column; from 0 so sizes compare by height
    step = float(fine[1] - fine[0])
    for j, metric in enumerate(metrics):
        if j == 2:
            title = f"{metric} ({width:g} s bins)"
        elif j in binned:
            title = f"{metric}\nmean per {step:.3g} s, band min–max"
        elif j in per_second:
            title = f"{metric}\nmean per 1 s (step aggregates)"
        else:
            title = metric
        axes[0, j].set_title(title, fontsize=10)
        axes[-1, j].set_xlabel("time since run start (s)")
    _title(fig, "What each strategy did over the run", columns)
    return fig


def batch_histogram(columns: Sequence[Column]) -> Any:
    """Share of engine steps per batch size, one panel per strategy (shared axes), trials pooled."""
    ncols = min(3, len(columns))
    nrows = -(-len(columns) // ncols)
    fig = _figure(4.2 * ncols, 2.4 * nrows + 0.8)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)).ravel()
    pooled = []  # per column: batch size -> steps, over its trials (exact counts from the step aggregates)
    for col in columns:
        counts: dict[int, int] = {}
        for r in col.results:
            for size, n in bulk.step_stats(r).batch_size_counts.items():
                counts[size] = counts.get(size, 0) + n
        pooled.append(counts)
    top = max((max(c) for c in pooled if c), default=1)
    edges = np.arange(0.5, top + 1.5, 1.0)
    for ax, col, counts in zip(axes, columns, pooled, strict=False):
        color = color_for(col.strategy)
        total = sum(counts.values())
        if total:
            heights = np.zeros(top, dtype=float)
            for size, n in counts.items():
                if size >= 1:
                    heights[size - 1] = n
            mean = sum(size * n for size, n in counts.items()) / total
            ax.bar(edges[:-1] + 0.5, heights / total * 100.0, width=0.8, color=color)
            ax.axvline(mean, color="black", linestyle="--", linewidth=1)
            ax.set_title(f"{col.header}: mean {mean:.2f}", color=color, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(columns) :]:
        ax.set_visible(False)
    from matplotlib.ticker import MaxNLocator

    for ax in axes[: len(columns)]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # batch sizes are whole sequences
        ax.set_xlabel("batch size (sequences per step)")
        ax.set_ylabel("share of steps (%)")
        ax.label_outer()
    _title(fig, "Batch sizes the strategies ran (dashed: mean)", columns)
    return fig


FIGURES = (
    ("overview", overview),
    ("latency_cdf", latency_cdfs),
    ("throughput_vs_p99_ttft", throughput_vs_latency),
    ("timeline", timelines),
    ("batch_size_hist", batch_histogram),
)


def build_all(columns: Sequence[Column], baseline: int = 0) -> dict[str, Any]:
    figs = {}
    for name, fn in FIGURES:
        figs[name] = fn(columns, baseline) if fn is overview else fn(columns)
    return figs


def save_all(columns: Sequence[Column], out_dir: str | Path, svg: bool = False, baseline: int = 0) -> list[Path]:
    """Write every figure as PNG (and SVG with `svg`) into out_dir; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in build_all(columns, baseline).items():
        for ext in ("png", "svg") if svg else ("png",):
            path = out / f"{name}.{ext}"
            fig.savefig(path, metadata={"Software": None} if ext == "png" else {"Date": None})
            written.append(path)
    return written
