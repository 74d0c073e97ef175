"""EnhancedScheduler: the Inferneo design document's async API, call for call and unit for unit, over the
synchronous core (docs/strategies.md, "The async facade", lists every difference from the document).

    scheduler = EnhancedScheduler(SchedulerConfig(max_num_partial_prefills=4, max_waiting_tokens=2048))
    await scheduler.initialize()
    scheduler.set_batching_strategy(BatchingStrategy.ADAPTIVE)
    request_id = await scheduler.add_request(request)         # request_id, prompt, max_tokens, priority
    batch = await scheduler.get_next_batch()                  # waits up to the strategy's fill delay
    await scheduler.complete_batch(batch[0].batch_id, 0.1, 0.8, 0.6)   # seconds, fractions 0..1
    await scheduler.complete_request(batch[0].request_id)     # optional: one request ended
    stats, bstats = scheduler.get_stats(), scheduler.get_batching_stats()
    await scheduler.cleanup()

Units: times in seconds; gpu_utilization and memory_usage as fractions 0..1 (the core reads utilization in
percent: converted here); throughput in requests/s; latency in seconds per request. A figure never measured
is NaN (it formats as "nan"); a count or time that is truly zero is 0.

Time comes from `clock`: any object with `now()` (seconds), `sleep_until(t)` and `virtual` (the runner's
clocks: `inferneo_bench.runner.clock.VirtualClock` jumps instead of sleeping, so tests of exact decisions
need no sleeps); by default the monotonic wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import numbers
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from inferneo_bench.scheduler.config import BatchingStrategy, SchedulerConfig
from inferneo_bench.scheduler.core import SchedulerCore
from inferneo_bench.scheduler.queue import SchedRequest
from inferneo_bench.steps import Idle, StepPlan, StepResult

logger = logging.getLogger(__name__)

STATS_WINDOW_BATCHES = 20  # get_batching_stats() averages the most recent completed batches, as the document
BATCH_HISTORY = 1000  # BatchMetrics kept in `batch_metrics`, as the document keeps


class RequestState(str, Enum):
    WAITING = "waiting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # not in the document, whose add_request never refuses a request


_CORE_STATE = {
    "waiting": RequestState.WAITING,
    "swapped": RequestState.WAITING,  # continuous, preempted to host memory: waits to resume
    "running": RequestState.RUNNING,
    "completed": RequestState.COMPLETED,
    "failed": RequestState.FAILED,
    "cancelled": RequestState.CANCELLED,
    "rejected": RequestState.REJECTED,
}
_ENDED = (RequestState.COMPLETED, RequestState.FAILED, RequestState.CANCELLED, RequestState.REJECTED)


class RequestRejected(ValueError):
    """add_request refused a request (duplicate id, priority out of range, longer than kv_cache_tokens)."""


@dataclass
class BatchMetrics:
    """One completed batch, as the document defines it."""

    batch_size: int  # requests handed out in the batch
    total_tokens: int  # sum of the members' estimated_tokens
    processing_time: float  # seconds, as reported to complete_batch
    gpu_utilization: float  # fraction 0..1; NaN = not reported
    memory_usage: float  # fraction 0..1; NaN = not reported
    throughput: float  # requests/s = batch_size / processing_time
    latency: float  # seconds per request = processing_time / batch_size
    created_at: float  # clock time of complete_batch
    batch_id: str = ""  # not in the document's class


@dataclass(eq=False)
class ScheduledRequest:
    """A request with the document's scheduling fields; other attributes are read from the caller's object
    (`request`), so `item.prompt` works as on the object that was added."""

    request_id: Any
    priority: int
    created_at: float  # clock time of add_request, seconds
    estimated_tokens: int  # prompt_length + max_tokens: the most tokens it can occupy
    prompt_length: int  # prompt tokens (count_tokens of a text prompt: whitespace words by default)
    max_tokens: int
    state: RequestState = RequestState.WAITING
    start_time: float | None = None  # clock time it was first handed out in a batch
    end_time: float | None = None  # clock time it ended (completed, failed, cancelled)
    batch_id: str | None = None  # "batch_0", "batch_1", ...: the batch it was last handed out in
    request: Any = field(default=None, repr=False)  # the caller's object

    def __lt__(self, other: ScheduledRequest) -> bool:
        """The document's order: higher priority first, then earlier created."""
        return (-self.priority, self.created_at) < (-other.priority, other.created_at)

    def __getattr__(self, name: str) -> Any:
        if name == "request" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.request, name)


def count_words(text: str) -> int:
    """Default prompt length for text prompts: whitespace-separated words, as the document counts
    (pass your tokenizer's length function as `count_tokens` instead)."""
    return max(1, len(text.split()))


class _MonotonicClock:
    virtual = False

    @staticmethod
    def now() -> float:
        return time.monotonic()


@dataclass
class _Out:
    """A batch handed out and not yet completed."""

    members: list[ScheduledRequest]
    core_batch_id: int | None = None  # static strategies
    plan: StepPlan | None = None  # continuous: the step


class EnhancedScheduler:
    def __init__(
        self,
        config: SchedulerConfig | None = None,
        strategy: BatchingStrategy | str = BatchingStrategy.ADAPTIVE,
        *,
        clock: Any = None,
        count_tokens: Callable[[str], int] = count_words,
    ) -> None:
        self.config = config or SchedulerConfig()
        self._clock = clock if clock is not None else _MonotonicClock()
        self._count_tokens = count_tokens
        self._core = SchedulerCore(self.config, strategy)
        self._live: dict[str, ScheduledRequest] = {}  # waiting or running
        self._out: dict[str, _Out] = {}
        self._next_batch = 0
        self._metrics: deque[BatchMetrics] = deque(maxlen=BATCH_HISTORY)
        self._batches_completed = 0
        self._done_n = 0  # completed requests, and the sums of their wait and processing times
        self._wait_sum = 0.0
        self._proc_sum = 0.0
        self._running = False
        self._wake: asyncio.Event | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------
    @property
    def core(self) -> SchedulerCore:
        return self._core

    @property
    def strategy(self) -> BatchingStrategy:
        return self._core.strategy

    @property
    def batch_metrics(self) -> list[BatchMetrics]:
        """The last BATCH_HISTORY completed batches, oldest first."""
        return list(self._metrics)

    async def initialize(self) -> None:
        self._wake = asyncio.Event()
        self._running = True
        logger.info("Enhanced Dynamic Batching Scheduler initialized (%s)", self.strategy.value)

    def is_running(self) -> bool:
        return self._running

    async def stop(self) -> None:
        """Cancel every request still waiting or running (each ends as cancelled) and stop."""
        now = self._clock.now()
        for rid in list(self._live):
            self._core.cancel(rid, now)
            self._settle(rid, now)
        for out in self._out.values():
            if out.core_batch_id is not None:
                self._core.drop_batch(out.core_batch_id)
        self._out.clear()
        self._running = False
        logger.info("Enhanced Scheduler stopped")

    async def cleanup(self) -> None:
        await self.stop()

    def _require(self) -> asyncio.Event:
        if not self._running or self._wake is None:
            raise RuntimeError("EnhancedScheduler is not running: call `await scheduler.initialize()` first")
        return self._wake

    def set_batching_strategy(self, strategy: BatchingStrategy | str) -> None:
        """Any time between static strategies (batches out finish as formed); to or from continuous only while
        nothing runs (RuntimeError otherwise)."""
        self._core.set_strategy(strategy)
        logger.info("Batching strategy changed to: %s", self.strategy.value)

    # ---- requests -------------------------------------------------------------------------------------
    async def add_request(self, request: Any) -> Any:
        """Queue any object with request_id, prompt (text or token ids) or prompt_tokens, max_tokens and
        optional priority (1 lowest .. max_priority_levels highest, default 5); returns its request_id.
        RequestRejected (a ValueError) with the reason when refused; the request then counts as rejected."""
        wake = self._require()
        rid = str(request.request_id)
        prompt_length = self._prompt_len(request, rid)
        max_tokens = _int_attr(request, "max_tokens", rid, None)
        priority = _int_attr(request, "priority", rid, 5)
        now = self._clock.now()
        reason = self._core.add(SchedRequest(rid, prompt_length, max_tokens, priority, now), now)
        if reason is not None:
            raise RequestRejected(f"request {rid!r} rejected: {reason}")
        self._live[rid] = ScheduledRequest(
            request.request_id, priority, now, prompt_length + max_tokens, prompt_length, max_tokens, request=request
        )
        wake.set()
        return request.request_id

    def _prompt_len(self, request: Any, rid: str) -> int:
        n = getattr(request, "prompt_tokens", None)
        if isinstance(n, numbers.Integral) and not isinstance(n, bool):
            return int(n)
        if isinstance(n, Sequence) and not isinstance(n, str):
            return len(n)
        prompt = getattr(request, "prompt", None)
        if isinstance(prompt, str):
            return self._count_tokens(prompt)
        if isinstance(prompt, Sequence):
            return len(prompt)
        raise ValueError(f"request {rid!r}: needs `prompt` (text or token ids) or `prompt_tokens`")

    # ---- batches --------------------------------------------------------------------------------------
    def dynamic_timeout(self) -> float:
        """How long get_next_batch() waits for the strategy to dispatch, in seconds: the strategy's fill delay
        (fixed_size, coalescing: max_queue_delay_ms; throughput_optimized: 4 x that; adaptive: its current
        delay; latency_optimized and continuous: 0). A request waiting when get_next_batch() is called is
        dispatched within it (static strategies), so [] means nothing could be dispatched in that time."""
        policy = self._core.policy
        return policy.delay_s() if policy is not None else 0.0

    async def get_next_batch(self, timeout: float | None = None) -> list[ScheduledRequest]:
        """The next batch: the ScheduledRequests sharing batch[0].batch_id, in queue order. Awaits (yielding to
        the event loop, at least once per call) until the strategy dispatches, at most `timeout` seconds
        (default: dynamic_timeout()); [] when nothing was dispatched in that time. Static strategies may
        have several batches out at once; continuous hands out one step at a time (a "batch" is an engine
        step: the requests computed in it, a request reappearing until it ends)."""
        wake = self._require()
        start = self._clock.now()
        deadline = start + (self.dynamic_timeout() if timeout is None else max(0.0, timeout))
        await asyncio.sleep(0)
        while True:
            wake.clear()
            now = self._clock.now()
            if timeout is None:  # adaptive's delay may grow with an arrival: still cover who waited at the call
                deadline = max(deadline, start + self.dynamic_timeout())
            batch, wake_at = self._dispatch(now)
            if batch:
                return batch
            if now >= deadline or not self._running:
                return []
            await self._wait_until(deadline if wake_at is None or wake_at <= now else min(wake_at, deadline), wake)

    async def _wait_until(self, t: float, wake: asyncio.Event) -> None:
        """Until t on the clock, or sooner when a request arrives or a batch or request ends."""
        if self._clock.virtual:
            self._clock.sleep_until(t)
            await asyncio.sleep(0)
            return
        dt = t - self._clock.now()
        if dt <= 0:
            await asyncio.sleep(0)
            return
        try:
            await asyncio.wait_for(wake.wait(), dt)
        except asyncio.TimeoutError:
            pass

    def _dispatch(self, now: float) -> tuple[list[ScheduledRequest], float | None]:
        core = self._core
        if core.strategy.is_static:
            got = core.dispatch(now)
            if isinstance(got, Idle):
                return [], got.wake_at
            core_id, rids = got
            out = _Out([self._live[r] for r in rids], core_batch_id=core_id)
        else:
            if self._out:  # one step at a time: the next one depends on this one's result
                return [], None
            plan = core.plan(now)
            if isinstance(plan, Idle):
                return [], plan.wake_at
            for rid in plan.preempted:
                self._live[rid].state = _CORE_STATE[core.state_of(rid) or "waiting"]
            out = _Out([self._live[s.seq_id] for s in plan.seqs if not s.idle], plan=plan)
        batch_id = f"batch_{self._next_batch}"
        self._next_batch += 1
        self._out[batch_id] = out
        for r in out.members:
            r.batch_id = batch_id
            r.state = RequestState.RUNNING
            if r.start_time is None:
                r.start_time = now
        self._log_events()
        return list(out.members), None

    async def complete_batch(
        self,
        batch_id: str,
        processing_time: float,
        gpu_utilization: float | None = None,
        memory_usage: float | None = None,
        *,
        finished: Collection[Any] = (),
    ) -> bool:
        """Report a batch as processed: processing_time in seconds (> 0), gpu_utilization and memory_usage as
        fractions 0..1 (None: not measured). Its members still running complete (static strategies: as if
        each produced max_tokens, the facade is told nothing finer). Continuous: the step is reported; a
        request completes at max_tokens or when listed in `finished` (e.g. EOS). Records the batch's
        BatchMetrics and feeds adaptive. False when batch_id is not out."""
        _check_positive("processing_time", processing_time)
        _check_fraction("gpu_utilization", gpu_utilization)
        _check_fraction("memory_usage", memory_usage)
        processing_time = float(processing_time)
        gpu_utilization = None if gpu_utilization is None else float(gpu_utilization)
        memory_usage = None if memory_usage is None else float(memory_usage)
        out = self._out.pop(batch_id, None)
        if out is None:
            return False
        now = self._clock.now()
        gpu_pct = None if gpu_utilization is None else gpu_utilization * 100.0
        if out.plan is None:
            assert out.core_batch_id is not None
            self._core.complete_batch(out.core_batch_id, processing_time, now, gpu_pct, None)
        else:
            plan = out.plan
            result = StepResult(
                step_s=processing_time,
                tokens={s.seq_id: 0 for s in plan.seqs if s.samples and not s.idle},
                useful_tokens=plan.useful_tokens,
                padded_tokens=plan.computed_tokens - plan.useful_tokens,
            )
            self._core.complete_step(plan, result, {str(r) for r in finished}, now, gpu_pct, None)
        for r in out.members:
            self._settle(str(r.request_id), now)
        size = len(out.members)
        self._metrics.append(
            BatchMetrics(
                batch_size=size,
                total_tokens=sum(r.estimated_tokens for r in out.members),
                processing_time=processing_time,
                gpu_utilization=math.nan if gpu_utilization is None else gpu_utilization,
                memory_usage=math.nan if memory_usage is None else memory_usage,
                throughput=size / processing_time,
                latency=processing_time / size,
                created_at=now,
                batch_id=batch_id,
            )
        )
        self._batches_completed += 1
        self._log_events()
        if self._wake is not None:
            self._wake.set()
        return True

    async def complete_request(
        self,
        request_id: Any,
        success: bool = True,
        processing_time: float | None = None,
        gpu_utilization: float | None = None,
    ) -> bool:
        """A running request ended: completed (success) or failed. processing_time (seconds) and
        gpu_utilization (fraction) are checked but not used: the batch's figures in complete_batch feed
        the stats and adaptive. False when the request is not running (e.g. its batch was completed)."""
        if processing_time is not None:
            _check_positive("processing_time", processing_time, allow_zero=True)
        _check_fraction("gpu_utilization", gpu_utilization)
        rid = str(request_id)
        now = self._clock.now()
        if not self._core.end_request(rid, now, success=bool(success)):
            return False
        self._settle(rid, now)
        if self._wake is not None:
            self._wake.set()
        return True

    async def cancel_request(self, request_id: Any) -> bool:
        """Cancel a waiting or running request; False when unknown or already ended (idempotent)."""
        rid = str(request_id)
        now = self._clock.now()
        if not self._core.cancel(rid, now):
            return False
        self._settle(rid, now)
        if self._wake is not None:
            self._wake.set()
        return True

    def _settle(self, rid: str, now: float) -> None:
        """Mirror the core's state of a request; an ended one leaves, a completed one joins the averages."""
        r = self._live.get(rid)
        if r is None:
            return
        r.state = _CORE_STATE[self._core.state_of(rid) or "cancelled"]
        if r.state not in _ENDED:
            return
        del self._live[rid]
        r.end_time = now
        if r.state is RequestState.COMPLETED and r.start_time is not None:
            self._done_n += 1
            self._wait_sum += r.start_time - r.created_at
            self._proc_sum += now - r.start_time

    def _log_events(self) -> None:
        for event in self._core.take_events():
            logger.info("Adjusted batch size: %s", event)

    # ---- statistics -----------------------------------------------------------------------------------
    def get_batching_stats(self) -> dict[str, Any]:
        """The document's keys with its meanings (averages over the last STATS_WINDOW_BATCHES completed
        batches), then the core's own figures under their own names (docs/strategies.md, "Stats")."""
        core = self._core.batching_stats()
        recent = list(self._metrics)[-STATS_WINDOW_BATCHES:]
        doc = {
            "current_batch_size": core["current_batch_size"],
            "batching_strategy": self.strategy.value,
            "avg_batch_size": _mean(m.batch_size for m in recent),
            "avg_throughput": _mean(m.throughput for m in recent),
            "avg_latency": _mean(m.latency for m in recent),
            "avg_gpu_utilization": _mean(m.gpu_utilization for m in recent),
            "avg_memory_usage": _mean(m.memory_usage for m in recent),
            "coalescing_buckets": core["coalescing_buckets"],
            "queue_size": core["queue_size"],
            "batches_completed": self._batches_completed,
            "batches_out": len(self._out),
        }
        extra = {k: _nan_if_none(v) for k, v in core.items() if k not in doc and k not in _CORE_ONLY}
        return {**doc, **extra}

    def get_stats(self) -> dict[str, Any]:
        """The document's request counts and times (averages over completed requests, seconds), then every
        key of get_batching_stats(), then the core's own counts."""
        core = self._core.stats()
        doc = {
            "total_requests": core["total_requests"],
            "waiting_requests": core["queue_depth"],
            "running_requests": core["num_running"],
            "completed_requests": core["completed_requests"],
            "current_batch_tokens": sum(
                r.estimated_tokens for out in self._out.values() for r in out.members if r.state is RequestState.RUNNING
            ),
            "avg_wait_time": self._wait_sum / self._done_n if self._done_n else math.nan,
            "avg_processing_time": self._proc_sum / self._done_n if self._done_n else math.nan,
            "queue_depth": core["queue_depth"],
        }
        extra = {k: _nan_if_none(v) for k, v in core.items() if k not in doc and k not in _CORE_ONLY}
        return {**doc, **self.get_batching_stats(), **extra}


# the core's figures that mean something else here: its wait time is over every dispatched request, its
# telemetry averages are over what the runner reports (percent, MB; the facade keeps fractions itself)
_CORE_ONLY = frozenset(("avg_wait_time", "num_running", "avg_gpu_util_pct", "avg_memory_used_mb"))


def _mean(values: Any) -> float:
    """Mean of the measured values (NaN = not measured); NaN when there is none."""
    got = [v for v in values if not math.isnan(v)]
    return sum(got) / len(got) if got else math.nan


def _nan_if_none(value: Any) -> Any:
    return math.nan if value is None else value


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_fraction(name: str, value: float | None) -> None:
    if value is None:
        return
    if not _is_real(value) or not 0.0 <= value <= 1.0:
        hint = f" ({value / 100:g} = {value:g}%)" if _is_real(value) and 1 < value <= 100 else ""
        raise ValueError(f"{name}={value!r}: must be a fraction between 0 and 1{hint}, or None (not measured)")


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = _is_real(value) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}={value!r}: must be a number of seconds {'>=' if allow_zero else '>'} 0")


def _int_attr(request: Any, name: str, rid: str, default: int | None) -> int:
    value = getattr(request, name, None)
    if value is None:
        if default is None:
            raise ValueError(f"request {rid!r}: missing `{name}`")
        return default
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"request {rid!r}: `{name}`={value!r} must be an integer")
    return int(value)
