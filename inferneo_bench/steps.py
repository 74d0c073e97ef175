"""The step interface shared by the scheduler core, the engines and the replay runner.

One execution model for every strategy: the engine runs *steps*. The scheduler core says what one step
computes (`StepPlan`); an engine (torch or simulated) executes it and says what it cost (`StepResult`).

Each sequence owns a token list = prompt ids + tokens sampled so far. A `SeqStep` computes the tokens
`[start_pos, start_pos + num_tokens)` of that list against the KV cache already holding `[0, start_pos)`:
a prefill chunk (start_pos = tokens already prefilled), a decode (start_pos = len - 1, num_tokens = 1), or a
recompute after preemption (start_pos = 0 again). `samples` says whether the step emits a new token for
that sequence (last prefill chunk, or a decode).

Static (request-level) batching sets `padded`: every non-idle sequence of the step is padded to the
longest `num_tokens`, and `idle` sequences (finished members of a frozen batch) still occupy their slot
and compute one padding token each. Padding and idle slots are real compute and are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class SeqStep:  # not frozen: a frozen dataclass's __init__ costs ~2x, and plans build one per sequence per step
    seq_id: str
    start_pos: int
    num_tokens: int
    samples: bool
    idle: bool = False


@dataclass(slots=True)
class StepPlan:
    seqs: list[SeqStep]
    padded: bool = False
    batch_id: int | None = None
    # KV lifecycle, applied by the engine *before* computing this step:
    free: list[str] = field(default_factory=list)  # finished, cancelled or recompute-preempted: release slot
    swap_out: list[str] = field(default_factory=list)  # swap-preempted: copy KV to host, release slot
    swap_in: list[str] = field(default_factory=list)  # resumed: copy KV back into a slot
    preempted: list[str] = field(default_factory=list)  # preempted before this step (either mode), for records
    # scheduler decisions worth recording with this step (e.g. adaptive cap changes with their reason)
    events: list[str] = field(default_factory=list)
    # a static batch's first plan: the limit that closed the batch (request_cap, token_budget, kv_capacity,
    # fill_delay, queue_empty); recorded for the reports, never read by a decision
    closed_by: str | None = None

    @property
    def computed_tokens(self) -> int:
        """Tokens the engine computes, padding and idle slots included."""
        if not self.seqs:
            return 0
        if self.padded:
            longest = max(s.num_tokens for s in self.seqs if not s.idle) if self.active else 1
            return longest * sum(1 for s in self.seqs if not s.idle) + sum(1 for s in self.seqs if s.idle)
        return sum(s.num_tokens for s in self.seqs)

    @property
    def useful_tokens(self) -> int:
        return sum(s.num_tokens for s in self.seqs if not s.idle)

    @property
    def active(self) -> list[SeqStep]:
        return [s for s in self.seqs if not s.idle]


@dataclass(slots=True)
class StepResult:
    step_s: float  # measured (torch) or predicted (sim) wall time of the step, swaps included
    tokens: dict[str, int]  # seq_id -> sampled token id, for every sampling seq that did not fail
    useful_tokens: int
    padded_tokens: int
    failed: dict[str, str] = field(default_factory=dict)  # seq_id -> reason (e.g. "CUDA out of memory")
    swap_s: float = 0.0  # part of step_s spent copying KV for swap_out / swap_in


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing to run now. `wake_at` is the earliest time the plan may change without a new arrival
    (e.g. a batch's fill delay expiring); None means only an arrival or completion can change it."""

    wake_at: float | None = None


class Engine(Protocol):
    """What the replay runner needs from an engine (torch or simulated)."""

    max_model_len: int

    def add_sequence(self, seq_id: str, prompt_len: int, prompt_ids: Sequence[int] | None = None) -> None:
        """Register a sequence before its first step. Without ids the engine draws deterministic ones."""

    def step(self, plan: StepPlan) -> StepResult:
        """Apply the plan's free/swap lists, compute the step, return what it cost."""

    def close(self) -> None:
        """Release device memory."""
