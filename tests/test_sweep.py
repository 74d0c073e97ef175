"""The sweep on the virtual clock: a hand-made workload and engine profile whose capacity is computed by hand,
the search's rules on a synthetic attainment curve, the saturation test, and the sweep's outputs (points as
normal result files, sweep.json, the report re-rendered from the saved points, compare, check).

The hand-made case: an analytic engine profile with step = 10 ms + 1 ms per computed token (exact under the
cost model's interpolation: the cost is linear), 100 identical requests (prompt 16, output 3) at constant
gaps, fixed_size with a cap of 1 and no fill delay: a single server with service time
S = prefill 26 ms + 2 decodes of 11 ms = 48 ms. At a rate r above 1/S request i (0-based) waits
i x (S - 1/r), so its E2EL is S + i (S - 1/r). With the SLO E2EL <= L, request i meets it iff
i <= (L - S) / (S - 1/r); attainment >= 90% of 100 needs request 89 to meet it:
r* = 1 / (S - (L - S) / 89). L = 275 ms gives r* = 22.0024 req/s, 5.3% above 1/S = 20.83 req/s, so the point
is not saturated (served/offered short by 5.3% < 10%) and attainment alone decides.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferneo_bench import results
from inferneo_bench.errors import UserError
from inferneo_bench.sweep.search import Probe, SearchSettings, capacity_of, quantize, search

S = 0.048
L = 0.275
R_STAR = 1 / (S - (L - S) / 89)


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory) -> Path:
    from inferneo_bench.engine.analytic import AnalyticEngine
    from inferneo_bench.engine.profile import save_profile
    from tests.fakes import analytic_profile

    engine = AnalyticEngine(overhead=0.010, per_seq=0.0, per_token=0.001, per_attention=0.0, num_slots=64)
    _, profile = analytic_profile(engine)
    return save_profile(profile, tmp_path_factory.mktemp("profile") / "linear.json")


def write_workload(path: Path, n: int = 100, gap: float = 0.1, prompt: int = 16, output: int = 3) -> Path:
    lines = [json.dumps({"format": "inferneo-jsonl", "version": 1, "name": "hand-made"})]
    for i in range(n):
        lines.append(
            json.dumps(
                {
                    "request_id": f"r{i}",
                    "arrival_s": round(i * gap, 6),
                    "prompt_tokens": prompt,
                    "output_tokens": output,
                    "max_tokens": output,
                    "priority": 5,
                }  # fmt: skip
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def sweep_options(tmp_path: Path, profile_path: Path, strategies=("fixed_size",), rates=None, **settings):
    from inferneo_bench.runner.session import RunOptions

    tmp_path.mkdir(parents=True, exist_ok=True)
    from inferneo_bench.sweep.runner import SweepOptions

    return SweepOptions(
        run=RunOptions(
            strategies=list(strategies),
            workload=str(write_workload(tmp_path / "hand.jsonl")),
            engine="sim",
            profile=str(profile_path),
            slo={"e2el_ms": L * 1000},
            config={"max_num_partial_prefills": "1", "max_queue_delay_ms": "0"},
            out=tmp_path / "out",
            run_id="sweep",
            command="test",
        ),
        rates=rates,
        settings=SearchSettings(**settings),
    )


@pytest.fixture(scope="module")
def hand_sweep(tmp_path_factory, profile_path):
    from inferneo_bench.sweep.runner import run_sweep

    tmp = tmp_path_factory.mktemp("sweep")
    return run_sweep(sweep_options(tmp, profile_path))


def test_search_finds_the_hand_computed_capacity(hand_sweep):
    from inferneo_bench.sweep.report import build

    report = build(hand_sweep.points)
    (strategy,) = report.strategies
    cap = strategy.repeats[0].capacity
    assert cap.status == "bracketed"
    assert cap.rate <= R_STAR < cap.upper  # the true crossing lies in the bracket ...
    assert cap.upper - cap.rate <= 0.02 * cap.rate  # ... which is within the stated precision
    assert strategy.repeats[0].ceiling == pytest.approx(1 / S, rel=1e-6)  # 100 requests in 100 x 48 ms
    assert len(strategy.points) <= SearchSettings().max_points
    assert strategy.binding == "e2el_ms"


def test_points_are_normal_result_files(hand_sweep):
    folder = hand_sweep.folder / "fixed_size"
    names = sorted(p.name for p in folder.iterdir())
    assert "saturation" in names and all(n.startswith(("rate-", "saturation")) for n in names)  # entry folders
    point = next(p for p in hand_sweep.points if p.rate is not None and p.passed)
    result = results.load(point.path)
    assert result.run.sweep["rate"] == point.rate and result.run.sweep["attainment_target"] == 0.9
    assert result.workload["mean_rate"] == pytest.approx(point.rate, rel=1e-6)  # arrivals rescaled exactly
    assert result.workload["num_requests"] == 100


def test_attainment_and_saturation_at_hand_computed_points(hand_sweep):
    by_rate = {p.rate: p for p in hand_sweep.points if p.rate is not None}
    for rate, p in by_rate.items():
        if rate <= 1 / S:  # no queue: every request takes S
            expected = 1.0
        else:
            expected = min(100, int((L - S) / (S - 1 / rate) + 1e-9) + 1) / 100
        assert p.attainment == pytest.approx(expected), rate
        assert p.saturated == (rate > 1 / S / 0.9 + 1e-6)  # served 1/S short of offered by more than 10%


def test_report_rerenders_from_saved_points(hand_sweep, cli):
    from inferneo_bench.sweep.report import build, load_points, to_dict

    live = to_dict(build(hand_sweep.points))
    reloaded, notes = load_points([hand_sweep.folder])
    assert notes == []
    again = to_dict(build(reloaded))
    assert again["strategies"] == live["strategies"]

    code, out, err = cli("sweep", "--report", str(hand_sweep.folder), "--format", "json", "--no-plots")
    assert code == 0, err
    data = json.loads(out)
    assert data["kind"] == "sweep" and "schema_version" not in data
    assert data["strategies"][0]["capacity_rps"] == live["strategies"][0]["capacity_rps"]
    saved = json.loads((hand_sweep.folder / "sweep.json").read_text())
    assert saved["kind"] == "sweep"
    assert all(p["saturated"] == ("latency_note" in p) for p in saved["points"])

    code, out, err = cli("compare", str(hand_sweep.folder), "--format", "markdown")
    assert code == 0, err
    assert "| fixed_size |" in out and "saturated: latencies measure the queue" in out


def test_check_gates_capacity(hand_sweep, cli, tmp_path):
    from inferneo_bench.engine.analytic import AnalyticEngine
    from inferneo_bench.engine.profile import save_profile
    from inferneo_bench.sweep.runner import run_sweep
    from tests.fakes import analytic_profile

    code, out, err = cli("check", "--baseline", str(hand_sweep.folder), "--current", str(hand_sweep.folder),
                         "--metric", "capacity_rps")  # fmt: skip
    assert code == 0, out + err
    assert "capacity_rps" in out and "exact: +0.0%" in out
    # the same model on an engine 20% slower per token: S = 10 + 19.2 + 2 x 11.2 = 51.6 ms; capacity drops ~7%
    slow = AnalyticEngine(overhead=0.010, per_seq=0.0, per_token=0.0012, per_attention=0.0, num_slots=64)
    slow_profile = save_profile(analytic_profile(slow)[1], tmp_path / "slow.json")
    slower = run_sweep(sweep_options(tmp_path, slow_profile))
    code, out, err = cli("check", "--baseline", str(hand_sweep.folder), "--current", str(slower.folder),
                         "--metric", "capacity_rps", "--json", str(tmp_path / "v.json"))  # fmt: skip
    assert code == 1, out + err
    (row,) = json.loads((tmp_path / "v.json").read_text())["comparisons"]
    assert row["metric"] == "capacity_rps" and row["verdict"] == "REGRESSION" and row["change"] < -0.05
    # another workload is refused
    options = sweep_options(tmp_path / "other", slow_profile)
    write_workload(Path(options.run.workload), prompt=20)
    other = run_sweep(options)
    code, _, err = cli("check", "--baseline", str(hand_sweep.folder), "--current", str(other.folder),
                       "--metric", "capacity_rps")  # fmt: skip
    assert code == 2 and "incompatible sweeps: workload_hash" in err


def test_given_rates_are_measured_as_given(tmp_path, profile_path):
    from inferneo_bench.sweep.report import build
    from inferneo_bench.sweep.runner import run_sweep

    outcome = run_sweep(sweep_options(tmp_path, profile_path, rates=[10.0, 21.5, 30.0]))
    assert [p.rate for p in outcome.points] == [10.0, 21.5, 30.0]
    assert [p.passed for p in outcome.points] == [True, True, False]
    cap = build(outcome.points).strategies[0].repeats[0].capacity
    assert (cap.rate, cap.upper) == (21.5, 30.0)


def test_repeats_give_an_interval(tmp_path, profile_path):
    from inferneo_bench.sweep.report import build, to_dict
    from inferneo_bench.sweep.runner import run_sweep

    options = sweep_options(tmp_path, profile_path, rates=[10.0, 21.5, 30.0])
    options.run.repeat = 2
    outcome = run_sweep(options)
    names = sorted(p.name for p in (outcome.folder / "fixed_size").iterdir())
    assert names == [f"rate-{r}-trial{k}" for r in ("10", "21.5", "30") for k in (1, 2)]
    (s,) = build(outcome.points).strategies
    assert s.capacities == [21.5, 21.5] and s.interval == (21.5, 21.5)  # deterministic: zero width
    assert to_dict(build(outcome.points))["strategies"][0]["interval95"] == [21.5, 21.5]


def test_parallel_strategies_give_the_serial_result(tmp_path, profile_path):
    from inferneo_bench.sweep.report import build, to_dict
    from inferneo_bench.sweep.runner import run_sweep

    strategies = ("fixed_size", "latency_optimized")
    serial = run_sweep(sweep_options(tmp_path / "a", profile_path, strategies, rates=[10.0, 21.5]))
    options = sweep_options(tmp_path / "b", profile_path, strategies, rates=[10.0, 21.5])
    options.jobs = 2
    parallel = run_sweep(options)
    assert to_dict(build(parallel.points))["strategies"] == to_dict(build(serial.points))["strategies"]
    options.run.engine = "torch"
    with pytest.raises(UserError, match="only the simulated engine"):
        run_sweep(options)


# ------------------------------------------------------------------------------------------ the search alone


def run_search(crossing: float, ceiling: float, **kw):
    settings = SearchSettings(**kw)
    measured = []

    def measure(rate, phase):
        measured.append((rate, phase))
        return rate <= crossing

    probes = search(measure, ceiling, settings)
    return capacity_of(probes), measured, settings


@pytest.mark.parametrize("crossing", [0.7, 3.3, 7.77, 9.99])
def test_search_brackets_a_step_within_precision(crossing):
    cap, measured, settings = run_search(crossing, ceiling=10.0)
    assert cap.status == "bracketed"
    assert cap.rate <= crossing < cap.upper
    assert cap.upper - cap.rate <= settings.precision * cap.rate + 1e-9
    assert len(measured) + 1 <= settings.max_points  # the saturation point counts too
    assert [p for _, p in measured][:1] == ["coarse"]


def test_search_goes_above_the_ceiling_when_everything_passes():
    cap, measured, _ = run_search(13.0, ceiling=10.0)
    assert any(phase == "extend" for _, phase in measured)
    assert cap.rate <= 13.0 < cap.upper


def test_search_goes_down_when_the_lightest_load_fails():
    cap, measured, _ = run_search(0.7, ceiling=10.0)
    assert any(phase == "lower" for _, phase in measured)
    assert cap.rate <= 0.7 < cap.upper


def test_search_reports_when_no_rate_passes():
    cap, measured, settings = run_search(-1.0, ceiling=10.0)
    assert cap.status == "below_range" and cap.rate is None
    assert min(r for r, _ in measured) >= settings.min_fraction * 10.0
    assert "below target even at" in cap.describe(settings.precision)


def test_search_stops_at_the_point_budget():
    cap, measured, _ = run_search(3.3, ceiling=10.0, max_points=5, precision=0.001)
    assert len(measured) == 4
    assert not cap.converged(0.001) and "NOT within" in cap.describe(0.001)


def test_capacity_is_below_the_first_failure():
    probes = [Probe(1.0, True), Probe(2.0, False), Probe(3.0, True), Probe(4.0, False)]
    cap = capacity_of(probes)
    assert (cap.rate, cap.upper, cap.non_monotone) == (1.0, 2.0, [3.0])


def test_rates_are_rounded_to_four_digits():
    assert quantize(1 / 3) == 0.3333 and quantize(22.00236) == 22.0


def test_bad_sweep_options(cli):
    code, _, err = cli("sweep", "--engine", "sim", "--profile", "tiny-cpu")
    assert code == 2 and "sweep needs --slo" in err
    code, _, err = cli("sweep", "--slo", "ttft_ms=1", "--rates", "1,x", "--engine", "sim", "--profile", "tiny-cpu")
    assert code == 2 and "'x' is not a number" in err
    code, _, err = cli(
        "sweep", "--slo", "ttft_ms=1", "--workload", "offline", "--engine", "sim", "--profile", "tiny-cpu"
    )
    assert code == 2 and "no arrival rate to sweep" in err
    # chat's prompts over the tiny model's 2,048-token context (7.3%) alone keep attainment under 95%
    code, _, err = cli("sweep", "--slo", "ttft_ms=2000", "--workload", "chat", "--attainment", "0.95",
                       "--engine", "sim", "--profile", "tiny-cpu")  # fmt: skip
    assert code == 2 and "22 of 300 requests (7.3%) exceed the model context (2048 tokens)" in err
    assert "at or under 92.7%, below the 95% target; use --context-policy truncate" in err


def test_the_capacity_table_and_the_progress_fit_80_columns(hand_sweep):
    import io
    import re

    from rich.console import Console

    from inferneo_bench.runner.progress import ReplayProgress
    from inferneo_bench.runner.replay import Progress
    from inferneo_bench.sweep.report import build, to_rich

    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    console.print(to_rich(build(hand_sweep.points)))
    with ReplayProgress(console, "throughput_optimized 0.6738 req/s #3", 300) as progress:
        progress.update(Progress(now=1.0, ended=300, total=300, queue_depth=0, batch_size=0, output_tokens=153))
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue()).splitlines()  # cursor codes of the live bar
    assert max(len(line) for line in lines) <= 80
    assert not any("…" in line for line in lines), out.getvalue()  # no header, name or count cut short
    bar = [line for line in lines if line.startswith("throughput_optimized 0.6738")][-1]  # the last redraw
    assert "300/300" in bar and "153.0 tok/s" in bar
