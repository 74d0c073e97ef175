"""The NVML sampler against a real driver (skipped without a GPU; run by bench/gpu-acceptance.sh).

What the CPU tests cannot show: that the sampler finds the GPU torch computes on (by UUID), that every counter
reads a plausible value or is null with the driver's own reason, and that the energy counter moves with work.
"""

from __future__ import annotations

import time

import pytest
import torch

from inferneo_bench.metrics import telemetry_figures
from inferneo_bench.telemetry.nvml import cuda_device_uuid
from inferneo_bench.telemetry.sampler import NvmlSampler

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

COUNTERS = ("gpu_util_pct", "mem_used_mb", "power_w", "energy_j", "sm_clock_mhz", "temp_c", "throttle_reasons")


def test_sampler_reads_the_gpu_torch_uses_under_load():
    index = torch.cuda.current_device()
    uuid = cuda_device_uuid(index)
    assert uuid, "torch gives no UUID for the CUDA device"
    sampler = NvmlSampler(index, interval_s=0.05, device_uuid=uuid)
    assert sampler.available, sampler.reason
    assert sampler.device_name == torch.cuda.get_device_name(index)
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    sampler.start()
    t_end = time.perf_counter() + 1.5
    while time.perf_counter() < t_end:  # about 1.5 s of matrix products keeps the GPU busy between samples
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
    telemetry = sampler.stop()
    samples = telemetry["samples"]
    assert len(samples) >= 10
    for key in COUNTERS:  # every counter measured somewhere, or null with the driver's reason
        measured = [s[key] for s in samples if s[key] is not None]
        assert measured or telemetry["counter_errors"].get(key), (key, telemetry["counter_errors"])
    figures = telemetry_figures(telemetry, total_output_tokens=1000)
    if "energy_j" not in telemetry["counter_errors"]:
        assert figures["energy_j"] is not None and figures["energy_j"] > 0
        assert figures["energy_per_output_token_j"] == pytest.approx(figures["energy_j"] / 1000)
    if "power_w" not in telemetry["counter_errors"]:
        assert 1 < figures["gpu_power_mean_w"] < 2000
    if "mem_used_mb" not in telemetry["counter_errors"]:
        assert figures["gpu_mem_peak_mb"] > a.numel() * a.element_size() / 2**20
