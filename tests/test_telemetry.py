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
    m.nvmlDeviceGetUUID = lambda h: b"GPU-" + f"{int(h[1:]):08x}-0000-0000-0000-000000000000".encode()
    return m


def two_gpus(energy_mj: list[int]) -> types.ModuleType:
    """NVML sees two GPUs (PCI order); the second is named differently so a test can tell which was read."""
    m = fake_pynvml(energy_mj)
    m.nvmlDeviceGetCount = lambda: 2
    m.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3" if h == "h0" else b"NVIDIA H200"
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


def test_sampler_finds_the_cuda_device_by_uuid_not_by_index(monkeypatch):
    # CUDA_VISIBLE_DEVICES=1: CUDA's device 0 is NVML's device 1; torch gives the UUID without 'GPU-'
    monkeypatch.setitem(sys.modules, "pynvml", two_gpus([0, 0]))
    sampler = NvmlSampler(device_index=0, interval_s=3600, device_uuid="00000001-0000-0000-0000-000000000000")
    assert sampler.available and sampler.device_name == "NVIDIA H200"
    assert sampler.stop()["device_uuid"] == "00000001-0000-0000-0000-000000000000"
    # upper case and the 'GPU-' prefix are the same UUID
    same = NvmlSampler(device_index=0, interval_s=3600, device_uuid="GPU-00000001-0000-0000-0000-000000000000".upper())
    assert same.device_name == "NVIDIA H200"
    # without a UUID (torch could not say) the index is all there is
    assert NvmlSampler(device_index=0, interval_s=3600).device_name == "NVIDIA H100 80GB HBM3"


def test_sampler_refuses_a_uuid_nvml_does_not_know(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", two_gpus([0]))
    sampler = NvmlSampler(device_index=0, device_uuid="MIG-1234")
    assert not sampler.available
    assert "no NVML device has the UUID MIG-1234 of CUDA device 0" in sampler.reason
    telemetry = sampler.stop()
    assert telemetry["samples"] == [] and all(v is None for v in telemetry_figures(telemetry, 10).values())


def test_a_counter_the_binding_lacks_is_null_with_the_reason(monkeypatch):
    nvml = fake_pynvml([5_000, 6_000])
    del nvml.nvmlDeviceGetCurrentClocksEventReasons  # an nvidia-ml-py older than the call

    def broken_temperature(h, kind):
        raise TypeError("bad argument")

    nvml.nvmlDeviceGetTemperature = broken_temperature
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    sampler = NvmlSampler(device_index=0, interval_s=3600)
    sampler.start()
    telemetry = sampler.stop()
    assert [s["throttle_reasons"] for s in telemetry["samples"]] == [None, None]
    assert telemetry["counter_errors"]["throttle_reasons"].startswith("AttributeError")
    assert telemetry["counter_errors"]["temp_c"] == "TypeError: bad argument"
    assert telemetry["samples"][1]["energy_j"] == 6  # the other counters still read


def test_cuda_device_uuid_is_none_without_cuda():
    import torch

    from inferneo_bench.telemetry.nvml import cuda_device_uuid

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: tests/test_telemetry_cuda.py checks the real UUID")
    assert cuda_device_uuid(0) is None
