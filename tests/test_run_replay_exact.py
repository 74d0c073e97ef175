"""The replay loop with the real scheduler core on a virtual clock: exact per-request timings for a static
and a continuous strategy, and every request accounted for under rejections, time-outs and failures.

The fake engine costs 10 ms + 1 ms per computed token (padding and idle slots included)."""

from __future__ import annotations

import pytest

from inferneo_bench.runner.clock import VirtualClock
from inferneo_bench.runner.replay import ReplayOptions, replay
from inferneo_bench.scheduler import SchedulerConfig, SchedulerCore
from tests.fakes import FakeEngine, Spec

WORKLOAD = [Spec("A", 0.000, 4, 2), Spec("B", 0.010, 6, 3), Spec("C", 0.100, 4, 1)]


def run(strategy, specs=WORKLOAD, engine=None, **config):
    core = SchedulerCore(SchedulerConfig(**config), strategy)
    return replay(specs, core, engine or FakeEngine(), VirtualClock(), ReplayOptions(max_model_len=128))


def by_id(outcome):
    return {r.request_id: r for r in outcome.requests}


def test_fixed_size_exact_timings():
    # A waits for a second request; B arrives at 10 ms and fills the batch of 2. Prefill padded to 6 tokens
    # x 2 rows = 12 computed -> 22 ms. Decode of both: 12 ms. Then A is finished but its slot idles: 12 ms.
    # C arrives at 100 ms alone and leaves after the 50 ms fill delay: prefill 4 -> 14 ms.
    out = run("fixed_size", max_num_partial_prefills=2, max_queue_delay_ms=50)
    r = by_id(out)
    assert r["A"].scheduled_s == pytest.approx(0.010) and r["B"].scheduled_s == pytest.approx(0.010)
    assert r["A"].first_token_s == pytest.approx(0.032) and r["A"].finish_s == pytest.approx(0.044)
    assert r["B"].first_token_s == pytest.approx(0.032) and r["B"].finish_s == pytest.approx(0.056)
    assert r["B"].itl_s == pytest.approx([0.012, 0.012])
    assert r["C"].scheduled_s == pytest.approx(0.150) and r["C"].finish_s == pytest.approx(0.164)
    assert [(s.batch_size, s.new_tokens, s.padded_tokens, s.idle_slots) for s in out.steps] == [
        (2, 10, 2, 0),
        (2, 2, 0, 0),
        (2, 1, 1, 1),
        (1, 4, 0, 0),
    ]


def test_continuous_exact_timings():
    # A prefills alone (14 ms); at 14 ms B has arrived: A's decode + B's prefill in one unpadded step
    # (7 tokens, 17 ms); then B decodes alone (11 ms x 2). C prefills at its arrival (14 ms).
    out = run("continuous", max_num_seqs=4)
    r = by_id(out)
    assert r["A"].first_token_s == pytest.approx(0.014) and r["A"].finish_s == pytest.approx(0.031)
    assert r["B"].scheduled_s == pytest.approx(0.014)
    assert r["B"].first_token_s == pytest.approx(0.031) and r["B"].finish_s == pytest.approx(0.053)
    assert r["B"].itl_s == pytest.approx([0.011, 0.011])
    assert r["C"].scheduled_s == pytest.approx(0.100) and r["C"].finish_s == pytest.approx(0.114)
    assert all(s.padded_tokens == 0 for s in out.steps)


STRATEGIES = ["fixed_size", "adaptive", "coalescing", "latency_optimized", "throughput_optimized", "continuous"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_nothing_lost(strategy):
    specs = [Spec(f"r{i}", 0.003 * i, 4 + (7 * i) % 40, 1 + (5 * i) % 30) for i in range(40)]
    specs.append(Spec("too-long", 0.01, 120, 20))  # over the 128-token context: rejected
    engine = FakeEngine(fail={5: "CUDA out of memory (injected)"})
    core = SchedulerCore(SchedulerConfig(max_num_seqs=8), strategy)
    out = replay(specs, core, engine, VirtualClock(), ReplayOptions(max_model_len=128, request_timeout_s=0.4))
    statuses = [r.status for r in out.requests]
    counts = {s: statuses.count(s) for s in ("completed", "failed", "rejected", "cancelled")}
    assert sum(counts.values()) == len(specs)
    assert counts["rejected"] == 1 and counts["failed"] >= 1 and counts["completed"] >= 1
    for r in out.requests:
        if r.status == "completed":
            assert r.output_tokens == r.target_output_tokens and len(r.itl_s) == r.output_tokens - 1
