"""The synchronous scheduler core: deterministic, clock-injected, never sleeps.

The replay runner drives it directly: `add`/`cancel` requests, ask `plan(now)` whenever the engine is free
(a `StepPlan` to run, or `Idle(wake_at)`), then report the step with `complete_step`. The async
`EnhancedScheduler` facade wraps the same core: for static strategies it takes whole batches with
`dispatch(now)` (several may be out at once) and ends them with `complete_batch` / `end_request`; for
continuous it uses `plan`/`complete_step` like the runner. See docs/strategies.md for every rule.

Units: `gpu_utilization` in percent (0..100, NVML's kernel-busy %), `memory_usage` in MB, times in seconds.

Static strategies (fixed_size, adaptive, coalescing, latency_optimized, throughput_optimized) form a batch,
freeze it, prefill all members (padded), then decode all members (padded; finished members stay as idle
slots) until every member ended; the batch's KV is freed in the next plan. Continuous re-plans every step
(running decodes first, then partial and new prefills within the step's token budget).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from inferneo_bench.scheduler.config import BatchingStrategy, SchedulerConfig
from inferneo_bench.scheduler.queue import SchedRequest, WaitingQueue
from inferneo_bench.scheduler.strategies import POLICIES, BatchRecord, StaticPolicy
from inferneo_bench.steps import Idle, SeqStep, StepPlan, StepResult

WAITING, RUNNING, SWAPPED = "waiting", "running", "swapped"
COMPLETED, CANCELLED, FAILED, REJECTED = "completed", "cancelled", "failed", "rejected"
ENDED = (COMPLETED, CANCELLED, FAILED, REJECTED)


class _Seq:
    __slots__ = ("req", "rid", "seq", "state", "generated", "prefilled", "target", "first_scheduled_s", "kv", "batch")

    def __init__(self, req: SchedRequest) -> None:
        self.req = req
        self.rid = req.request_id
        self.seq = -1  # queue tie-break, kept across re-queues
        self.state = WAITING
        self.generated = 0  # tokens sampled so far
        self.prefilled = 0  # tokens of the current incarnation's prefill already computed
        self.target = req.prompt_tokens  # prefill length of the current incarnation (prompt + generated)
        self.first_scheduled_s: float | None = None
        self.kv = req.prompt_tokens + req.max_tokens  # KV slots reserved while running
        self.batch: _Batch | None = None  # static strategies: the batch it runs in

    @property
    def decoding(self) -> bool:
        return self.prefilled >= self.target

    @property
    def length(self) -> int:
        return self.req.prompt_tokens + self.generated


@dataclass
class _Batch:
    batch_id: int
    members: list[_Seq]
    cap: int
    policy: StaticPolicy | None = None  # the policy that formed it: only that one learns from it
    prefilled: bool = False
    step_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)
    gpu: list[float] = field(default_factory=list)
    mem: list[float] = field(default_factory=list)
    running: int = 0  # members still RUNNING (kept by SchedulerCore._end), so `done` is O(1) per step
    by_id: dict[str, _Seq] = field(default_factory=dict)
    closed_by: str | None = None  # the limit that closed it (SchedulerCore._closed_by): a record, not a decision

    @property
    def done(self) -> bool:
        return self.running == 0


class SchedulerCore:
    def __init__(self, config: SchedulerConfig, strategy: BatchingStrategy | str) -> None:
        self.config = config
        self.queue = WaitingQueue(config.enable_priority_queue, config.priority_aging_ms)
        self._waiting = self.queue.by_id  # its id -> entry map: len() is the queue depth, without a call
        self._live: dict[str, _Seq] = {}  # waiting, running or swapped
        self._ended: dict[str, str] = {}
        self._strategy = BatchingStrategy.parse(strategy)
        self._static = self._strategy.is_static  # cached: read several times per step
        self._policy: StaticPolicy | None = None
        self._batch: _Batch | None = None  # the batch the step-driven path (plan / complete_step) runs
        self._held: dict[int, _Batch] = {}  # batches taken whole by dispatch(), ended by complete_batch
        self._next_batch_id = 1
        self._running: dict[str, _Seq] = {}  # continuous: admission order
        self._running_priorities: Counter[int] = Counter()  # continuous: running sequences per priority
        self._swapped: list[tuple[float, float, int, _Seq]] = []  # continuous swap mode: heap by queue key
        self._kv_used = 0
        self._pending_free: list[str] = []
        self._pending_events: list[str] = []
        self._free_since = float("-inf")  # static: when the engine last became free (the last batch finished)
        self._closed: dict[str, int] = {}  # static: batches per closing limit
        self._apply_strategy()
        # statistics
        self._n = {k: 0 for k in ("total", "queued", *ENDED, "preemptions", "steps", "batches", "batches_done")}
        self._wait_sum = 0.0
        self._wait_n = 0
        self._wait_max = 0.0
        self._busy_s = 0.0
        self._output_tokens = 0
        self._batch_sizes_sum = 0
        self._max_batch = 0
        self._batch_time_sum = 0.0
        self._tpot_sum = 0.0
        self._tpot_n = 0
        self._gpu_sum = 0.0
        self._gpu_n = 0
        self._mem_sum = 0.0
        self._mem_n = 0
        self._padding_tokens = 0
        self._idle_slot_tokens = 0
        self._last_size = 0

    # ---- strategy -------------------------------------------------------------------------------------
    @property
    def strategy(self) -> BatchingStrategy:
        return self._strategy

    def set_strategy(self, strategy: BatchingStrategy | str) -> None:
        """Switch strategy. Static <-> continuous only while nothing runs (their execution differs);
        between static strategies the running batch finishes as formed and the next one follows the new rule."""
        new = BatchingStrategy.parse(strategy)
        if new.is_static != self._strategy.is_static and self.num_running:
            raise RuntimeError(
                f"cannot switch from {self._strategy.value} to {new.value} while {self.num_running} requests run"
            )
        self._strategy = new
        self._static = new.is_static
        self._apply_strategy()

    def _apply_strategy(self) -> None:
        s = self._strategy
        self._policy = POLICIES[s](self.config) if s.is_static else None
        self.queue.enable_buckets(self.config.bucket_width_tokens if s is BatchingStrategy.COALESCING else None)

    @property
    def policy(self) -> StaticPolicy | None:
        return self._policy

    # ---- requests -------------------------------------------------------------------------------------
    def add(self, request: SchedRequest, now: float) -> str | None:
        """Queue a request; None when queued, else the rejection reason (the request ends as rejected)."""
        self._n["total"] += 1
        rid = request.request_id
        reason = None
        if rid in self._live:
            reason = f"duplicate request_id {rid!r}: a request with this id is still in the scheduler"
        elif request.prompt_tokens < 1 or request.max_tokens < 1:
            reason = f"prompt_tokens={request.prompt_tokens}, max_tokens={request.max_tokens}: both must be >= 1"
        elif not 1 <= request.priority <= self.config.max_priority_levels:
            reason = (
                f"priority={request.priority}: must be between 1 (lowest) and "
                f"max_priority_levels={self.config.max_priority_levels} (highest)"
            )
        elif request.prompt_tokens + request.max_tokens > self.config.kv_cache_tokens:
            reason = (
                f"prompt_tokens+max_tokens={request.prompt_tokens + request.max_tokens} can never fit "
                f"kv_cache_tokens={self.config.kv_cache_tokens}"
            )
        if reason is not None:
            self._n[REJECTED] += 1
            if rid not in self._live:
                self._ended[rid] = REJECTED
            return reason
        s = _Seq(request)
        self._ended.pop(rid, None)
        self._live[rid] = s
        s.seq = self.queue.push(request, payload=s).seq
        self._n["queued"] += 1
        if self._policy is not None:
            self._policy.on_arrival(request.arrival_s)
        return None

    def cancel(self, request_id: str, now: float) -> bool:
        """Cancel a waiting, running or swapped request. False when unknown or already ended."""
        s = self._live.get(request_id)
        if s is None:
            return False
        if s.state == WAITING:
            self.queue.remove(request_id)
        else:
            self._detach(s)
        self._end(s, CANCELLED)
        return True

    def _detach(self, s: _Seq) -> None:
        """Free what a running or swapped sequence holds, before it ends outside a step report."""
        if s.state == RUNNING and s.req.request_id not in self._running:
            pass  # its slot stays in the frozen batch as an idle slot; freed with the batch
        elif s.state == RUNNING:
            self._release(s)
            self._pending_free.append(s.req.request_id)
        elif s.state == SWAPPED:
            self._swapped = [item for item in self._swapped if item[3] is not s]
            heapq.heapify(self._swapped)
            self._pending_free.append(s.req.request_id)  # the engine drops the host copy

    def drop_batch(self, batch_id: int) -> None:
        """Forget a dispatched batch without a report (its members ended, e.g. cancelled: the facade's stop)."""
        self._held.pop(batch_id, None)

    def end_request(self, request_id: str, now: float, success: bool = True) -> bool:
        """A running request ended outside a step report (the facade's complete_request): completed (a
        static member counts as having produced max_tokens) or failed. False when it is not running."""
        s = self._live.get(request_id)
        if s is None or s.state not in (RUNNING, SWAPPED):
            return False
        if success and s.state == RUNNING and s.req.request_id not in self._running:
            self._output_tokens += s.req.max_tokens - s.generated
            s.generated = s.req.max_tokens
        self._detach(s)
        self._end(s, COMPLETED if success else FAILED)
        return True

    def state_of(self, request_id: str) -> str | None:
        """waiting / running / swapped / completed / cancelled / failed / rejected, or None if unknown."""
        s = self._live.get(request_id)
        return s.state if s is not None else self._ended.get(request_id)

    def _end(self, s: _Seq, state: str) -> None:
        if s.state is RUNNING and s.batch is not None:
            s.batch.running -= 1
        s.state = state
        rid = s.rid
        del self._live[rid]
        self._ended[rid] = state
        self._n[state] += 1

    def _scheduled(self, s: _Seq, now: float) -> None:  # (inlined in _form_static, the rule is the same)
        if s.first_scheduled_s is None:
            s.first_scheduled_s = now
            wait = max(0.0, now - s.req.arrival_s)
            self._wait_sum += wait
            self._wait_n += 1
            self._wait_max = max(self._wait_max, wait)

    # ---- properties -----------------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def num_running(self) -> int:
        held = sum(b.running for b in self._held.values()) if self._held else 0
        if self._static or self._batch is not None:
            return held + (0 if self._batch is None else self._batch.running)
        return held + len(self._running) + len(self._swapped)

    @property
    def has_work(self) -> bool:
        return bool(len(self.queue) or self._batch is not None or self._held or self._running or self._swapped)

    def take_events(self) -> list[str]:
        """Scheduler events (adaptive cap changes) not yet handed out in a plan; for callers without plans."""
        events, self._pending_events = self._pending_events, []
        return events

    # ---- planning -------------------------------------------------------------------------------------
    def plan(self, now: float) -> StepPlan | Idle:
        """The next engine step, or Idle(wake_at). Call only when the engine is free."""
        if self._static:
            return self._plan_static(now)
        return self._plan_continuous(now)

    def _take_pending(self, plan: StepPlan) -> StepPlan:
        if self._pending_free:
            plan.free[:0] = self._pending_free
            self._pending_free = []
        if self._pending_events:
            plan.events[:0] = self._pending_events
            self._pending_events = []
        return plan

    # static -------------------------------------------------------------------------------------------
    def _plan_static(self, now: float) -> StepPlan | Idle:
        batch = self._batch
        if batch is not None and not batch.running:  # every member cancelled between steps
            self._finish_batch(now)
            batch = None
        if batch is not None:  # a decode step of the frozen batch: the hot path of every static strategy
            seqs = [
                SeqStep(m.rid, m.req.prompt_tokens + m.generated - 1, 1, True)
                if m.state is RUNNING
                else SeqStep(m.rid, m.req.prompt_tokens + m.generated - 1, 1, False, True)
                for m in batch.members
            ]
            plan = StepPlan(seqs, True, batch.batch_id)
            if self._pending_free or self._pending_events:
                self._take_pending(plan)
            return plan
        formed = self._form_static(now)
        if isinstance(formed, Idle):
            return formed
        self._batch, seqs = formed
        batch = self._batch
        return self._take_pending(StepPlan(seqs, padded=True, batch_id=batch.batch_id, closed_by=batch.closed_by))

    def dispatch(self, now: float) -> tuple[int, list[str]] | Idle:
        """Static strategies, for callers that run a batch whole (the facade): form the next batch if the
        strategy dispatches now, whatever other batches are out; (batch_id, member ids in queue order), or
        Idle(wake_at). The batch stays out until complete_batch; its members may end before, by end_request
        or cancel. Each batch fits the limits on its own (cap, token budget, kv_cache_tokens)."""
        if not self._strategy.is_static:
            raise RuntimeError("dispatch() is for static strategies; continuous runs step by step with plan()")
        formed = self._form_static(now)
        if isinstance(formed, Idle):
            return formed
        batch, _ = formed
        self._held[batch.batch_id] = batch
        return batch.batch_id, [m.req.request_id for m in batch.members]

    def _form_static(self, now: float) -> tuple[_Batch, list[SeqStep]] | Idle:
        """A new batch (members running, prefill steps) if the policy dispatches now, else Idle(wake_at)."""
        policy = self._policy
        assert policy is not None
        ready, wake_at = policy.ready(self.queue, now)
        if not ready:
            return Idle(wake_at)
        oldest = self.queue.oldest()
        deadline = oldest.req.arrival_s + policy.delay_s() if oldest is not None else now
        entries, info = policy.form(self.queue, now)
        batch = _Batch(self._next_batch_id, [], policy.cap, policy)
        batch.closed_by = self._closed_by(info.get("stop", ""), deadline, now, policy.delay_s())
        self._closed[batch.closed_by] = self._closed.get(batch.closed_by, 0) + 1
        self._next_batch_id += 1
        members, by_id, seqs = batch.members, batch.by_id, []
        longest = total = 0
        wait_sum, wait_n, wait_max = self._wait_sum, self._wait_n, self._wait_max
        for e in entries:  # flat loop: this runs for every member of every dispatched batch
            m: _Seq = e.payload
            members.append(m)
            by_id[m.rid] = m
            m.state = RUNNING
            m.batch = batch
            req = m.req
            p = req.prompt_tokens
            if m.first_scheduled_s is None:  # _scheduled, inlined
                m.first_scheduled_s = now
                wait = now - req.arrival_s
                if wait < 0.0:
                    wait = 0.0
                wait_sum += wait
                wait_n += 1
                if wait > wait_max:
                    wait_max = wait
            seqs.append(SeqStep(m.rid, 0, p, True))
            total += p
            if p > longest:
                longest = p
        self._wait_sum, self._wait_n, self._wait_max = wait_sum, wait_n, wait_max
        n = len(members)
        batch.running = n
        self._padding_tokens += n * longest - total
        self._n["batches"] += 1
        self._batch_sizes_sum += n
        if n > self._max_batch:
            self._max_batch = n
        self._last_size = n
        return batch, seqs

    def _closed_by(self, stop: str, deadline: float, now: float, delay_s: float) -> str:
        """Which limit closed a static batch (recorded, never decides anything):
        request_cap / token_budget / kv_capacity when one refused the next waiting request; when the batch
        took every eligible waiting request: fill_delay if the engine sat free waiting for the oldest request's
        delay to expire, queue_empty if it did not wait (no delay, or the engine came free after the deadline),
        token_budget if it left before the deadline (its waiting prompt tokens alone filled the budget)."""
        if stop != "exhausted":
            return stop
        if now < deadline:
            return "token_budget"
        return "fill_delay" if delay_s > 0 and self._free_since < deadline else "queue_empty"

    def _complete_static(self, plan: StepPlan, result: StepResult, finished: Collection[str], now: float) -> None:
        batch = self._batch
        if batch is None or plan.batch_id != batch.batch_id:
            return  # a stale plan (e.g. the facade completed the batch already)
        members, failed, tokens = batch.by_id, result.failed, result.tokens
        idle = produced = 0
        for step in plan.seqs:
            if step.idle:
                idle += 1
                continue
            m = members.get(step.seq_id)
            if m is None or m.state is not RUNNING:
                continue
            if failed or m.prefilled < m.target or not step.samples:
                self._advance(m, step, result, finished)  # the general rule
                continue
            # a decode that sampled, nothing failed: _advance's rule, inlined (every member, every step)
            rid = m.rid
            if rid not in tokens:
                self._end(m, FAILED)
                continue
            m.generated += 1
            produced += 1
            if rid in finished or m.generated >= m.req.max_tokens:
                self._end(m, COMPLETED)
        self._idle_slot_tokens += idle
        self._output_tokens += produced
        batch.step_s.append(result.step_s)
        if batch.prefilled:
            batch.decode_s.append(result.step_s)
        else:
            batch.prefilled = True
        if not batch.running:
            self._finish_batch(now)

    def _advance(self, s: _Seq, step: SeqStep, result: StepResult, finished: Collection[str]) -> bool:
        """Apply one computed SeqStep; True when the sequence ended."""
        rid = s.rid
        if result.failed and rid in result.failed:
            self._end(s, FAILED)
            return True
        if s.prefilled < s.target:  # still prefilling (s.decoding, inlined: this runs per sequence per step)
            s.prefilled += step.num_tokens
        if step.samples:
            if rid not in result.tokens:
                self._end(s, FAILED)
                return True
            s.generated += 1
            self._output_tokens += 1
        if rid in finished or s.generated >= s.req.max_tokens:
            self._end(s, COMPLETED)
            return True
        return False

    def _finish_batch(self, now: float, record: BatchRecord | None = None, batch: _Batch | None = None) -> None:
        """End the step-driven batch (default; its KV is freed in the next plan) or a dispatched one."""
        if batch is None:
            batch = self._batch
            assert batch is not None
            self._batch = None
            self._free_since = now
            self._pending_free.extend(m.req.request_id for m in batch.members)
        if record is None:
            record = BatchRecord(
                batch_id=batch.batch_id,
                size=len(batch.members),
                cap=batch.cap,
                processing_s=sum(batch.step_s),
                output_tokens=sum(m.generated for m in batch.members),
                tpot_s=sum(batch.decode_s) / len(batch.decode_s) if batch.decode_s else None,
                gpu_utilization=sum(batch.gpu) / len(batch.gpu) if batch.gpu else None,
                memory_usage=sum(batch.mem) / len(batch.mem) if batch.mem else None,
            )
        self._batch_time_sum += record.processing_s
        self._n["batches_done"] += 1
        if record.tpot_s is not None:
            self._tpot_sum += record.tpot_s
            self._tpot_n += 1
        if batch.policy is not None and batch.policy is self._policy:  # not a policy replaced since it formed
            self._pending_events.extend(batch.policy.on_batch_done(record))

    def complete_batch(
        self,
        batch_id: int,
        processing_time: float,
        now: float,
        gpu_utilization: float | None = None,
        memory_usage: float | None = None,
    ) -> bool:
        """End a whole static batch at once (the facade's complete_batch): every running member completes
        as if it produced max_tokens; TPOT = processing_time / longest max_tokens. False if not out."""
        _check_util(gpu_utilization)
        held = self._held.pop(batch_id, None)
        batch = held if held is not None else self._batch
        if batch is None or batch.batch_id != batch_id:
            return False
        produced = 0
        for m in batch.members:
            if m.state == RUNNING:
                produced += m.req.max_tokens - m.generated
                m.generated = m.req.max_tokens
                self._end(m, COMPLETED)
        self._output_tokens += produced
        self._busy_s += processing_time
        self._n["steps"] += 1
        self._note_telemetry(gpu_utilization, memory_usage)
        longest = max(m.req.max_tokens for m in batch.members)
        self._finish_batch(
            now,
            batch=held,
            record=BatchRecord(
                batch_id=batch_id,
                size=len(batch.members),
                cap=batch.cap,
                processing_s=processing_time,
                output_tokens=sum(m.generated for m in batch.members),
                tpot_s=processing_time / longest,
                gpu_utilization=gpu_utilization,
                memory_usage=memory_usage,
            ),
        )
        return True

    # continuous ---------------------------------------------------------------------------------------
    def _fits(self, s: _Seq) -> bool:
        return len(self._running) < self.config.max_num_seqs and self._kv_used + s.kv <= self.config.kv_cache_tokens

    def _release(self, s: _Seq) -> None:
        del self._running[s.rid]
        self._kv_used -= s.kv
        self._running_priorities[s.req.priority] -= 1

    def _admit_running(self, s: _Seq) -> None:
        s.state = RUNNING
        self._running[s.rid] = s
        self._kv_used += s.kv
        self._running_priorities[s.req.priority] += 1

    def _plan_continuous(self, now: float) -> StepPlan | Idle:
        cfg = self.config
        plan = StepPlan([])
        self._preempt_for_head(plan)
        # resume swapped sequences first unless the waiting head ranks ahead of them
        while self._swapped:
            k1, k2, seq, s = self._swapped[0]
            if s.state != SWAPPED:
                heapq.heappop(self._swapped)
                continue
            head = self.queue.peek()
            if head is not None and head.key < (k1, k2, seq):
                break
            if not self._fits(s):
                break
            heapq.heappop(self._swapped)
            self._admit_running(s)
            plan.swap_in.append(s.rid)
        seqs = plan.seqs
        append = seqs.append
        prefilling: list[_Seq] = []
        for s in self._running.values():  # hot: every running sequence, every step (properties inlined)
            if s.prefilled >= s.target:
                append(SeqStep(s.rid, s.req.prompt_tokens + s.generated - 1, 1, True))
            else:
                prefilling.append(s)
        budget = cfg.max_waiting_tokens - len(seqs)
        prefills = 0
        for s in prefilling:
            if prefills >= cfg.max_num_partial_prefills or budget <= 0:
                break
            chunk = self._chunk(s.target - s.prefilled, budget, bool(seqs))
            if chunk == 0:
                break
            seqs.append(SeqStep(s.req.request_id, s.prefilled, chunk, s.prefilled + chunk == s.target))
            budget -= chunk
            prefills += 1
        while prefills < cfg.max_num_partial_prefills and budget > 0:
            head = self.queue.peek()
            if head is None:
                break
            s = head.payload
            if not self._fits(s):
                break
            target = s.length
            chunk = self._chunk(target, budget, bool(seqs))
            if chunk == 0:
                break
            self.queue.pop()
            s.prefilled, s.target = 0, target
            self._admit_running(s)
            self._scheduled(s, now)
            seqs.append(SeqStep(s.req.request_id, 0, chunk, chunk == target))
            budget -= chunk
            prefills += 1
        if not seqs:
            if (
                plan.free or plan.swap_out or plan.swap_in
            ):  # cannot happen: a preemption always makes room for a prefill
                raise AssertionError("continuous plan preempted without scheduling anything")
            return Idle(None)
        self._last_size = len(seqs)
        self._batch_sizes_sum += len(seqs)
        self._max_batch = max(self._max_batch, len(seqs))
        return self._take_pending(plan)

    def _chunk(self, remaining: int, budget: int, step_has_seqs: bool) -> int:
        """Prefill tokens to schedule now: chunked to the budget and threshold, or all (0 = not this step).
        Unchunked, a prompt longer than the budget runs only as the sole work of a step."""
        if self.config.enable_chunked_prefill:
            return min(remaining, budget, self.config.long_prefill_token_threshold)
        if remaining <= budget or not step_has_seqs:
            return remaining
        return 0

    def _preempt_for_head(self, plan: StepPlan) -> None:
        """With priorities, a waiting head that cannot be admitted (seq cap or KV) preempts running
        sequences of strictly lower priority that it also outranks by effective priority (aging), lowest
        priority first and latest arrival first; only if preempting them makes enough room."""
        if not self.config.enable_priority_queue or not self._running:
            return
        head = self.queue.peek()
        if head is None:
            return
        hs = self._live[head.req.request_id]
        if self._fits(hs):
            return
        if not any(n for p, n in self._running_priorities.items() if p < hs.req.priority):
            return  # no running sequence of lower priority: no candidate, nothing to preempt (saves a scan)
        cfg = self.config
        candidates = sorted(
            (s for s in self._running.values() if s.req.priority < hs.req.priority and head.key < self._key(s)),
            key=lambda s: (s.req.priority, -s.req.arrival_s, -s.seq),
        )
        victims, seqs_free, kv_free = [], cfg.max_num_seqs - len(self._running), cfg.kv_cache_tokens - self._kv_used
        for s in candidates:
            if seqs_free >= 1 and kv_free >= hs.kv:
                break
            victims.append(s)
            seqs_free += 1
            kv_free += s.kv
        if not (seqs_free >= 1 and kv_free >= hs.kv):
            return
        for s in victims:
            rid = s.req.request_id
            self._release(s)
            self._n["preemptions"] += 1
            plan.preempted.append(rid)
            key = self._key(s)
            if cfg.preemption_mode == "swap":
                s.state = SWAPPED
                heapq.heappush(self._swapped, (*key, s))
                plan.swap_out.append(rid)
            else:
                s.state, s.prefilled = WAITING, 0
                s.target = s.length
                self.queue.push(s.req, seq=s.seq, payload=s)
                plan.free.append(rid)
            plan.events.append(f"preempt {rid} ({cfg.preemption_mode}): priority {hs.req.priority} arrival needs room")

    def _key(self, s: _Seq) -> tuple[float, float, int]:
        k1, k2 = self.queue.key_of(s.req)
        return (k1, k2, s.seq)

    def _complete_continuous(self, plan: StepPlan, result: StepResult, finished: Collection[str]) -> None:
        running, failed, tokens = self._running, result.failed, result.tokens
        produced = 0
        for step in plan.seqs:
            s = running.get(step.seq_id)
            if s is None or s.state is not RUNNING:
                continue  # cancelled or preempted while the step ran
            if failed or s.prefilled < s.target or not step.samples:
                ended = self._advance(s, step, result, finished)  # the general rule
            else:  # a decode that sampled, nothing failed: _advance's rule, inlined (every sequence, every step)
                rid = s.rid
                if rid not in tokens:
                    self._end(s, FAILED)
                    ended = True
                else:
                    s.generated += 1
                    produced += 1
                    ended = rid in finished or s.generated >= s.req.max_tokens
                    if ended:
                        self._end(s, COMPLETED)
            if ended:
                self._release(s)
                self._pending_free.append(step.seq_id)
        self._output_tokens += produced

    # ---- completion -----------------------------------------------------------------------------------
    def complete_step(
        self,
        plan: StepPlan,
        result: StepResult,
        finished: Collection[str],
        now: float,
        gpu_utilization: float | None = None,
        memory_usage: float | None = None,
    ) -> None:
        """Report a computed step. `finished`: sequences that reached their end (e.g. EOS) after it; the core
        also ends a sequence at max_tokens. Sequences in result.failed end as failed. Utilization in percent."""
        if gpu_utilization is not None:
            _check_util(gpu_utilization)
        if not finished:
            finished = ()
        elif not isinstance(finished, (set, frozenset)):
            finished = set(finished)
        self._n["steps"] += 1
        self._busy_s += result.step_s
        if gpu_utilization is not None or memory_usage is not None:
            self._note_telemetry(gpu_utilization, memory_usage)
            batch = self._batch
            if self._static and batch is not None and plan.batch_id == batch.batch_id:
                if gpu_utilization is not None:
                    batch.gpu.append(gpu_utilization)
                if memory_usage is not None:
                    batch.mem.append(memory_usage)
        if self._static:
            self._complete_static(plan, result, finished, now)
        else:
            self._complete_continuous(plan, result, finished)

    def _note_telemetry(self, gpu: float | None, mem: float | None) -> None:
        if gpu is not None:
            self._gpu_sum += gpu
            self._gpu_n += 1
        if mem is not None:
            self._mem_sum += mem
            self._mem_n += 1

    # ---- statistics -----------------------------------------------------------------------------------
    # Names: where the design document names a figure, the key has its meaning (docs/strategies.md, "Stats");
    # the core's own figures have their own names. None = not measured (the result files' null).
    def stats(self) -> dict:
        n = self._n
        steps = n["steps"]
        return {
            "strategy": self._strategy.value,
            "total_requests": n["total"],
            "queued_requests": n["queued"],
            "completed_requests": n[COMPLETED],
            "failed_requests": n[FAILED],
            "cancelled_requests": n[CANCELLED],
            "rejected_requests": n[REJECTED],
            "queue_depth": self.queue_depth,
            "num_running": self.num_running,
            "avg_wait_time": self._wait_sum / self._wait_n if self._wait_n else None,
            "max_wait_time": self._wait_max if self._wait_n else None,
            "avg_batch_time_s": (
                (self._batch_time_sum / n["batches_done"] if n["batches_done"] else None)
                if self._strategy.is_static
                else (self._busy_s / steps if steps else None)
            ),
            "steps": steps,
            "busy_time": self._busy_s,
            "output_tokens": self._output_tokens,
            "preemptions": n["preemptions"],
        }

    def batching_stats(self) -> dict:
        n = self._n
        static = self._strategy.is_static
        units = n["batches"] if static else n["steps"]
        depths = self.queue.bucket_summary()
        if self.queue.bucket_width is None:  # not coalescing: count the buckets the waiting requests would use
            width = self.config.bucket_width_tokens
            buckets = len({e.req.prompt_tokens // width for e in self.queue.entries()})
        else:
            buckets = len(depths)
        out = {
            "strategy": self._strategy.value,
            # the strategy's target batch size (adaptive: its current cap; continuous: max_num_seqs)
            "current_batch_size": self._policy.cap if self._policy is not None else self.config.max_num_seqs,
            "running_batch_size": (
                (len(self._batch.members) if self._batch is not None else 0) if static else len(self._running)
            ),
            "last_batch_size": self._last_size,
            "batches": n["batches"],
            "avg_batch_size": self._batch_sizes_sum / units if units else None,
            "max_batch_size": self._max_batch,
            "queue_size": self.queue_depth,
            "avg_output_tokens_per_s": self._output_tokens / self._busy_s if self._busy_s > 0 else None,
            "avg_tpot_ms": self._tpot_sum / self._tpot_n * 1000.0 if self._tpot_n else None,
            "avg_gpu_util_pct": self._gpu_sum / self._gpu_n if self._gpu_n else None,
            "avg_memory_used_mb": self._mem_sum / self._mem_n if self._mem_n else None,
            "padding_tokens": self._padding_tokens,
            "idle_slot_tokens": self._idle_slot_tokens,
            "preemptions": n["preemptions"],
            "coalescing_buckets": buckets,  # prompt-length buckets (bucket_width_tokens) holding waiting requests
            "coalescing_bucket_depths": depths,  # coalescing only: waiting requests per bucket, by token range
            "kv_tokens_reserved": self._kv_used if not static else None,
            "batches_closed_by": dict(sorted(self._closed.items())) if static else None,
        }
        if self._policy is not None:
            out.update(self._policy.stats())
        return out


def _check_util(value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 100.0:
        raise ValueError(f"gpu_utilization={value!r}: must be a percentage between 0 and 100, or None")
