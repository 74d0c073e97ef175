"""The replay loop on a virtual clock with a fake engine and a one-at-a-time core: exact timings."""

from __future__ import annotations

import pytest

from inferneo_bench.runner.clock import VirtualClock
from inferneo_bench.runner.replay import ReplayOptions, replay
from tests.fakes import FakeEngine, FifoCore, Spec


def run(specs, engine=None, **options):
    engine = engine or FakeEngine()
    return replay(
        specs,
        FifoCore(),
        engine,
        VirtualClock(),
        ReplayOptions(max_model_len=128, **options),
        to_sched_request=lambda s: s,
    )


def test_exact_timings_one_at_a_time():
    # step = 10 ms + 1 ms per computed token. A: prefill 10 (20 ms), two decodes (11 ms each).
    # B arrives at 5 ms, waits for A, prefill 5 (15 ms), one decode (11 ms).
    out = run([Spec("A", 0.0, 10, 3), Spec("B", 0.005, 5, 2)])
    a, b = out.requests
    assert (a.status, b.status) == ("completed", "completed")
    assert a.first_token_s == pytest.approx(0.020)
    assert a.itl_s == pytest.approx([0.011, 0.011])
    assert a.finish_s == pytest.approx(0.042)
    assert b.enqueued_s == pytest.approx(0.020) and b.arrival_lag_s == 0.0
    assert b.scheduled_s == pytest.approx(0.042)
    assert b.first_token_s == pytest.approx(0.057)
    assert b.finish_s == pytest.approx(0.068)
    assert [s.step_ms for s in out.steps] == pytest.approx([20, 11, 11, 15, 11])
    assert [s.start_s for s in out.steps] == pytest.approx([0, 0.020, 0.031, 0.042, 0.057])


def test_idle_gap_jumps_to_next_arrival():
    out = run([Spec("A", 0.0, 4, 1), Spec("B", 5.0, 4, 1)])
    assert out.steps[1].start_s == pytest.approx(5.0)
    assert out.requests[1].first_token_s == pytest.approx(5.014)


def test_nothing_lost_with_rejections_failures_and_timeouts():
    specs = [
        Spec("ok", 0.0, 10, 2),
        Spec("long", 0.0, 120, 20),
        Spec("fake-core-rejects", 0.0, 101, 1),
        Spec("fails", 0.001, 5, 3),
        Spec("slow", 0.002, 10, 50),
        Spec("late", 0.25, 10, 2),
    ]
    engine = FakeEngine(fail={3: "CUDA out of memory (injected)"})
    out = run(specs, engine=engine, request_timeout_s=0.3)
    status = {r.request_id: (r.status, r.reason) for r in out.requests}
    assert status["ok"] == ("completed", None)
    assert status["long"][0] == "rejected" and "exceeds the model context 128" in status["long"][1]
    assert status["fake-core-rejects"] == ("rejected", "too long for the fake core")
    assert status["fails"] == ("failed", "CUDA out of memory (injected)")
    assert status["slow"] == ("cancelled", "client timeout after 0.3 s")
    assert status["late"][0] == "completed"
    assert len(out.requests) == len(specs)
    assert all(r.status in ("completed", "failed", "rejected", "cancelled") for r in out.requests)
    assert sorted(engine.freed) == sorted(["ok", "fails", "slow"])  # the last one ends the run un-freed


def test_warmup_marks_first_requests():
    out = run([Spec(str(i), i * 0.1, 4, 2) for i in range(4)], warmup=2)
    assert [r.warmup for r in out.requests] == [True, True, False, False]


def test_interrupt_cancels_in_flight_and_unsent():
    class Interrupting(FakeEngine):
        def step(self, plan):
            if self.steps == 2:
                raise KeyboardInterrupt
            return super().step(plan)

    out = run([Spec("A", 0.0, 4, 5), Spec("B", 0.0, 4, 5), Spec("C", 9.0, 4, 5)], engine=Interrupting())
    assert out.interrupted
    assert [(r.status, r.reason) for r in out.requests] == [
        ("cancelled", "run interrupted"),
        ("cancelled", "run interrupted"),
        ("cancelled", "not sent: run interrupted"),
    ]
