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

from inferneo_bench.results import RequestRecord
from inferneo_bench.runner.clock import Clock
from inferneo_bench.steplog import CLOSE_CODE, DEFAULT_KEEP_STEPS, ROW, StepLog
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
    keep_steps: int | None = DEFAULT_KEEP_STEPS  # per-step rows kept up to this many steps (None: all); steplog


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
    steps: StepLog | list[Any]  # a remote run (client/remote.py) sees no engine steps: []
    harness: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False


class _Live:
    """Mutable per-request state of the hot loop (slots: fast attribute access). `produced` is the record's
    output_tokens while the request runs (written back when it ends); `itl` the record's gap list's append."""

    __slots__ = ("record", "target", "last_token_s", "ended", "produced", "itl", "deadline")

    def __init__(self, record: RequestRecord, target: int) -> None:
        self.record = record
        self.target = target
        self.last_token_s = 0.0
        self.ended = False
        self.produced = 0
        self.itl = record.itl_s.append
        self.deadline: float | None = None  # the client's time-out (arrival + request_timeout_s)


TIME_SCALE = 1e7  # seconds rounded to 0.1 us: far below timer resolution, and short numbers in result files
POLL_S = 0.1  # longest wall-clock wait between two looks at should_stop
PROGRESS_EVERY_S = 0.05  # wall seconds between progress snapshots (the display redraws at most 10 times/s)


def _q(x: float) -> float:
    """Round to 0.1 us. round(x * 1e7) / 1e7 is the double nearest that decimal (short repr), ~5x faster
    than round(x, 7), which matters for the millions of inter-token gaps of an hour-long trace."""
    return round(x * TIME_SCALE) / TIME_SCALE


def quantize(records: list[RequestRecord], steps: StepLog | Sequence[Any] | None = None, itl: bool = True) -> None:
    """Round recorded times once, before any metric is computed, so that the summary recomputes exactly from
    the saved records and the files stay small. `itl=False`: the gaps are rounded already (the replay loop
    rounds each as it records it: one list, not a second rounded copy of millions of floats). Step columns
    follow the same rule (`StepLog.finish`; a plain list of StepRecord is rounded in place)."""
    for r in records:
        for name in ("arrival_s", "enqueued_s", "scheduled_s", "first_token_s", "finish_s", "arrival_lag_s"):
            value = getattr(r, name)
            if value is not None:
                setattr(r, name, _q(value))
        if itl and r.itl_s:
            r.itl_s = [round(gap * TIME_SCALE) / TIME_SCALE for gap in r.itl_s]
    if isinstance(steps, StepLog):
        steps.finish()
    elif steps:
        for step in steps:
            step.start_s = _q(step.start_s)
            step.step_ms = round(step.step_ms * 1e4) / 1e4
            step.scheduler_us = round(step.scheduler_us * 10) / 10


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
    on_steps: Callable[[StepLog], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ReplayOutcome:
    """Replay `workload` to the end (or Ctrl-C, or `should_stop()`). Per step the loop does only what the
    records need: no object per step (the step's figures go to typed columns, steplog.StepLog), one dict lookup
    per sampled token, a progress snapshot at most every PROGRESS_EVERY_S of wall time. `on_request_end` sees
    each record once, as its request ends (the journal); `on_steps` gets the run's StepLog before the first
    step; `should_stop` is polled between steps."""
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

    steps = StepLog(options.keep_steps)
    if on_steps is not None:
        on_steps(steps)
    step_rows, pack_row = steps.rows, ROW.pack  # the log's bytearray (emptied in place when it folds)
    close_code = CLOSE_CODE
    rows, fold_at = 0, steps.fold_at
    deadlines: list[tuple[float, str]] = []
    unscheduled: set[str] = set()  # admitted, never yet in a step
    n_specs = len(specs)
    active = 0  # admitted, not ended
    ended = 0
    output_tokens = 0
    next_index = 0
    next_arrival = specs[0].arrival_s if specs else float("inf")
    last_step_end = float("-inf")
    step_wall = sleep_wall = 0.0
    last_progress = float("-inf")
    interrupted = False
    virtual = clock.virtual
    perf_counter = time.perf_counter
    clock_now, after_step = clock.now, clock.after_step
    plan_step, run_step, complete_step = core.plan, engine.step, core.complete_step

    def end(state: _Live, status: str, now: float | None, reason: str | None = None) -> None:
        """The one place a request ends; one that had been handed to the scheduler stops being active."""
        nonlocal active, ended
        record = state.record
        if status != "rejected" and record.enqueued_s is not None:
            active -= 1
        state.ended = True
        record.status = status
        record.reason = reason
        record.output_tokens = state.produced
        if now is not None and status != "rejected":
            record.finish_s = now
        unscheduled.discard(record.request_id)
        ended += 1
        if on_request_end is not None:
            on_request_end(record)

    wall_start = perf_counter()
    try:
        while True:
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
            now = clock_now()
            # 1. admit every arrival that is due
            while next_arrival <= now:
                spec = specs[next_index]
                next_index += 1
                next_arrival = specs[next_index].arrival_s if next_index < n_specs else float("inf")
                state = live[spec.request_id]
                record = state.record
                record.enqueued_s = now
                record.arrival_lag_s = 0.0 if virtual else now - max(spec.arrival_s, last_step_end)
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
                unscheduled.add(spec.request_id)
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
            if next_index >= n_specs and active == 0:
                break
            # 3. plan and run one step, or wait for the next event
            plan_start = perf_counter()
            plan = plan_step(now)
            plan_end = perf_counter()
            if isinstance(plan, Idle):
                wake = [t for t in (plan.wake_at,) if t is not None]
                if next_index < n_specs:
                    wake.append(next_arrival)
                if deadlines:
                    wake.append(deadlines[0][0])
                if not wake:  # work waiting that nothing will ever schedule: a scheduler bug, not lost silently
                    for state in live.values():
                        if state.record.status == "pending" and state.record.enqueued_s is not None:
                            end(state, "failed", now, "scheduler stalled with the request waiting")
                    break
                target = max(min(wake), now)
                if should_stop is not None and not virtual:
                    target = min(target, now + POLL_S)
                sleep_start = perf_counter()
                clock.sleep_until(target)
                sleep_wall += perf_counter() - sleep_start
                continue

            if virtual:
                result = run_step(plan)
            else:
                step_start_wall = perf_counter()
                result = run_step(plan)
                step_wall += perf_counter() - step_start_wall
            after_step(result.step_s)
            t_end = clock_now()
            last_step_end = t_end

            seqs = plan.seqs
            idle_slots = 0
            for seq in seqs:
                if seq.idle:
                    idle_slots += 1
                elif seq.seq_id in unscheduled:
                    unscheduled.remove(seq.seq_id)
                    live[seq.seq_id].record.scheduled_s = now
            if plan.preempted:
                for seq_id in plan.preempted:
                    live[seq_id].record.preemptions += 1

            finished: list[str] = []
            tokens = result.tokens
            for seq_id in tokens:
                state = live[seq_id]
                if state.deadline is not None and t_end > state.deadline:
                    continue  # produced after the client left: never delivered (cancelled at the loop's top)
                produced = state.produced
                if produced:  # the gap, rounded as every recorded time is (see quantize)
                    state.itl(round((t_end - state.last_token_s) * TIME_SCALE) / TIME_SCALE)
                else:
                    state.record.first_token_s = t_end
                state.last_token_s = t_end
                produced += 1
                state.produced = produced
                if produced >= state.target:
                    finished.append(seq_id)
            output_tokens += len(tokens)
            if result.failed:
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
            complete_step(plan, result, finished, t_end, util, memory)
            if not seqs:  # a plan that only released KV: no compute, no step record
                continue
            queue_depth = core.queue_depth
            batch_id = plan.batch_id
            step_rows += pack_row(
                now,
                -1 if batch_id is None else batch_id,
                len(seqs),
                result.useful_tokens,
                result.padded_tokens,
                result.step_s * 1000.0,
                (plan_end - plan_start) * 1e6,
                queue_depth,
                idle_slots,
                close_code[plan.closed_by],
            )
            if plan.events:
                for text in plan.events:
                    steps.add_event(text)
            rows += 1
            if rows >= fold_at:  # past the keep limit: fold the rows into aggregates (same bytearray, emptied)
                steps.fold_if_due()
                rows, fold_at = len(steps), steps.fold_at
            if on_progress is not None and plan_end - last_progress >= PROGRESS_EVERY_S:
                last_progress = plan_end
                on_progress(Progress(t_end, ended, n_specs, queue_depth, len(seqs), output_tokens))
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

    wall_s = perf_counter() - wall_start
    if on_progress is not None:
        on_progress(Progress(clock.now(), ended, n_specs, core.queue_depth, 0, output_tokens))
    harness = {
        "wall_s": wall_s,
        "engine_s": step_wall,
        "sleep_s": sleep_wall,
        "harness_s": max(0.0, wall_s - step_wall - sleep_wall),
    }
    if virtual:
        harness = {
            "wall_s": None,
            "harness_s": None,
            "reason": "virtual clock: harness time is not run time",
            "replay_wall_s": wall_s,
        }
    for state in live.values():
        record = state.record
        record.output_tokens = state.produced
        if record.status == "pending":  # cannot happen unless the loop above has a bug; keep it visible
            record.status, record.reason = "failed", "lost by the harness"
    quantize(records, steps, itl=False)
    return ReplayOutcome(requests=records, steps=steps, harness=harness, interrupted=interrupted)
