"""The server's engine loop: one thread drives the synchronous scheduler core and the engine on the wall clock.

The HTTP side never touches the core or the engine. It hands requests over with `submit` and cancellations
with `cancel` (a thread-safe inbox), and receives events through each request's `sink`, which the engine
thread calls (the HTTP side wraps it with `loop.call_soon_threadsafe`, so a slow client never blocks a step).
Between steps the thread drains its inbox; with nothing to run it blocks on the inbox until a request arrives
or the scheduler's wake-up time (e.g. a batch's fill delay) comes.

Every request ends with exactly one `Finished` event: completed, cancelled (client gone, server stopping),
failed (the engine failed its sequence) or rejected (the scheduler refused it). An exception in the engine
fails the sequences of that step; one anywhere else fails every live request and restarts the core, so the
server keeps serving. Engine-side times (`EngineTiming`) are on this loop's clock: received = the moment
the HTTP side submitted the request (after parsing and tokenising), first token = the end of the step that
sampled it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inferneo_bench.runner.clock import Clock, WallClock
from inferneo_bench.steps import Idle, StepPlan, StepResult

log = logging.getLogger("inferneo_bench.serve")
STOP = -1.0  # EngineLoop.tick: the loop is over


@dataclass
class Job:
    """One generation request, tokenised. `sink(event)` is called on the engine thread."""

    request_id: str
    prompt_ids: list[int]
    max_tokens: int
    sink: Callable[[Any], None]
    priority: int = 5
    received_s: float = 0.0  # set by submit (engine clock)


@dataclass
class EngineTiming:
    """A request's engine-side times, seconds on the loop's clock (None: did not happen)."""

    received_s: float
    prompt_tokens: int
    scheduled_s: float | None = None
    first_token_s: float | None = None
    finish_s: float | None = None
    output_tokens: int = 0
    preemptions: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Durations from the moment the HTTP side handed the request over, in milliseconds: what the server
        reports as `engine_timing` (see docs/serving.md)."""

        def ms(t: float | None) -> float | None:
            return None if t is None else round((t - self.received_s) * 1000.0, 4)

        tpot = None
        if self.output_tokens > 1 and self.first_token_s is not None and self.finish_s is not None:
            tpot = round((self.finish_s - self.first_token_s) / (self.output_tokens - 1) * 1000.0, 4)
        return {
            "queue_ms": ms(self.scheduled_s),
            "ttft_ms": ms(self.first_token_s),
            "e2el_ms": ms(self.finish_s),
            "tpot_ms": tpot,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "preemptions": self.preemptions,
        }


@dataclass(slots=True)
class Admitted:
    """The scheduler queued the request (streaming may start)."""


@dataclass(slots=True)
class Token:
    model_id: int  # the id the engine sampled (in the model's vocabulary)
    index: int  # 1-based position among this request's output tokens


@dataclass(slots=True)
class Finished:
    status: str  # completed | cancelled | failed | rejected
    reason: str | None
    timing: EngineTiming


@dataclass
class _Live:
    job: Job
    timing: EngineTiming
    last_token_s: float = 0.0


@dataclass
class LoopStats:
    """A snapshot of the loop (written by the engine thread after every step; for diagnostics and tests)."""

    running: int = 0
    waiting: int = 0
    kv_slots_used: int = 0
    steps: int = 0
    ended: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("completed", "cancelled", "failed", "rejected"), 0)
    )


class EngineLoop:
    """Drive `core` (scheduler.SchedulerCore) and `engine` (torch or sim) from one thread.

    `core_factory()` builds a fresh core (at start, and after an internal error). `pace`: sleep each step's
    reported time (the simulated engine predicts step times instead of spending them). `metrics`: an object
    with the ServerMetrics hooks, or None. `clock`: the wall clock; tests pass a VirtualClock."""

    def __init__(
        self,
        core_factory: Callable[[], Any],
        engine: Any,
        *,
        pace: bool = False,
        metrics: Any = None,
        clock: Clock | None = None,
    ) -> None:
        self._core_factory = core_factory
        self.core = core_factory()
        self.engine = engine
        self.pace = pace
        self.metrics = metrics
        self.clock = clock or WallClock()
        self.stats = LoopStats()
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._live: dict[str, _Live] = {}
        self._thread: threading.Thread | None = None
        self._stop_at: float | None = None  # set by stop(): serve the live requests until then, then cancel them

    # ---- HTTP side (any thread) --------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        job.received_s = self.clock.now()
        self._inbox.put(("add", job))

    def cancel(self, request_id: str) -> None:
        self._inbox.put(("cancel", request_id))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="inferneo-engine-loop", daemon=True)
        self._thread.start()

    def stop(self, drain_s: float = 0.0, join_timeout_s: float | None = None) -> None:
        """Finish the live requests for up to drain_s seconds, cancel what is left, end the thread."""
        self._inbox.put(("stop", drain_s))
        if self._thread is not None:
            self._thread.join(join_timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- engine thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        wait: float | None = None
        try:
            while wait != STOP:
                wait = self.tick(wait or 0.0)
        finally:
            self._publish()

    def tick(self, block_s: float = 0.0) -> float | None:
        """One round of the loop: apply the queued commands (first waiting up to block_s for one), then plan and
        run one step. Returns how long the next round may wait for commands (inf: until one comes; None: not at
        all), or STOP once stopping and nothing is left. Never raises: an error fails the live requests and
        restarts the scheduler core."""
        try:
            self._drain_inbox(block_s)
            if self._stop_at is not None and (not self._live or self.clock.now() >= self._stop_at):
                for rid in list(self._live):
                    self._cancel(rid, "server shutting down")
                return STOP
            return self._iterate()
        except Exception as exc:  # noqa: BLE001 - a bug must not take the server down
            log.exception("engine loop error; failing the live requests and restarting the scheduler")
            self._recover(f"internal error: {type(exc).__name__}: {exc}")
            return None

    def _drain_inbox(self, block_s: float) -> None:
        """Apply the queued commands; first wait up to block_s (inf: until one comes) when there is none."""
        try:
            if block_s > 0:
                cmd = self._inbox.get(timeout=None if block_s == float("inf") else block_s)
            else:
                cmd = self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            kind, arg = cmd
            if kind == "add":
                self._add(arg)
            elif kind == "cancel":
                self._cancel(arg, "client disconnected")
            elif kind == "stop":
                self._stop_at = self.clock.now() + float(arg)
            try:
                cmd = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _add(self, job: Job) -> None:
        from inferneo_bench.scheduler import SchedRequest

        timing = EngineTiming(received_s=job.received_s, prompt_tokens=len(job.prompt_ids))
        if self._stop_at is not None:
            self._send(job, Finished("rejected", "server shutting down", timing))
            self._count_end("rejected", timing)
            return
        request = SchedRequest(job.request_id, len(job.prompt_ids), job.max_tokens, job.priority, job.received_s)
        reason = self.core.add(request, self.clock.now())
        if reason is not None:
            self._send(job, Finished("rejected", reason, timing))
            self._count_end("rejected", timing)
            return
        try:
            self.engine.add_sequence(job.request_id, len(job.prompt_ids), job.prompt_ids)
        except (ValueError, AssertionError) as exc:  # e.g. ids outside the model's vocabulary
            self.core.cancel(job.request_id, self.clock.now())
            self._send(job, Finished("rejected", str(exc), timing))
            self._count_end("rejected", timing)
            return
        self._live[job.request_id] = _Live(job, timing)
        if self.metrics is not None:
            self.metrics.on_admitted(len(job.prompt_ids))
        self._send(job, Admitted())
        self._publish()

    def _cancel(self, request_id: str, reason: str) -> None:
        state = self._live.get(request_id)
        if state is None:
            return  # already ended
        self.core.cancel(request_id, self.clock.now())
        self._end(state, "cancelled", reason)

    def _end(self, state: _Live, status: str, reason: str | None, now: float | None = None) -> None:
        rid = state.job.request_id
        del self._live[rid]
        state.timing.finish_s = self.clock.now() if now is None else now
        self.engine.forget(rid)  # its KV slot is free now; the core frees it in a later plan too (a no-op then)
        self._count_end(status, state.timing)
        self._send(state.job, Finished(status, reason, state.timing))

    def _count_end(self, status: str, timing: EngineTiming) -> None:
        self.stats.ended[status] += 1
        if self.metrics is not None:
            self.metrics.on_end(status, timing)

    def _send(self, job: Job, event: Any) -> None:
        try:
            job.sink(event)
        except Exception:  # noqa: BLE001 - the HTTP side is gone (e.g. its event loop closed): nothing to tell
            log.debug("could not deliver %s for %s", type(event).__name__, job.request_id)

    def _iterate(self) -> float | None:
        """Plan and run one step; return how long to wait for commands (None: go on at once)."""
        now = self.clock.now()
        plan = self.core.plan(now)
        if isinstance(plan, Idle):
            self._publish()
            wait = float("inf") if plan.wake_at is None else max(0.0, plan.wake_at - now)
            if self._stop_at is not None:
                wait = min(wait, max(0.0, self._stop_at - now))
            return wait if wait > 0 else None
        self._step(plan, now)
        return None

    def _step(self, plan: StepPlan, now: float) -> None:
        live = self._live
        try:
            result = self.engine.step(plan)
        except Exception as exc:  # noqa: BLE001 - fail this step's sequences, keep serving
            log.exception("engine step failed")
            reason = f"engine error: {type(exc).__name__}: {exc}"
            result = StepResult(self.clock.now() - now, {}, 0, 0, {s.seq_id: reason for s in plan.seqs if not s.idle})
        if self.pace:
            remaining = now + result.step_s - self.clock.now()
            if remaining > 0:
                time.sleep(remaining)
        self.clock.after_step(result.step_s)  # a virtual clock (tests) jumps by the step; the wall clock lived it
        t_end = self.clock.now()
        for seq in plan.seqs:
            state = live.get(seq.seq_id)
            if state is not None and not seq.idle and state.timing.scheduled_s is None:
                state.timing.scheduled_s = now
        for rid in plan.preempted:
            if rid in live:
                live[rid].timing.preemptions += 1
        finished: list[str] = []
        produced = 0
        for rid, model_id in result.tokens.items():
            state = live.get(rid)
            if state is None:
                continue
            timing = state.timing
            timing.output_tokens += 1
            produced += 1
            if timing.first_token_s is None:
                timing.first_token_s = t_end
                if self.metrics is not None:
                    self.metrics.on_first_token(t_end - timing.received_s)
            elif self.metrics is not None:
                self.metrics.on_token_gap(t_end - state.last_token_s)
            state.last_token_s = t_end
            self._send(state.job, Token(model_id, timing.output_tokens))
            if timing.output_tokens >= state.job.max_tokens:
                finished.append(rid)
        failed = [(rid, reason) for rid, reason in result.failed.items() if rid in live]
        self.core.complete_step(plan, result, finished, t_end)
        for rid, reason in failed:
            self._end(live[rid], "failed", reason, t_end)
        for rid in finished:
            if rid in live:
                self._end(live[rid], "completed", None, t_end)
        self.stats.steps += 1
        if self.metrics is not None:
            self.metrics.on_step(produced)
        self._publish()

    def _publish(self) -> None:
        core = self.core
        self.stats.running = core.num_running
        self.stats.waiting = core.queue_depth
        self.stats.kv_slots_used = int(getattr(self.engine, "kv_slots_used", 0))
        if self.metrics is not None:
            self.metrics.set_state(self.stats.running, self.stats.waiting, self.stats.kv_slots_used)

    def _recover(self, reason: str) -> None:
        for rid in list(self._live):
            state = self._live[rid]
            self._end(state, "failed", reason)
        self.core = self._core_factory()
        if hasattr(self.engine, "reset"):
            self.engine.reset()
        self._publish()
