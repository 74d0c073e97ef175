"""Workloads: what traffic a run replays (synthetic generators and recorded traces)."""

from inferneo_bench.workload.loader import available, load_workload, workloads_dir
from inferneo_bench.workload.replay import CONTEXT_POLICIES, ContextPolicyResult, apply_context_policy
from inferneo_bench.workload.spec import RequestSpec, Workload
from inferneo_bench.workload.traces import FORMATS

__all__ = [
    "CONTEXT_POLICIES",
    "FORMATS",
    "ContextPolicyResult",
    "RequestSpec",
    "Workload",
    "apply_context_policy",
    "available",
    "load_workload",
    "workloads_dir",
]
