"""The Inferneo EnhancedScheduler: six batching strategies over one deterministic, clock-injected core."""

from inferneo_bench.scheduler.config import BatchingStrategy, ConfigError, SchedulerConfig
from inferneo_bench.scheduler.core import SchedulerCore
from inferneo_bench.scheduler.facade import EnhancedScheduler, ScheduledRequest
from inferneo_bench.scheduler.queue import SchedRequest

__all__ = [
    "BatchingStrategy",
    "ConfigError",
    "EnhancedScheduler",
    "SchedRequest",
    "ScheduledRequest",
    "SchedulerConfig",
    "SchedulerCore",
]
