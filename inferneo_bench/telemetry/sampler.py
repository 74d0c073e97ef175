"""NVML sampling in a background thread while a replay runs.

NVML's "utilization.gpu" only says that *some* kernel was running during the sample period, so it is stored
as `gpu_util_pct` and shown as "kernel busy %", never as SM occupancy. Every counter that the device or the
driver does not support is null, and the first error per counter is kept as its reason.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from inferneo_bench.telemetry.nvml import _init, _text, find_device


class NvmlSampler:
    """Samples one GPU: CUDA device `device_index`, found in NVML by `device_uuid` (torch's UUID of that device,
    see nvml.cuda_device_uuid) so that CUDA_VISIBLE_DEVICES cannot point it at another GPU; by index when
    the UUID is None."""

    def __init__(self, device_index: int | None, interval_s: float = 0.1, device_uuid: str | None = None) -> None:
        self.interval_s = interval_s
        self.samples: list[dict[str, Any]] = []
        self.reasons: dict[str, str] = {}
        self.available = False
        self.reason: str | None = None
        self.device_name: str | None = None
        self.device_uuid = device_uuid
        self._nvml: Any = None
        self._handle: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        if device_index is None:
            self.reason = "not running on a CUDA device"
            return
        nvml, reason = _init()
        if nvml is None:
            self.reason = reason
            return
        try:
            self._handle = find_device(nvml, device_index, device_uuid)
            self.device_name = _text(nvml.nvmlDeviceGetName(self._handle))
        except LookupError as exc:
            self.reason = str(exc)
            return
        except nvml.NVMLError as exc:
            self.reason = f"NVML has no device {device_index}: {exc}"
            return
        self._nvml = nvml
        self.available = True

    def _read(self, key: str, fn: Any) -> Any:
        if key in self.reasons:
            return None
        try:
            return fn()
        except self._nvml.NVMLError as exc:
            self.reasons[key] = str(exc)
            return None
        except Exception as exc:  # noqa: BLE001 - e.g. a binding older than the call: the counter, not the run, fails
            self.reasons[key] = f"{type(exc).__name__}: {exc}"
            return None

    def sample(self) -> dict[str, Any]:
        nvml, h = self._nvml, self._handle
        util = self._read("gpu_util_pct", lambda: nvml.nvmlDeviceGetUtilizationRates(h).gpu)
        mem = self._read("mem_used_mb", lambda: nvml.nvmlDeviceGetMemoryInfo(h).used / 2**20)
        power = self._read("power_w", lambda: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0)
        energy = self._read("energy_j", lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0)
        clock = self._read("sm_clock_mhz", lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM))
        temp = self._read("temp_c", lambda: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))
        throttle = self._read("throttle_reasons", lambda: nvml.nvmlDeviceGetCurrentClocksEventReasons(h))
        return {
            "t_s": time.perf_counter() - self._t0,
            "gpu_util_pct": util,
            "mem_used_mb": mem,
            "power_w": power,
            "energy_j": energy,
            "sm_clock_mhz": clock,
            "temp_c": temp,
            "throttle_reasons": throttle,
        }

    def latest_util(self) -> float | None:
        """Most recent kernel-busy %, for the adaptive strategy (None when not measured)."""
        return self.samples[-1]["gpu_util_pct"] if self.samples else None

    def latest_mem_mb(self) -> float | None:
        """Most recent device memory used (MB), passed to the scheduler as memory_usage (None when not measured)."""
        return self.samples[-1]["mem_used_mb"] if self.samples else None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self.sample())

    def start(self, t0: float | None = None) -> None:
        """Start sampling; sample times are seconds since t0 (perf_counter), the replay's start."""
        self._t0 = time.perf_counter() if t0 is None else t0
        if not self.available:
            return
        self.samples.append(self.sample())
        self._thread = threading.Thread(target=self._loop, name="nvml-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        """Stop and return the result file's `telemetry` block (without the harness figures)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.samples.append(self.sample())
        return {
            "available": self.available,
            "reason": self.reason,
            "interval_s": self.interval_s,
            "device_name": self.device_name,
            "device_uuid": self.device_uuid,
            "counter_errors": self.reasons,
            "samples": self.samples,
        }
