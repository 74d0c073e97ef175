"""Metric definitions, in one place. They follow vLLM's benchmark (`vllm bench serve`) so figures compare
across tools:

- TTFT = first token - arrival; E2EL = finish - arrival; queue = first scheduled - arrival.
  Arrival is the workload's scheduled arrival (open loop: a late harness cannot hide queueing).
- TPOT = (E2EL - TTFT) / (output_tokens - 1) per request; requests with one output token are excluded.
- ITL = every gap between consecutive output tokens, pooled over requests.
- Throughputs divide by the duration from the first arrival to the last finish of the measured requests;
  token counts are those of completed requests. Goodput = completed requests meeting every SLO / duration.
- Percentiles by linear interpolation (numpy's default); std is the population std (numpy's default).
- `failed` counts every unsuccessful request, as vLLM's does (`len(outputs) - completed`); the breakdown
  stands beside it: `rejected` (never admitted, e.g. longer than the context), `cancelled` (client time-out,
  interrupted run) and `errored` (the engine or server failed it: request status `failed`).
- SLOs are compared in seconds, as vLLM does (`ttft_s <= slo_ms / 1000`), so a request exactly at the
  boundary is judged the same way by both tools.
Distributions are over completed, non-warm-up requests; a completed record without a first token (0 output
tokens, e.g. imported from a server that sent an empty completion) counts in E2EL and throughput but has no
TTFT, TPOT or ITL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from inferneo_bench.result_tables import flat_floats
from inferneo_bench.results import RequestRecord, StepRecord
from inferneo_bench.steplog import StepLog, as_steplog

LATENCY_METRICS = ("ttft", "tpot", "itl", "e2el", "queue")
PERCENTILES = (50, 90, 95, 99)
SLO_METRICS = ("ttft_ms", "tpot_ms", "e2el_ms")


def distribution(values_s: Iterable[float] | np.ndarray, name: str) -> dict[str, float | None]:
    """mean/median/std/p50/p90/p95/p99/max of `name`, in milliseconds; all None when there is no value."""
    values = (values_s if isinstance(values_s, np.ndarray) else np.fromiter(values_s, dtype=float)) * 1000.0
    keys = [f"mean_{name}_ms", f"median_{name}_ms", f"std_{name}_ms"]
    keys += [f"p{p}_{name}_ms" for p in PERCENTILES] + [f"max_{name}_ms"]
    if values.size == 0:
        return dict.fromkeys(keys)
    figures = [values.mean(), np.median(values), values.std()]
    figures += list(np.percentile(values, PERCENTILES)) + [values.max()]
    return {k: float(v) for k, v in zip(keys, figures, strict=True)}


def ttft_s(r: RequestRecord) -> float:
    return r.first_token_s - r.arrival_s


def e2el_s(r: RequestRecord) -> float:
    return r.finish_s - r.arrival_s


def tpot_s(r: RequestRecord) -> float | None:
    if r.output_tokens < 2 or r.first_token_s is None:
        return None
    return (e2el_s(r) - ttft_s(r)) / (r.output_tokens - 1)


def slo_checks(r: RequestRecord, slo: dict[str, float]) -> dict[str, bool]:
    """Per SLO metric, whether the request met it, in seconds as vLLM computes it (`value_s <= slo_ms / 1000`);
    a one-token request has no TPOT and cannot miss it (vLLM counts its TPOT as 0); a request without a first
    token (or finish) has no TTFT (or E2EL) and misses that SLO."""
    out = {}
    for key, limit_ms in slo.items():
        if key == "tpot_ms":
            value = tpot_s(r) or 0.0
        elif key == "ttft_ms":
            value = ttft_s(r) if r.first_token_s is not None else None
        else:
            value = e2el_s(r) if r.finish_s is not None else None
        out[key] = value is not None and value <= limit_ms / 1000.0
    return out


def meets_slo(r: RequestRecord, slo: dict[str, float]) -> bool:
    """vLLM's goodput rule: every given SLO met (see slo_checks)."""
    return all(slo_checks(r, slo).values())


def slo_attainment(requests: Sequence[RequestRecord], slo: dict[str, float] | None) -> dict[str, Any]:
    """SLO attainment (DistServe's term): the fraction of measured requests that completed and met every SLO.
    Rejected, cancelled and failed requests count as misses (a user got no answer in time). Also per SLO
    metric (which one binds). None without SLOs or requests."""
    measured = [r for r in requests if not r.warmup]
    if not slo or not measured:
        return {"slo_attainment": None, "slo_attainment_by_metric": None}
    met = dict.fromkeys(slo, 0)
    every = 0
    for r in measured:
        if r.status != "completed":
            continue
        checks = slo_checks(r, slo)
        for key, ok in checks.items():
            met[key] += ok
        every += all(checks.values())
    n = len(measured)
    return {"slo_attainment": every / n, "slo_attainment_by_metric": {k: v / n for k, v in met.items()}}


def saturation_figures(requests: Sequence[RequestRecord]) -> dict[str, float | None]:
    """Figures of the saturation test (runner/validity.py judges them), over the measured requests that reached
    the scheduler (not rejected):

    - offered_rate: their arrivals per second, (n - 1) / span of arrivals (as the workload's mean rate);
    - queue_delay_slope: the least-squares slope of each request's queue delay (first scheduled - arrival; a
      request never scheduled waits until it ended) against its arrival time: seconds of extra wait per
      second of run. An engine that keeps up holds the delay steady (slope ~0, whatever the noise of single
      requests); one that serves mu req/s of lambda offered makes request i wait i (1/mu - 1/lambda), a
      slope of lambda/mu - 1;
    - served_rate: offered_rate / (1 + max(0, slope)): the rate the engine sustained.
    A regression over every request, not the first and last completions: a short run's drain tail or one long
    reply does not move it. All None for fewer than 10 such requests or arrivals at one instant (offline).
    """
    sent = [r for r in requests if not r.warmup and r.status != "rejected"]
    none = {"offered_rate": None, "served_rate": None, "queue_delay_slope": None}
    if len(sent) < 10:
        return none
    arrivals = np.asarray([r.arrival_s for r in sent], dtype=float)
    span = float(arrivals.max() - arrivals.min())
    if span <= 0:
        return none
    end = max((r.finish_s for r in sent if r.finish_s is not None), default=float(arrivals.max()))
    left = [
        r.scheduled_s if r.scheduled_s is not None else (r.finish_s if r.finish_s is not None else end) for r in sent
    ]
    delay = np.asarray(left, dtype=float) - arrivals
    centred = arrivals - arrivals.mean()
    slope = float(np.dot(centred, delay - delay.mean()) / np.dot(centred, centred))
    offered = (len(sent) - 1) / span
    return {"offered_rate": offered, "served_rate": offered / (1.0 + max(0.0, slope)), "queue_delay_slope": slope}


def summarize(
    requests: Sequence[RequestRecord],
    steps: Sequence[StepRecord] | StepLog,
    telemetry: dict[str, Any] | None = None,
    slo: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The result file's `summary`, computed from what the file itself holds (requests, steps, telemetry and
    the SLOs), so anyone can recompute it."""
    measured = [r for r in requests if not r.warmup]
    done = [r for r in measured if r.status == "completed"]
    counts = Counter(r.status for r in measured)
    timed = [r for r in done if r.first_token_s is not None]

    finishes = [r.finish_s for r in measured if r.finish_s is not None]
    duration = (max(finishes) - min(r.arrival_s for r in measured)) if finishes and measured else None
    if duration is not None and duration <= 0:
        duration = None

    total_in = sum(r.prompt_tokens for r in done)
    total_out = sum(r.output_tokens for r in done)

    def per_second(x: float) -> float | None:
        return x / duration if duration else None

    summary: dict[str, Any] = {
        "total_requests": len(requests),
        "warmup_requests": len(requests) - len(measured),
        "completed": len(done),
        "failed": len(measured) - len(done),  # vLLM's meaning: every unsuccessful request
        "rejected": counts["rejected"],
        "cancelled": counts["cancelled"],
        "errored": counts["failed"],
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "duration": duration,
        "request_throughput": per_second(len(done)),
        "output_throughput": per_second(total_out),
        "total_token_throughput": per_second(total_in + total_out),
        "request_goodput": per_second(sum(meets_slo(r, slo) for r in done)) if slo else None,
        "slo": dict(slo) if slo else None,
    }
    summary.update(distribution((ttft_s(r) for r in timed), "ttft"))
    summary.update(distribution((t for r in timed if (t := tpot_s(r)) is not None), "tpot"))
    summary.update(distribution(flat_floats(r.itl_s for r in timed), "itl"))
    summary.update(distribution((e2el_s(r) for r in done if r.finish_s is not None), "e2el"))
    summary.update(distribution((r.scheduled_s - r.arrival_s for r in done if r.scheduled_s is not None), "queue"))
    summary.update(step_figures(steps))
    summary.update(slo_attainment(requests, slo))
    summary.update(saturation_figures(requests))
    summary["preemptions"] = sum(r.preemptions for r in measured)
    ends = Counter(r.reason for r in measured if r.status != "completed")
    summary["end_reasons"] = dict(sorted(ends.items(), key=lambda kv: str(kv[0])))
    summary.update(telemetry_figures(telemetry or {}, total_out))
    summary.update(harness_figures(measured, telemetry or {}))
    if any(r.sent_prompt_tokens is not None for r in requests):  # a remote run (`run --target`)
        summary.update(serving_figures(measured, done, telemetry or {}))
    return summary


def step_figures(steps: Sequence[StepRecord] | StepLog) -> dict[str, Any]:
    """Batch-size figures over every engine step, from the exact step aggregates (steplog.StepStats), so they
    are the same whether a result kept every step's row or only the aggregates. Also, for static strategies,
    the share of batches each limit closed (`batch_closed_by`, see SchedulerCore._closed_by), and
    `schedule_digest`: the first 52 bits of the SHA-256 of every step's batch size, useful and padded tokens,
    in order (an integer).
    Two strategies with the same digest on the same workload formed the same batches (step times are left
    out, so that wall-clock noise does not hide a tie on the real engine)."""
    stats = as_steplog(steps).stats()
    computed = stats.new_tokens + stats.padded_tokens
    closed = stats.closed_by_counts
    batches = sum(closed.values())
    return {
        "mean_batch_size": stats.mean_batch_size(),
        "p50_batch_size": stats.median_batch_size(),
        "max_batch_size": stats.max_batch_size(),
        "padding_waste_frac": (stats.padded_tokens / computed) if computed else None,
        "idle_slot_frac": (stats.idle_slots / stats.slot_steps) if stats.slot_steps else None,
        "num_steps": stats.num_steps,
        "batch_closed_by": {k: v / batches for k, v in sorted(closed.items())} if batches else None,
        "schedule_digest": stats.schedule_digest,
    }


def telemetry_figures(telemetry: dict[str, Any], total_output_tokens: int) -> dict[str, float | None]:
    """GPU figures from NVML samples; None where NVML or the counter is unavailable (never estimated)."""
    samples = telemetry.get("samples") or []

    def column(key: str) -> list[float]:
        return [s[key] for s in samples if s.get(key) is not None]

    util, mem, power, energy = column("gpu_util_pct"), column("mem_used_mb"), column("power_w"), column("energy_j")
    energy_j = (energy[-1] - energy[0]) if len(energy) >= 2 else None
    return {
        "gpu_util_mean": float(np.mean(util)) if util else None,
        "gpu_mem_peak_mb": float(max(mem)) if mem else None,
        "gpu_power_mean_w": float(np.mean(power)) if power else None,
        "energy_j": energy_j,
        "energy_per_output_token_j": (energy_j / total_output_tokens) if energy_j and total_output_tokens else None,
        "torch_peak_allocated_mb": telemetry.get("torch_peak_allocated_mb"),
    }


def harness_figures(requests: Sequence[RequestRecord], telemetry: dict[str, Any]) -> dict[str, float | None]:
    """Proof that the harness kept up: arrival lag per request, and the share of the run the scheduler and the
    bookkeeping took (telemetry["harness"], measured by the replay loop)."""
    lags = np.asarray([r.arrival_lag_s for r in requests if r.arrival_lag_s is not None], dtype=float) * 1000.0
    harness = telemetry.get("harness") or {}
    wall_s, harness_s = harness.get("wall_s"), harness.get("harness_s")
    return {
        "arrival_lag_p50_ms": float(np.percentile(lags, 50)) if lags.size else None,
        "arrival_lag_p99_ms": float(np.percentile(lags, 99)) if lags.size else None,
        "arrival_lag_max_ms": float(lags.max()) if lags.size else None,
        "harness_overhead_frac": (harness_s / wall_s) if wall_s and harness_s is not None else None,
    }


def serving_figures(
    measured: Sequence[RequestRecord], done: Sequence[RequestRecord], telemetry: dict[str, Any]
) -> dict[str, float | None]:
    """The summary keys of a remote run (`run --target`; in-process summaries do not have them).
    TTFT overhead = client TTFT - the server's own engine-side TTFT, per completed request whose server reports
    one: what HTTP, tokenisation, SSE framing and the network add. Client CPU = the client's event-loop CPU
    time over the run's wall time. Tokens per chunk: the mean tokens a streamed token chunk carried."""
    harness = telemetry.get("harness") or {}
    wall_s, cpu_s = harness.get("wall_s"), harness.get("client_cpu_s")
    overhead = (
        np.asarray([ttft_s(r) - r.server_ttft_s for r in done if r.server_ttft_s is not None], dtype=float) * 1000.0
    )
    chunks = sum(len(r.chunk_tokens) for r in done)
    return {
        "ttft_overhead_mean_ms": float(overhead.mean()) if overhead.size else None,
        "ttft_overhead_p50_ms": float(np.percentile(overhead, 50)) if overhead.size else None,
        "ttft_overhead_p99_ms": float(np.percentile(overhead, 99)) if overhead.size else None,
        "ttft_overhead_min_ms": float(overhead.min()) if overhead.size else None,
        "mean_tokens_per_chunk": (sum(sum(r.chunk_tokens) for r in done) / chunks) if chunks else None,
        "usage_mismatches": sum(r.usage_mismatch is not None for r in measured),
        "client_cpu_frac": (cpu_s / wall_s) if wall_s and cpu_s is not None else None,
    }
