"""`inferneo-bench run` end to end on the CPU: result files, exact recomputation of every summary from its
own records, error messages, Ctrl-C, repeats and CSV."""

from __future__ import annotations

import csv
import json

import pytest

from inferneo_bench import results
from inferneo_bench.metrics import summarize

FAST = [
    "--workload",
    "default",
    "--num-requests",
    "16",
    "--time-scale",
    "8",
    "--model",
    "tiny",
    "--min-duration",
    "0",
    "--min-requests",
    "1",
    "--max-arrival-lag-ms",
    "1e9",  # a busy shared machine can delay arrivals; these tests are about files and figures, not lag
    "--max-throughput-shortfall",
    "1",  # nor saturation: x8 outruns the tiny model on a slow machine (served vs offered is wall-clock)
    "--quiet",
]


def run_ok(cli, tmp_path, *args):
    code, out, err = cli("run", *FAST, "--out", str(tmp_path), "--run-id", "t", *args)
    assert code == 0, err
    return [results.load(line) for line in out.split()]


def assert_recomputes(result: results.RunResult) -> None:
    assert summarize(result.requests, result.steps, result.telemetry, result.summary["slo"]) == result.summary


def test_torch_run_saves_results_that_recompute_exactly(cli, tmp_path):
    # at the workload's own rate (5 req/s; x8 would outrun the tiny CPU model: SATURATED, exit 4)
    args = ["--strategy", "fixed,continuous", "--slo", "ttft_ms=2000,tpot_ms=500", "--csv", "--time-scale", "1",
            "--max-throughput-shortfall", "0.1"]  # fmt: skip
    loaded = run_ok(cli, tmp_path, *args)
    assert [r.strategy["name"] for r in loaded] == ["fixed_size", "continuous"]
    for r in loaded:
        assert r.run.engine == "torch" and r.run.status == "completed"
        assert r.model["name"] == "tiny" and r.model["device_type"] == "cpu"
        assert r.summary["completed"] == 16 and r.summary["request_goodput"] is not None
        assert r.telemetry["available"] is False and r.telemetry["reason"]
        assert r.summary["gpu_util_mean"] is None  # nothing invented without NVML
        assert r.run.validity["valid"] and not r.run.validity["saturated"], r.run.validity
        assert_recomputes(r)
    assert loaded[0].summary["padding_waste_frac"] > 0  # static batches pad prompts
    assert loaded[1].summary["padding_waste_frac"] == 0  # continuous does not
    rows = list(csv.DictReader((tmp_path / "t" / "fixed_size" / "requests.csv").open()))
    assert len(rows) == 16 and rows[0]["status"] == "completed"


def test_repeat_writes_one_file_per_trial(cli, tmp_path):
    loaded = run_ok(cli, tmp_path, "--strategy", "latency", "--repeat", "2", "--num-requests", "6")
    assert [r.run.trial for r in loaded] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "latency_optimized-trial1",
        "latency_optimized-trial2",
    ]


def test_rejections_are_counted_not_fatal(cli, tmp_path):
    (r,) = run_ok(cli, tmp_path, "--strategy", "continuous", "--max-model-len", "200", "--max-failed-pct", "100",
                  "--max-rejected-pct", "100")  # fmt: skip
    assert r.run.validity["checks"]["max_rejected_share"]  # limits raised: VALID; by default 3/16 would not be
    s = r.summary
    assert s["rejected"] > 0 and s["completed"] + s["failed"] == 16
    assert s["failed"] == s["rejected"] + s["cancelled"] + s["errored"]
    assert all("exceeds the model context 200" in x.reason for x in r.requests if x.status == "rejected")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--strategy", "fastest"], "unknown strategy 'fastest'"),
        (["--set", "max_num_seqz=4"], "unknown SchedulerConfig field"),
        (["--set", "max_num_seqs=many"], "'many' is not a valid value for max_num_seqs"),
        (["--set", "max_num_seqs=0"], "max_num_seqs"),
        (["--slo", "ttft=5"], "--slo 'ttft=5'"),
        (["--workload", "nope/missing.csv"], "missing.csv"),
        (["--max-model-len", "40"], "exceed the model context of 40 tokens"),
        (["--engine", "sim", "--profile", "no-such-profile"], "no-such-profile"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, args, expected):
    code, out, err = cli("run", *FAST, "--out", str(tmp_path), *args)
    assert code == 2, (out, err)
    assert expected in err and err.strip().count("\n") == 0 and "Traceback" not in err


def test_ctrl_c_saves_partial_result(cli, tmp_path, monkeypatch):
    from inferneo_bench.engine.torch_engine import TorchEngine

    original = TorchEngine.step
    calls = {"n": 0}

    def interrupting_step(self, plan):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt
        return original(self, plan)

    monkeypatch.setattr(TorchEngine, "step", interrupting_step)
    code, out, err = cli("run", *FAST, "--out", str(tmp_path), "--run-id", "t", "--strategy", "fixed,continuous")
    assert code == 130 and "interrupted" in err
    (path,) = out.split()  # the second strategy never started
    r = results.load(path)
    assert r.run.status == "interrupted" and not r.run.validity["valid"]
    assert any(x.status == "cancelled" for x in r.requests)
    assert len(r.requests) == 16 and all(x.status != "pending" for x in r.requests)
    assert_recomputes(r)


def test_result_file_is_json_with_the_contract_keys(cli, tmp_path):
    (r,) = run_ok(cli, tmp_path, "--strategy", "adaptive", "--num-requests", "4")
    data = json.loads((tmp_path / "t" / "adaptive" / "result.json").read_text())
    assert list(data) == list(results.TOP_LEVEL_KEYS)
    for key in (
        "completed",
        "request_throughput",
        "output_throughput",
        "mean_ttft_ms",
        "p99_itl_ms",
        "median_e2el_ms",
        "std_tpot_ms",
        "arrival_lag_p99_ms",
        "harness_overhead_frac",
    ):
        assert key in data["summary"]
    assert data["strategy"]["stats"]["total_requests"] == 4


def test_demo_runs_every_strategy_through_run(cli, tmp_path):
    code, out, err = cli("demo", "--engine", "sim", "--profile", "tiny-cpu", "--out", str(tmp_path))
    assert code == 0, err
    assert "pad avoided" in out and "VALID: all 6 results" in out and "INVALID" not in out
    (run_dir,) = (p for p in tmp_path.iterdir() if p.name != "latest")
    assert (tmp_path / "latest").resolve() == run_dir.resolve()
    assert f"next: inferneo-bench compare {run_dir}" in " ".join(out.split())
    assert sorted(p.stem for p in run_dir.iterdir()) == sorted(
        ["fixed_size", "adaptive", "coalescing", "latency_optimized", "throughput_optimized", "continuous"]
    )


def test_sim_runs_are_deterministic_and_recompute(cli, tmp_path):
    args = [
        "run",
        "--engine",
        "sim",
        "--profile",
        "tiny-cpu",
        "--strategy",
        "all",
        "--workload",
        "priority-mix",
        "--num-requests",
        "60",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    assert cli(*args, "--run-id", "a")[0] == 0 and cli(*args, "--run-id", "b")[0] == 0
    for path in sorted((tmp_path / "a").iterdir()):
        a, b = results.load(path), results.load(tmp_path / "b" / path.name)
        assert a.summary == b.summary and a.requests == b.requests
        for sa, sb in zip(a.steps, b.steps, strict=True):  # all but the wall time the scheduler took to plan
            sa.scheduler_us = sb.scheduler_us
            assert sa == sb
        assert a.model["simulated_from"]["device_type"] == "cpu"
        assert_recomputes(a)


def test_all_six_strategies_on_the_real_model_recompute_exactly(cli, tmp_path):
    loaded = run_ok(cli, tmp_path, "--strategy", "all", "--num-requests", "24", "--time-scale", "4")
    assert [r.strategy["name"] for r in loaded] == [
        "fixed_size",
        "adaptive",
        "coalescing",
        "latency_optimized",
        "throughput_optimized",
        "continuous",
    ]
    for r in loaded:
        s = r.summary
        assert s["completed"] + s["failed"] == 24 and s["failed"] == s["rejected"] + s["cancelled"] + s["errored"]
        assert_recomputes(r)


def test_scheduler_never_runs_more_sequences_than_kv_slots(cli, tmp_path):
    import types

    from inferneo_bench.runner.session import fit_to_engine
    from inferneo_bench.scheduler import SchedulerConfig

    fitted = fit_to_engine(
        SchedulerConfig(max_num_seqs=64, max_num_partial_prefills=16), types.SimpleNamespace(num_slots=8)
    )
    assert (fitted.max_num_seqs, fitted.max_num_partial_prefills) == (8, 8)
    (r,) = run_ok(
        cli, tmp_path, "--strategy", "continuous", "--set", "max_num_seqs=48", "--set", "max_num_partial_prefills=8"
    )
    assert r.model["num_slots"] == 48 and r.strategy["config"]["max_num_seqs"] == 48
    assert r.summary["completed"] == 16 and r.summary["failed"] == 0
