"""A tiny fake engine and replay loop on a virtual clock that checks every scheduler invariant as it goes.

Used by the scheduler's exact and property tests (not collected itself). The fake engine keeps each
sequence's KV length and token list and asserts that every StepPlan is executable: prefill chunks continue
where the KV ends, decodes compute the last token, recompute restarts at 0, swap-out/in pair up, nothing
computes a freed or ended sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inferneo_bench.scheduler import BatchingStrategy, SchedRequest, SchedulerConfig, SchedulerCore
from inferneo_bench.steps import Idle, StepPlan, StepResult

ENDED = {"completed", "cancelled", "failed", "rejected"}
EPS = 1e-9


@dataclass
class Arrival:
    t: float
    req: SchedRequest
    output_len: int  # true output length (EOS), hidden from the scheduler
    cancel_at: float | None = None
    fail: bool = False  # the engine fails this sequence on its first step


@dataclass
class Trace:
    plans: list[tuple[float, StepPlan]] = field(default_factory=list)
    idles: list[tuple[float, Idle]] = field(default_factory=list)
    generated: dict[str, int] = field(default_factory=dict)
    cancel_results: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

    def batches(self) -> list[list[str]]:
        """Members of each dispatched static batch (its prefill plan), in order."""
        return [[s.seq_id for s in p.seqs] for _, p in self.plans if p.batch_id is not None and _is_prefill(p)]


def _is_prefill(plan: StepPlan) -> bool:
    return all(s.start_pos == 0 and not s.idle for s in plan.seqs)


def step_time(plan: StepPlan) -> float:
    return 0.001 + 0.00001 * plan.computed_tokens


class Checker:
    """Replays arrivals through a core, asserting invariants on every decision."""

    def __init__(self, config: SchedulerConfig, strategy: str, arrivals: list[Arrival], step=step_time) -> None:
        self.cfg = config
        self.strategy = BatchingStrategy.parse(strategy)
        self.core = SchedulerCore(config, self.strategy)
        self.arrivals = sorted(arrivals, key=lambda a: a.t)
        self.by_id = {a.req.request_id: a for a in arrivals}
        self.step = step
        self.trace = Trace()
        # fake engine state
        self.kv: dict[str, int] = {}  # resident seq -> KV length
        self.host: dict[str, int] = {}  # swapped-out seq -> KV length
        self.gen: dict[str, int] = {}  # tokens sampled per seq
        self.batch_kv = 0
        # the test's own model of the waiting queue: rid -> key
        self.waiting: dict[str, tuple] = {}
        self.order = 0
        self.seqno: dict[str, int] = {}
        self.cancelled: set[str] = set()
        self.ended_by_core: set[str] = set()
        self.preempted_since_dispatch: set[str] = set()
        self.dispatched: set[str] = set()

    # ---- spec-side helpers ----------------------------------------------------------------------------
    def key(self, rid: str) -> tuple:
        r = self.by_id[rid].req
        if not self.cfg.enable_priority_queue:
            return (r.arrival_s, 0.0, self.seqno[rid])
        if self.cfg.priority_aging_ms is None:
            return (-r.priority, r.arrival_s, self.seqno[rid])
        aging_s = self.cfg.priority_aging_ms / 1000.0
        return (r.arrival_s - r.priority * aging_s, r.arrival_s, self.seqno[rid])

    def bound(self) -> float:
        d = self.cfg.max_queue_delay_ms / 1000.0
        return {
            BatchingStrategy.LATENCY_OPTIMIZED: 0.0,
            BatchingStrategy.THROUGHPUT_OPTIMIZED: 4 * d,
            BatchingStrategy.CONTINUOUS: 0.0,
        }.get(self.strategy, d)

    # ---- events ---------------------------------------------------------------------------------------
    def _deliver(self, until: float, inclusive: bool) -> None:
        while self._events and (self._events[0][0] < until or (inclusive and self._events[0][0] <= until)):
            t, kind, a = self._events.pop(0)
            rid = a.req.request_id
            if kind == 0:
                reason = self.core.add(a.req, t)
                if reason is None:
                    self.seqno[rid] = self.order
                    self.order += 1
                    self.waiting[rid] = self.key(rid)
                    self.gen[rid] = 0
                else:
                    self.trace.rejected[rid] = reason
            else:
                before = self.core.state_of(rid)
                first = self.core.cancel(rid, t)
                second = self.core.cancel(rid, t)
                assert first == (before is not None and before not in ENDED), (rid, before, first)
                assert second is False
                self.trace.cancel_results[rid] = (first, second)
                if first:
                    self.cancelled.add(rid)
                    self.waiting.pop(rid, None)

    def run(self, max_plans: int = 100_000) -> Trace:
        ev = [(a.t, 0, a) for a in self.arrivals]
        ev += [(a.cancel_at, 1, a) for a in self.arrivals if a.cancel_at is not None]
        self._events = sorted(ev, key=lambda e: (e[0], e[1]))
        now = 0.0
        for _ in range(max_plans):
            self._deliver(now, inclusive=True)
            policy = self.core.policy
            cap = policy.cap if policy is not None else self.cfg.max_num_seqs
            plan = self.core.plan(now)
            if isinstance(plan, Idle):
                self.check_idle(now, plan, cap)
                nxt = [t for t in (self._events[0][0] if self._events else None, plan.wake_at) if t is not None]
                if not nxt:
                    break
                now = min(nxt)
                continue
            self.check_plan(now, plan, cap)
            result, finished = self.execute(plan)
            end = now + result.step_s
            self._deliver(end, inclusive=False)
            self.core.complete_step(plan, result, finished, end)
            now = end
        else:
            raise AssertionError("scheduler did not drain")
        self.check_final()
        return self.trace

    # ---- checks ---------------------------------------------------------------------------------------
    def check_idle(self, now: float, idle: Idle, cap: int) -> None:
        self.trace.idles.append((now, idle))
        if not self.waiting:
            return
        assert self.strategy.is_static, "continuous idles with requests waiting"
        oldest = min(self.by_id[r].req.arrival_s for r in self.waiting)
        assert now < oldest + self.bound(), f"idle at {now} while {len(self.waiting)} wait, oldest since {oldest}"
        assert idle.wake_at is not None and now < idle.wake_at <= oldest + self.bound() + EPS
        if self.strategy is not BatchingStrategy.COALESCING:
            assert len(self.waiting) < cap

    def check_plan(self, now: float, plan: StepPlan, cap: int) -> None:
        self.trace.plans.append((now, plan))
        cfg = self.cfg
        # KV lifecycle first, as the engine applies it
        for rid in plan.free:
            assert rid in self.kv or rid in self.host, f"free of unknown {rid}"
            self.kv.pop(rid, None)
            self.host.pop(rid, None)
        for rid in plan.swap_out:
            assert rid in self.kv and rid in plan.preempted
            self.host[rid] = self.kv.pop(rid)
        for rid in plan.swap_in:
            assert rid in self.host
            self.kv[rid] = self.host.pop(rid)
        for rid in plan.preempted:
            assert rid not in self.kv
            if cfg.preemption_mode == "recompute":
                assert rid in plan.free
                self.preempted_since_dispatch.add(rid)
                self.waiting[rid] = self.key(rid)  # re-queued
        seen = set()
        new = []
        for s in plan.seqs:
            assert s.seq_id not in seen, "sequence twice in one step"
            seen.add(s.seq_id)
            rid = s.seq_id
            a = self.by_id[rid]
            length = a.req.prompt_tokens + self.gen[rid]
            if s.idle:
                assert plan.padded and rid in self.kv
                continue
            assert rid not in self.cancelled, f"cancelled {rid} computed"
            assert rid not in self.ended_by_core, f"ended {rid} computed"
            if rid not in self.kv:  # a (re)dispatch: prefill from 0
                assert s.start_pos == 0 and rid not in self.host
                assert rid not in self.dispatched or rid in self.preempted_since_dispatch, f"{rid} dispatched twice"
                assert rid in self.waiting, f"{rid} dispatched but not waiting"
                self.dispatched.add(rid)
                self.preempted_since_dispatch.discard(rid)
                self.kv[rid] = 0
                new.append(rid)
            assert s.start_pos == self.kv[rid], (rid, s, self.kv[rid])
            assert s.start_pos + s.num_tokens <= length
            assert s.samples == (s.start_pos + s.num_tokens == length)
            if self.gen[rid] > 0 and s.start_pos == length - 1:
                assert s.num_tokens == 1
        active = [s for s in plan.seqs if not s.idle]
        # priority order at dispatch
        if new:
            w_before = dict(self.waiting)
            for rid in new:
                del self.waiting[rid]
            if plan.preempted and cfg.preemption_mode == "recompute":
                for rid in plan.preempted:
                    w_before.pop(rid, None)
            if self.strategy is BatchingStrategy.COALESCING:
                head = min(w_before, key=lambda r: w_before[r])
                assert head in new, "coalescing batch lacks the head of the queue"
            else:
                rest = [k for r, k in self.waiting.items() if r not in plan.preempted]
                if rest:
                    assert max(self.key(r) for r in new) < min(rest), "dispatch out of priority order"
        if self.strategy.is_static:
            assert plan.padded and plan.batch_id is not None
            n = len(plan.seqs)
            if new:
                assert len(new) == n
                assert n <= cap, f"batch of {n} over cap {cap}"
                budget = self.core.policy.budget
                lp = max(self.by_id[r].req.prompt_tokens for r in new)
                lm = max(self.by_id[r].req.max_tokens for r in new)
                assert n == 1 or n * lp <= budget, "batch over token budget"
                assert n == 1 or n * (lp + lm) <= cfg.kv_cache_tokens
                assert len(self.kv) == n, "previous batch not freed"
        else:
            assert not plan.padded
            assert len(self.kv) <= cfg.max_num_seqs and len(active) <= cfg.max_num_seqs
            resident = sum(self.by_id[r].req.prompt_tokens + self.by_id[r].req.max_tokens for r in self.kv)
            assert resident <= cfg.kv_cache_tokens, "KV capacity exceeded"
            if cfg.enable_chunked_prefill:
                assert plan.useful_tokens <= cfg.max_waiting_tokens
                assert all(s.num_tokens <= cfg.long_prefill_token_threshold for s in active)
            else:
                assert plan.useful_tokens <= cfg.max_waiting_tokens or len(active) == 1
            prefills = [s for s in active if not (self.gen[s.seq_id] > 0 and s.start_pos == self._len(s.seq_id) - 1)]
            assert len(prefills) <= cfg.max_num_partial_prefills

    def _len(self, rid: str) -> int:
        return self.by_id[rid].req.prompt_tokens + self.gen[rid]

    def execute(self, plan: StepPlan) -> tuple[StepResult, list[str]]:
        tokens, failed, finished = {}, {}, []
        for s in plan.seqs:
            if s.idle:
                continue
            rid = s.seq_id
            self.kv[rid] = s.start_pos + s.num_tokens
            a = self.by_id[rid]
            if a.fail:
                failed[rid] = "injected failure"
                self.ended_by_core.add(rid)
                continue
            if s.samples:
                tokens[rid] = 7
                self.gen[rid] += 1
                if self.gen[rid] >= min(a.output_len, a.req.max_tokens):
                    finished.append(rid)
                    self.ended_by_core.add(rid)
        useful = plan.useful_tokens
        result = StepResult(self.step(plan), tokens, useful, plan.computed_tokens - useful, failed)
        return result, finished

    def check_final(self) -> None:
        core = self.core
        assert not core.has_work and core.queue_depth == 0 and core.num_running == 0
        states: dict[str, set[str]] = {s: set() for s in ENDED}
        for rid, a in self.by_id.items():
            st = core.state_of(rid)
            assert st in ENDED, (rid, st)
            states[st].add(rid)
            if st == "completed":
                assert self.gen[rid] == min(a.output_len, a.req.max_tokens), (rid, self.gen[rid])
                assert rid not in self.cancelled and not a.fail
            if st == "cancelled":
                assert rid in self.cancelled
            if st == "rejected":
                assert rid in self.trace.rejected
            if st == "failed":
                assert a.fail
        assert sum(len(v) for v in states.values()) == len(self.by_id)
        stats = core.stats()
        assert stats["completed_requests"] == len(states["completed"])
        assert stats["cancelled_requests"] == len(states["cancelled"])
        assert stats["rejected_requests"] == len(states["rejected"])
        assert stats["failed_requests"] == len(states["failed"])
        self.trace.generated = dict(self.gen)
