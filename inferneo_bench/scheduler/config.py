"""Scheduler configuration and strategy names.

Field names and meanings follow the Inferneo design document; the fields it lacks (max_num_seqs,
max_queue_delay_ms, target_tpot_ms, bucket_width_tokens, kv_cache_tokens, priority_aging_ms) are the
knobs each strategy needs to be precise. Invalid values raise `ConfigError` (a `UserError` and a
`ValueError`) whose message names the field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum

from inferneo_bench.errors import UserError


class ConfigError(UserError, ValueError):
    """An invalid scheduler setting; the message starts with the field name."""


class BatchingStrategy(str, Enum):
    FIXED_SIZE = "fixed_size"
    ADAPTIVE = "adaptive"
    COALESCING = "coalescing"
    LATENCY_OPTIMIZED = "latency_optimized"
    THROUGHPUT_OPTIMIZED = "throughput_optimized"
    CONTINUOUS = "continuous"

    @classmethod
    def parse(cls, value: BatchingStrategy | str) -> BatchingStrategy:
        """Accept the enum, its long name, or the short aliases fixed/latency/throughput."""
        if isinstance(value, BatchingStrategy):
            return value
        name = str(value).strip().lower().replace("-", "_")
        name = _ALIASES.get(name, name)
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ConfigError(f"strategy {value!r}: unknown batching strategy; use one of {known}") from None

    @property
    def is_static(self) -> bool:
        """Request-level strategies freeze a batch until it drains; continuous re-plans every step."""
        return self is not BatchingStrategy.CONTINUOUS


_ALIASES = {"fixed": "fixed_size", "latency": "latency_optimized", "throughput": "throughput_optimized"}


@dataclass
class SchedulerConfig:
    # requests per batch for fixed_size and coalescing; starting cap for adaptive; for continuous, the
    # most sequences that may be prefilling (partial prefills) in one step, as in vLLM
    max_num_partial_prefills: int = 4
    # token budget of one batch (padded prefill tokens) or of one continuous step (tokens computed)
    max_waiting_tokens: int = 2048
    enable_priority_queue: bool = True
    preemption_mode: str = "recompute"  # "recompute" or "swap" (continuous only)
    enable_chunked_prefill: bool = True  # continuous only
    long_prefill_token_threshold: int = 512  # largest prefill chunk when chunking
    max_num_seqs: int = 32  # hard cap on requests in one batch / running at once
    max_queue_delay_ms: float = 10.0  # longest a request waits for a batch to fill (Triton's dynamic batcher)
    target_tpot_ms: float | None = None  # adaptive's latency target; None = adaptive maximises throughput
    bucket_width_tokens: int = 64  # coalescing: prompt-length bucket width
    kv_cache_tokens: int = 65536  # KV capacity (token slots) that admission respects
    # aging: a waiting request gains +1 effective priority per priority_aging_ms waited; None disables aging
    priority_aging_ms: float | None = 1000.0

    def __post_init__(self) -> None:
        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r}: must be an integer >= 1")

        for name in (
            "max_num_partial_prefills",
            "max_waiting_tokens",
            "long_prefill_token_threshold",
            "max_num_seqs",
            "bucket_width_tokens",
            "kv_cache_tokens",
        ):
            positive_int(name)
        for name in ("enable_priority_queue", "enable_chunked_prefill"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r}: must be true or false")
        if self.preemption_mode not in ("recompute", "swap"):
            raise ConfigError(f"preemption_mode={self.preemption_mode!r}: must be 'recompute' or 'swap'")
        if not _is_number(self.max_queue_delay_ms) or self.max_queue_delay_ms < 0:
            raise ConfigError(f"max_queue_delay_ms={self.max_queue_delay_ms!r}: must be a number >= 0")
        if self.target_tpot_ms is not None and (not _is_number(self.target_tpot_ms) or self.target_tpot_ms <= 0):
            raise ConfigError(f"target_tpot_ms={self.target_tpot_ms!r}: must be a number > 0, or None")
        if self.priority_aging_ms is not None and (
            not _is_number(self.priority_aging_ms) or self.priority_aging_ms <= 0
        ):
            raise ConfigError(f"priority_aging_ms={self.priority_aging_ms!r}: must be a number > 0, or None")
        if self.max_num_partial_prefills > self.max_num_seqs:
            raise ConfigError(
                f"max_num_partial_prefills={self.max_num_partial_prefills}: must not exceed "
                f"max_num_seqs={self.max_num_seqs}"
            )
        if self.max_waiting_tokens < self.max_num_seqs:
            raise ConfigError(
                f"max_waiting_tokens={self.max_waiting_tokens}: must be >= max_num_seqs={self.max_num_seqs} "
                "so every running sequence can decode in one step"
            )

    def to_dict(self) -> dict:
        return asdict(self)


def _is_number(value: object) -> bool:
    """A finite number: NaN and infinity are refused (an infinite delay never dispatches; JSON cannot hold it)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
