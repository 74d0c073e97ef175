"""Scheduler configuration and strategy names.

`SchedulerConfig` accepts every field of the Inferneo design document's `SchedulerConfig` (its pydantic
model in `inferneo/core/config.py`) with the same names, and coerces values the way that model does in
pydantic's default (lax) mode: `"4"`, `"4.0"` and `4.0` for an integer, `"0.5"` for a number, `"yes"`,
`"off"`, `1` for a flag. The fields the document lacks (max_num_seqs, max_queue_delay_ms, target_tpot_ms,
bucket_width_tokens, kv_cache_tokens, priority_aging_ms, gpu_util_high_pct) are the knobs each strategy
needs to be precise. Invalid values raise `ConfigError` (a `UserError` and a `ValueError`) whose message
starts with the field name. Defaults, and where they differ from the document's and from the runner's:
docs/strategies.md ("Configuration").
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

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

# Running sequences when max_num_seqs is left to its default (None): this, raised to max_num_partial_prefills
# when that is larger (a batch cap above 32 is the document's to allow) and lowered to max_waiting_tokens when
# that is smaller (every running sequence must be able to decode within one step's token budget).
DEFAULT_MAX_NUM_SEQS = 32

# What the benchmark runner (`inferneo-bench run`, its CI baselines) uses where it departs from
# SchedulerConfig()'s defaults, which follow the design document (docs/strategies.md says why for each).
RUNNER_DEFAULTS: dict[str, Any] = {
    # open-loop replays overload on purpose: with strict priority a low-priority request can wait forever
    "priority_aging_ms": 1000.0,
    # NVML utilization is kernel-busy time, ~100% whenever the engine steps back to back at any batch size
    "gpu_util_high_pct": None,
}


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
    long_prefill_token_threshold: int = 512  # largest prefill chunk when chunking (continuous only)
    max_priority_levels: int = 10  # priorities run from 1 (lowest) to this (highest)
    # hard cap on requests in one batch / running at once; None: DEFAULT_MAX_NUM_SEQS adjusted (see above)
    max_num_seqs: int | None = None
    max_queue_delay_ms: float = 10.0  # longest a request waits for a batch to fill (Triton's dynamic batcher)
    target_tpot_ms: float | None = None  # adaptive's latency target; None = adaptive maximises throughput
    bucket_width_tokens: int = 64  # coalescing: prompt-length bucket width
    kv_cache_tokens: int = 65536  # KV capacity (token slots) that admission respects
    # aging: a waiting request gains +1 effective priority per priority_aging_ms waited; None: strict priority
    priority_aging_ms: float | None = None
    # adaptive: a batch measured above this GPU utilization (percent) shrinks the cap by 1; None: rule off
    gpu_util_high_pct: float | None = 90.0

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), _KINDS[f.name]))
        for name in (
            "max_num_partial_prefills",
            "max_waiting_tokens",
            "long_prefill_token_threshold",
            "max_priority_levels",
            "bucket_width_tokens",
            "kv_cache_tokens",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r}: must be an integer >= 1")
        if self.max_num_seqs is None:
            self.max_num_seqs = max(self.max_num_partial_prefills, min(DEFAULT_MAX_NUM_SEQS, self.max_waiting_tokens))
        elif self.max_num_seqs < 1:
            raise ConfigError(f"max_num_seqs={self.max_num_seqs!r}: must be an integer >= 1")
        if self.preemption_mode not in ("recompute", "swap"):
            raise ConfigError(f"preemption_mode={self.preemption_mode!r}: must be 'recompute' or 'swap'")
        if not math.isfinite(self.max_queue_delay_ms) or self.max_queue_delay_ms < 0:
            raise ConfigError(f"max_queue_delay_ms={self.max_queue_delay_ms!r}: must be a number >= 0")
        for name in ("target_tpot_ms", "priority_aging_ms"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise ConfigError(f"{name}={value!r}: must be a number > 0, or None")
        if self.gpu_util_high_pct is not None and not 0 < self.gpu_util_high_pct <= 100:
            raise ConfigError(
                f"gpu_util_high_pct={self.gpu_util_high_pct!r}: must be a percentage in (0, 100], or None"
            )
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


# ---- coercion (pydantic's lax mode, which the document's model uses) -------------------------------------
_INT, _FLOAT, _BOOL, _STR = "an integer", "a number", "true or false", "a string"
_KINDS: dict[str, tuple[str, bool]] = {  # field -> (kind, None allowed)
    "max_num_partial_prefills": (_INT, False),
    "max_waiting_tokens": (_INT, False),
    "enable_priority_queue": (_BOOL, False),
    "preemption_mode": (_STR, False),
    "enable_chunked_prefill": (_BOOL, False),
    "long_prefill_token_threshold": (_INT, False),
    "max_priority_levels": (_INT, False),
    "max_num_seqs": (_INT, True),
    "max_queue_delay_ms": (_FLOAT, False),
    "target_tpot_ms": (_FLOAT, True),
    "bucket_width_tokens": (_INT, False),
    "kv_cache_tokens": (_INT, False),
    "priority_aging_ms": (_FLOAT, True),
    "gpu_util_high_pct": (_FLOAT, True),
}
_TRUE = frozenset(("1", "on", "t", "true", "y", "yes"))
_FALSE = frozenset(("0", "off", "f", "false", "n", "no"))
_INT_TEXT = re.compile(r"\s*[+-]?\d+(?:_\d+)*(?:\.0*)?\s*")


def _coerce(name: str, value: Any, kind_none: tuple[str, bool]) -> Any:
    """The value as its field's type, accepting what pydantic's lax mode accepts; a bool is never a number
    (pydantic takes True as 1; here it is refused as a likely mistake)."""
    kind, optional = kind_none
    if value is None:
        if optional:
            return None
    elif kind == _BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
    elif kind == _STR:
        if isinstance(value, str):
            return value
    elif not isinstance(value, bool):
        if kind == _INT:
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and _INT_TEXT.fullmatch(value):
                return int(value.strip().split(".")[0])
        elif isinstance(value, (int, float)):
            return float(value)
        elif isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    raise ConfigError(f"{name}={value!r}: must be {kind}" + (", or None" if optional else ""))
