"""Property tests: random arrivals, priorities, cancellations, failures and configs, every strategy, on a
virtual clock. The Checker (tests/scheduler_sim.py) asserts the invariants on every decision."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scheduler_sim import Arrival, Checker

from inferneo_bench.scheduler import SchedRequest, SchedulerConfig

STRATEGIES = ["fixed_size", "adaptive", "coalescing", "latency_optimized", "throughput_optimized", "continuous"]


@st.composite
def configs(draw) -> SchedulerConfig:
    max_num_seqs = draw(st.integers(1, 8))
    return SchedulerConfig(
        max_num_partial_prefills=draw(st.integers(1, max_num_seqs)),
        max_waiting_tokens=draw(st.integers(max_num_seqs, 300)),
        enable_priority_queue=draw(st.booleans()),
        preemption_mode=draw(st.sampled_from(["recompute", "swap"])),
        enable_chunked_prefill=draw(st.booleans()),
        long_prefill_token_threshold=draw(st.integers(1, 64)),
        max_num_seqs=max_num_seqs,
        max_queue_delay_ms=draw(st.sampled_from([0.0, 1.0, 5.0, 20.0])),
        target_tpot_ms=draw(st.sampled_from([None, 1.1, 1.5, 3.0])),
        bucket_width_tokens=draw(st.sampled_from([4, 16, 64])),
        kv_cache_tokens=draw(st.integers(40, 600)),
        priority_aging_ms=draw(st.sampled_from([None, 2.0, 50.0])),
    )


@st.composite
def workloads(draw) -> list[Arrival]:
    n = draw(st.integers(0, 24))
    t = 0.0
    out = []
    for i in range(n):
        t += draw(st.sampled_from([0.0, 0.0, 0.0005, 0.002, 0.01]))
        cancel = draw(st.one_of(st.none(), st.none(), st.floats(0.0, 0.03)))
        out.append(
            Arrival(
                t=t,
                req=SchedRequest(
                    f"r{i}",
                    prompt_tokens=draw(st.integers(1, 120)),
                    max_tokens=draw(st.integers(1, 8)),
                    priority=draw(st.integers(1, 10)),
                    arrival_s=t,
                ),
                output_len=draw(st.integers(1, 10)),
                cancel_at=None if cancel is None else t + cancel,
                fail=draw(st.integers(0, 19)) == 0,
            )
        )
    return out


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs(), arrivals=workloads())
def test_invariants_hold(strategy: str, config: SchedulerConfig, arrivals: list[Arrival]) -> None:
    Checker(config, strategy, arrivals).run()


@settings(max_examples=60, deadline=None)
@given(config=configs(), arrivals=workloads(), unknown=st.text(min_size=1, max_size=5))
def test_cancel_unknown_is_false(config: SchedulerConfig, arrivals: list[Arrival], unknown: str) -> None:
    checker = Checker(config, "continuous", arrivals)
    checker.run()
    assert checker.core.cancel("never-added-" + unknown, 1.0) is False
    for a in arrivals:  # every request has ended: cancelling again is a no-op
        assert checker.core.cancel(a.req.request_id, 1.0) is False


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=60, deadline=None)
@given(config=configs(), arrivals=workloads(), aging=st.sampled_from([None, 1.0]))
def test_priority_bursts(strategy: str, config: SchedulerConfig, arrivals: list[Arrival], aging) -> None:
    """Priority queue on, everything arriving in a burst: the order checks get to bite at every dispatch."""
    config.enable_priority_queue, config.priority_aging_ms = True, aging
    for a in arrivals:
        a.t = a.req.arrival_s = 0.0
        a.cancel_at = None if a.cancel_at is None else a.cancel_at - a.t
    Checker(config, strategy, arrivals).run()
