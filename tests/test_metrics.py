"""Metric values on a hand-computed case (vLLM definitions)."""

from __future__ import annotations

import pytest

from inferneo_bench.metrics import summarize
from inferneo_bench.results import RequestRecord, StepRecord


def rec(rid, arrival, first, finish, out, itl, scheduled, prompt=10, status="completed", **kw):
    return RequestRecord(
        request_id=rid,
        arrival_s=arrival,
        prompt_tokens=prompt,
        output_tokens=out,
        target_output_tokens=out,
        max_tokens=out,
        priority=5,
        status=status,
        enqueued_s=arrival,
        scheduled_s=scheduled,
        first_token_s=first,
        finish_s=finish,
        itl_s=itl,
        **kw,
    )


REQUESTS = [
    rec("A", 0.0, 0.020, 0.042, 3, [0.011, 0.011], 0.0, prompt=10, arrival_lag_s=0.001),
    rec("B", 0.005, 0.057, 0.068, 2, [0.011], 0.042, prompt=5, arrival_lag_s=0.003),
    RequestRecord(
        request_id="C",
        arrival_s=0.01,
        prompt_tokens=200,
        output_tokens=0,
        target_output_tokens=5,
        max_tokens=5,
        priority=5,
        status="rejected",
        reason="prompt too long",
    ),
]
STEPS = [
    StepRecord(
        index=0,
        start_s=0.0,
        batch_id=0,
        batch_size=2,
        new_tokens=12,
        padded_tokens=4,
        step_ms=20,
        scheduler_us=5,
        queue_depth=0,
    ),
    StepRecord(
        index=1,
        start_s=0.02,
        batch_id=0,
        batch_size=2,
        new_tokens=1,
        padded_tokens=1,
        step_ms=11,
        scheduler_us=5,
        queue_depth=0,
        idle_slots=1,
    ),
]


def test_hand_computed_summary():
    telemetry = {
        "samples": [
            {"gpu_util_pct": 50, "energy_j": 100.0, "mem_used_mb": 10, "power_w": 300},
            {"gpu_util_pct": 70, "energy_j": 160.0, "mem_used_mb": 30, "power_w": 320},
        ],
        "harness": {"wall_s": 2.0, "harness_s": 0.1},
    }
    s = summarize(REQUESTS, STEPS, telemetry, slo={"ttft_ms": 30})
    assert (s["completed"], s["rejected"], s["failed"], s["cancelled"], s["total_requests"]) == (2, 1, 1, 0, 3)
    assert s["errored"] == 0  # failed is vLLM's count: every unsuccessful request (here the rejected one)
    assert s["duration"] == pytest.approx(0.068)
    assert s["total_input_tokens"] == 15 and s["total_output_tokens"] == 5
    assert s["request_throughput"] == pytest.approx(2 / 0.068)
    assert s["output_throughput"] == pytest.approx(5 / 0.068)
    assert s["total_token_throughput"] == pytest.approx(20 / 0.068)
    assert s["request_goodput"] == pytest.approx(1 / 0.068)  # only A meets TTFT <= 30 ms
    assert s["mean_ttft_ms"] == pytest.approx(36) and s["std_ttft_ms"] == pytest.approx(16)
    assert s["p99_ttft_ms"] == pytest.approx(20 + 0.99 * 32)  # linear interpolation
    assert s["mean_tpot_ms"] == pytest.approx(11) and s["max_tpot_ms"] == pytest.approx(11)
    assert s["mean_itl_ms"] == pytest.approx(11) and s["std_itl_ms"] == pytest.approx(0, abs=1e-9)
    assert s["mean_e2el_ms"] == pytest.approx(52.5) and s["p90_e2el_ms"] == pytest.approx(42 + 0.9 * 21)
    assert s["median_queue_ms"] == pytest.approx(18.5)
    assert s["mean_batch_size"] == 2 and s["max_batch_size"] == 2
    assert s["padding_waste_frac"] == pytest.approx(5 / 18)
    assert s["idle_slot_frac"] == pytest.approx(1 / 4)
    assert s["gpu_util_mean"] == pytest.approx(60) and s["gpu_mem_peak_mb"] == 30
    assert s["energy_j"] == pytest.approx(60) and s["energy_per_output_token_j"] == pytest.approx(12)
    assert s["arrival_lag_max_ms"] == pytest.approx(3) and s["arrival_lag_p50_ms"] == pytest.approx(2)
    assert s["harness_overhead_frac"] == pytest.approx(0.05)
    assert s["end_reasons"] == {"prompt too long": 1}


def test_one_token_requests_have_no_tpot_and_no_gpu_figures_without_nvml():
    one = [rec("A", 0.0, 0.02, 0.02, 1, [], 0.0)]
    s = summarize(one, [], {"available": False, "reason": "NVML Shared Library Not Found", "samples": []})
    assert s["mean_tpot_ms"] is None and s["mean_ttft_ms"] == pytest.approx(20)
    assert s["gpu_util_mean"] is None and s["energy_j"] is None and s["request_goodput"] is None
    assert s["mean_batch_size"] is None and s["padding_waste_frac"] is None


def test_warmup_requests_are_excluded():
    reqs = [rec("W", 0.0, 1.0, 2.0, 2, [1.0], 0.0, warmup=True), rec("A", 0.5, 0.6, 0.7, 2, [0.1], 0.5)]
    s = summarize(reqs, [])
    assert s["completed"] == 1 and s["warmup_requests"] == 1
    assert s["duration"] == pytest.approx(0.2) and s["mean_ttft_ms"] == pytest.approx(100)
