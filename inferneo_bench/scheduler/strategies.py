"""Batch-formation policies of the request-level (static) strategies.

Each policy answers two questions for the core when the engine is free and no batch is running:
`ready(queue, now)` — dispatch now, or wait until `wake_at` — and `form(queue, now)` — which waiting
requests make the batch. Every policy takes requests in queue order (priority with aging, or FCFS) and
stops at the first request that does not fit, so a batch is always a prefix of the queue (coalescing: a
prefix of each bucket it draws from). Decisions cost O(1) (ready) and O(batch log n) (form).

A batch "fits" when: members <= cap; padded prefill tokens (members x longest prompt) <= token budget;
padded KV (members x (longest prompt + largest max_tokens)) <= kv_cache_tokens. The first member always
fits: a prompt longer than the budget runs as a batch of one (the only case a budget is exceeded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from inferneo_bench.scheduler.config import BatchingStrategy, SchedulerConfig
from inferneo_bench.scheduler.queue import Entry, SchedRequest, WaitingQueue


@dataclass
class BatchRecord:
    """What a finished static batch cost; feeds the adaptive controller and the stats."""

    batch_id: int
    size: int
    cap: int
    processing_s: float  # sum of its step times
    output_tokens: int  # tokens sampled by its members
    tpot_s: float | None  # mean decode step time (None when the batch had no decode step)
    gpu_utilization: float | None  # mean of measured values over its steps, percent
    memory_usage: float | None


@dataclass
class _Builder:
    cap: int
    budget: int
    kv: int
    members: list[Entry] = field(default_factory=list)
    longest_prompt: int = 0
    longest_max: int = 0

    def fits(self, req: SchedRequest) -> bool:
        n = len(self.members) + 1
        if n == 1:
            return True
        if n > self.cap:
            return False
        lp = max(self.longest_prompt, req.prompt_tokens)
        lm = max(self.longest_max, req.max_tokens)
        return n * lp <= self.budget and n * (lp + lm) <= self.kv

    def add(self, entry: Entry) -> None:
        self.members.append(entry)
        self.longest_prompt = max(self.longest_prompt, entry.req.prompt_tokens)
        self.longest_max = max(self.longest_max, entry.req.max_tokens)

    @property
    def full(self) -> bool:
        return len(self.members) >= self.cap


def padding_of(prompts: list[int]) -> int:
    """Prefill padding of a static batch: every prompt padded to the longest."""
    return len(prompts) * max(prompts) - sum(prompts) if prompts else 0


class StaticPolicy:
    """fixed_size: dispatch when `cap` requests wait, their prompts fill the token budget, or the oldest
    has waited `delay`; take the head of the queue within cap and budget."""

    strategy = BatchingStrategy.FIXED_SIZE

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config

    # limits -------------------------------------------------------------------------------------------
    @property
    def cap(self) -> int:
        return self.config.max_num_partial_prefills

    @property
    def budget(self) -> int:
        return self.config.max_waiting_tokens

    def delay_s(self) -> float:
        return self.config.max_queue_delay_ms / 1000.0

    def bound_s(self) -> float:
        """Longest any waiting request may wait while the engine is free (the property tests check it)."""
        return self.config.max_queue_delay_ms / 1000.0

    # decisions ----------------------------------------------------------------------------------------
    def ready(self, queue: WaitingQueue, now: float) -> tuple[bool, float | None]:
        if len(queue) == 0:
            return False, None
        if self._full(queue):
            return True, None
        deadline = queue.oldest().req.arrival_s + self.delay_s()
        return (True, None) if now >= deadline else (False, deadline)

    def _full(self, queue: WaitingQueue) -> bool:
        return len(queue) >= self.cap or queue.tokens >= self.budget

    def form(self, queue: WaitingQueue, now: float) -> tuple[list[Entry], dict]:
        return queue.take_prefix(self.cap, self.budget, self.config.kv_cache_tokens), {}

    # feedback -----------------------------------------------------------------------------------------
    def on_arrival(self, now: float) -> None:
        pass

    def on_batch_done(self, record: BatchRecord) -> list[str]:
        return []

    def stats(self) -> dict:
        return {"batch_cap": self.cap, "token_budget": self.budget, "fill_delay_ms": self.delay_s() * 1000.0}


class LatencyPolicy(StaticPolicy):
    """latency_optimized: dispatch as soon as the engine is free; at most max(1, cap // 2) requests and
    half the token budget."""

    strategy = BatchingStrategy.LATENCY_OPTIMIZED

    @property
    def cap(self) -> int:
        return max(1, self.config.max_num_partial_prefills // 2)

    @property
    def budget(self) -> int:
        return max(1, self.config.max_waiting_tokens // 2)

    def delay_s(self) -> float:
        return 0.0

    def bound_s(self) -> float:
        return 0.0


class ThroughputPolicy(StaticPolicy):
    """throughput_optimized: wait up to 4 x max_queue_delay_ms to fill up to max_num_seqs; full budget."""

    strategy = BatchingStrategy.THROUGHPUT_OPTIMIZED

    @property
    def cap(self) -> int:
        return self.config.max_num_seqs

    def delay_s(self) -> float:
        return 4.0 * self.config.max_queue_delay_ms / 1000.0

    def bound_s(self) -> float:
        return self.delay_s()


class CoalescingPolicy(StaticPolicy):
    """coalescing: bucket waiting requests by prompt length (bucket_width_tokens). The batch comes from
    the bucket of the head of the queue; it dispatches when that bucket alone fills the batch (cap or
    budget) or the oldest request has waited max_queue_delay_ms; once the delay expired, the batch is
    topped up from the nearest non-empty buckets (nearest first, the shorter on a tie)."""

    strategy = BatchingStrategy.COALESCING

    def __init__(self, config: SchedulerConfig) -> None:
        super().__init__(config)
        self.padding_tokens = 0
        self.padding_avoided_tokens = 0

    def _full(self, queue: WaitingQueue) -> bool:
        head = queue.peek()
        return queue.bucket_count(head.bucket) >= self.cap or queue.bucket_tokens(head.bucket) >= self.budget

    def form(self, queue: WaitingQueue, now: float) -> tuple[list[Entry], dict]:
        head = queue.peek()
        if head is None:
            return [], {}
        baseline = [e.req.prompt_tokens for e in queue.top(self.cap)]  # what the head of the queue would give
        expired = now >= queue.oldest().req.arrival_s + self.delay_s()
        builder = _Builder(self.cap, self.budget, self.config.kv_cache_tokens)
        self._fill(queue, head.bucket, builder)
        if expired and not builder.full:
            for b in queue.nearest_buckets(head.bucket):
                self._fill(queue, b, builder)
                if builder.full:
                    break
        prompts = [e.req.prompt_tokens for e in builder.members]
        padding = padding_of(prompts)
        avoided = padding_of(baseline[: len(prompts)]) - padding
        self.padding_tokens += padding
        self.padding_avoided_tokens += avoided
        return builder.members, {"bucket": head.bucket, "padding": padding, "padding_avoided": avoided}

    @staticmethod
    def _fill(queue: WaitingQueue, b: int, builder: _Builder) -> None:
        while not builder.full:
            entry = queue.bucket_peek(b)
            if entry is None or not builder.fits(entry.req):
                return
            builder.add(queue.bucket_pop(b))

    def stats(self) -> dict:
        return {
            **super().stats(),
            "coalescing_padding_tokens": self.padding_tokens,
            "coalescing_padding_avoided_tokens": self.padding_avoided_tokens,
        }


class AdaptivePolicy(StaticPolicy):
    """adaptive: the batch cap moves by AIMD after every batch that finishes.

    - increase (only after a batch that was full, i.e. size == cap): +1, or +2 when the batch's measured GPU
      utilization was under 60% (only where it is measured);
      with target_tpot_ms: when the batch's TPOT (mean decode step time) met the target;
      without a target: when the batch's output tokens/s beat the previous full batch's.
    - decrease: cap = max(1, floor(cap x 0.75)) when the TPOT missed the target (any batch) or, without a
      target, a full batch's tokens/s fell below the previous full batch's.
    - over-utilized (the design document's rule): a batch whose measured GPU utilization exceeds
      gpu_util_high_pct shrinks the cap by 1 instead of any increase (a larger decrease above stands).
    - the cap stays within [1, max_num_seqs]; it starts at max_num_partial_prefills.
    - fill delay = min(max_queue_delay_ms, cap / arrival rate), arrival rate = 1 / EWMA(inter-arrival gap,
      alpha 0.2): the faster requests arrive, the shorter a batch waits to fill.
    Every change is returned as an event string with its reason.
    """

    strategy = BatchingStrategy.ADAPTIVE
    ALPHA = 0.2
    UTIL_LOW = 60.0
    DECREASE = 0.75

    def __init__(self, config: SchedulerConfig) -> None:
        super().__init__(config)
        self._cap = config.max_num_partial_prefills
        self._last_arrival: float | None = None
        self._gap_ewma: float | None = None
        self._prev_tps: tuple[int, float] | None = None  # (cap, tokens/s) of the previous full batch
        self.changes: list[str] = []

    @property
    def cap(self) -> int:
        return self._cap

    @property
    def arrival_rate(self) -> float | None:
        if self._gap_ewma is None:
            return None
        return math.inf if self._gap_ewma <= 0 else 1.0 / self._gap_ewma

    def delay_s(self) -> float:
        limit = self.config.max_queue_delay_ms / 1000.0
        rate = self.arrival_rate
        return limit if rate is None else min(limit, self._cap / rate)

    def on_arrival(self, now: float) -> None:
        if self._last_arrival is not None:
            gap = max(0.0, now - self._last_arrival)
            self._gap_ewma = gap if self._gap_ewma is None else (1 - self.ALPHA) * self._gap_ewma + self.ALPHA * gap
        self._last_arrival = now

    def on_batch_done(self, record: BatchRecord) -> list[str]:
        old = self._cap
        full = record.size >= old
        step = 2 if record.gpu_utilization is not None and record.gpu_utilization < self.UTIL_LOW else 1
        util = "" if step == 1 else f", gpu util {record.gpu_utilization:.0f}% < {self.UTIL_LOW:.0f}%"
        target = self.config.target_tpot_ms
        new, reason = old, ""
        if target is not None:
            if record.tpot_s is not None:  # a batch without a decode step measured nothing against the target
                tpot_ms = record.tpot_s * 1000.0
                if tpot_ms > target:
                    new, reason = self._decreased(), f"batch tpot {tpot_ms:.1f}ms missed target {target:g}ms"
                elif full:
                    new, reason = self._increased(step), f"batch tpot {tpot_ms:.1f}ms met target {target:g}ms{util}"
        elif full and record.processing_s > 0:
            tps = record.output_tokens / record.processing_s
            prev = self._prev_tps
            self._prev_tps = (old, tps)
            if prev is None:
                new, reason = self._increased(step), f"first full batch: {tps:.1f} tok/s{util}"
            elif tps >= prev[1]:
                new = self._increased(step)
                reason = f"{tps:.1f} tok/s beat {prev[1]:.1f} tok/s of previous batch at cap {prev[0]}{util}"
            else:
                new = self._decreased()
                reason = f"{tps:.1f} tok/s below {prev[1]:.1f} tok/s of previous batch at cap {prev[0]}"
        high, measured = self.config.gpu_util_high_pct, record.gpu_utilization
        if high is not None and measured is not None and measured > high and new >= old:
            new, reason = max(1, old - 1), f"gpu util {measured:.0f}% > {high:g}% (over-utilized)"
        if new == old:
            return []
        self._cap = new
        event = f"cap {old}->{new}: {reason}"
        self.changes.append(event)
        del self.changes[:-100]
        return [event]

    def _increased(self, step: int) -> int:
        return min(self.config.max_num_seqs, self._cap + step)

    def _decreased(self) -> int:
        return max(1, math.floor(self._cap * self.DECREASE))

    def stats(self) -> dict:
        rate = self.arrival_rate
        return {
            **super().stats(),
            "arrival_rate_per_s": None if rate is None or math.isinf(rate) else rate,
            "cap_changes": list(self.changes),
        }


POLICIES: dict[BatchingStrategy, type[StaticPolicy]] = {
    BatchingStrategy.FIXED_SIZE: StaticPolicy,
    BatchingStrategy.LATENCY_OPTIMIZED: LatencyPolicy,
    BatchingStrategy.THROUGHPUT_OPTIMIZED: ThroughputPolicy,
    BatchingStrategy.COALESCING: CoalescingPolicy,
    BatchingStrategy.ADAPTIVE: AdaptivePolicy,
}
