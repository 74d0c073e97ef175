"""The seed's async API (Quick Start as a test), config validation and strategy names."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from inferneo_bench.errors import UserError
from inferneo_bench.scheduler import (
    BatchingStrategy,
    EnhancedScheduler,
    ScheduledRequest,
    SchedulerConfig,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Request:  # the test's own request class, as the issue asks
    request_id: str
    prompt: str | list[int]
    max_tokens: int
    priority: int = 5


@dataclass(frozen=True)
class FrozenRequest:
    request_id: str
    prompt_tokens: int
    max_tokens: int


def run(coro):
    return asyncio.run(coro)


def test_quick_start() -> None:
    async def main() -> None:
        clock = FakeClock()
        scheduler = EnhancedScheduler(
            SchedulerConfig(max_num_partial_prefills=4, max_waiting_tokens=2048, enable_priority_queue=True),
            clock=clock,
        )
        await scheduler.initialize()
        scheduler.set_batching_strategy(BatchingStrategy.ADAPTIVE)
        for i in range(6):
            request = Request(f"req_{i:03d}", "tell me a story about a fox", max_tokens=16, priority=5 + (i == 5))
            assert await scheduler.add_request(request) is None
        batch = await scheduler.get_next_batch()
        # full at 4 requests: the priority-6 one first, then arrival order
        assert [r.request_id for r in batch] == ["req_005", "req_000", "req_001", "req_002"]
        assert {r.batch_id for r in batch} == {batch[0].batch_id}
        assert await scheduler.get_next_batch() == []  # one batch outstanding at a time
        clock.t += 0.5
        await scheduler.complete_batch(batch[0].batch_id, 0.5, 85.0, 1024.0)
        ok = await scheduler.cancel_request("req_003")
        assert ok is True and await scheduler.cancel_request("req_003") is False
        assert await scheduler.cancel_request("req_001") is False  # already completed
        stats = scheduler.get_stats()
        bstats = scheduler.get_batching_stats()
        assert stats["total_requests"] == 6 and stats["queue_depth"] == 1
        assert stats["completed_requests"] == 4 and stats["cancelled_requests"] == 1
        assert stats["avg_wait_time"] == 0.0 and stats["avg_processing_time"] == pytest.approx(0.5)
        assert bstats["avg_batch_size"] == 4 and bstats["avg_gpu_utilization"] == 85.0
        assert bstats["avg_memory_usage"] == 1024.0
        assert bstats["avg_throughput"] == pytest.approx(4 * 16 / 0.5)
        assert bstats["avg_tpot_ms"] == pytest.approx(500 / 16)
        assert {"current_batch_size", "avg_latency", "coalescing_buckets", "batch_cap"} <= set(bstats)
        await scheduler.cleanup()
        assert scheduler.get_stats()["cancelled_requests"] == 2

    run(main())


def test_fill_delay_on_injected_clock_and_unmeasured_telemetry_stays_none() -> None:
    async def main() -> None:
        clock = FakeClock()
        scheduler = EnhancedScheduler(SchedulerConfig(max_queue_delay_ms=10), "fixed_size", clock=clock)
        await scheduler.initialize()
        await scheduler.add_request(Request("a", [1, 2, 3], max_tokens=4))
        assert await scheduler.get_next_batch() == []
        assert scheduler.wake_at == pytest.approx(100.010)
        clock.t = 100.010
        batch = await scheduler.get_next_batch()
        assert [r.request_id for r in batch] == ["a"]
        assert await scheduler.complete_batch(batch[0].batch_id, 0.2, None, None) is True
        assert await scheduler.complete_batch(batch[0].batch_id, 0.2, None, None) is False
        bstats = scheduler.get_batching_stats()
        assert bstats["avg_gpu_utilization"] is None and bstats["avg_memory_usage"] is None

    run(main())


def test_objects_that_cannot_take_batch_id_are_wrapped() -> None:
    async def main() -> None:
        scheduler = EnhancedScheduler(SchedulerConfig(), "latency", clock=FakeClock())
        await scheduler.initialize()
        await scheduler.add_request(FrozenRequest("f", 12, 3))
        (item,) = await scheduler.get_next_batch()
        assert isinstance(item, ScheduledRequest) and item.batch_id == 1
        assert item.request_id == "f" and item.prompt_tokens == 12 and item.request == FrozenRequest("f", 12, 3)

    run(main())


def test_continuous_in_the_facade_is_one_step_per_batch() -> None:
    async def main() -> None:
        scheduler = EnhancedScheduler(SchedulerConfig(), "continuous", clock=FakeClock())
        await scheduler.initialize()
        await scheduler.add_request(Request("a", "one two three", max_tokens=2))
        await scheduler.add_request(Request("b", "one two", max_tokens=5))
        b1 = await scheduler.get_next_batch()
        assert [r.request_id for r in b1] == ["a", "b"] and b1[0].batch_id == 1
        await scheduler.complete_batch(1, 0.01, None, None)
        b2 = await scheduler.get_next_batch()
        assert [r.request_id for r in b2] == ["a", "b"] and b2[0].batch_id == 2
        await scheduler.complete_batch(2, 0.01, None, None, finished=["b"])  # a hits max_tokens, b its EOS
        assert await scheduler.get_next_batch() == []
        assert scheduler.get_stats()["completed_requests"] == 2

    run(main())


def test_facade_errors() -> None:
    async def main() -> None:
        scheduler = EnhancedScheduler()
        with pytest.raises(RuntimeError, match="initialize"):
            await scheduler.add_request(Request("a", "x", 1))
        await scheduler.initialize()
        with pytest.raises(ValueError, match="missing `max_tokens`"):
            await scheduler.add_request(Request("a", "x", None))  # type: ignore[arg-type]
        reason = await scheduler.add_request(Request("a", "x", 1, priority=0))
        assert "priority=0" in reason

    run(main())


# ---- config and names -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_num_partial_prefills", 0),
        ("max_waiting_tokens", -1),
        ("max_num_seqs", 2.5),
        ("long_prefill_token_threshold", 0),
        ("bucket_width_tokens", 0),
        ("kv_cache_tokens", 0),
        ("preemption_mode", "drop"),
        ("enable_priority_queue", "yes"),
        ("max_queue_delay_ms", -1),
        ("target_tpot_ms", 0),
        ("priority_aging_ms", float("nan")),
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
        SchedulerConfig(max_waiting_tokens=16)


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
