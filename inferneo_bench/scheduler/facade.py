"""EnhancedScheduler: the Inferneo design document's async API, call for call, over the synchronous core.

    scheduler = EnhancedScheduler(SchedulerConfig(...))
    await scheduler.initialize()
    scheduler.set_batching_strategy(BatchingStrategy.ADAPTIVE)
    await scheduler.add_request(request)
    batch = await scheduler.get_next_batch()
    await scheduler.complete_batch(batch[0].batch_id, processing_time, gpu_utilization, memory_usage)
    ok = await scheduler.cancel_request("req_001")
    stats, bstats = scheduler.get_stats(), scheduler.get_batching_stats()
    await scheduler.cleanup()

Time comes from `clock` (time.monotonic by default; inject a virtual clock for tests). One batch is out at a
time: get_next_batch returns [] until the outstanding batch is completed, or while the strategy waits for
the batch to fill (`wake_at` then says until when).

Static strategies: a batch is the dispatched group; complete_batch ends it as a whole (each member counts as
having produced max_tokens; the batch's TPOT is processing_time / its longest max_tokens).
Continuous: a "batch" is one engine iteration: get_next_batch returns every request computed in that step
(running decodes and the prefills admitted), all sharing the step's batch_id; complete_batch reports the
step; a request keeps appearing in later steps until it reaches max_tokens or is listed in `finished`.

Each returned request is the caller's own object with a `batch_id` attribute set; an object that cannot
take attributes (slots, frozen) is returned wrapped in `ScheduledRequest`, which forwards every other
attribute to it (`.request` is the original).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from inferneo_bench.scheduler.config import BatchingStrategy, SchedulerConfig
from inferneo_bench.scheduler.core import SchedulerCore
from inferneo_bench.scheduler.queue import SchedRequest
from inferneo_bench.steps import Idle, StepPlan, StepResult


class ScheduledRequest:
    """A request object that could not take a `batch_id` attribute, wrapped."""

    __slots__ = ("request", "batch_id")

    def __init__(self, request: Any, batch_id: int) -> None:
        self.request = request
        self.batch_id = batch_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.request, name)

    def __repr__(self) -> str:
        return f"ScheduledRequest({self.request!r}, batch_id={self.batch_id})"


def count_words(text: str) -> int:
    """Default prompt length for text prompts: whitespace-separated words (pass your tokenizer instead)."""
    return max(1, len(text.split()))


class EnhancedScheduler:
    def __init__(
        self,
        config: SchedulerConfig | None = None,
        strategy: BatchingStrategy | str = BatchingStrategy.ADAPTIVE,
        *,
        clock: Callable[[], float] = time.monotonic,
        count_tokens: Callable[[str], int] = count_words,
    ) -> None:
        self.config = config or SchedulerConfig()
        self._clock = clock
        self._count_tokens = count_tokens
        self._core = SchedulerCore(self.config, strategy)
        self._requests: dict[str, Any] = {}
        self._outstanding: tuple[int, StepPlan] | None = None
        self._next_step_id = 1
        self._initialized = False
        self.wake_at: float | None = None  # when a waiting batch may become ready without a new event

    @property
    def core(self) -> SchedulerCore:
        return self._core

    @property
    def strategy(self) -> BatchingStrategy:
        return self._core.strategy

    async def initialize(self) -> None:
        self._initialized = True

    def _require(self) -> None:
        if not self._initialized:
            raise RuntimeError("EnhancedScheduler: call `await scheduler.initialize()` first")

    def set_batching_strategy(self, strategy: BatchingStrategy | str) -> None:
        self._core.set_strategy(strategy)

    async def add_request(self, request: Any) -> str | None:
        """Queue any object with request_id, prompt (text or token ids) or prompt_tokens, max_tokens and
        optional priority (1..10, default 5). Returns None when queued, else the rejection reason."""
        self._require()
        rid = str(request.request_id)
        sreq = SchedRequest(
            request_id=rid,
            prompt_tokens=self._prompt_len(request, rid),
            max_tokens=_int_attr(request, "max_tokens", rid, None),
            priority=_int_attr(request, "priority", rid, 5),
            arrival_s=self._clock(),
        )
        reason = self._core.add(sreq, sreq.arrival_s)
        if reason is None:
            self._requests[rid] = request
        return reason

    def _prompt_len(self, request: Any, rid: str) -> int:
        n = getattr(request, "prompt_tokens", None)
        if isinstance(n, int) and not isinstance(n, bool):
            return n
        if isinstance(n, Sequence) and not isinstance(n, str):
            return len(n)
        prompt = getattr(request, "prompt", None)
        if isinstance(prompt, str):
            return self._count_tokens(prompt)
        if isinstance(prompt, Sequence):
            return len(prompt)
        raise ValueError(f"request {rid!r}: needs `prompt` (text or token ids) or `prompt_tokens`")

    async def get_next_batch(self) -> list[Any]:
        """The next batch (requests sharing batch[0].batch_id), or [] if none is ready or one is outstanding."""
        self._require()
        if self._outstanding is not None:
            return []
        plan = self._core.plan(self._clock())
        if isinstance(plan, Idle):
            self.wake_at = plan.wake_at
            return []
        self.wake_at = None
        if plan.batch_id is not None:
            batch_id = plan.batch_id
        else:
            batch_id = self._next_step_id
            self._next_step_id += 1
        self._outstanding = (batch_id, plan)
        return [self._tag(self._requests[s.seq_id], batch_id) for s in plan.seqs if not s.idle]

    @staticmethod
    def _tag(request: Any, batch_id: int) -> Any:
        try:
            request.batch_id = batch_id
            return request
        except (AttributeError, TypeError):
            return ScheduledRequest(request, batch_id)

    async def complete_batch(
        self,
        batch_id: int,
        processing_time: float,
        gpu_utilization: float | None = None,
        memory_usage: float | None = None,
        finished: Collection[str] = (),
    ) -> bool:
        """Report the outstanding batch as processed. gpu_utilization (percent) and memory_usage may be None
        (not measured). `finished` (continuous only): requests that reached their end in this step."""
        self._require()
        if self._outstanding is None or self._outstanding[0] != batch_id:
            return False
        _, plan = self._outstanding
        self._outstanding = None
        now = self._clock()
        if plan.batch_id is not None:
            self._core.complete_batch(batch_id, processing_time, now, gpu_utilization, memory_usage)
        else:
            tokens = {s.seq_id: 0 for s in plan.seqs if s.samples and not s.idle}
            result = StepResult(
                step_s=processing_time,
                tokens=tokens,
                useful_tokens=plan.useful_tokens,
                padded_tokens=plan.computed_tokens - plan.useful_tokens,
            )
            self._core.complete_step(plan, result, finished, now, gpu_utilization, memory_usage)
        for s in plan.seqs:
            if self._core.state_of(s.seq_id) not in ("waiting", "running", "swapped"):
                self._requests.pop(s.seq_id, None)
        return True

    async def cancel_request(self, request_id: str) -> bool:
        """Cancel a waiting or running request; False when unknown or already ended (idempotent)."""
        self._require()
        ok = self._core.cancel(str(request_id), self._clock())
        if ok and (self._outstanding is None or all(s.seq_id != request_id for s in self._outstanding[1].seqs)):
            self._requests.pop(str(request_id), None)
        return ok

    def get_stats(self) -> dict:
        return self._core.stats()

    def get_batching_stats(self) -> dict:
        return self._core.batching_stats()

    async def cleanup(self) -> None:
        """Cancel everything still queued or running and close the scheduler."""
        for rid in list(self._requests):
            self._core.cancel(rid, self._clock())
        self._requests.clear()
        self._outstanding = None
        self._initialized = False


def _int_attr(request: Any, name: str, rid: str, default: int | None) -> int:
    value = getattr(request, name, None)
    if value is None:
        if default is None:
            raise ValueError(f"request {rid!r}: missing `{name}`")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"request {rid!r}: `{name}`={value!r} must be an integer")
    return value
