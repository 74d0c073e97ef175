"""Hand-made arrival sequences with the exact expected batches and steps for every strategy."""

from __future__ import annotations

import pytest
from scheduler_sim import Arrival, Checker

from inferneo_bench.scheduler import SchedRequest, SchedulerConfig, SchedulerCore
from inferneo_bench.steps import Idle, SeqStep, StepPlan, StepResult


def arr(rid: str, t: float, prompt: int, max_tokens: int = 2, priority: int = 5, out: int | None = None) -> Arrival:
    return Arrival(t, SchedRequest(rid, prompt, max_tokens, priority, t), out if out is not None else max_tokens)


def wakes(trace) -> list[float]:
    return [round(i.wake_at, 6) for _, i in trace.idles if i.wake_at is not None]


def fcfs(**kw) -> SchedulerConfig:
    return SchedulerConfig(enable_priority_queue=False, **kw)


def result(plan: StepPlan, step_s: float = 0.01) -> StepResult:
    tokens = {s.seq_id: 1 for s in plan.seqs if s.samples and not s.idle}
    return StepResult(step_s, tokens, plan.useful_tokens, plan.computed_tokens - plan.useful_tokens)


def steps(plan: StepPlan) -> list[tuple]:
    return [(s.seq_id, s.start_pos, s.num_tokens, s.samples) + (("idle",) if s.idle else ()) for s in plan.seqs]


# ---- static strategies ------------------------------------------------------------------------------------
def test_fixed_size_fills_to_cap_or_waits_for_the_delay() -> None:
    cfg = fcfs(max_num_partial_prefills=2, max_num_seqs=4, max_waiting_tokens=1000, max_queue_delay_ms=10)
    a = [arr("a", 0.0, 10), arr("b", 0.001, 20), arr("c", 0.002, 30), arr("d", 0.030, 40)]
    trace = Checker(cfg, "fixed_size", a).run()
    assert trace.batches() == [["a", "b"], ["c"], ["d"]]
    assert wakes(trace) == [0.010, 0.012, 0.040]  # a alone waits for b; c and d dispatch at their delay
    assert [round(t, 6) for t, p in trace.plans if p.seqs[0].start_pos == 0] == [0.001, 0.012, 0.040]


def test_fixed_size_token_budget_cuts_the_batch_and_is_exceeded_only_alone() -> None:
    cfg = fcfs(max_num_partial_prefills=4, max_num_seqs=4, max_waiting_tokens=100, max_queue_delay_ms=10)
    a = [arr("a", 0.0, 30), arr("b", 0.0, 40), arr("c", 0.0, 20), arr("d", 0.0, 150), arr("e", 0.0, 10)]
    trace = Checker(cfg, "fixed", a).run()
    # a,b: 2x40=80 fits; +c: 3x40=120 > 100. c alone then d (150) would make 2x150; d runs alone; then e.
    assert trace.batches() == [["a", "b"], ["c"], ["d"], ["e"]]


def test_static_batch_steps_padding_idle_slots_and_free() -> None:
    core = SchedulerCore(fcfs(max_num_partial_prefills=2, max_num_seqs=2, max_waiting_tokens=100), "fixed")
    core.add(SchedRequest("a", 5, 3, arrival_s=0.0), 0.0)
    core.add(SchedRequest("b", 8, 3, arrival_s=0.0), 0.0)
    p1 = core.plan(0.0)
    assert (p1.padded, p1.batch_id, steps(p1)) == (True, 1, [("a", 0, 5, True), ("b", 0, 8, True)])
    assert p1.computed_tokens == 16
    core.complete_step(p1, result(p1), [], 0.01)
    p2 = core.plan(0.01)
    assert steps(p2) == [("a", 5, 1, True), ("b", 8, 1, True)]
    core.complete_step(p2, result(p2), ["a"], 0.02)  # a reached EOS: its slot stays, idle
    p3 = core.plan(0.02)
    assert steps(p3) == [("a", 6, 1, False, "idle"), ("b", 9, 1, True)]
    core.complete_step(p3, result(p3), [], 0.03)  # b reaches max_tokens=3
    assert core.state_of("a") == core.state_of("b") == "completed"
    core.add(SchedRequest("c", 4, 1, arrival_s=0.03), 0.03)
    p4 = core.plan(0.04)
    assert p4.free == ["a", "b"] and p4.batch_id == 2 and steps(p4) == [("c", 0, 4, True)]
    bs = core.batching_stats()
    assert bs["padding_tokens"] == 3 and bs["idle_slot_tokens"] == 1
    assert bs["avg_tpot_ms"] == pytest.approx(10.0) and core.stats()["avg_batch_time_s"] == pytest.approx(0.03)


def test_latency_optimized_dispatches_at_once_half_cap_half_budget() -> None:
    cfg = fcfs(max_num_partial_prefills=4, max_num_seqs=4, max_waiting_tokens=1000, max_queue_delay_ms=50)
    a = [arr("a", 0.0, 10), arr("b", 0.0, 10), arr("c", 0.0, 10), arr("d", 0.1, 300), arr("e", 0.1, 300)]
    trace = Checker(cfg, "latency", a).run()
    assert trace.batches() == [["a", "b"], ["c"], ["d"], ["e"]]  # cap 2; 2x300 > budget 500
    assert wakes(trace) == []  # never waits to fill
    assert [round(t, 6) for t, p in trace.plans if p.seqs[0].start_pos == 0][:1] == [0.0]


def test_throughput_optimized_waits_four_delays_to_fill_max_num_seqs() -> None:
    cfg = fcfs(max_num_partial_prefills=1, max_num_seqs=3, max_waiting_tokens=1000, max_queue_delay_ms=10)
    a = [arr("a", 0.0, 10), arr("b", 0.005, 10)] + [arr(x, 0.1, 10) for x in "cde"]
    trace = Checker(cfg, "throughput", a).run()
    assert trace.batches() == [["a", "b"], ["c", "d", "e"]]
    assert wakes(trace) == [0.040, 0.040]
    assert [round(t, 6) for t, p in trace.plans if p.seqs[0].start_pos == 0] == [0.040, 0.1]


def test_coalescing_batches_by_bucket_and_tops_up_from_nearest_after_delay() -> None:
    cfg = fcfs(
        max_num_partial_prefills=2,
        max_num_seqs=2,
        max_waiting_tokens=1000,
        max_queue_delay_ms=10,
        bucket_width_tokens=16,
    )
    a = [arr("a", 0.0, 10), arr("b", 0.001, 40), arr("c", 0.002, 12), arr("d", 0.003, 45)]
    a += [arr("e", 0.1, 10), arr("f", 0.101, 40), arr("g", 0.102, 70)]
    checker = Checker(cfg, "coalescing", a)
    trace = checker.run()
    # a's bucket fills with c (b is in another bucket); then b,d; then e waits its delay and takes the nearest f
    assert trace.batches() == [["a", "c"], ["b", "d"], ["e", "f"], ["g"]]
    bs = checker.core.batching_stats()
    assert bs["coalescing_padding_tokens"] == 2 + 5 + 30 + 0
    assert bs["coalescing_padding_avoided_tokens"] == 28  # [a,b] would have padded 30, [a,c] pads 2


def test_coalescing_buckets_are_reported() -> None:
    core = SchedulerCore(SchedulerConfig(bucket_width_tokens=64, max_queue_delay_ms=100), "coalescing")
    for i, p in enumerate([10, 70, 80, 300]):
        core.add(SchedRequest(f"r{i}", p, 4, arrival_s=0.0), 0.0)
    bs = core.batching_stats()
    assert bs["coalescing_bucket_depths"] == {"0-63": 1, "64-127": 2, "256-319": 1} and bs["coalescing_buckets"] == 3


# ---- adaptive ---------------------------------------------------------------------------------------------
def run_batch(core: SchedulerCore, now: float, decode_s: float, gpu: float | None = None) -> tuple[StepPlan, float]:
    """Run the batch dispatched at `now` to its end; returns its prefill plan and the end time."""
    plan = core.plan(now)
    first = plan
    while isinstance(plan, StepPlan) and plan.batch_id == first.batch_id:
        now += decode_s
        core.complete_step(plan, result(plan, decode_s), [], now, gpu_utilization=gpu)
        if core.num_running == 0:
            break
        plan = core.plan(now)
    return first, now


def test_adaptive_aimd_on_target_tpot_with_reasons() -> None:
    cfg = fcfs(max_num_partial_prefills=2, max_num_seqs=8, max_waiting_tokens=1000, target_tpot_ms=50)
    core = SchedulerCore(cfg, "adaptive")
    for i in range(12):
        core.add(SchedRequest(f"r{i}", 10, 3, arrival_s=0.0), 0.0)
    first, now = run_batch(core, 0.0, 0.040)
    assert len(first.seqs) == 2
    plan = core.plan(now)
    assert plan.events == ["cap 2->3: batch tpot 40.0ms met target 50ms"] and len(plan.seqs) == 3
    core.complete_step(plan, result(plan, 0.06), [], now + 0.06)
    for _ in range(2):
        p = core.plan(now)
        core.complete_step(p, result(p, 0.06), [], now + 0.06)
    plan = core.plan(now + 0.2)
    assert plan.events == ["cap 3->2: batch tpot 60.0ms missed target 50ms"] and len(plan.seqs) == 2
    core.complete_step(plan, result(plan, 0.03), [], now, gpu_utilization=40.0)
    for _ in range(2):
        p = core.plan(now)
        core.complete_step(p, result(p, 0.03), [], now, gpu_utilization=40.0)
    plan = core.plan(now)
    assert plan.events == ["cap 2->4: batch tpot 30.0ms met target 50ms, gpu util 40% < 60%"]
    bs = core.batching_stats()
    assert bs["batch_cap"] == 4 and bs["avg_gpu_util_pct"] == pytest.approx(40.0)
    assert bs["cap_changes"] == [
        "cap 2->3: batch tpot 40.0ms met target 50ms",
        "cap 3->2: batch tpot 60.0ms missed target 50ms",
        "cap 2->4: batch tpot 30.0ms met target 50ms, gpu util 40% < 60%",
    ]


def test_adaptive_without_target_follows_tokens_per_second() -> None:
    cfg = fcfs(max_num_partial_prefills=2, max_num_seqs=8, max_waiting_tokens=1000)
    core = SchedulerCore(cfg, "adaptive")
    for i in range(20):
        core.add(SchedRequest(f"r{i}", 10, 2, arrival_s=0.0), 0.0)
    _, now = run_batch(core, 0.0, 0.010)  # 2 seqs x 2 tokens / 20 ms = 200 tok/s
    p = core.plan(now)
    assert p.events == ["cap 2->3: first full batch: 200.0 tok/s"]
    core.complete_step(p, result(p, 0.010), [], now)
    p2 = core.plan(now)
    core.complete_step(p2, result(p2, 0.010), [], now)  # 3 x 2 / 20 ms = 300 tok/s
    p = core.plan(now)
    assert p.events == ["cap 3->4: 300.0 tok/s beat 200.0 tok/s of previous batch at cap 2"]
    core.complete_step(p, result(p, 0.040), [], now)
    p2 = core.plan(now)
    core.complete_step(p2, result(p2, 0.040), [], now)  # 4 x 2 / 80 ms = 100 tok/s
    p = core.plan(now)
    assert p.events == ["cap 4->3: 100.0 tok/s below 300.0 tok/s of previous batch at cap 3"]


def test_adaptive_fill_delay_shrinks_with_arrival_rate() -> None:
    cfg = fcfs(max_num_partial_prefills=4, max_num_seqs=8, max_waiting_tokens=1000, max_queue_delay_ms=10)
    core = SchedulerCore(cfg, "adaptive")
    assert core.policy.delay_s() == pytest.approx(0.010)  # no rate observed yet
    for i in range(3):
        core.add(SchedRequest(f"r{i}", 10, 2, arrival_s=i * 0.001), i * 0.001)
    # gaps of 1 ms -> 1000 req/s -> a batch of 4 fills in 4 ms < 10 ms
    assert core.policy.delay_s() == pytest.approx(0.004)
    assert core.plan(0.002) == Idle(pytest.approx(0.004))
    assert isinstance(core.plan(0.004), StepPlan)


# ---- continuous -------------------------------------------------------------------------------------------
def test_continuous_chunked_prefill_decode_first_and_free() -> None:
    cfg = fcfs(max_num_partial_prefills=2, max_num_seqs=2, max_waiting_tokens=16, long_prefill_token_threshold=8)
    core = SchedulerCore(cfg, "continuous")
    core.add(SchedRequest("a", 20, 2, arrival_s=0.0), 0.0)
    core.add(SchedRequest("b", 5, 1, arrival_s=0.0), 0.0)
    expected = [
        ([("a", 0, 8, False), ("b", 0, 5, True)], []),
        ([("a", 8, 8, False)], ["b"]),
        ([("a", 16, 4, True)], []),
        ([("a", 20, 1, True)], []),
    ]
    for i, (seqs, free) in enumerate(expected):
        p = core.plan(i * 0.01)
        assert (steps(p), p.free, p.padded) == (seqs, free, False)
        if i == 2:
            core.add(SchedRequest("c", 3, 1, arrival_s=0.025), 0.025)
            core.complete_step(p, result(p), [], 0.03)
            p = core.plan(0.03)  # the running decode goes first, then c's prefill
            assert steps(p) == [("a", 20, 1, True), ("c", 0, 3, True)]
            core.complete_step(p, result(p), [], 0.04)
            break
        core.complete_step(p, result(p), [], (i + 1) * 0.01)
    assert core.state_of("a") == core.state_of("c") == "completed"
    assert core.plan(0.05) == Idle(None) and not core.has_work


def test_continuous_admission_respects_kv_capacity_and_max_num_seqs() -> None:
    cfg = fcfs(max_num_partial_prefills=4, max_num_seqs=4, max_waiting_tokens=100, kv_cache_tokens=30)
    core = SchedulerCore(cfg, "continuous")
    for rid in "abc":
        core.add(SchedRequest(rid, 10, 4, arrival_s=0.0), 0.0)  # 14 KV slots each: two fit in 30
    p = core.plan(0.0)
    assert [s.seq_id for s in p.seqs] == ["a", "b"]
    assert core.add(SchedRequest("big", 20, 11, arrival_s=0.0), 0.0) == (
        "prompt_tokens+max_tokens=31 can never fit kv_cache_tokens=30"
    )


@pytest.mark.parametrize("mode", ["recompute", "swap"])
def test_continuous_preemption_by_higher_priority_arrival(mode: str) -> None:
    cfg = SchedulerConfig(
        max_num_partial_prefills=1,
        max_num_seqs=1,
        max_waiting_tokens=64,
        priority_aging_ms=None,
        preemption_mode=mode,
    )
    core = SchedulerCore(cfg, "continuous")
    core.add(SchedRequest("a", 4, 5, priority=1, arrival_s=0.0), 0.0)
    for i in range(2):
        p = core.plan(i * 0.01)
        core.complete_step(p, result(p), [], (i + 1) * 0.01)
    assert core.add(SchedRequest("b", 3, 1, priority=9, arrival_s=0.015), 0.015) is None
    p3 = core.plan(0.02)
    assert steps(p3) == [("b", 0, 3, True)] and p3.preempted == ["a"]
    assert p3.events == [f"preempt a ({mode}): priority 9 arrival needs room"]
    assert (p3.free, p3.swap_out) == ((["a"], []) if mode == "recompute" else ([], ["a"]))
    core.complete_step(p3, result(p3), [], 0.03)
    p4 = core.plan(0.03)
    if mode == "recompute":  # a redoes its prefill over prompt + the 2 tokens it had, and samples its 3rd
        assert (steps(p4), p4.free, p4.swap_in) == ([("a", 0, 6, True)], ["b"], [])
    else:  # a's KV comes back and it continues decoding
        assert (steps(p4), p4.free, p4.swap_in) == ([("a", 5, 1, True)], ["b"], ["a"])
    assert core.stats()["preemptions"] == 1


def test_equal_priority_never_preempts() -> None:
    cfg = SchedulerConfig(max_num_partial_prefills=1, max_num_seqs=1, max_waiting_tokens=64)
    core = SchedulerCore(cfg, "continuous")
    core.add(SchedRequest("a", 4, 5, priority=5, arrival_s=0.0), 0.0)
    p = core.plan(0.0)
    core.complete_step(p, result(p), [], 0.01)
    core.add(SchedRequest("b", 4, 5, priority=5, arrival_s=0.01), 0.01)
    p = core.plan(0.01)
    assert steps(p) == [("a", 4, 1, True)] and p.preempted == []


# ---- queue order ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("enable", "aging_ms", "high_at", "first"),
    [
        (True, 10.0, 0.015, "high"),  # low has aged 1.5 levels: 2.5 < 3
        (True, 10.0, 0.025, "low"),  # low has aged 2.5 levels when high arrives: 3.5 > 3
        (True, None, 0.025, "high"),  # no aging: priority only
        (False, 10.0, 0.015, "low"),  # FCFS
    ],
)
def test_priority_aging_and_fcfs(enable: bool, aging_ms: float | None, high_at: float, first: str) -> None:
    cfg = SchedulerConfig(enable_priority_queue=enable, priority_aging_ms=aging_ms, max_num_partial_prefills=1)
    core = SchedulerCore(cfg, "latency")
    core.add(SchedRequest("low", 10, 1, priority=1, arrival_s=0.0), 0.0)
    core.add(SchedRequest("high", 10, 1, priority=3, arrival_s=high_at), high_at)
    assert [s.seq_id for s in core.plan(0.1).seqs] == [first]


# ---- requests, cancel, rejection -------------------------------------------------------------------------
def test_rejections_with_reasons() -> None:
    core = SchedulerCore(SchedulerConfig(kv_cache_tokens=100), "continuous")
    assert core.add(SchedRequest("a", 10, 5), 0.0) is None
    assert "duplicate request_id 'a'" in core.add(SchedRequest("a", 10, 5), 0.0)
    assert "priority=11" in core.add(SchedRequest("p", 10, 5, priority=11), 0.0)
    assert "both must be >= 1" in core.add(SchedRequest("z", 0, 5), 0.0)
    assert "can never fit kv_cache_tokens=100" in core.add(SchedRequest("big", 90, 11), 0.0)
    assert core.state_of("big") == "rejected" and core.state_of("a") == "waiting"
    stats = core.stats()
    assert (stats["total_requests"], stats["rejected_requests"], stats["queue_depth"]) == (5, 4, 1)


def test_cancel_waiting_running_static_and_continuous() -> None:
    core = SchedulerCore(fcfs(max_num_partial_prefills=2, max_num_seqs=2), "fixed")
    for rid in "abc":
        core.add(SchedRequest(rid, 4, 3), 0.0)
    assert core.cancel("c", 0.0) is True and core.cancel("c", 0.0) is False and core.queue_depth == 2
    p = core.plan(0.0)
    core.complete_step(p, result(p), [], 0.01)
    assert core.cancel("a", 0.01) is True and core.cancel("a", 0.01) is False
    assert steps(core.plan(0.01)) == [("a", 4, 1, False, "idle"), ("b", 4, 1, True)]
    assert core.cancel("nope", 0.01) is False

    core = SchedulerCore(fcfs(max_num_partial_prefills=2, max_num_seqs=2), "continuous")
    for rid in "ab":
        core.add(SchedRequest(rid, 4, 3), 0.0)
    p = core.plan(0.0)
    core.complete_step(p, result(p), [], 0.01)
    assert core.cancel("a", 0.01) is True and core.cancel("a", 0.01) is False
    p = core.plan(0.01)
    assert p.free == ["a"] and steps(p) == [("b", 4, 1, True)]
    assert core.stats()["cancelled_requests"] == 1 and core.num_running == 1


def test_failed_sequences_end_as_failed() -> None:
    core = SchedulerCore(fcfs(max_num_partial_prefills=2, max_num_seqs=2), "continuous")
    core.add(SchedRequest("a", 4, 3), 0.0)
    p = core.plan(0.0)
    core.complete_step(p, StepResult(0.01, {}, 4, 0, failed={"a": "CUDA out of memory"}), [], 0.01)
    assert core.state_of("a") == "failed" and core.plan(0.01) == Idle(None)


def test_strategy_switch_rules() -> None:
    core = SchedulerCore(SchedulerConfig(), "fixed")
    core.add(SchedRequest("a", 4, 3), 0.0)
    p = core.plan(1.0)
    assert isinstance(p, StepPlan)
    core.set_strategy("latency")  # static -> static is fine mid-batch
    with pytest.raises(RuntimeError, match="cannot switch from latency_optimized to continuous"):
        core.set_strategy("continuous")
    assert SeqStep  # imported for readers: plans are lists of SeqStep
