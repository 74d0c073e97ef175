"""Speed of workload loading and generation (run by hand: python tests/benchmarks/bench_workloads.py).

Targets (issue 6): the full Azure conversation trace (19,366 rows) loads in < 1 s; 1,000,000 synthetic
requests generate in < 5 s. Each figure is the best of several repeats (the least disturbed by other load).
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from inferneo_bench.workload import load_workload  # noqa: E402
from inferneo_bench.workload.spec import content_hash  # noqa: E402
from inferneo_bench.workload.synthetic import generate  # noqa: E402
from inferneo_bench.workload.traces import read_trace  # noqa: E402

TRACE = Path(__file__).resolve().parents[2] / "workloads" / "traces" / "AzureLLMInferenceTrace_conv.csv"
SPEC_1M = {
    "num_requests": 1_000_000,
    "arrival": {"process": "gamma", "rate": 50.0, "burstiness": 0.5},
    "prompt_tokens": {"dist": "lognormal", "mean": 1024, "std": 768, "max": 8192},
    "output_tokens": {"dist": "uniform", "min": 16, "max": 512},
    "priority": {1: 0.2, 5: 0.6, 10: 0.2},
}


def best(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def report(label: str, seconds: float, target: float, extra: str = "") -> None:
    verdict = "PASS" if seconds < target else "FAIL"
    headroom = f"{target / seconds:6.1f}x headroom"
    print(f"{label:<46} {seconds * 1000:9.1f} ms   target < {target:.0f} s   {headroom}  {verdict} {extra}")


def main() -> None:
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = f"{names[0]} x {len(names)}" if names else cpu
    print(f"machine: {cpu}; python {platform.python_version()}; {platform.system()}")
    t, data = best(lambda: read_trace(TRACE), 5)
    report("read Azure conv trace (19,366 rows)", t, 1.0, f"[{len(data.prompt_tokens):,} rows]")
    t, w = best(lambda: load_workload("azure-conv"), 5)
    report("load_workload('azure-conv') -> RequestSpecs", t, 1.0, f"[{w.num_requests:,} requests]")
    t, reqs = best(lambda: generate(SPEC_1M, 0), 3)
    report("generate 1,000,000 synthetic requests", t, 5.0, f"[{len(reqs):,} requests]")
    t, _ = best(lambda: content_hash(reqs), 1)
    print(f"{'content_hash of 1,000,000 requests':<46} {t * 1000:9.1f} ms   (not a target; computed once per result)")


if __name__ == "__main__":
    main()
