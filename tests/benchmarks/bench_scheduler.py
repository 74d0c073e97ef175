"""Decision time of SchedulerCore.plan() at 10, 1,000 and 100,000 waiting requests, for every strategy.

Each timed call is a real dispatch decision against a full queue: after every plan the step completes with
all its sequences finished, and the queue is topped back up to N (untimed), so the next plan forms a new
batch (static) or admits new sequences (continuous). Targets (issue 3): p99 <= 50 us at 1,000 waiting; the
100k/1k ratio no worse than logarithmic growth (ln 100000 / ln 1000 = 1.67).

    /work/venv/bin/python tests/benchmarks/bench_scheduler.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from inferneo_bench.scheduler import BatchingStrategy, SchedRequest, SchedulerConfig, SchedulerCore  # noqa: E402
from inferneo_bench.steps import StepPlan, StepResult  # noqa: E402

SIZES = (10, 1_000, 100_000)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def bench(strategy: BatchingStrategy, depth: int, calls: int, seed: int = 0) -> tuple[list[float], float]:
    rng = random.Random(seed)
    config = SchedulerConfig(max_queue_delay_ms=0.0, kv_cache_tokens=1 << 30, max_waiting_tokens=4096)
    core = SchedulerCore(config, strategy)
    counter = 0
    now = 0.0

    def top_up() -> None:
        nonlocal counter
        while core.queue_depth < depth:
            req = SchedRequest(
                f"r{counter}", rng.randint(16, 256), rng.randint(16, 128), rng.randint(1, 10), arrival_s=now
            )
            core.add(req, now)
            counter += 1

    members = 0

    def complete(plan: StepPlan) -> None:
        nonlocal members, now
        assert isinstance(plan, StepPlan), "every timed call must be a dispatch"
        tokens = {s.seq_id: 1 for s in plan.seqs if s.samples and not s.idle}
        ids = [s.seq_id for s in plan.seqs]
        members += len(ids)
        now += 0.001
        core.complete_step(plan, StepResult(0.001, tokens, 0, 0), ids, now)

    times = timed(calls, top_up, lambda: core.plan(now), complete)
    return times, members / calls


def timed(calls: int, top_up, decide, after) -> list[float]:  # noqa: ANN001 - callables of the two benches
    """Thread CPU time (us) of `decide()` over `calls` calls, the queue topped up (untimed) before each, and
    `after(result)` (untimed) after each; garbage collection off while timing."""
    top_up()
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(calls):
            top_up()
            t0 = time.thread_time_ns()
            out = decide()
            times.append((time.thread_time_ns() - t0) / 1000.0)
            after(out)
    finally:
        gc.enable()
    return times


def bench_reference(depth: int, calls: int, cap: int = 4, seed: int = 0) -> list[float]:
    """A minimal vLLM-style reference: waiting requests in a heap by (-priority, arrival, seq), a dispatch pops
    the head while the batch fits cap and the token budget, and builds the same SeqStep/StepPlan objects. No
    aging, no O(1) cancel, no oldest-request lane, no statistics: the floor a Python scheduler of this shape
    pays per decision, to set the core's fixed cost against."""
    import heapq

    from inferneo_bench.steps import SeqStep

    rng = random.Random(seed)
    heap: list[tuple] = []
    counter = 0

    def top_up() -> None:
        nonlocal counter
        while len(heap) < depth:
            req = SchedRequest(f"r{counter}", rng.randint(16, 256), rng.randint(16, 128), rng.randint(1, 10), 0.0)
            heapq.heappush(heap, (-req.priority, req.arrival_s, counter, req))
            counter += 1

    def decide() -> StepPlan:
        seqs, longest = [], 0
        while heap and len(seqs) < cap:
            req = heap[0][3]
            p = max(longest, req.prompt_tokens)
            if seqs and p * (len(seqs) + 1) > 4096:
                break
            heapq.heappop(heap)
            longest = p
            seqs.append(SeqStep(req.request_id, 0, req.prompt_tokens, True))
        return StepPlan(seqs, padded=True, batch_id=0)

    return timed(calls, top_up, decide, lambda plan: None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    print(
        f"plan() decision time, {args.calls} dispatch calls per cell; python {platform.python_version()}, "
        f"{platform.machine()}"
    )
    print("CPU time of the calling thread (time.thread_time_ns), so other processes' load is mostly excluded;")
    print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'strategy':<22}{'waiting':>9}{'p50 us':>10}{'p99 us':>10}{'seqs/plan':>11}{'p50 us/seq':>12}")
    ratios = []
    p50s = {}
    for strategy in BatchingStrategy:
        p99 = {}
        for depth in SIZES:
            times, per_plan = bench(strategy, depth, args.calls)
            p50, p99[depth] = statistics.median(times), percentile(times, 0.99)
            p50s[(strategy, depth)] = p50
            print(
                f"{strategy.value:<22}{depth:>9,}{p50:>10.1f}{p99[depth]:>10.1f}"
                f"{per_plan:>11.1f}{p50 / per_plan:>12.1f}"
            )
        ratio = p99[100_000] / p99[1_000]
        ratios.append((strategy.value, ratio, p99[1_000], p50s[(strategy, 100_000)] / p50s[(strategy, 1_000)]))
    ref = statistics.median(bench_reference(1_000, args.calls))
    ours = p50s[(BatchingStrategy.FIXED_SIZE, 1_000)]
    print(
        f"\nminimal vLLM-style reference (heap by priority, 4-request batches, same plan objects) at 1,000 waiting: "
        f"p50 {ref:.1f} us; fixed_size {ours:.1f} us = {ours / ref:.2f}x"
    )
    log_ratio = math.log(100_000) / math.log(1_000)
    print(f"\np99 at 100k / p99 at 1k (logarithmic growth would give {log_ratio:.2f}):")
    for name, ratio, p99_1k, p50_ratio in ratios:
        verdict = "ok" if ratio <= log_ratio and p99_1k <= 50.0 else "MISS"
        print(f"  {name:<22}{ratio:>6.2f} (p50 ratio {p50_ratio:4.2f})   p99@1k {p99_1k:5.1f} us <= 50 us   {verdict}")


if __name__ == "__main__":
    main()
