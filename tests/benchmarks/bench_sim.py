"""Simulated replay speed through the project's own runner: requests per wall second, SimEngine with the
shipped tiny CPU profile, continuous batching (the real SchedulerCore and replay loop on a virtual clock),
on the 19,366-request Azure LLM inference conversation trace (2023, CC-BY 4.0, shipped as azure-conv).
Target: >= 2,000 simulated requests per wall second (the whole trace in under 10 s).

    python tests/benchmarks/bench_sim.py [--workload azure-conv] [--max-num-seqs 256] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from inferneo_bench.engine.sim_engine import load_sim_engine  # noqa: E402
from inferneo_bench.metrics import summarize  # noqa: E402
from inferneo_bench.runner.clock import VirtualClock  # noqa: E402
from inferneo_bench.runner.replay import ReplayOptions, replay  # noqa: E402
from inferneo_bench.scheduler import SchedulerConfig, SchedulerCore  # noqa: E402
from inferneo_bench.workload import load_workload  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="azure-conv")
    ap.add_argument("--profile", default="tiny-cpu")
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    t = time.perf_counter()
    workload = load_workload(args.workload)
    load_s = time.perf_counter() - t
    n = len(workload.requests)
    print(
        f"workload {args.workload}: {n:,} requests over {workload.duration_s / 60:.1f} min (loaded in "
        f"{load_s * 1000:.0f} ms); profile {args.profile}; continuous, max_num_seqs {args.max_num_seqs}; "
        f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    summaries = []
    for trial in range(1, args.repeat + 1):
        engine = load_sim_engine(args.profile, max_num_seqs=args.max_num_seqs)
        config = SchedulerConfig(
            max_num_seqs=args.max_num_seqs,
            max_num_partial_prefills=args.max_num_seqs,
            max_waiting_tokens=8192,
            kv_cache_tokens=args.max_num_seqs * engine.max_model_len,
        )
        core = SchedulerCore(config, "continuous")
        t = time.perf_counter()
        out = replay(workload.requests, core, engine, VirtualClock(), ReplayOptions(engine.max_model_len))
        replay_s = time.perf_counter() - t
        t = time.perf_counter()
        s = summarize(out.requests, out.steps, {"harness": out.harness})
        summary_s = time.perf_counter() - t
        summaries.append(s)
        print(
            f"run {trial}: replay {replay_s:.2f} s wall -> {n / replay_s:,.0f} simulated req/s "
            f"(target >= 2,000: {'PASS' if n / replay_s >= 2000 else 'MISS'}); summarize {summary_s:.2f} s | "
            f"{s['completed']:,} completed, {s['rejected']:,} rejected, {s['num_steps']:,} steps, "
            f"mean batch {s['mean_batch_size']:.1f}, virtual duration {s['duration']:,.0f} s, "
            f"median TTFT {s['median_ttft_ms']:,.0f} ms"
        )
    print(f"deterministic across runs: {all(x == summaries[0] for x in summaries)}")


if __name__ == "__main__":
    main()
