"""The server's engine loop without threads or HTTP: driven step by step on a virtual clock with the simulated
engine, so every event and time is exact."""

from __future__ import annotations

from inferneo_bench.engine.sim_engine import load_sim_engine
from inferneo_bench.runner.clock import VirtualClock
from inferneo_bench.scheduler import SchedulerConfig, SchedulerCore
from inferneo_bench.serve.engine_loop import Admitted, EngineLoop, Finished, Job, Token


def make_loop(strategy="continuous", **config):
    engine = load_sim_engine("tiny-cpu", max_num_seqs=8)
    clock = VirtualClock()
    loop = EngineLoop(lambda: SchedulerCore(SchedulerConfig(**config), strategy), engine, clock=clock)
    return loop, engine, clock


def submit(loop, rid, prompt, max_tokens):
    events = []
    loop.submit(Job(rid, list(range(prompt)), max_tokens, events.append))
    return events


def run_until_idle(loop, clock, limit=1000):
    for _ in range(limit):
        wait = loop.tick()
        if wait == float("inf"):
            return
        if wait:
            clock.sleep_until(clock.now() + wait)
    raise AssertionError("the loop did not go idle")


def test_every_request_streams_max_tokens_then_one_finished_event():
    loop, engine, clock = make_loop()
    a, b = submit(loop, "a", 5, 3), submit(loop, "b", 9, 1)
    run_until_idle(loop, clock)
    for events, n in ((a, 3), (b, 1)):
        assert isinstance(events[0], Admitted) and isinstance(events[-1], Finished)
        assert [e.index for e in events if isinstance(e, Token)] == list(range(1, n + 1))
        done = events[-1]
        assert done.status == "completed" and done.timing.output_tokens == n
        assert done.timing.received_s == 0.0 and done.timing.scheduled_s == 0.0
        assert 0 < done.timing.first_token_s <= done.timing.finish_s
    # continuous batching: both prefilled in the first step, so their first tokens share its end
    assert a[-1].timing.first_token_s == b[-1].timing.first_token_s
    assert loop.stats.ended["completed"] == 2 and loop.stats.running == 0
    assert engine.kv_slots_used == 0 and not engine._base  # finished sequences are forgotten


def test_cancel_mid_stream_frees_the_kv_slot_at_once():
    loop, engine, clock = make_loop()
    events = submit(loop, "a", 4, 100)
    loop.tick()  # admit, prefill: first token
    loop.tick()  # one decode
    assert engine.kv_slots_used == 1 and loop.stats.running == 1
    loop.cancel("a")
    assert loop.tick() == float("inf")  # the cancel applied, nothing left to run: wait for the next request
    assert engine.kv_slots_used == 0 and not engine._base
    assert events[-1].status == "cancelled" and events[-1].reason == "client disconnected"
    assert events[-1].timing.output_tokens == 2


def test_scheduler_rejection_and_internal_error_end_requests_and_the_loop_goes_on():
    loop, engine, clock = make_loop(kv_cache_tokens=64)
    big = submit(loop, "big", 60, 10)  # 70 tokens can never fit a 64-token KV budget
    loop.tick()
    assert big == [Finished("rejected", big[0].reason, big[0].timing)] and "kv_cache_tokens=64" in big[0].reason
    victim = submit(loop, "v", 4, 5)
    broken = loop.core

    def bug(now):
        raise RuntimeError("scheduler bug")

    broken.plan = bug
    assert loop.tick() is None  # the error is contained
    assert victim[-1].status == "failed" and victim[-1].reason == "internal error: RuntimeError: scheduler bug"
    assert loop.core is not broken  # a fresh core
    after = submit(loop, "after", 4, 2)
    run_until_idle(loop, clock)
    assert after[-1].status == "completed" and loop.stats.ended == {
        "completed": 1, "cancelled": 0, "failed": 1, "rejected": 1
    }  # fmt: skip


def test_stop_drains_running_requests_then_cancels_what_is_left():
    from inferneo_bench.serve.engine_loop import STOP

    loop, engine, clock = make_loop()
    short, long = submit(loop, "short", 4, 3), submit(loop, "long", 4, 10_000)
    loop.tick()
    drain_s = 0.5
    loop.stop(drain_s)  # no thread here: only queues the command
    late = submit(loop, "late", 4, 2)
    waits = []
    while (wait := loop.tick()) != STOP:
        waits.append(wait)
    assert short[-1].status == "completed"  # finished within the drain time
    assert long[-1].status == "cancelled" and long[-1].reason == "server shutting down"
    assert clock.now() >= drain_s and 0 < long[-1].timing.output_tokens < 10_000
    assert late == [Finished("rejected", "server shutting down", late[0].timing)]
    assert engine.kv_slots_used == 0
