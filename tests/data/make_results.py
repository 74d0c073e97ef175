"""Generate small, realistic result files for compare's tests (the committed goldens under tests/data/results/).

A tiny discrete-event simulation on a virtual clock: 24 requests (one over-long, so rejected) arrive as a
Poisson process; static strategies freeze a batch until it drains (padding the prompts, leaving finished
slots idle), `continuous` re-plans every step. Step time is a linear cost model with a little seeded jitter,
so repeated trials differ. The summary is computed from the records with vLLM's definitions, so every figure
in a file follows from its own requests and steps. The `gpu` set adds NVML-style telemetry samples derived
from when the engine was busy, and repeats fixed_size and adaptive three times.

Run `python tests/data/make_results.py` from the repository root to rewrite tests/data/results/.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent / "results"
STRATEGIES = ("fixed_size", "adaptive", "coalescing", "latency_optimized", "throughput_optimized", "continuous")
MAX_MODEL_LEN = 512
# (cap, fill delay s) per static strategy; adaptive's cap grows by one per batch from 4 up to 8.
STATIC = {
    "fixed_size": (4, 0.05),
    "adaptive": (4, 0.03),
    "coalescing": (4, 0.05),
    "latency_optimized": (2, 0.0),
    "throughput_optimized": (8, 0.2),
}


@dataclass
class Req:
    rid: str
    arrival: float
    prompt: int
    out: int
    token_times: list[float] = field(default_factory=list)
    scheduled: float | None = None


def workload(n: int = 24, rate: float = 10.0, seed: int = 7) -> list[Req]:
    rng = np.random.default_rng(seed)
    t = 0.0
    reqs = []
    for i in range(n):
        t += float(rng.exponential(1.0 / rate))
        prompt = int(rng.integers(16, 200)) if i != 5 else 900  # request 5 exceeds the model context
        reqs.append(Req(f"req-{i:03d}", round(t, 4), prompt, int(rng.integers(2, 7))))
    return reqs


class Clock:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.steps: list[dict[str, Any]] = []
        self.busy: list[tuple[float, float]] = []

    def step(
        self, now: float, batch: int, new: int, padded: int, computed: int, queue: int, events=(), idle: int = 0
    ) -> float:
        ms = (20.0 + 4.0 * batch + 0.2 * computed) * float(1.0 + self.rng.normal(0.0, 0.04))
        ms = round(max(ms, 1.0), 3)
        rec = {
            "index": len(self.steps),
            "start_s": round(now, 4),
            "batch_id": None,
            "batch_size": batch,
            "new_tokens": new,
            "padded_tokens": padded,
            "step_ms": ms,
            "scheduler_us": round(float(self.rng.uniform(8, 30))),
            "queue_depth": queue,
        }
        if idle:
            rec["idle_slots"] = idle
        if events:
            rec["events"] = list(events)
        self.steps.append(rec)
        self.busy.append((now, now + ms / 1000))
        return now + ms / 1000


def run_static(name: str, reqs: list[Req], clock: Clock) -> None:
    cap, delay = STATIC[name]
    pending = sorted(reqs, key=lambda r: r.arrival)
    queue: list[Req] = []
    now, batch_id = 0.0, 0
    while pending or queue:
        while pending and pending[0].arrival <= now + 1e-12:
            queue.append(pending.pop(0))
        if not queue:
            now = pending[0].arrival
            continue
        if len(queue) < cap and now < queue[0].arrival + delay and pending:
            now = min(pending[0].arrival, queue[0].arrival + delay)
            continue
        if name == "coalescing":  # oldest request plus the nearest prompt lengths
            head = queue[0]
            rest = sorted(queue[1:], key=lambda r: (abs(r.prompt - head.prompt), r.arrival))
            batch = [head] + rest[: cap - 1]
        else:
            batch = queue[:cap]
        chosen = {id(r) for r in batch}
        queue = [r for r in queue if id(r) not in chosen]
        events = []
        if name == "adaptive" and cap < 8:
            events = [f"cap {cap}->{cap + 1}: tokens/s beat previous cap"]
        for r in batch:
            r.scheduled = now
        longest = max(r.prompt for r in batch)
        prompt_sum = sum(r.prompt for r in batch)
        now = clock.step(
            now, len(batch), prompt_sum, longest * len(batch) - prompt_sum, longest * len(batch), len(queue), events
        )
        for step in clock.steps[-1:]:
            step["batch_id"] = batch_id
        for r in batch:
            r.token_times.append(now)
        for k in range(2, max(r.out for r in batch) + 1):
            active = [r for r in batch if r.out >= k]
            while pending and pending[0].arrival <= now:
                queue.append(pending.pop(0))
            idle = len(batch) - len(active)
            now = clock.step(now, len(batch), len(active), idle, len(batch), len(queue), idle=idle)
            clock.steps[-1]["batch_id"] = batch_id
            for r in active:
                r.token_times.append(now)
        batch_id += 1
        if name == "adaptive":
            cap = min(cap + 1, 8)


def run_continuous(reqs: list[Req], clock: Clock, max_seqs: int = 8) -> None:
    pending = sorted(reqs, key=lambda r: r.arrival)
    queue: list[Req] = []
    running: list[Req] = []
    now = 0.0
    while pending or queue or running:
        while pending and pending[0].arrival <= now + 1e-12:
            queue.append(pending.pop(0))
        if not queue and not running:
            now = pending[0].arrival
            continue
        admitted = []
        while queue and len(running) + len(admitted) < max_seqs:
            admitted.append(queue.pop(0))
        for r in admitted:
            r.scheduled = now
        decode = len(running)
        prefill = sum(r.prompt for r in admitted)
        now = clock.step(now, decode + len(admitted), decode + prefill, 0, decode + prefill, len(queue))
        for r in running + admitted:
            r.token_times.append(now)
        running = [r for r in running + admitted if len(r.token_times) < r.out]


def percentiles(prefix: str, values: list[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    arr = np.asarray(values, dtype=float) * 1000.0
    for stat in ("mean", "median", "std", "p50", "p90", "p95", "p99", "max"):
        if arr.size == 0:
            out[f"{stat}_{prefix}_ms"] = None
            continue
        value = {
            "mean": np.mean,
            "median": np.median,
            "std": np.std,
            "max": np.max,
        }.get(stat, lambda a, s=stat: np.percentile(a, float(s[1:])))(arr)
        out[f"{stat}_{prefix}_ms"] = round(float(value), 3)
    return out


def summarize(reqs: list[Req], rejected: list[Req], steps: list[dict], samples: list[dict] | None) -> dict:
    done = [r for r in reqs if r.token_times]
    start = min(r.arrival for r in reqs + rejected)
    end = max(r.token_times[-1] for r in done)
    duration = end - start
    out_tokens = sum(len(r.token_times) for r in done)
    in_tokens = sum(r.prompt for r in done)
    ttft = [r.token_times[0] - r.arrival for r in done]
    e2el = [r.token_times[-1] - r.arrival for r in done]
    tpot = [
        (e - t) / (len(r.token_times) - 1) for r, t, e in zip(done, ttft, e2el, strict=False) if len(r.token_times) > 1
    ]
    itl = [b - a for r in done for a, b in zip(r.token_times, r.token_times[1:], strict=False)]
    queue = [r.scheduled - r.arrival for r in done]
    batches = [s["batch_size"] for s in steps]
    new = sum(s["new_tokens"] for s in steps)
    padded = sum(s["padded_tokens"] for s in steps)
    idle = sum(s["batch_size"] - s["new_tokens"] for s in steps if s["new_tokens"] < s["batch_size"])
    summary: dict[str, Any] = {
        "completed": len(done),
        "failed": 0,
        "rejected": len(rejected),
        "cancelled": 0,
        "total_requests": len(done) + len(rejected),
        "warmup_requests": 0,
        "total_input_tokens": in_tokens,
        "total_output_tokens": out_tokens,
        "duration": round(duration, 4),
        "request_throughput": round(len(done) / duration, 4),
        "output_throughput": round(out_tokens / duration, 3),
        "total_token_throughput": round((in_tokens + out_tokens) / duration, 3),
        "request_goodput": None,
        "slo": None,
    }
    for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2el", e2el), ("queue", queue)):
        summary.update(percentiles(name, values))
    summary.update(
        {
            "mean_batch_size": round(float(np.mean(batches)), 3),
            "p50_batch_size": float(np.percentile(batches, 50)),
            "max_batch_size": max(batches),
            "padding_waste_frac": round(padded / (new + padded), 4),
            "idle_slot_frac": round(idle / sum(batches), 4),
            "preemptions": 0,
        }
    )
    if samples:
        energy = samples[-1]["energy_j"] - samples[0]["energy_j"]
        summary.update(
            {
                "gpu_util_mean": round(float(np.mean([s["gpu_util_pct"] for s in samples])), 2),
                "gpu_mem_peak_mb": max(s["mem_used_mb"] for s in samples),
                "gpu_power_mean_w": round(float(np.mean([s["power_w"] for s in samples])), 2),
                "energy_j": round(energy, 3),
                "energy_per_output_token_j": round(energy / out_tokens, 4),
            }
        )
    else:
        summary.update(
            {
                "gpu_util_mean": None,
                "gpu_mem_peak_mb": None,
                "gpu_power_mean_w": None,
                "energy_j": None,
                "energy_per_output_token_j": None,
            }
        )
    summary.update(
        {
            "arrival_lag_p50_ms": 0.08,
            "arrival_lag_p99_ms": 0.41,
            "arrival_lag_max_ms": 0.6,
            "harness_overhead_frac": 0.012,
        }
    )
    return summary


def nvml_samples(clock: Clock, end: float, interval: float = 0.25) -> list[dict[str, Any]]:
    """Samples as the NVML sampler would record them: busy fraction of each interval as kernel-busy %."""
    samples, energy = [], 0.0
    starts = np.asarray([a for a, _ in clock.busy])
    ends = np.asarray([b for _, b in clock.busy])
    t = 0.0
    while t <= end + interval:
        lo, hi = t - interval, t
        busy = (
            float(np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0.0, None).sum()) / interval if t > 0 else 0.0
        )
        util = int(round(min(busy, 1.0) * 100))
        power = round(62.0 + 2.4 * util, 1)
        energy += power * interval
        samples.append(
            {
                "t_s": round(t, 3),
                "gpu_util_pct": util,
                "mem_used_mb": 2100 + 4 * util,
                "power_w": power,
                "energy_j": round(energy, 2),
                "sm_clock_mhz": 1980 if util < 90 else 1935,
                "temp_c": 41 + util // 10,
                "throttle_reasons": [] if util < 90 else ["sw_power_cap"],
            }
        )
        t += interval
    return samples


def make(
    strategy: str, *, run_id: str, gpu: bool, trial: int | None, jitter_seed: int, num_requests: int = 24
) -> dict[str, Any]:
    reqs = workload(num_requests)
    rejected = [r for r in reqs if r.prompt > MAX_MODEL_LEN]
    live = [r for r in reqs if r.prompt <= MAX_MODEL_LEN]
    clock = Clock(jitter_seed)
    if strategy == "continuous":
        run_continuous(live, clock)
    else:
        run_static(strategy, live, clock)
    end = max(r.token_times[-1] for r in live)
    samples = nvml_samples(clock, end) if gpu else None
    records = []
    for r in reqs:
        rec: dict[str, Any] = {
            "request_id": r.rid,
            "arrival_s": r.arrival,
            "prompt_tokens": r.prompt,
            "output_tokens": len(r.token_times),
            "target_output_tokens": r.out,
            "max_tokens": 16,
            "priority": 5,
        }
        if r in rejected:
            rec.update(
                status="rejected",
                reason=f"prompt of {r.prompt} tokens exceeds max_model_len {MAX_MODEL_LEN}",
                enqueued_s=r.arrival,
            )
        else:
            rec.update(
                status="completed",
                enqueued_s=round(r.arrival + 0.0001, 4),
                scheduled_s=round(r.scheduled, 4),
                first_token_s=round(r.token_times[0], 4),
                finish_s=round(r.token_times[-1], 4),
                itl_s=[round(b - a, 4) for a, b in zip(r.token_times, r.token_times[1:], strict=False)],
            )
        records.append(rec)
    summary = summarize(live, rejected, clock.steps, samples)
    device = ("cuda", "NVIDIA H100 80GB HBM3") if gpu else ("cpu", "cpu")
    config = {
        "max_num_seqs": 8,
        "max_num_partial_prefills": STATIC.get(strategy, (8, 0))[0],
        "max_queue_delay_ms": STATIC.get(strategy, (0, 0.0))[1] * 1000,
    }
    return {
        "schema_version": 1,
        "tool": {"name": "inferneo-bench", "version": "0.1.0"},
        "run": {
            "id": run_id,
            "started_at": "2026-11-27T03:00:00+00:00",
            "finished_at": "2026-11-27T03:00:10+00:00",
            "command": f"inferneo-bench run --strategy all --workload chat{' --repeat 3' if trial else ''}",
            "seed": 0,
            "engine": "torch",
            "status": "completed",
            "validity": {"valid": True, "failed": []},
            "trial": trial,
            "label": None,
        },
        "environment": {"python": "3.11.9", "platform": "Linux-x86_64", "git_commit": None},
        "model": {
            "name": "tiny",
            "device_type": device[0],
            "device_name": device[1],
            "dtype": "float32",
            "max_model_len": MAX_MODEL_LEN,
        },
        "workload": {"name": "chat", "content_hash": "sha256:3f9a1c0e5b7d", "num_requests": len(reqs)},
        "strategy": {"name": strategy, "config": config},
        "summary": summary,
        "requests": records,
        "steps": clock.steps,
        "telemetry": (
            {"available": True, "reason": None, "interval_s": 0.25, "samples": samples}
            if gpu
            else {"available": False, "reason": "NVML Shared Library Not Found", "samples": []}
        ),
    }


def write(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")


def main(root: Path = ROOT) -> list[Path]:
    written = []
    for i, strategy in enumerate(STRATEGIES):
        data = make(strategy, run_id="chat-cpu", gpu=False, trial=None, jitter_seed=100 + i)
        if strategy == "throughput_optimized":  # one invalid run, so the validity row has something to show
            data["run"]["validity"] = {
                "valid": False,
                "failed": ["arrival_lag_p99_ms 14.2 > 10.0 (harness fell behind)"],
            }
        write(data, root / "chat-cpu" / f"{strategy}.json")
        written.append(root / "chat-cpu" / f"{strategy}.json")
    for strategy, trials in (("fixed_size", 3), ("adaptive", 3), ("continuous", 1)):
        for trial in range(1, trials + 1):
            seed = 200 + 10 * STRATEGIES.index(strategy) + trial
            data = make(strategy, run_id="chat-gpu", gpu=True, trial=trial, jitter_seed=seed)
            path = root / "chat-gpu" / f"{strategy}-trial{trial}.json"
            write(data, path)
            written.append(path)
    return written


if __name__ == "__main__":
    for p in main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(f"{p} {p.stat().st_size} bytes")
