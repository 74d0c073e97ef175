"""Deterministic stand-ins for loop tests: an engine with an analytic step cost and a one-at-a-time core."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from inferneo_bench.steps import Idle, SeqStep, StepPlan, StepResult


@dataclass
class Spec:
    request_id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    max_tokens: int = 0
    priority: int = 5

    def __post_init__(self) -> None:
        self.max_tokens = self.max_tokens or self.output_tokens


class FakeEngine:
    """step_s = base + per_token x computed tokens; emits token 7 for every sampling sequence."""

    def __init__(
        self,
        base_s: float = 0.01,
        per_token_s: float = 0.001,
        max_model_len: int = 128,
        fail: dict[int, str] | None = None,
    ) -> None:
        self.base_s, self.per_token_s, self.max_model_len = base_s, per_token_s, max_model_len
        self.fail = fail or {}  # step index -> reason: every sequence of that step fails
        self.steps = 0
        self.registered: list[str] = []
        self.freed: list[str] = []

    def add_sequence(self, seq_id: str, prompt_len: int, prompt_ids=None) -> None:
        self.registered.append(seq_id)

    def step(self, plan: StepPlan) -> StepResult:
        self.freed.extend(plan.free)
        index, self.steps = self.steps, self.steps + 1
        computed, useful = plan.computed_tokens, plan.useful_tokens
        if not plan.seqs:
            return StepResult(0.0, {}, 0, 0)
        if index in self.fail:
            failed = {s.seq_id: self.fail[index] for s in plan.active}
            return StepResult(self.base_s, {}, 0, 0, failed=failed)
        tokens = {s.seq_id: 7 for s in plan.active if s.samples}
        return StepResult(self.base_s + self.per_token_s * computed, tokens, useful, computed - useful)

    def close(self) -> None:
        pass


class FifoCore:
    """Serves one request at a time, first come first served: a prefill step, then one decode per step."""

    def __init__(self) -> None:
        self.waiting: deque = deque()
        self.current = None
        self.generated = 0
        self.to_free: list[str] = []
        self.cancelled: set[str] = set()

    @property
    def queue_depth(self) -> int:
        return len(self.waiting)

    def add(self, request, now: float) -> str | None:
        if request.prompt_tokens > 100:
            return "too long for the fake core"
        self.waiting.append(request)
        return None

    def cancel(self, request_id: str, now: float) -> bool:
        if self.current is not None and self.current.request_id == request_id:
            self.to_free.append(request_id)
            self.current = None
            return True
        for r in self.waiting:
            if r.request_id == request_id:
                self.waiting.remove(r)
                return True
        return False

    def plan(self, now: float):
        free, self.to_free = self.to_free, []
        if self.current is None:
            if not self.waiting:
                return Idle(None) if not free else StepPlan(seqs=[], free=free)
            self.current, self.generated = self.waiting.popleft(), 0
            seq = SeqStep(self.current.request_id, 0, self.current.prompt_tokens, True)
        else:
            seq = SeqStep(self.current.request_id, self.current.prompt_tokens + self.generated - 1, 1, True)
        return StepPlan(seqs=[seq], free=free)

    def complete_step(self, plan, result, finished, now, gpu_utilization=None, memory_usage=None) -> None:
        if self.current is None:
            return
        rid = self.current.request_id
        self.generated += rid in result.tokens
        if rid in finished or rid in result.failed:
            self.to_free.append(rid)
            self.current = None


def analytic_profile(engine=None, **options):
    """(engine, profile): a QUICK_GRID profile of an AnalyticEngine (closed-form step costs), as the simulator
    tests build it; `options` override run_profile's arguments."""
    from inferneo_bench.engine.analytic import AnalyticEngine
    from inferneo_bench.engine.profile import QUICK_GRID, run_profile

    engine = engine or AnalyticEngine()
    defaults = dict(
        model="analytic",
        device_type="cpu",
        device_name="test",
        dtype="float32",
        grid=QUICK_GRID,
        copy_bandwidth_gbs=10.0,
        swap_bandwidth_gbs=5.0,
    )
    return engine, run_profile(engine, **{**defaults, **options})
