"""compare's plots, checked on the figure objects: series per strategy, labels, units, colours, Pareto front,
error bars for trials. One test writes the files (PNG and SVG) through the CLI."""

from __future__ import annotations

import copy
import statistics
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pytest

from inferneo_bench import results
from inferneo_bench.report import plots, tables

REPO = Path(__file__).resolve().parents[1]
CPU = REPO / "tests" / "data" / "results" / "chat-cpu"
GPU = REPO / "tests" / "data" / "results" / "chat-gpu"
SIX = ["fixed_size", "adaptive", "coalescing", "latency_optimized", "throughput_optimized", "continuous"]


def columns(folder: Path) -> list[tables.Column]:
    files = results.find_result_files([folder])
    return tables.build_columns([results.load(f) for f in files], files)


@pytest.fixture(scope="module")
def cpu_cols():
    return columns(CPU)


@pytest.fixture(scope="module")
def gpu_cols():
    return columns(GPU)


def hex_of(color) -> str:
    return mcolors.to_hex(color)


def labelled_lines(ax) -> list:
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_one_fixed_colour_per_strategy():
    assert len(set(plots.STRATEGY_COLORS.values())) == 6
    assert plots.color_for("adaptive") == plots.STRATEGY_COLORS["adaptive"]
    assert plots.color_for("my_strategy") == plots.color_for("my_strategy")  # stable for unknown names


def test_latency_cdfs(cpu_cols):
    fig = plots.latency_cdfs(cpu_cols)
    axes = fig.axes
    assert len(axes) == 3
    for ax, metric in zip(axes, ("TTFT", "TPOT", "E2EL"), strict=True):
        lines = labelled_lines(ax)
        assert len(lines) == 6  # one CDF per strategy
        assert [line.get_label().split(" (")[0] for line in lines] == SIX
        assert [hex_of(line.get_color()) for line in lines] == [plots.STRATEGY_COLORS[s] for s in SIX]
        assert ax.get_xlabel().startswith(f"{metric} (ms")
        assert ax.get_ylabel() == "fraction of requests ≤ x"
        assert metric in ax.get_title()
    # the CDF is built from per-request records: 23 completed requests (one rejected) per strategy
    first = labelled_lines(axes[0])[0]
    assert first.get_label() == "fixed_size (n=23)"
    ys = first.get_ydata()
    assert ys[-1] == pytest.approx(1.0) and np.all(np.diff(ys) >= 0)
    fixed = results.load(CPU / "fixed_size.json")
    ttft = sorted((r.first_token_s - r.arrival_s) * 1000 for r in fixed.requests if r.status == "completed")
    assert list(first.get_xdata()) == pytest.approx(ttft)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [line.get_label() for line in labelled_lines(axes[0])]


def test_request_latencies_follow_vllm_definitions():
    fixed = results.load(CPU / "fixed_size.json")
    lat = plots.request_latencies([fixed])
    done = [r for r in fixed.requests if r.status == "completed"]
    r = done[0]
    assert lat["ttft"][0] == pytest.approx((r.first_token_s - r.arrival_s) * 1000)
    assert lat["e2el"][0] == pytest.approx((r.finish_s - r.arrival_s) * 1000)
    multi = [r for r in done if r.output_tokens > 1]
    assert len(lat["tpot"]) == len(multi)
    assert lat["tpot"][0] == pytest.approx(
        (multi[0].finish_s - multi[0].first_token_s) / (multi[0].output_tokens - 1) * 1000
    )


def test_pareto_front():
    pts = [(100.0, 10.0), (200.0, 20.0), (150.0, 5.0), (300.0, 20.0), (50.0, 1.0)]
    # (150, 5) is beaten by (100, 10); (300, 20) by (200, 20)
    assert plots.pareto_front(pts) == [(50.0, 1.0), (100.0, 10.0), (200.0, 20.0)]


def test_throughput_vs_latency_with_trials(gpu_cols):
    fig = plots.throughput_vs_latency(gpu_cols)
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("p99 TTFT (ms)")
    assert ax.get_ylabel().startswith("Output throughput (tok/s)")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "fixed_size (3 trials)" in labels and "adaptive (3 trials)" in labels and "continuous" in labels
    assert any(label.startswith("Pareto front") for label in labels)
    # error bars for the two repeated strategies (one errorbar container each), none for the single result
    assert len(ax.containers) == 2
    # one point per result: 3 + 3 faded trial points, plus the single continuous result
    faded = [c for c in ax.collections if c.get_offsets().shape[0] == 3]
    assert len(faded) == 2
    # continuous dominates everything in this data: the front is that one point
    front = next(c for c in ax.collections if c.get_label().startswith("Pareto front"))
    cont = results.load(GPU / "continuous-trial1.json").summary
    assert front.get_offsets().tolist() == [[cont["p99_ttft_ms"], cont["output_throughput"]]]
    assert {t.get_text() for t in ax.texts} == {"fixed_size", "adaptive", "continuous"}


def test_throughput_vs_latency_front_has_several_points(cpu_cols):
    fig = plots.throughput_vs_latency(cpu_cols)
    (ax,) = fig.axes
    pts = []
    for col in cpu_cols:
        s = col.results[0].summary
        pts.append((s["p99_ttft_ms"], s["output_throughput"]))
    front = next(c for c in ax.collections if c.get_label().startswith("Pareto front"))
    assert [tuple(p) for p in front.get_offsets().tolist()] == plots.pareto_front(pts)
    assert len(ax.containers) == 0  # single results: no error bars


def test_timeline_without_and_with_telemetry(cpu_cols, gpu_cols):
    fig = plots.timelines(cpu_cols)
    assert len(fig.axes) == 6 * 3  # strategies x (queue depth, batch size, tokens/s): no GPU panel without NVML
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["queue depth (requests)", "batch size (seqs/step)", "output tokens/s (0.1 s bins)"]
    assert all(ax.get_xlabel() == "time since run start (s)" for ax in fig.axes[-3:])
    assert fig.axes[0].get_ylabel() == "fixed\nsize"
    queue_line = fig.axes[0].get_lines()[0]
    fixed = results.load(CPU / "fixed_size.json")
    assert list(queue_line.get_ydata()) == [s.queue_depth for s in fixed.steps]
    assert hex_of(queue_line.get_color()) == plots.STRATEGY_COLORS["fixed_size"]
    # tokens/s bins hold every output token of the run
    values, edges, _ = fig.axes[2].patches[0].get_data()
    total = sum(r.output_tokens for r in fixed.requests if r.status == "completed")
    assert float(np.sum(values * np.diff(edges))) == pytest.approx(total)
    assert len(plots.token_times(fixed)) == total

    fig = plots.timelines(gpu_cols)
    assert len(fig.axes) == 3 * 4
    assert fig.axes[3].get_title() == "GPU kernel-busy (%)"
    util = fig.axes[3].get_lines()[0]
    samples = results.load(GPU / "fixed_size-trial1.json").telemetry["samples"]
    assert list(util.get_ydata()) == [s["gpu_util_pct"] for s in samples]
    assert fig.axes[0].get_ylabel() == "fixed\nsize\n(trial 1 of 3)"


def test_batch_histogram(cpu_cols):
    fig = plots.batch_histogram(cpu_cols)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 6
    for ax, col in zip(visible, cpu_cols, strict=True):
        heights = [p.get_height() for p in ax.patches]
        assert sum(heights) == pytest.approx(100.0)  # share of steps
        assert {hex_of(p.get_facecolor()) for p in ax.patches} == {plots.color_for(col.strategy)}
        assert ax.get_title().startswith(f"{col.label}: mean ")
    assert "batch size" in visible[-1].get_xlabel() and "share of steps (%)" in visible[0].get_ylabel()


def test_overview_marks_best_and_error_bars(gpu_cols):
    fig = plots.overview(gpu_cols, baseline=0)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["Output throughput (tok/s)", "p99 TTFT (ms)", "Mean E2E latency (ms)"]
    assert [ax.get_xlabel() for ax in axes] == ["higher is better →", "← lower is better", "← lower is better"]
    for ax in axes:
        assert len(ax.patches) == 3
        assert len(ax.containers) == 1 + 2  # the bars, plus error bars for the two strategies with trials
        assert ["★ best" in t.get_text() for t in ax.texts] == [False, False, True]  # continuous wins
        assert ax.texts[0].get_text().endswith("(baseline)")
    # the change against the baseline, coloured by direction (continuous: more tok/s, lower latency: better)
    base = statistics.median(r.summary["output_throughput"] for r in gpu_cols[0].results)
    cont = gpu_cols[2].results[0].summary["output_throughput"]
    assert axes[0].texts[2].get_text().endswith(f"{(cont - base) / base * 100:+.1f}%")
    assert {t.get_color() for ax in axes for t in ax.texts[2:]} == {plots.DELTA_COLORS["better"]}
    assert "model tiny" in fig.get_suptitle() and "workload chat" in fig.get_suptitle()
    assert [t.get_text() for t in axes[0].get_yticklabels()] == [
        "fixed_size (3 trials)",
        "adaptive (3 trials)",
        "continuous",
    ]


@pytest.mark.parametrize(
    ("delta", "higher", "verdict"),
    [(0.5, True, "same"), (-0.99, False, "same"), (1.0, True, "better"), (1.0, False, "worse"), (None, True, None)],
)
def test_overview_deltas_inside_the_noise_band_are_not_coloured(delta, higher, verdict):
    assert plots.delta_verdict(delta, higher) == verdict


def test_latency_axes_switch_to_seconds_past_10000_ms(cpu_cols):
    assert plots.latency_unit(9_999.0) == (1.0, "ms") and plots.latency_unit(10_000.0) == (1e-3, "s")
    slow = copy.deepcopy(cpu_cols)
    for col in slow:
        for r in col.results:
            r.summary["p99_ttft_ms"] *= 100  # hundreds of ms -> tens of seconds
            for q in r.requests:
                if q.first_token_s is not None:
                    q.first_token_s += 30.0
                    q.finish_s += 30.0
    assert plots.throughput_vs_latency(slow).axes[0].get_xlabel().startswith("p99 TTFT (s)")
    assert plots.overview(slow).axes[1].get_title() == "p99 TTFT (s)"
    cdf = plots.latency_cdfs(slow)
    assert cdf.axes[0].get_xlabel().startswith("TTFT (s") and cdf.axes[1].get_xlabel().startswith("TPOT (ms")


def test_every_figure_has_the_subtitle(cpu_cols):
    sub = plots.subtitle(cpu_cols)
    assert sub.startswith("workload chat · model tiny · cpu (cpu) · engine torch · ")
    assert sub.endswith("run chat-cpu")
    for name, fig in plots.build_all(cpu_cols).items():
        assert fig.get_suptitle().endswith(sub), name


def test_cli_writes_png_and_svg(cli, tmp_path):
    out = tmp_path / "plots"
    code, _, err = cli("compare", str(GPU), "--plots", str(out), "--svg", "--format", "json")
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    expected = sorted(f"{n}.{ext}" for n, _ in plots.FIGURES for ext in ("png", "svg"))
    assert names == expected
    assert (out / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "overview.svg").read_text()[:200].lstrip().startswith("<?xml")
    assert err.strip() == f"wrote 10 plot files to {out}: " + ", ".join(
        f"{n}.{ext}" for n, _ in plots.FIGURES for ext in ("png", "svg")
    )


def test_degenerate_results_still_render(tmp_path):
    """A run where nothing completed (every request rejected, no steps, no validity verdict) must not crash."""
    empty = results.load(CPU / "adaptive.json")
    for r in empty.requests:
        r.status, r.first_token_s, r.finish_s, r.itl_s = "rejected", None, None, []
    empty.steps = []
    empty.summary = {k: None for k in empty.summary}
    empty.run.validity = {}
    fixed = results.load(CPU / "fixed_size.json")
    cols = tables.build_columns([fixed, empty], [CPU / "fixed_size.json", tmp_path / "adaptive.json"])
    comp = tables.compare([fixed, empty], [CPU / "fixed_size.json", tmp_path / "adaptive.json"])
    assert comp.rows[-1].cells[1].text == "unknown"
    assert "adaptive: no validity verdict recorded (adaptive.json)" in comp.notes
    for render in (tables.to_markdown, tables.to_csv, tables.to_json):
        assert "n/a" in render(comp) or "null" in render(comp) or ",," in render(comp)
    figs = plots.build_all(cols)
    assert set(figs) == {name for name, _ in plots.FIGURES}
    cdf_lines = labelled_lines(figs["latency_cdf"].axes[0])
    assert [line.get_label() for line in cdf_lines] == ["fixed_size (n=23)"]  # nothing to draw for the empty run


def test_long_series_are_binned_to_mean_and_band():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    t = np.arange(1000) * 0.01  # 10 s of steps, batch size alternating 0 and 4
    v = np.where(np.arange(1000) % 2 == 0, 0.0, 4.0)
    edges = np.linspace(0.0, 10.0, 11)
    assert plots._series(ax, t, v, edges, "#123456", steps=True) is True
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == pytest.approx(list(np.arange(0.5, 10, 1.0)))
    assert list(line.get_ydata()) == pytest.approx([2.0] * 10)  # mean per 1 s bin
    (band,) = ax.collections
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == 0.0 and ys.max() == 4.0  # min-max band
    short = Figure().subplots()
    assert plots._series(short, t[:50], v[:50], edges, "#123456", steps=True) is False  # short: drawn raw
    assert len(short.get_lines()[0].get_xdata()) == 50


@pytest.mark.parametrize("folder", [CPU, GPU], ids=["cpu", "gpu-trials"])
def test_point_labels_do_not_overlap(folder):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = plots.throughput_vs_latency(columns(folder))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    (ax,) = fig.axes
    from matplotlib.text import Text

    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # the text alone, without its leader line
    assert len(boxes) == len(columns(folder))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b)
    assert ax.get_ylim()[0] == 0  # throughput from zero: differences at their true scale
