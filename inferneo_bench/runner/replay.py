"""The replay loop: open-loop arrivals through the scheduler core onto an engine, on an injected clock.

Every request enters the scheduler at its arrival time whether or not the engine keeps up (no coordinated
omission); latencies count from the scheduled arrival. The same loop drives the torch engine on the wall
clock and the simulated engine on a virtual clock.

Time-outs (`request_timeout_s`): the client gives up at arrival + timeout. A request never counts as completed
after that deadline: every token is checked against it, so a token produced by a step that ends after the
deadline is not delivered, and the request is cancelled at its deadline (finish = deadline), even when the
deadline fell inside a step.

Stopping (Ctrl-C, SIGTERM): `should_stop` is polled once per loop iteration (and wall-clock waits are cut into
short slices), so a stop request ends the loop between steps: in-flight requests are cancelled, the partial
outcome is returned. A KeyboardInterrupt raised inside the loop is treated the same way.

Arrival lag (does the harness keep up?) is, per request, the time from the moment the harness could have
seen it — its arrival, or the end of the engine step in progress at its arrival, whichever is later — to
the moment it was handed to the scheduler. A step in progress is not lag: a real server also queues
requests until its next step. On the virtual clock the lag is exactly 0.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from inferneo_bench.results import RequestRecord, StepRecord
from inferneo_bench.runner.clock import Clock
from inferneo_bench.steps import Engine, Idle, StepPlan, StepResult


class Request(Protocol):
    """What the loop reads from a workload request (workload.RequestSpec has these fields)."""

    request_id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    max_tokens: int
    priority: int


class Core(Protocol):
    """The scheduler core's surface the loop drives (scheduler.SchedulerCore)."""

    def add(self, request: Any, now: float) -> str | None: ...
    def cancel(self, request_id: str, now: float) -> bool: ...
    def plan(self, now: float) -> StepPlan | Idle: ...
    def complete_step(
        self,
        plan: StepPlan,
        result: StepResult,
        finished: Iterable[str],
        now: float,
        gpu_utilization: float | None = None,
        memory_usage: float | None = None,
    ) -> None: ...
    @property
    def queue_depth(self) -> int: ...


@dataclass(frozen=True)
class ReplayOptions:
    max_model_len: int
    warmup: int = 0  # the first N requests (in arrival order) run but are excluded from metrics
    request_timeout_s: float | None = None  # the client cancels a request not finished this long after arrival


@dataclass
class Progress:
    """A snapshot for progress displays, sent after each step."""

    now: float
    ended: int
    total: int
    queue_depth: int
    batch_size: int
    output_tokens: int


@dataclass
class ReplayOutcome:
    requests: list[RequestRecord]
    steps: list[StepRecord]
    harness: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False


class _Live:
    """Mutable per-request state of the hot loop (slots: fast attribute access)."""

    __slots__ = ("record", "target", "last_token_s", "ended", "deadline")

    def __init__(self, record: RequestRecord, target: int) -> None:
        self.record = record
        self.target = target
        self.last_token_s = 0.0
        self.ended = False
        self.deadline: float | None = None  # the client's time-out (arrival + request_timeout_s)


POLL_S = 0.1  # longest wall-clock wait between two looks at should_stop
TIME_SCALE = 1e7  # seconds rounded to 0.1 us: far below timer resolution, and short numbers in result files


def _q(x: float) -> float:
    """Round to 0.1 us. round(x * 1e7) / 1e7 is the double nearest that decimal (short repr), ~5x faster
    than round(x, 7), which matters for the millions of inter-token gaps of an hour-long trace."""
    return round(x * TIME_SCALE) / TIME_SCALE


def quantize(records: list[RequestRecord], steps: list[StepRecord]) -> None:
    """Round recorded times once, before any metric is computed, so that the summary recomputes exactly from
    the saved records and the files stay small (a float's shortest repr drops from ~18 to ~9 digits)."""
    for r in records:
        for name in ("arrival_s", "enqueued_s", "scheduled_s", "first_token_s", "finish_s", "arrival_lag_s"):
            value = getattr(r, name)
            if value is not None:
                setattr(r, name, _q(value))
        r.itl_s = [round(gap * TIME_SCALE) / TIME_SCALE for gap in r.itl_s]
    for s in steps:
        s.start_s = _q(s.start_s)
        s.step_ms = round(s.step_ms * 1e4) / 1e4
        s.scheduler_us = round(s.scheduler_us * 10) / 10


def make_sched_request(spec: Request) -> Any:
    from inferneo_bench.scheduler import SchedRequest

    return SchedRequest(
        request_id=spec.request_id,
        prompt_tokens=spec.prompt_tokens,
        max_tokens=spec.max_tokens,
        priority=spec.priority,
        arrival_s=spec.arrival_s,
    )


def replay(
    workload: Sequence[Request],
    core: Core,
    engine: Engine,
    clock: Clock,
    options: ReplayOptions,
    *,
    to_sched_request: Callable[[Request], Any] = make_sched_request,
    gpu_utilization: Callable[[], float | None] | None = None,
    memory_usage: Callable[[], float | None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_request_end: Callable[[RequestRecord], None] | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ReplayOutcome:
    """Replay `workload` and return every request's record and every step's. `on_request_end` sees each record
    once, as its request ends (the journal); `on_step` each step record; `should_stop` is polled between steps."""
    specs = sorted(workload, key=lambda r: r.arrival_s)  # stable: ties stay in file order
    live: dict[str, _Live] = {}
    records: list[RequestRecord] = []
    for index, spec in enumerate(specs):
        record = RequestRecord(
            request_id=spec.request_id,
            arrival_s=spec.arrival_s,
            prompt_tokens=spec.prompt_tokens,
            output_tokens=0,
            target_output_tokens=spec.output_tokens,
            max_tokens=spec.max_tokens,
            priority=spec.priority,
            status="pending",
            warmup=index < options.warmup,
        )
        records.append(record)
        live[spec.request_id] = _Live(record, min(spec.output_tokens, spec.max_tokens))

    steps: list[StepRecord] = []
    deadlines: list[tuple[float, str]] = []
    active = 0  # admitted, not ended
    ended = 0
    output_tokens = 0
    next_index = 0
    last_step_end = float("-inf")
    step_wall = sleep_wall = 0.0
    interrupted = False

    def end(state: _Live, status: str, now: float | None, reason: str | None = None) -> None:
        """The one place a request ends; one that had been handed to the scheduler stops being active."""
        nonlocal active, ended
        if status != "rejected" and state.record.enqueued_s is not None:
            active -= 1
        state.ended = True
        state.record.status = status
        state.record.reason = reason
        if now is not None and status != "rejected":
            state.record.finish_s = now
        ended += 1
        if on_request_end is not None:
            on_request_end(state.record)

    wall_start = time.perf_counter()
    try:
        while True:
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
            now = clock.now()
            # 1. admit every arrival that is due
            while next_index < len(specs) and specs[next_index].arrival_s <= now:
                spec = specs[next_index]
                next_index += 1
                state = live[spec.request_id]
                record = state.record
                record.enqueued_s = now
                record.arrival_lag_s = 0.0 if clock.virtual else now - max(spec.arrival_s, last_step_end)
                if spec.prompt_tokens + spec.max_tokens > options.max_model_len:
                    end(
                        state,
                        "rejected",
                        None,
                        f"prompt {spec.prompt_tokens} + max_tokens {spec.max_tokens} exceeds the model context "
                        f"{options.max_model_len}",
                    )
                    continue
                reason = core.add(to_sched_request(spec), now)
                if reason is not None:
                    end(state, "rejected", None, reason)
                    continue
                engine.add_sequence(spec.request_id, spec.prompt_tokens)
                active += 1
                if options.request_timeout_s is not None:
                    state.deadline = spec.arrival_s + options.request_timeout_s
                    heapq.heappush(deadlines, (state.deadline, spec.request_id))
            # 2. client time-outs: the client left at its deadline, whenever the loop notices
            while deadlines and deadlines[0][0] <= now:
                deadline, request_id = heapq.heappop(deadlines)
                state = live[request_id]
                if not state.ended:  # cancel() is False when the core already let it finish at max_tokens
                    core.cancel(request_id, now)
                    end(state, "cancelled", deadline, f"client timeout after {options.request_timeout_s:g} s")
            if next_index >= len(specs) and active == 0:
                break
            # 3. plan and run one step, or wait for the next event
            plan_start = time.perf_counter()
            plan = core.plan(now)
            scheduler_us = (time.perf_counter() - plan_start) * 1e6
            if isinstance(plan, Idle):
                wake = [t for t in (plan.wake_at,) if t is not None]
                if next_index < len(specs):
                    wake.append(specs[next_index].arrival_s)
                if deadlines:
                    wake.append(deadlines[0][0])
                if not wake:  # work waiting that nothing will ever schedule: a scheduler bug, not lost silently
                    for state in live.values():
                        if state.record.status == "pending" and state.record.enqueued_s is not None:
                            end(state, "failed", now, "scheduler stalled with the request waiting")
                    break
                target = max(min(wake), now)
                if should_stop is not None and not clock.virtual:
                    target = min(target, now + POLL_S)
                sleep_start = time.perf_counter()
                clock.sleep_until(target)
                sleep_wall += time.perf_counter() - sleep_start
                continue

            step_start_wall = time.perf_counter()
            result = engine.step(plan)
            step_wall += time.perf_counter() - step_start_wall
            clock.after_step(result.step_s)
            t_end = clock.now()
            last_step_end = t_end

            idle_slots = 0
            for seq in plan.seqs:
                if seq.idle:
                    idle_slots += 1
                    continue
                record = live[seq.seq_id].record
                if record.scheduled_s is None:
                    record.scheduled_s = now
            for seq_id in plan.preempted:
                live[seq_id].record.preemptions += 1

            finished: list[str] = []
            for seq_id in result.tokens:
                state = live[seq_id]
                if state.deadline is not None and t_end > state.deadline:
                    continue  # produced after the client left: never delivered (cancelled at the loop's top)
                record = state.record
                if record.first_token_s is None:
                    record.first_token_s = t_end
                else:
                    record.itl_s.append(t_end - state.last_token_s)
                state.last_token_s = t_end
                record.output_tokens += 1
                output_tokens += 1
                if record.output_tokens >= state.target:
                    finished.append(seq_id)
            for seq_id, reason in result.failed.items():
                state = live[seq_id]
                if not state.ended:
                    end(state, "failed", t_end, reason)
            for seq_id in finished:
                state = live[seq_id]
                if not state.ended:
                    end(state, "completed", t_end)

            util = gpu_utilization() if gpu_utilization is not None else None
            memory = memory_usage() if memory_usage is not None else None
            core.complete_step(plan, result, finished, t_end, gpu_utilization=util, memory_usage=memory)
            if not plan.seqs:  # a plan that only released KV: no compute, no step record
                continue
            steps.append(
                step := StepRecord(
                    index=len(steps),
                    start_s=now,
                    batch_id=plan.batch_id,
                    batch_size=len(plan.seqs),
                    new_tokens=result.useful_tokens,
                    padded_tokens=result.padded_tokens,
                    step_ms=result.step_s * 1000.0,
                    scheduler_us=scheduler_us,
                    queue_depth=core.queue_depth,
                    idle_slots=idle_slots,
                    events=list(plan.events),
                )
            )
            if on_step is not None:
                on_step(step)
            if on_progress is not None:
                on_progress(Progress(t_end, ended, len(specs), core.queue_depth, len(plan.seqs), output_tokens))
    except KeyboardInterrupt:
        interrupted = True
        now = clock.now()
        for state in live.values():
            if state.ended:
                continue
            if state.record.enqueued_s is None:
                end(state, "cancelled", None, "not sent: run interrupted")
            else:
                core.cancel(state.record.request_id, now)
                end(state, "cancelled", now, "run interrupted")

    wall_s = time.perf_counter() - wall_start
    harness = {
        "wall_s": wall_s,
        "engine_s": step_wall,
        "sleep_s": sleep_wall,
        "harness_s": max(0.0, wall_s - step_wall - sleep_wall),
    }
    if clock.virtual:
        harness = {
            "wall_s": None,
            "harness_s": None,
            "reason": "virtual clock: harness time is not run time",
            "replay_wall_s": wall_s,
        }
    for record in records:
        if record.status == "pending":  # cannot happen unless the loop above has a bug; keep it visible
            record.status, record.reason = "failed", "lost by the harness"
    quantize(records, steps)
    return ReplayOutcome(requests=records, steps=steps, harness=harness, interrupted=interrupted)
