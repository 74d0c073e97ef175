"""Simulated replay speed: requests per wall second, SimEngine with the shipped tiny CPU profile, continuous
batching, on the 19,366-request Azure LLM inference conversation trace (2023, CC-BY 4.0).

The replay loop here is a MINIMAL stand-in for the runner (iteration-level batching: every running sequence
decodes each step, waiting prompts are admitted FCFS while slots and a per-step prompt-token budget allow,
no chunked prefill, no preemption); it records per-request TTFT, finish and inter-token gaps like a runner
would. Target: >= 2,000 simulated requests per wall second (the whole trace in under 10 s).

    /work/venv/bin/python tests/benchmarks/bench_sim.py [--trace CSV] [--profile tiny-cpu] [--max-num-seqs 256]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import deque
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from inferneo_bench.engine.sim_engine import load_sim_engine  # noqa: E402
from inferneo_bench.steps import SeqStep, StepPlan  # noqa: E402

TRACE = Path("/work/shared/traces/AzureLLMInferenceTrace_conv.csv")


def load_trace(path: Path) -> list[tuple[float, int, int]]:
    """(arrival seconds from the first request, prompt tokens, output tokens), minimal CSV parsing."""
    rows = []
    with path.open() as fh:
        for rec in csv.DictReader(fh):
            ts = datetime.fromisoformat(rec["TIMESTAMP"][:26])
            rows.append((ts, int(rec["ContextTokens"]), int(rec["GeneratedTokens"])))
    t0 = rows[0][0]
    return [((ts - t0).total_seconds(), p, max(o, 1)) for ts, p, o in rows]


def replay(requests, engine, max_num_seqs: int, prompt_budget: int) -> dict:
    n = len(requests)
    ids = [str(i) for i in range(n)]
    max_len = engine.max_model_len
    first: list[float | None] = [None] * n
    finish: list[float | None] = [None] * n
    last = [0.0] * n
    itl: list[list[float]] = [[] for _ in range(n)]
    rejected = 0
    now, i, steps, batch_sum = 0.0, 0, 0, 0
    waiting: deque[int] = deque()
    running: dict[str, list[int]] = {}  # seq id -> [next start_pos, tokens still to produce, request index]
    to_free: list[str] = []
    while i < n or waiting or running:
        while i < n and requests[i][0] <= now:
            if requests[i][1] + requests[i][2] > max_len:
                rejected += 1
            else:
                waiting.append(i)
            i += 1
        seqs = [SeqStep(sid, st[0], 1, True) for sid, st in running.items()]
        budget = prompt_budget
        while waiting and len(running) < max_num_seqs:
            r = waiting[0]
            p = requests[r][1]
            if p > budget and budget < prompt_budget:
                break
            waiting.popleft()
            sid = ids[r]
            engine.add_sequence(sid, p)
            seqs.append(SeqStep(sid, 0, p, True))
            running[sid] = [p - 1, requests[r][2], r]  # advanced by one below when its first token comes
            budget -= p
        if not seqs:
            if i < n:
                now = max(now, requests[i][0])
            continue
        res = engine.step(StepPlan(seqs, free=to_free))
        to_free = []
        now += res.step_s
        steps += 1
        batch_sum += len(seqs)
        for sid in res.tokens:
            st = running[sid]
            st[0] += 1
            st[1] -= 1
            r = st[2]
            if first[r] is None:
                first[r] = now
            else:
                itl[r].append(now - last[r])
            last[r] = now
            if st[1] == 0:
                finish[r] = now
                del running[sid]
                to_free.append(sid)
    done = [r for r in range(n) if finish[r] is not None]
    ttft = [first[r] - requests[r][0] for r in done]
    return {
        "completed": len(done),
        "rejected": rejected,
        "steps": steps,
        "mean_batch": batch_sum / max(steps, 1),
        "virtual_duration_s": now,
        "median_ttft_ms": statistics.median(ttft) * 1e3 if ttft else None,
        "output_tokens": sum(len(itl[r]) + 1 for r in done),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--profile", default="tiny-cpu")
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--prompt-budget", type=int, default=4096, help="prompt tokens admitted per step")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--stretch", type=float, default=1.0, help="multiply arrival times (> 1: a lighter load)")
    args = ap.parse_args()
    requests = [(a * args.stretch, p, o) for a, p, o in load_trace(args.trace)]
    print(
        f"trace: {args.trace.name}, {len(requests):,} requests over {requests[-1][0] / 60:.1f} min "
        f"(arrivals x{args.stretch:g}), profile {args.profile}, max {args.max_num_seqs} seqs"
    )
    outputs = []
    for k in range(args.repeat):
        engine = load_sim_engine(args.profile, max_num_seqs=args.max_num_seqs)
        t0, c0 = time.perf_counter(), time.process_time()
        out = replay(requests, engine, args.max_num_seqs, args.prompt_budget)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        outputs.append(out)
        print(
            f"run {k + 1}: {wall:.2f} s wall ({cpu:.2f} s CPU), {len(requests) / wall:,.0f} simulated req/s "
            f"({len(requests) / cpu:,.0f} per CPU second), "
            f"{out['steps'] / wall:,.0f} steps/s  |  {out['completed']:,} completed, {out['rejected']:,} rejected, "
            f"{out['steps']:,} steps, mean batch {out['mean_batch']:.1f}, "
            f"virtual {out['virtual_duration_s']:.0f} s (x{out['virtual_duration_s'] / wall:,.0f} real time), "
            f"median TTFT {out['median_ttft_ms']:.1f} ms"
        )
    print(f"deterministic across runs: {all(o == outputs[0] for o in outputs)}")
    print("target: >= 2,000 simulated req/s (minimal replay loop, not the project runner)")


if __name__ == "__main__":
    main()
