"""NVML telemetry on a CPU machine: the real sampler against a fake pynvml module (the GPU path exercised
without a GPU), and the honest "unavailable" path."""

from __future__ import annotations

import sys
import types

import pytest

from inferneo_bench.metrics import telemetry_figures
from inferneo_bench.telemetry.nvml import nvml_status
from inferneo_bench.telemetry.sampler import NvmlSampler


class FakeNVMLError(Exception):
    pass


def fake_pynvml(energy_mj: list[int]) -> types.ModuleType:
    m = types.ModuleType("pynvml")
    m.NVMLError = FakeNVMLError
    m.NVML_CLOCK_SM = 1
    m.NVML_TEMPERATURE_GPU = 0
    m.nvmlInit = lambda: None
    m.nvmlShutdown = lambda: None
    m.nvmlDeviceGetCount = lambda: 1
    m.nvmlSystemGetDriverVersion = lambda: b"570.00"
    m.nvmlDeviceGetHandleByIndex = lambda i: f"h{i}"
    m.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=80 * 2**30, used=1024 * 2**20)
    m.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=87)
    m.nvmlDeviceGetPowerUsage = lambda h: 350_000  # mW
    m.nvmlDeviceGetTotalEnergyConsumption = lambda h: energy_mj.pop(0)

    def unsupported(*_):
        raise FakeNVMLError("Not Supported")

    m.nvmlDeviceGetClockInfo = lambda h, kind: 1980
    m.nvmlDeviceGetTemperature = lambda h, kind: 61
    m.nvmlDeviceGetCurrentClocksEventReasons = unsupported
    return m


def test_sampler_reads_every_counter_and_names_unsupported_ones(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([1_000_000, 1_060_000]))
    sampler = NvmlSampler(device_index=0, interval_s=3600)  # no background sample during the test
    assert sampler.available and sampler.device_name == "NVIDIA H100 80GB HBM3"
    sampler.start()
    telemetry = sampler.stop()
    first, last = telemetry["samples"]
    assert first["gpu_util_pct"] == 87 and first["mem_used_mb"] == 1024 and first["power_w"] == 350
    assert (first["energy_j"], last["energy_j"]) == (1000, 1060)
    assert first["throttle_reasons"] is None
    assert telemetry["counter_errors"] == {"throttle_reasons": "Not Supported"}
    assert sampler.latest_util() == 87 and sampler.latest_mem_mb() == 1024
    figures = telemetry_figures(telemetry, total_output_tokens=30)
    assert figures["energy_j"] == pytest.approx(60) and figures["energy_per_output_token_j"] == pytest.approx(2)
    assert figures["gpu_util_mean"] == 87 and figures["gpu_power_mean_w"] == 350


def test_nvml_status_with_a_driver(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([0]))
    status = nvml_status()
    assert status["available"] and status["driver_version"] == "570.00"
    assert status["gpus"] == [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_gib": 80.0}]


def test_no_nvml_means_null_figures_with_a_reason(monkeypatch):
    broken = types.ModuleType("pynvml")
    broken.NVMLError = FakeNVMLError

    def fail():
        raise FakeNVMLError("NVML Shared Library Not Found")

    broken.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    sampler = NvmlSampler(device_index=0)
    assert not sampler.available and sampler.reason == "NVML Shared Library Not Found"
    sampler.start()
    telemetry = sampler.stop()
    assert telemetry["samples"] == [] and telemetry["reason"] == "NVML Shared Library Not Found"
    assert all(v is None for v in telemetry_figures(telemetry, 10).values())
    assert NvmlSampler(device_index=None).reason == "not running on a CUDA device"
