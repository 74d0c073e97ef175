"""The design document's API: its snippets run verbatim (import lines aside), its demo flow, its units and
stats meanings, config coercion, and the facade's own semantics. Exact decisions on a virtual clock."""

from __future__ import annotations

import ast
import asyncio
import functools
import inspect
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seed_demo import DemoRequest, DynamicBatchingDemo
from test_scheduler_properties import configs

from inferneo_bench.errors import UserError
from inferneo_bench.runner.clock import VirtualClock
from inferneo_bench.runner.session import scheduler_config
from inferneo_bench.scheduler import (
    RUNNER_DEFAULTS,
    BatchingStrategy,
    BatchMetrics,
    EnhancedScheduler,
    RequestRejected,
    RequestState,
    ScheduledRequest,
    SchedulerConfig,
)

REPO = Path(__file__).resolve().parents[1]
SNIPPETS = dict(
    re.findall(r"^## (\w+)\n\n```python\n(.*?)```", (REPO / "tests/data/seed_snippets.md").read_text(), re.S | re.M)
)
DOC_IMPORT = "from inferneo_bench.scheduler import EnhancedScheduler, BatchingStrategy\n"


async def run_snippet(name: str, namespace: dict, code: str | None = None) -> None:
    """Run one of the document's snippets as written: top-level await allowed, names shared in `namespace`."""
    compiled = compile(code or SNIPPETS[name], f"<{name}>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)  # the document's own snippets, from tests/data
    if inspect.iscoroutine(result):
        await result


QUICK_START_OUTPUT = """\
Total Requests: 1
Queue Depth: 0
Average Wait Time: 0.010s
Average Processing Time: 0.000s
Current Batch Size: 4
Average Throughput: 10.00 req/s
Average Latency: 0.100s
GPU Utilization: 0.80
"""


def virtual_namespace(clock: VirtualClock) -> tuple[str, dict]:
    """The Quick Start with its EnhancedScheduler bound to a virtual clock (its import line changed)."""
    code = SNIPPETS["quick_start"].replace(DOC_IMPORT, "from inferneo_bench.scheduler import BatchingStrategy\n")
    assert code != SNIPPETS["quick_start"]
    return code, {"DemoRequest": DemoRequest, "EnhancedScheduler": functools.partial(EnhancedScheduler, clock=clock)}


def new_scheduler(strategy: str = "fixed_size", clock: VirtualClock | None = None, **config) -> EnhancedScheduler:
    return EnhancedScheduler(SchedulerConfig(**config), strategy, clock=clock or VirtualClock(100.0))


def run(coro):
    return asyncio.run(coro)


def test_the_snippets_are_the_documents() -> None:
    assert sorted(SNIPPETS) == sorted(
        [
            "quick_start",
            "config_options",
            "strategy_adaptive",
            "strategy_coalescing",
            "strategy_latency_optimized",
            "strategy_throughput_optimized",
            "real_time_metrics",
            "custom_priorities",
            "strategy_switching",
            "cancellation",
            "debug_logging",
        ]
    )
    assert (
        "await scheduler.complete_batch(batch[0].batch_id, processing_time, gpu_utilization, memory_usage)"
        in (SNIPPETS["quick_start"])
    )


# ---- the Quick Start and the README snippets, verbatim ---------------------------------------------------
def test_quick_start_on_a_virtual_clock_waits_the_fill_delay_and_prints_the_stats(capsys) -> None:
    clock = VirtualClock(100.0)
    code, ns = virtual_namespace(clock)

    async def main() -> None:
        await run_snippet("quick_start", ns, code)
        await run_snippet("real_time_metrics", ns)

    run(main())
    (item,) = ns["batch"]
    assert (item.batch_id, item.request_id, item.prompt, item.priority) == ("batch_0", "req_001", "Hello, world!", 5)
    # adaptive waits up to its fill delay (max_queue_delay_ms, 10 ms) for more requests, then sends the one
    assert (item.created_at, item.start_time, item.end_time) == (100.0, 100.01, 100.01)
    assert item.state is RequestState.COMPLETED and (item.prompt_length, item.estimated_tokens) == (2, 52)
    assert capsys.readouterr().out == QUICK_START_OUTPUT
    assert ns["scheduler"].is_running() is False  # cleanup stopped it


def test_the_readme_shows_the_quick_start_as_written_and_what_it_prints() -> None:
    readme = (REPO / "README.md").read_text()
    assert f"```python\n{SNIPPETS['quick_start']}```" in readme
    assert f"```\n{QUICK_START_OUTPUT}```" in readme


def test_quick_start_on_the_wall_clock(capsys) -> None:
    ns: dict = {"DemoRequest": DemoRequest}

    async def main() -> None:
        await run_snippet("quick_start", ns)
        await run_snippet("real_time_metrics", ns)

    run(main())
    (item,) = ns["batch"]
    assert item.batch_id == "batch_0" and item.start_time - item.created_at >= 0.0099  # it waited to fill
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["Total Requests: 1", "Queue Depth: 0"] and re.fullmatch(r"Average Wait Time: 0\.\d{3}s", out[2])
    assert out[4:] == [
        "Current Batch Size: 4",
        "Average Throughput: 10.00 req/s",
        "Average Latency: 0.100s",
        "GPU Utilization: 0.80",
    ]


def test_metrics_snippet_on_a_fresh_scheduler_prints_nan_for_what_was_never_measured(capsys) -> None:
    ns = {"scheduler": new_scheduler()}
    run(run_snippet("real_time_metrics", ns))
    assert capsys.readouterr().out.splitlines() == [
        "Total Requests: 0",
        "Queue Depth: 0",
        "Average Wait Time: nans",
        "Average Processing Time: nans",
        "Current Batch Size: 4",
        "Average Throughput: nan req/s",
        "Average Latency: nans",
        "GPU Utilization: nan",
    ]


def test_config_options_snippet() -> None:
    config = eval(SNIPPETS["config_options"], {"SchedulerConfig": SchedulerConfig})
    assert isinstance(config, SchedulerConfig)
    assert (config.max_num_partial_prefills, config.max_waiting_tokens, config.long_prefill_token_threshold) == (
        4,
        2048,
        8192,
    )
    assert config.preemption_mode == "recompute" and config.enable_chunked_prefill and config.enable_priority_queue


@pytest.mark.parametrize("name", ["adaptive", "coalescing", "latency_optimized", "throughput_optimized"])
def test_strategy_snippets(name: str) -> None:
    ns = {"scheduler": new_scheduler("fixed_size"), "BatchingStrategy": BatchingStrategy}
    run(run_snippet(f"strategy_{name}", ns))
    assert ns["scheduler"].strategy.value == name
    assert ns["scheduler"].get_batching_stats()["batching_strategy"] == name


def test_custom_priorities_snippet_highest_first() -> None:
    async def main() -> list:
        scheduler = new_scheduler("fixed_size")
        ns = {"DemoRequest": DemoRequest, "scheduler": scheduler}
        await run_snippet("custom_priorities", ns)
        await scheduler.initialize()
        await scheduler.add_request(ns["low_priority_request"])
        await scheduler.add_request(ns["high_priority_request"])
        return [r.request_id for r in await scheduler.get_next_batch()]

    assert run(main()) == ["urgent_001", "background_001"]


@pytest.mark.parametrize(
    ("latency", "throughput", "expected"),
    [(True, False, "latency_optimized"), (False, True, "throughput_optimized"), (False, False, "adaptive")],
)
def test_strategy_switching_snippet(latency: bool, throughput: bool, expected: str) -> None:
    ns = {
        "scheduler": new_scheduler("fixed_size"),
        "BatchingStrategy": BatchingStrategy,
        "high_latency_workload": latency,
        "high_throughput_workload": throughput,
    }
    run(run_snippet("strategy_switching", ns))
    assert ns["scheduler"].strategy.value == expected


def test_cancellation_snippet_cancels_a_waiting_request_at_once(capsys) -> None:
    async def main() -> dict:
        scheduler = new_scheduler("adaptive")
        await scheduler.initialize()
        await scheduler.add_request(DemoRequest("req_001", "Hello, world!", 50))
        ns = {"scheduler": scheduler}
        await run_snippet("cancellation", ns)  # right after add: the request waits, so it can be cancelled
        await run_snippet("cancellation", ns)  # already cancelled: False, prints nothing
        return scheduler.get_stats()

    stats = run(main())
    assert capsys.readouterr().out == "Request cancelled successfully\n"
    assert (stats["total_requests"], stats["cancelled_requests"], stats["queue_depth"]) == (1, 1, 0)


def test_debug_logging_snippet_shows_the_schedulers_log(caplog) -> None:
    root = logging.getLogger()
    level = root.level
    try:
        run(run_snippet("debug_logging", {}))
        with caplog.at_level(logging.DEBUG, logger="inferneo_bench.scheduler"):
            new_scheduler().set_batching_strategy(BatchingStrategy.COALESCING)
    finally:
        root.setLevel(level)
    assert "Batching strategy changed to: coalescing" in caplog.text


# ---- the document's demo, ported ---------------------------------------------------------------------------
def test_demo_port_dispatches_every_request_with_the_documents_figures() -> None:
    lines: list[str] = []
    demo = DynamicBatchingDemo(scale=0.1, seed=0, log=lines.append)
    runs = run(demo.run_demo())
    assert [r.name for r in runs] == ["Adaptive", "Coalescing", "Latency-Optimized", "Throughput-Optimized"]
    for r in runs:
        assert sum(r.batch_sizes) == r.requests  # every request dispatched; none lost, none twice
        assert (r.stats["queue_size"], r.stats["coalescing_buckets"]) == (0, 0)
        for key, value in r.document.items():  # the document's definitions on the same batches
            assert r.stats[key] == pytest.approx(value, rel=1e-12), (r.name, key)
    coalescing, latency, throughput = runs[1], runs[2], runs[3]
    assert coalescing.batch_sizes == [4, 4, 4, 4, 4, 4, 1]  # prompts of 40-60 words: one bucket (0-63)
    assert max(latency.batch_sizes) == 2 and latency.stats["current_batch_size"] == 2
    assert throughput.batch_sizes == [30] and throughput.stats["current_batch_size"] == 32
    final = demo.final_stats
    assert (final["total_requests"], final["completed_requests"], final["running_requests"]) == (90, 90, 0)
    assert len(demo.reported) == sum(len(r.batch_sizes) for r in runs) == final["batches_completed"]
    assert any(line.startswith("Average Wait Time: ") for line in lines)


# ---- units -------------------------------------------------------------------------------------------------
def test_gpu_utilization_is_a_fraction_and_over_utilization_shrinks_adaptive() -> None:
    async def main() -> None:
        scheduler = new_scheduler("adaptive")
        await scheduler.initialize()
        for i in range(4):
            await scheduler.add_request(DemoRequest(f"a{i}", "one two", 10))
        batch = await scheduler.get_next_batch()
        assert len(batch) == 4  # full at the cap: no wait
        with pytest.raises(
            ValueError, match=r"gpu_utilization=85.0: must be a fraction between 0 and 1 \(0.85 = 85%\)"
        ):
            await scheduler.complete_batch(batch[0].batch_id, 0.1, 85.0, 0.5)
        with pytest.raises(ValueError, match="memory_usage=512: must be a fraction"):
            await scheduler.complete_batch(batch[0].batch_id, 0.1, 0.5, 512)
        assert await scheduler.complete_batch(batch[0].batch_id, 0.1, 0.95, 0.5)
        stats = scheduler.get_batching_stats()
        assert stats["current_batch_size"] == 3  # 0.95: over-utilized, the document's rule shrinks by 1
        assert stats["cap_changes"] == ["cap 4->3: gpu util 95% > 90% (over-utilized)"]
        for i in range(3):
            await scheduler.add_request(DemoRequest(f"b{i}", "one two", 10))
        batch = await scheduler.get_next_batch()
        await scheduler.complete_batch(batch[0].batch_id, 0.05, 0.5, None)  # 600 tok/s beat 400, util < 60%
        stats = scheduler.get_batching_stats()
        assert stats["current_batch_size"] == 5
        assert stats["cap_changes"][-1] == (
            "cap 3->5: 600.0 tok/s beat 400.0 tok/s of previous batch at cap 4, gpu util 50% < 60%"
        )
        assert stats["avg_gpu_utilization"] == pytest.approx(0.725)  # fractions, as reported
        assert stats["avg_memory_usage"] == pytest.approx(0.5)  # the batch without a figure is left out
        assert stats["avg_output_tokens_per_s"] == pytest.approx(70 / 0.15)  # the core's own figure, own name

    run(main())


def test_the_runner_keeps_reading_percent_and_its_rule_set() -> None:
    """The runner's NVML path passes percent to the core; its defaults switch the over-utilization rule off."""
    from inferneo_bench.scheduler import SchedRequest, SchedulerCore

    config = scheduler_config({}, {})
    assert (config.gpu_util_high_pct, config.priority_aging_ms) == (None, 1000.0)
    core = SchedulerCore(config, "adaptive")
    for i in range(4):
        core.add(SchedRequest(f"r{i}", 4, 10, arrival_s=0.0), 0.0)
    batch_id, _ = core.dispatch(0.0)
    with pytest.raises(ValueError, match="percentage between 0 and 100"):
        core.complete_batch(batch_id, 0.1, 0.1, 101.0)
    core.complete_batch(batch_id, 0.1, 0.1, 97.0)  # busy GPU, first full batch: grows as before
    assert core.batching_stats()["current_batch_size"] == 5 and core.batching_stats()["avg_gpu_util_pct"] == 97.0


# ---- stats ---------------------------------------------------------------------------------------------------
def test_stats_have_the_documents_meanings_on_a_hand_computed_case() -> None:
    async def main() -> None:
        clock = VirtualClock(100.0)
        scheduler = new_scheduler("fixed_size", clock, max_queue_delay_ms=10, enable_priority_queue=False)
        await scheduler.initialize()
        for i in range(6):
            assert await scheduler.add_request(DemoRequest(f"r{i}", "a b c", 7)) == f"r{i}"
        first = await scheduler.get_next_batch()  # 4 wait: full, dispatched at once (t=100)
        assert [r.request_id for r in first] == ["r0", "r1", "r2", "r3"] and clock.now() == 100.0
        second = await scheduler.get_next_batch()  # 2 left: they wait out the 10 ms fill delay
        assert [r.request_id for r in second] == ["r4", "r5"] and clock.now() == pytest.approx(100.01)
        assert scheduler.get_stats()["current_batch_tokens"] == 6 * 10  # both batches out: 6 x (3 + 7)
        clock.sleep_until(100.5)
        await scheduler.complete_batch(first[0].batch_id, 0.5, None, None)
        await scheduler.complete_batch(second[0].batch_id, 0.1, 0.4, 0.25)
        stats = scheduler.get_stats()
        assert stats["avg_batch_size"] == 3.0
        assert stats["avg_throughput"] == pytest.approx((4 / 0.5 + 2 / 0.1) / 2)  # req/s, per batch, averaged
        assert stats["avg_latency"] == pytest.approx((0.5 / 4 + 0.1 / 2) / 2)  # s per request
        assert stats["avg_gpu_utilization"] == pytest.approx(0.4) and stats["avg_memory_usage"] == 0.25
        assert stats["avg_wait_time"] == pytest.approx(2 * 0.01 / 6)  # handed out - added, completed requests
        assert stats["avg_processing_time"] == pytest.approx((4 * 0.5 + 2 * (0.5 - 0.01)) / 6)  # ended - handed out
        assert (stats["total_requests"], stats["completed_requests"], stats["waiting_requests"]) == (6, 6, 0)
        assert (stats["queue_depth"], stats["queue_size"], stats["current_batch_tokens"]) == (0, 0, 0)
        assert (stats["current_batch_size"], stats["batching_strategy"], stats["coalescing_buckets"]) == (
            4,
            "fixed_size",
            0,
        )
        assert stats["batches_completed"] == 2 and stats["batches_out"] == 0
        metrics = scheduler.batch_metrics
        assert isinstance(metrics[0], BatchMetrics) and metrics[0].batch_id == "batch_0"
        assert math.isnan(metrics[0].gpu_utilization) and metrics[1].throughput == pytest.approx(20.0)
        assert metrics[1].total_tokens == 20 and metrics[1].latency == pytest.approx(0.05)

    run(main())


def test_batch_averages_cover_the_last_20_batches_as_the_document() -> None:
    async def main() -> None:
        scheduler = new_scheduler("latency_optimized", max_num_partial_prefills=2)  # batches of 1
        await scheduler.initialize()
        for i in range(21):
            await scheduler.add_request(DemoRequest(f"r{i}", "x", 1))
            (item,) = await scheduler.get_next_batch()
            await scheduler.complete_batch(item.batch_id, 0.5 if i == 0 else 1.0, None, None)
        stats = scheduler.get_batching_stats()
        assert stats["avg_latency"] == 1.0 and stats["batches_completed"] == 21
        assert math.isnan(stats["avg_gpu_utilization"])  # never reported: NaN, never a made-up 0

    run(main())


def test_coalescing_buckets_is_a_count_and_small_prompts_group() -> None:
    async def main() -> None:
        scheduler = new_scheduler("coalescing", max_queue_delay_ms=100)
        await scheduler.initialize()
        for i, words in enumerate([3, 70, 5, 80, 300, 4, 2]):
            await scheduler.add_request(DemoRequest(f"r{i}", " ".join(["w"] * words), 4))
        stats = scheduler.get_batching_stats()
        assert stats["coalescing_buckets"] == 3  # 0-63, 64-127, 256-319
        assert stats["coalescing_bucket_depths"] == {"0-63": 4, "64-127": 2, "256-319": 1}
        batch = await scheduler.get_next_batch()  # bucket 0 holds 4 = the cap: a batch of short prompts at once
        assert [r.request_id for r in batch] == ["r0", "r2", "r5", "r6"]

    run(main())


# ---- requests, batches, states -----------------------------------------------------------------------------
def test_add_request_returns_the_id_and_refusals_raise_and_count() -> None:
    async def main() -> None:
        scheduler = new_scheduler(max_priority_levels=3)
        with pytest.raises(RuntimeError, match="initialize"):
            await scheduler.add_request(DemoRequest("a", "x", 1))
        await scheduler.initialize()
        assert await scheduler.add_request(DemoRequest("a", "x", 1, priority=3)) == "a"
        with pytest.raises(
            RequestRejected, match=r"priority=4: must be between 1 \(lowest\) and max_priority_levels=3"
        ):
            await scheduler.add_request(DemoRequest("b", "x", 1, priority=4))
        with pytest.raises(RequestRejected, match="duplicate request_id 'a'"):
            await scheduler.add_request(DemoRequest("a", "x", 1))
        with pytest.raises(ValueError, match="missing `max_tokens`"):
            await scheduler.add_request(DemoRequest("c", "x", None))  # type: ignore[arg-type]
        stats = scheduler.get_stats()
        assert (stats["total_requests"], stats["rejected_requests"], stats["queue_depth"]) == (3, 2, 1)

    run(main())


def test_complete_request_ends_a_running_request_once() -> None:
    async def main() -> None:
        clock = VirtualClock(100.0)
        scheduler = new_scheduler("fixed_size", clock, max_num_partial_prefills=3)
        await scheduler.initialize()
        for rid in ("a", "b", "c"):
            await scheduler.add_request(DemoRequest(rid, "x y", 5))
        assert await scheduler.complete_request("a") is False  # waiting, not running
        a, b, c = await scheduler.get_next_batch()
        assert a.state is RequestState.RUNNING and a.start_time == 100.0
        clock.sleep_until(100.2)
        assert await scheduler.complete_request("a", success=True, processing_time=0.2, gpu_utilization=0.7)
        assert await scheduler.complete_request("b", success=False)
        assert (a.state, a.end_time, b.state) == (RequestState.COMPLETED, 100.2, RequestState.FAILED)
        with pytest.raises(ValueError, match="gpu_utilization=70: must be a fraction"):
            await scheduler.complete_request("c", gpu_utilization=70)
        clock.sleep_until(100.3)
        assert await scheduler.complete_batch(a.batch_id, 0.3, 0.7, 0.5)  # c still running: completes now
        assert (c.state, c.end_time) == (RequestState.COMPLETED, 100.3)
        assert await scheduler.complete_request("c") is False  # already ended with its batch
        assert await scheduler.complete_batch(a.batch_id, 0.3, 0.7, 0.5) is False  # not out any more
        stats = scheduler.get_stats()
        assert (stats["completed_requests"], stats["failed_requests"], stats["running_requests"]) == (2, 1, 0)
        assert stats["avg_processing_time"] == pytest.approx((0.2 + 0.3) / 2)  # completed ones only
        assert stats["avg_batch_size"] == 3 and stats["output_tokens"] == 10

    run(main())


def test_several_batches_out_at_once_for_static_strategies() -> None:
    async def main() -> None:
        scheduler = new_scheduler("fixed_size", max_num_partial_prefills=2)
        await scheduler.initialize()
        for i in range(5):
            await scheduler.add_request(DemoRequest(f"r{i}", "x", 3))
        b0 = await scheduler.get_next_batch()
        b1 = await scheduler.get_next_batch()
        assert [r.batch_id for r in b0 + b1] == ["batch_0"] * 2 + ["batch_1"] * 2
        assert scheduler.get_stats()["running_requests"] == 4 and scheduler.get_batching_stats()["batches_out"] == 2
        with pytest.raises(RuntimeError, match="cannot switch from fixed_size to continuous"):
            scheduler.set_batching_strategy("continuous")
        assert await scheduler.complete_batch("batch_1", 0.2, None, None)
        assert await scheduler.complete_batch("batch_0", 0.4, None, None)
        (last,) = await scheduler.get_next_batch()  # the fifth waited out the fill delay
        assert last.batch_id == "batch_2" and last.request_id == "r4"

    run(main())


def test_continuous_hands_out_one_step_at_a_time() -> None:
    async def main() -> None:
        clock = VirtualClock(100.0)
        scheduler = new_scheduler("continuous", clock)
        await scheduler.initialize()
        await scheduler.add_request(DemoRequest("a", "one two three", 2))
        await scheduler.add_request(DemoRequest("b", "one two", 5))
        s0 = await scheduler.get_next_batch()
        assert [r.request_id for r in s0] == ["a", "b"] and s0[0].batch_id == "batch_0"
        assert await scheduler.get_next_batch() == [] and clock.now() == 100.0  # the step is out: no wait
        await scheduler.complete_batch("batch_0", 0.01)
        s1 = await scheduler.get_next_batch()
        assert [r.batch_id for r in s1] == ["batch_1", "batch_1"] and s1[0] is s0[0]
        await scheduler.complete_batch("batch_1", 0.01, finished=["b"])  # a reaches max_tokens, b its EOS
        assert (s0[0].state, s0[1].state) == (RequestState.COMPLETED, RequestState.COMPLETED)
        assert scheduler.get_stats()["completed_requests"] == 2

    run(main())


def test_get_next_batch_waits_only_its_timeout_when_nothing_can_dispatch() -> None:
    async def main() -> None:
        clock = VirtualClock(100.0)
        scheduler = new_scheduler("throughput_optimized", clock, max_queue_delay_ms=10)
        await scheduler.initialize()
        assert scheduler.dynamic_timeout() == pytest.approx(0.04)  # throughput: 4 x max_queue_delay_ms
        assert await scheduler.get_next_batch() == [] and clock.now() == pytest.approx(100.04)
        assert await scheduler.get_next_batch(timeout=0.5) == [] and clock.now() == pytest.approx(100.54)
        await scheduler.add_request(DemoRequest("a", "x", 1))
        t = clock.now()
        (item,) = await scheduler.get_next_batch(timeout=1.0)  # dispatched at its fill delay, not the timeout
        assert clock.now() - t == pytest.approx(0.04) and item.start_time == clock.now()
        scheduler.set_batching_strategy("latency_optimized")
        assert scheduler.dynamic_timeout() == 0.0

    run(main())


def test_a_consumer_that_polls_without_sleeping_lets_the_producer_run() -> None:
    """The document's loop shape on the wall clock: the consumer never sleeps itself, yet every request of a
    producer adding one per millisecond is dispatched (get_next_batch yields and waits on the event loop)."""

    async def main() -> dict:
        scheduler = EnhancedScheduler(SchedulerConfig(max_queue_delay_ms=5), "adaptive")
        await scheduler.initialize()
        seen: list[str] = []

        async def producer() -> None:
            for i in range(30):
                await scheduler.add_request(DemoRequest(f"r{i}", "a b c", 4))
                await asyncio.sleep(0.001)

        async def consumer() -> None:
            calls = 0
            while len(seen) < 30:
                calls += 1
                assert calls < 100_000, "consumer spun without the producer running"
                batch = await scheduler.get_next_batch()
                if batch:
                    seen.extend(r.request_id for r in batch)
                    await scheduler.complete_batch(batch[0].batch_id, 0.001, None, None)

        await asyncio.wait_for(asyncio.gather(producer(), consumer()), timeout=30)
        await scheduler.stop()
        return scheduler.get_stats()

    stats = run(main())
    assert stats["completed_requests"] == 30 and stats["total_requests"] == 30


def test_stop_cancels_what_is_left_and_is_running_says_so() -> None:
    async def main() -> None:
        scheduler = new_scheduler("fixed_size", max_num_partial_prefills=2)
        assert scheduler.is_running() is False
        await scheduler.initialize()
        assert scheduler.is_running() is True
        for i in range(3):
            await scheduler.add_request(DemoRequest(f"r{i}", "x", 1))
        running = await scheduler.get_next_batch()
        await scheduler.stop()
        assert scheduler.is_running() is False
        assert {r.state for r in running} == {RequestState.CANCELLED}
        stats = scheduler.get_stats()
        assert (stats["cancelled_requests"], stats["queue_depth"], stats["running_requests"]) == (3, 0, 0)
        assert math.isnan(stats["avg_wait_time"])  # nothing completed
        with pytest.raises(RuntimeError, match="not running"):
            await scheduler.get_next_batch()

    run(main())


def test_scheduled_requests_give_access_to_the_callers_object() -> None:
    @dataclass(frozen=True)
    class Frozen:
        request_id: str
        prompt_tokens: list[int]
        max_tokens: int
        tenant: str = "acme"

    async def main() -> None:
        scheduler = new_scheduler("latency_optimized")
        await scheduler.initialize()
        original = Frozen("f", [1, 2, 3], 4)
        await scheduler.add_request(original)
        (item,) = await scheduler.get_next_batch()
        assert isinstance(item, ScheduledRequest) and item.request is original
        assert (item.tenant, item.prompt_tokens, item.prompt_length, item.estimated_tokens) == ("acme", [1, 2, 3], 3, 7)
        with pytest.raises(AttributeError):
            _ = item.no_such_field

    run(main())


# ---- priority order -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("config", "first"), [(SchedulerConfig(), "high"), (scheduler_config({}, {}), "low")])
def test_priority_order_strict_in_the_facade_aged_in_the_runner(config: SchedulerConfig, first: str) -> None:
    """The facade's default is the document's strict priority order; the runner ages (+1 per 1000 ms)."""

    async def main() -> str:
        clock = VirtualClock(0.0)
        scheduler = EnhancedScheduler(config, "latency_optimized", clock=clock)
        await scheduler.initialize()
        await scheduler.add_request(DemoRequest("low", "x", 1, priority=1))
        clock.sleep_until(9.5)  # nothing asks for a batch meanwhile
        await scheduler.add_request(DemoRequest("high", "x", 1, priority=10))
        return (await scheduler.get_next_batch())[0].request_id

    assert run(main()) == first


# ---- configuration -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [  # what the document's pydantic model (lax mode) makes of each
        ("max_num_partial_prefills", "4", 4),
        ("max_num_partial_prefills", " 4 ", 4),
        ("max_num_partial_prefills", "+4", 4),
        ("max_num_partial_prefills", "4.0", 4),
        ("max_num_partial_prefills", 4.0, 4),
        ("max_waiting_tokens", "4_096", 4096),
        ("enable_priority_queue", "yes", True),
        ("enable_priority_queue", "Off", False),
        ("enable_priority_queue", "t", True),
        ("enable_chunked_prefill", 0, False),
        ("enable_chunked_prefill", 1.0, True),
        ("max_queue_delay_ms", "2.5", 2.5),
        ("max_queue_delay_ms", 3, 3.0),
        ("target_tpot_ms", "1e2", 100.0),
        ("max_priority_levels", "5", 5),
    ],
)
def test_config_coerces_values_as_the_documents_model(field: str, value: object, expected: object) -> None:
    got = getattr(SchedulerConfig(**{field: value}), field)
    assert got == expected and type(got) is type(expected)


def test_config_accepts_the_documents_fields_and_ranges() -> None:
    config = SchedulerConfig(
        enable_chunked_prefill=True,
        max_num_partial_prefills=64,  # a cap above 32: max_num_seqs follows
        long_prefill_token_threshold=8192,
        preemption_mode="swap",
        max_waiting_tokens="4096",
        enable_priority_queue=True,
        max_priority_levels=10,
    )
    assert (config.max_num_partial_prefills, config.max_num_seqs, config.max_waiting_tokens) == (64, 64, 4096)
    assert SchedulerConfig(max_waiting_tokens=16).max_num_seqs == 16  # a step budget under 32 lowers the default
    assert SchedulerConfig().max_num_seqs == 32
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_num_partial_prefill'"):
        SchedulerConfig(max_num_partial_prefill=4)  # type: ignore[call-arg]  # a typo is refused, not ignored


def test_the_runner_defaults_are_the_committed_baselines() -> None:
    """`inferneo-bench run` (and .ci/perf-check) still use the configuration the CI baselines were made with."""
    from inferneo_bench import results

    baseline = results.load_summary(REPO / "results/baseline/sim/adaptive").strategy["config"]
    runner = scheduler_config({}, {}).to_dict()
    assert {k: runner[k] for k in baseline} == baseline
    assert set(runner) - set(baseline) <= {"max_priority_levels", "gpu_util_high_pct"}  # fields newer than it
    assert RUNNER_DEFAULTS == {"priority_aging_ms": 1000.0, "gpu_util_high_pct": None}
    assert (runner["max_priority_levels"], runner["gpu_util_high_pct"]) == (10, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_num_partial_prefills", 0),
        ("max_num_partial_prefills", 4.5),
        ("max_num_partial_prefills", "4.5"),
        ("max_num_partial_prefills", True),
        ("max_waiting_tokens", -1),
        ("max_num_seqs", 2.5),
        ("long_prefill_token_threshold", 0),
        ("max_priority_levels", 0),
        ("bucket_width_tokens", 0),
        ("kv_cache_tokens", 0),
        ("preemption_mode", "drop"),
        ("preemption_mode", 3),
        ("enable_priority_queue", "2"),
        ("enable_priority_queue", 0.5),
        ("max_queue_delay_ms", -1),
        ("max_queue_delay_ms", "soon"),
        ("target_tpot_ms", 0),
        ("priority_aging_ms", float("nan")),
        ("gpu_util_high_pct", 0.0),
        ("gpu_util_high_pct", 150),
    ],
)
def test_invalid_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{field}=") as info:
        SchedulerConfig(**{field: value})
    assert isinstance(info.value, UserError)


def test_cross_field_validation() -> None:
    with pytest.raises(ValueError, match="^max_num_partial_prefills=8: must not exceed max_num_seqs=4"):
        SchedulerConfig(max_num_partial_prefills=8, max_num_seqs=4)
    with pytest.raises(ValueError, match="^max_waiting_tokens=16: must be >= max_num_seqs=32"):
        SchedulerConfig(max_waiting_tokens=16, max_num_seqs=32)


def test_strategy_names_and_aliases() -> None:
    assert [s.value for s in BatchingStrategy] == [
        "fixed_size",
        "adaptive",
        "coalescing",
        "latency_optimized",
        "throughput_optimized",
        "continuous",
    ]
    assert BatchingStrategy.parse("fixed") is BatchingStrategy.FIXED_SIZE
    assert BatchingStrategy.parse("Latency") is BatchingStrategy.LATENCY_OPTIMIZED
    assert BatchingStrategy.parse("throughput-optimized") is BatchingStrategy.THROUGHPUT_OPTIMIZED
    with pytest.raises(UserError, match="unknown batching strategy; use one of fixed_size, adaptive"):
        BatchingStrategy.parse("greedy")


# ---- the facade under random use ------------------------------------------------------------------------------
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 90), st.integers(1, 6), st.integers(0, 11)),
        st.tuples(st.just("wait"), st.sampled_from([0.0, 0.001, 0.004, 0.02])),
        st.tuples(st.just("next"), st.sampled_from([None, 0.0, 0.003])),
        st.tuples(st.just("complete_batch"), st.integers(0, 3), st.sampled_from([None, 0.3, 0.95])),
        st.tuples(st.just("complete_request"), st.integers(0, 30), st.booleans()),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
    ),
    max_size=40,
)


ENDED = {RequestState.COMPLETED, RequestState.FAILED, RequestState.CANCELLED}


@pytest.mark.parametrize("strategy", ["fixed_size", "adaptive", "coalescing", "latency_optimized", "continuous"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs(), ops=OPS)
def test_facade_invariants_under_random_use(strategy: str, config: SchedulerConfig, ops: list[tuple]) -> None:
    """Every request ends exactly once and counts add up; no request is in two batches out; a batch never
    exceeds the strategy's size; get_next_batch returns [] only when nothing waited at the call (static
    strategies); states mirror the core; stats follow the document's definitions."""
    static = strategy != "continuous"

    async def main() -> None:
        clock = VirtualClock(0.0)
        scheduler = EnhancedScheduler(config, strategy, clock=clock)
        core = scheduler.core
        await scheduler.initialize()
        seen: dict[str, ScheduledRequest] = {}  # every request handed out at least once
        out: dict[str, list[ScheduledRequest]] = {}
        added = rejected = 0
        for op in ops:
            kind = op[0]
            if kind == "add":
                added += 1
                try:
                    await scheduler.add_request(DemoRequest(f"r{added - 1}", " ".join(["w"] * op[1]), op[2], op[3]))
                except RequestRejected:
                    rejected += 1
            elif kind == "wait":
                clock.sleep_until(clock.now() + op[1])
            elif kind == "next":
                waiting = scheduler.get_stats()["queue_depth"]
                cap = scheduler.get_batching_stats()["current_batch_size"]
                batch = await scheduler.get_next_batch(timeout=op[1])
                if static and op[1] is None:
                    assert bool(batch) == (waiting > 0)
                if batch:
                    ids = [r.request_id for r in batch]
                    assert len(set(ids)) == len(ids) and {r.batch_id for r in batch} == {batch[0].batch_id}
                    assert all(r.state is RequestState.RUNNING for r in batch)
                    if static:
                        assert len(batch) <= cap
                        assert not set(ids) & {r.request_id for b in out.values() for r in b}
                    out[batch[0].batch_id] = batch
                    seen.update((r.request_id, r) for r in batch)
            elif kind == "complete_batch" and out:
                batch_id = sorted(out)[op[1] % len(out)]
                assert await scheduler.complete_batch(batch_id, 0.05, op[2], None)
                members = out.pop(batch_id)
                assert not static or all(r.state in ENDED for r in members)
            elif kind == "complete_request":
                rid = f"r{op[1]}"
                before = core.state_of(rid)
                ok = await scheduler.complete_request(rid, success=op[2])
                assert ok == (before in ("running", "swapped"))
                if ok:
                    expected = RequestState.COMPLETED if op[2] else RequestState.FAILED
                    assert (seen[rid].state, seen[rid].end_time) == (expected, clock.now())
            elif kind == "cancel":
                rid = f"r{op[1]}"
                before = core.state_of(rid)
                assert await scheduler.cancel_request(rid) == (before in ("waiting", "running", "swapped"))
            for rid, r in seen.items():
                state = core.state_of(rid)
                assert r.state.value == ("waiting" if state == "swapped" else state)
        await scheduler.stop()
        assert all(r.state in ENDED and r.end_time is not None for r in seen.values())
        stats = scheduler.get_stats()
        ended = sum(stats[f"{k}_requests"] for k in ("completed", "failed", "cancelled", "rejected"))
        assert stats["total_requests"] == added == ended and stats["rejected_requests"] == rejected
        assert (stats["queue_depth"], stats["running_requests"]) == (0, 0)
        recent = scheduler.batch_metrics[-20:]
        if recent:
            throughput = sum(m.batch_size / m.processing_time for m in recent) / len(recent)
            assert stats["avg_throughput"] == pytest.approx(throughput)
            assert stats["avg_batch_size"] == pytest.approx(sum(m.batch_size for m in recent) / len(recent))
        else:
            assert math.isnan(stats["avg_throughput"]) and math.isnan(stats["avg_latency"])

    run(main())
