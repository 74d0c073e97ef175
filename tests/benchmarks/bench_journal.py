"""Cost of the per-request journal (issue 15): the simulated replay of a trace with and without journalling,
side by side in one process (best of N each, alternating), and the ratio.

    python tests/benchmarks/bench_journal.py [--workload azure-conv] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from inferneo_bench.engine.profile import load_profile
from inferneo_bench.engine.sim_engine import SimEngine
from inferneo_bench.runner.clock import VirtualClock
from inferneo_bench.runner.journal import Header, Journal
from inferneo_bench.runner.replay import ReplayOptions, replay
from inferneo_bench.scheduler import SchedulerConfig, SchedulerCore
from inferneo_bench.workload import load_workload


def once(workload, journal_dir: Path | None) -> float:
    engine = SimEngine(load_profile("tiny-cpu"), max_num_seqs=32)
    core = SchedulerCore(SchedulerConfig(), "continuous")
    hooks = {}
    journal = None
    if journal_dir is not None:
        strategy = {"name": "continuous", "config": dataclasses.asdict(SchedulerConfig())}
        header = Header({}, {}, {}, {}, strategy, None, {})
        journal = Journal.create(journal_dir / "continuous.json", header, workload.requests, 0)
        hooks = {"on_request_end": journal.request, "on_steps": journal.watch}
    start = time.perf_counter()
    replay(workload.requests, core, engine, VirtualClock(), ReplayOptions(max_model_len=engine.max_model_len), **hooks)
    elapsed = time.perf_counter() - start
    if journal is not None:
        journal.remove()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="azure-conv")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    workload = load_workload(args.workload)
    plain, journalled = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            plain.append(once(workload, None))
            journalled.append(once(workload, Path(tmp)))
    a, b = min(plain), min(journalled)
    print(f"{args.workload}: {workload.num_requests} requests, simulated replay (best of {args.repeats})")
    print(f"  without journal: {a:.2f} s\n  with journal:    {b:.2f} s\n  ratio: {b / a:.2f}x")


if __name__ == "__main__":
    main()
