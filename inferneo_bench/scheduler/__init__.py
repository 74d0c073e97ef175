"""The Inferneo EnhancedScheduler: six batching strategies over one deterministic, clock-injected core."""

from inferneo_bench.scheduler.config import RUNNER_DEFAULTS, BatchingStrategy, ConfigError, SchedulerConfig
from inferneo_bench.scheduler.core import SchedulerCore
from inferneo_bench.scheduler.facade import (
    BatchMetrics,
    EnhancedScheduler,
    RequestRejected,
    RequestState,
    ScheduledRequest,
)
from inferneo_bench.scheduler.queue import SchedRequest

__all__ = [
    "RUNNER_DEFAULTS",
    "BatchMetrics",
    "BatchingStrategy",
    "ConfigError",
    "EnhancedScheduler",
    "RequestRejected",
    "RequestState",
    "SchedRequest",
    "ScheduledRequest",
    "SchedulerConfig",
    "SchedulerCore",
]
