"""NVML access. Everything here degrades to "unavailable, because ..." rather than raising or guessing."""

from __future__ import annotations

from typing import Any


def _init() -> tuple[Any, str | None]:
    """Import and initialise pynvml; return (module, None) or (None, reason)."""
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py (pynvml) is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # e.g. NVML_ERROR_LIBRARY_NOT_FOUND on a machine without the driver
        return None, str(exc) or type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - a broken driver install must not crash `env`
        return None, f"NVML unavailable: {type(exc).__name__}: {exc}"
    return pynvml, None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_status() -> dict[str, Any]:
    """Driver version and GPUs as NVML sees them, or the exact reason NVML cannot be used."""
    nvml, reason = _init()
    if nvml is None:
        return {"available": False, "reason": reason, "driver_version": None, "gpus": []}
    try:
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                {"index": i, "name": _text(nvml.nvmlDeviceGetName(handle)), "memory_gib": round(mem.total / 2**30, 2)}
            )
        return {
            "available": True,
            "reason": None,
            "driver_version": _text(nvml.nvmlSystemGetDriverVersion()),
            "gpus": gpus,
        }
    except nvml.NVMLError as exc:
        return {"available": False, "reason": f"NVML query failed: {exc}", "driver_version": None, "gpus": []}
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
