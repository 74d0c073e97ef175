"""An engine with a closed-form step cost and no model: for tests of the profiler, the cost model and the
simulator without torch (deterministic, instant). Not a simulator of any real device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inferneo_bench.steps import StepPlan, StepResult


class AnalyticEngine:
    """step_s = overhead + per_seq * sequences + per_token * computed tokens + per_attention * sum over
    sequences of new tokens x context; greedy 'tokens' are position numbers."""

    def __init__(
        self,
        *,
        max_model_len: int = 4096,
        num_slots: int = 64,
        overhead: float = 1e-3,
        per_seq: float = 2e-5,
        per_token: float = 1e-6,
        per_attention: float = 1e-9,
    ) -> None:
        self.max_model_len = max_model_len
        self.num_slots = num_slots
        self.kv_bytes_per_token = 1024
        self.weight_bytes = 10_000_000
        self.coef = (overhead, per_seq, per_token, per_attention)
        self.live: dict[str, int] = {}  # seq_id -> prompt_len
        self.steps = 0

    def model_info(self) -> dict[str, Any]:
        return {"name": "analytic", "family": "none", "vocab_size": 1000}

    def add_sequence(self, seq_id: str, prompt_len: int, prompt_ids: Sequence[int] | None = None) -> None:
        assert seq_id not in self.live and 1 <= prompt_len <= self.max_model_len
        self.live[seq_id] = prompt_len
        assert len(self.live) <= self.num_slots, "out of slots"

    def cost(self, plan: StepPlan) -> float:
        if not plan.seqs:
            return 0.0
        overhead, per_seq, per_token, per_attention = self.coef
        longest = max((s.num_tokens for s in plan.active), default=1)
        attention = sum(
            (longest if plan.padded and not s.idle else s.num_tokens) * (s.start_pos + s.num_tokens) for s in plan.seqs
        )
        return overhead + per_seq * len(plan.seqs) + per_token * plan.computed_tokens + per_attention * attention

    def step(self, plan: StepPlan) -> StepResult:
        for s in plan.free + plan.swap_out:
            self.live.pop(s, None)
        self.steps += 1
        tokens = {s.seq_id: s.start_pos + s.num_tokens for s in plan.seqs if s.samples and not s.idle}
        return StepResult(
            self.cost(plan), tokens, plan.useful_tokens, plan.computed_tokens - plan.useful_tokens, {}, 0.0
        )

    def close(self) -> None:
        self.live.clear()
