"""Which limit closed each static batch (a record, never a decision), the tie note that names it, and the
saturation test of every run, on the virtual clock with the fake engine (10 ms + 1 ms per computed token)."""

from __future__ import annotations

import pytest

from inferneo_bench.metrics import summarize
from inferneo_bench.report.ties import Schedule, tie_notes
from inferneo_bench.runner.clock import VirtualClock
from inferneo_bench.runner.replay import ReplayOptions, replay
from inferneo_bench.runner.validity import ValidityRules, judge, saturation
from inferneo_bench.scheduler import SchedulerConfig, SchedulerCore
from tests.fakes import FakeEngine, Spec


def run(strategy, specs, **config):
    core = SchedulerCore(SchedulerConfig(**config), strategy)
    return core, replay(specs, core, FakeEngine(), VirtualClock(), ReplayOptions(max_model_len=4096))


def closed(outcome):
    return [s.closed_by for s in outcome.steps if s.closed_by is not None]


def test_each_limit_is_named():
    # request cap: 6 short prompts at t=0, cap 4 -> [4 by the cap], then 2 left, taken at once (the engine came
    # free after their 10 ms delay expired: nothing more to take) -> queue_empty
    _, out = run("fixed_size", [Spec(f"r{i}", 0.0, 8, 2) for i in range(6)])
    assert closed(out) == ["request_cap", "queue_empty"]
    # token budget: prompts of 100 tokens, budget 250 -> two per batch while three or more wait
    _, out = run("fixed_size", [Spec(f"r{i}", 0.0, 100, 2) for i in range(5)], max_waiting_tokens=250,
                 max_num_seqs=8)  # fmt: skip
    assert closed(out) == ["token_budget", "token_budget", "queue_empty"]
    # KV capacity: 2 x (8 + 100) > 200 slots -> one per batch
    _, out = run("fixed_size", [Spec(f"r{i}", 0.0, 8, 100) for i in range(2)], kv_cache_tokens=200)
    assert closed(out) == ["kv_capacity", "queue_empty"]
    # fill delay: one request waits alone on a free engine until its 10 ms delay expires
    _, out = run("fixed_size", [Spec("a", 0.0, 8, 2)])
    assert closed(out) == ["fill_delay"]
    assert out.requests[0].scheduled_s == pytest.approx(0.010)
    # no delay to wait (latency_optimized dispatches whatever waits): queue_empty
    _, out = run("latency_optimized", [Spec("a", 0.0, 8, 2)])
    assert closed(out) == ["queue_empty"]
    # continuous batching forms no static batches
    _, out = run("continuous", [Spec(f"r{i}", 0.0, 8, 2) for i in range(6)])
    assert closed(out) == []


def test_coalescing_names_the_limit_of_its_bucket_batches():
    # prompts 10 (bucket 0) x3 and 100 (bucket 1) x3 at t=0, cap 4: the head's bucket alone is not full, so
    # it waits for the delay, then tops up from bucket 1 until the cap
    specs = [Spec(f"s{i}", 0.0, 10, 2) for i in range(3)] + [Spec(f"l{i}", 0.0, 100, 2) for i in range(3)]
    _, out = run("coalescing", specs)
    assert closed(out) == ["request_cap", "queue_empty"]


def test_close_reasons_are_summarised():
    core, out = run("fixed_size", [Spec(f"r{i}", 0.0, 100, 2) for i in range(5)], max_waiting_tokens=250,
                    max_num_seqs=8)  # fmt: skip
    summary = summarize(out.requests, out.steps)
    assert summary["batch_closed_by"] == {"queue_empty": pytest.approx(1 / 3), "token_budget": pytest.approx(2 / 3)}
    assert core.batching_stats()["batches_closed_by"] == {"queue_empty": 1, "token_budget": 2}


def test_tie_note_names_the_binding_limit():
    # the budget allows two 100-token prompts; fixed's cap (4) and adaptive's (starts at 4, grows only after
    # a full batch, which the budget never allows) never bind: the same batches
    specs = [Spec(f"r{i}", 0.0, 100, 2) for i in range(20)]
    config = dict(max_waiting_tokens=250, max_num_seqs=8)
    schedules = []
    for strategy in ("fixed_size", "adaptive", "latency_optimized"):
        _, out = run(strategy, specs, **config)
        s = summarize(out.requests, out.steps)
        cfg = SchedulerConfig(**config).to_dict()
        schedules.append(Schedule(strategy, s["schedule_digest"], s["batch_closed_by"], cfg))
    (note,) = tie_notes(schedules)
    assert note == (
        "fixed_size == adaptive (the same batches): batches closed by the token budget: fixed_size 90%, "
        "adaptive 90% (max_waiting_tokens=250); raise it to let the cap matter"
    )


def test_saturated_run_is_detected_and_named():
    # 100 requests (prompt 16, output 3: 26 + 11 + 11 = 48 ms each, one at a time) every 24 ms: twice what
    # the engine serves. Request i waits i x (48 - 24) ms: the queue delay grows 1 s per second of arrivals,
    # so the engine served offered / (1 + 1) = 1/48ms = 20.8 req/s of the 41.7 offered.
    specs = [Spec(f"r{i}", 0.024 * i, 16, 3) for i in range(100)]
    _, out = run("fixed_size", specs, max_num_partial_prefills=1, max_queue_delay_ms=0)
    summary = summarize(out.requests, out.steps)
    assert summary["offered_rate"] == pytest.approx(1 / 0.024)
    assert summary["queue_delay_slope"] == pytest.approx(1.0)
    assert summary["served_rate"] == pytest.approx(1 / 0.048)
    verdict = judge(summary, "completed", ValidityRules(min_duration_s=0))
    assert verdict["saturated"] and not verdict["valid"]
    assert "saturated: offered 41.67 req/s, served 20.83" in verdict["failed"]
    # at half the engine's rate nothing queues: not saturated
    specs = [Spec(f"r{i}", 0.096 * i, 16, 3) for i in range(100)]
    _, out = run("fixed_size", specs, max_num_partial_prefills=1, max_queue_delay_ms=0)
    summary = summarize(out.requests, out.steps)
    assert summary["queue_delay_slope"] == pytest.approx(0.0, abs=1e-9)
    assert summary["served_rate"] == pytest.approx(summary["offered_rate"])
    assert not judge(summary, "completed", ValidityRules(min_duration_s=0))["saturated"]


def test_a_short_run_with_scattered_latencies_is_not_saturated():
    # 40 requests, 1 s apart, whose replies vary from 2 to 60 tokens (one at a time: 18 ms + 11 ms a decode,
    # at most 0.7 s): completions straggle by up to 0.65 s after their arrivals, but nothing queues
    specs = [Spec(f"r{i}", 1.0 * i, 8, 2 + (37 * i) % 59) for i in range(40)]
    _, out = run("fixed_size", specs, max_num_partial_prefills=1, max_queue_delay_ms=0)
    summary = summarize(out.requests, out.steps)
    assert abs(summary["queue_delay_slope"]) < 0.05
    assert saturation(summary, ValidityRules()) is None
    assert saturation({**summary, "offered_rate": None}, ValidityRules()) is None  # offline: not judged


def test_saturated_run_says_so_in_its_table(cli, tmp_path):
    # chat at 4 req/s: more than twice what fixed_size serves on the simulated tiny CPU model (1.7 req/s)
    args = ["--engine", "sim", "--profile", "tiny-cpu", "--strategy", "fixed", "--workload", "chat", "--rate", "4"]
    code, out, err = cli("run", *args, "--num-requests", "120", "--out", str(tmp_path), "--run-id", "sat")
    assert code == 4, err  # saved, INVALID
    flat = " ".join(out.split())  # lines wrap at the console's width
    assert "fixed: SATURATED" in flat and "latencies measure the queue" in flat
    assert "INVALID (exit 4); saturated: lower the rate" in flat and "inferneo-bench sweep" in flat
    from inferneo_bench import results

    validity = results.load_summary(tmp_path / "sat" / "fixed_size").run.validity
    assert validity["saturated"] and any(m.startswith("saturated: offered ") for m in validity["failed"])
